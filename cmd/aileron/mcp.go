package main

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/supervisor/mcpserver"
)

func (a *app) mcpCmd() *cobra.Command {
	var httpAddr, isolation string
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve installed actions to AI agents as MCP tools (stdio, or --http)",
		Long: `Serve every installed action as a Model Context Protocol tool. By default
MCP runs over stdin/stdout, for an MCP client that starts aileron itself;
logs go to stderr. With --http HOST:PORT it serves streamable HTTP at
/mcp on a loopback address instead.

Each call runs the action as 'aileron run' does: sandboxed workers, the
broker attaching credentials, the audit log recording the run as coming
through MCP. Agents can only call installed actions: installing, granting
and trusting stay with a person at the CLI. Actions added or removed while
the server runs reach clients as a tools/list_changed notification.`,
		Args: exactArgs(0, "mcp takes no arguments; clients call the installed actions as tools"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var addr string
			if cmd.Flags().Changed("http") {
				var err error
				if addr, err = mcpserver.ListenAddr(httpAddr); err != nil {
					return usageError{fmt.Errorf("--http: %w", err)}
				}
			}
			strict, err := isolationFlag(isolation)
			if err != nil {
				return err
			}
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			a.via = "mcp"
			sup, err := a.supervisor(strict, true)
			if err != nil {
				return err
			}
			defer sup.Close()
			level := hclog.Warn
			if a.verbose {
				level = hclog.Debug
			}
			srv, err := mcpserver.New(mcpserver.Config{
				Runner:     sup,
				ActionsDir: supervisor.ActionsDir(home),
				Logger:     hclog.New(&hclog.LoggerOptions{Name: "aileron", Level: level, Output: a.stderr}),
			})
			if err != nil {
				return err
			}
			if addr == "" {
				// stdout carries protocol messages only; everything else
				// writes to stderr.
				err := srv.Run(cmd.Context(), &mcp.IOTransport{Reader: io.NopCloser(a.stdin), Writer: nopWriteCloser{a.stdout}})
				if errors.Is(err, io.EOF) {
					return nil // the client closed stdin
				}
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "aileron: serving MCP at http://%s%s\n", ln.Addr(), mcpserver.HTTPPath)
			return srv.Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve streamable HTTP on HOST:PORT (loopback only, e.g. 127.0.0.1:8808) instead of stdio")
	cmd.Flags().StringVar(&isolation, "isolation", "", "strict: refuse to run without every isolation layer; relaxed: warn (default from config.toml)")
	return cmd
}

// nopWriteCloser keeps the transport from closing our stdout.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
