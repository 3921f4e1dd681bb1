package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/supervisor"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // the action or command failed
	exitUsage    = 2 // bad arguments
	exitInternal = 3 // aileron itself failed
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

// app holds what every command shares.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	home           string
	verbose        bool
	jsonOut        bool
	via            string // how runs start, for audit: "cli" when empty
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The broker is this binary too; it bypasses cobra entirely.
	if len(args) == 1 && args[0] == "broker" && os.Getenv(broker.Handshake.MagicCookieKey) != "" {
		return broker.Serve()
	}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "aileron:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	if errors.Is(err, supervisor.ErrCancelled) || errors.Is(ctx.Err(), context.Canceled) {
		return 130
	}
	return exitFailure
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "aileron",
		Short:         "Run actions through sandboxed connectors that never see a credential",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.home, "home", "", "state directory (default $AILERON_HOME or ~/.aileron)")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log what the supervisor, broker and workers do")
	root.AddCommand(a.runCmd(), a.connectorCmd(), a.actionCmd(), a.vaultCmd(), a.doctorCmd(), a.auditCmd(), a.trustCmd(), a.storeCmd())
	root.AddCommand(a.mcpCmd())
	root.AddCommand(a.serveCmd())
	return root
}

// homeDir resolves the state directory.
func (a *app) homeDir() (string, error) {
	if a.home != "" {
		return filepath.Abs(a.home)
	}
	if h := os.Getenv("AILERON_HOME"); h != "" {
		return filepath.Abs(h)
	}
	uh, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a home directory: set AILERON_HOME: %w", err)
	}
	return filepath.Join(uh, ".aileron"), nil
}

// workerPath finds aileron-worker: $AILERON_WORKER, else beside this binary.
func workerPath() (string, error) {
	if p := os.Getenv("AILERON_WORKER"); p != "" {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(exe), "aileron-worker")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("aileron-worker not found beside %s: build it (make build) or set AILERON_WORKER", exe)
	}
	return p, nil
}

// supervisor builds a supervisor from the home directory's settings. Only
// commands that run actions (run, mcp) ask for the warm pool of
// config.toml: for any other command, pre-spawned sandboxed workers would
// be pure cost.
func (a *app) supervisor(strict *bool, pool bool) (*supervisor.Supervisor, error) {
	home, err := a.homeDir()
	if err != nil {
		return nil, err
	}
	wp, err := workerPath()
	if err != nil {
		return nil, err
	}
	cfg := supervisor.Config{Home: home, WorkerPath: wp, Via: cmp.Or(a.via, "cli")}
	settings, err := supervisor.LoadSettings(home)
	if err != nil {
		return nil, err
	}
	if err := settings.Apply(&cfg); err != nil {
		return nil, err
	}
	if strict != nil {
		cfg.Isolation.Strict = *strict
	}
	if !pool {
		cfg.PoolSize = 0
	}
	if len(cfg.Isolation.UnsafeDisable) > 0 {
		fmt.Fprintf(a.stderr, "aileron: WARNING: config.toml disables isolation layers: %v\n", cfg.Isolation.UnsafeDisable)
	}
	level := hclog.Warn
	if a.verbose {
		level = hclog.Debug
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "aileron", Level: level, Output: a.stderr})
	for _, k := range []string{broker.EnvVaultKeyFile, broker.EnvVaultPassphrase} {
		if v, ok := os.LookupEnv(k); ok {
			cfg.BrokerEnv = append(cfg.BrokerEnv, k+"="+v)
		}
	}
	if cfg.Broker.UnsafeAllowLoopback || cfg.Broker.UnsafeAllowPrivate {
		fmt.Fprintln(a.stderr, "aileron: WARNING: config.toml lets connectors reach loopback or private addresses (unsafe_allow_*)")
	}
	return supervisor.New(cfg)
}

// exactArgs accepts exactly n positional arguments and otherwise fails as
// a usage error with msg, which says what the command takes.
func exactArgs(n int, msg string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{errors.New(msg)}
		}
		return nil
	}
}
