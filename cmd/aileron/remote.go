package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/supervisor/serve/client"
)

// Environment of `aileron run --server`.
const (
	envServer     = "AILERON_SERVER"
	envToken      = "AILERON_TOKEN"
	envTokenFile  = "AILERON_TOKEN_FILE"
	envClientCert = "AILERON_CLIENT_CERT"
	envClientKey  = "AILERON_CLIENT_KEY"
	envServerCA   = "AILERON_SERVER_CA"
)

// runRemote runs an installed action on an aileron serve daemon and prints
// what a local run prints.
func (a *app) runRemote(ctx context.Context, server, action string, given map[string]any) error {
	if supervisor.IsActionPath(action) {
		return usageError{fmt.Errorf("with --server, ACTION is the name of an action installed for your tenant on the server, not a file (%s)", action)}
	}
	cfg := client.Config{
		Address:  server,
		Token:    os.Getenv(envToken),
		CertFile: os.Getenv(envClientCert),
		KeyFile:  os.Getenv(envClientKey),
		CAFile:   os.Getenv(envServerCA),
	}
	if p := os.Getenv(envTokenFile); p != "" && cfg.Token == "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%s: %w", envTokenFile, err)
		}
		cfg.Token = strings.TrimRight(string(b), "\r\n")
	}
	c, err := client.New(cfg)
	if err != nil {
		return usageError{err}
	}
	defer c.Close()
	res, err := c.Run(ctx, action, given)
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Log != "" && a.verbose {
			fmt.Fprintf(a.stderr, "connector log (%s):\n%s\n", ce.Connector, ce.Log)
		}
		return err
	}
	if a.jsonOut {
		return writeJSON(a.stdout, res)
	}
	return writeJSON(a.stdout, res.Output)
}
