package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"aileron.dev/aileron/supervisor/serve"
)

func (a *app) serveCmd() *cobra.Command {
	var configPath string
	needConfig := func() (*serve.Config, error) {
		if configPath == "" {
			return nil, usageError{errors.New("--config FILE is required (see docs/DEPLOYMENT.md)")}
		}
		return serve.LoadConfig(configPath)
	}
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run a long-lived supervisor that many callers (tenants) share, over a unix socket or mutual TLS",
		Long: `Run the supervisor as a daemon. Callers authenticate (their uid on the unix
socket, a client certificate, or a bearer token) and are mapped to tenants;
each tenant has its own home under data_dir/tenants/NAME (actions, vault,
audit log) and its own broker, and all share the store and the warm pool.
Clients run actions with 'aileron run --server ADDR ACTION'.

Isolation is strict unless the configuration says otherwise: the server
refuses to start if an isolation layer is missing. Logs are JSON on stderr.
SIGTERM or SIGINT drains runs in flight (limits.drain_timeout), a second one
cancels them; SIGHUP reloads tenants and quotas.

See docs/DEPLOYMENT.md for the configuration file.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageError{errors.New("serve takes no arguments; see --config")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := needConfig()
			if err != nil {
				return err
			}
			wp, err := workerPath()
			if err != nil {
				return err
			}
			level := hclog.Info
			if a.verbose {
				level = hclog.Debug
			}
			log := hclog.New(&hclog.LoggerOptions{Name: "aileron", Level: level, Output: a.stderr, JSONFormat: true})
			srv, err := serve.New(serve.Options{Config: cfg, WorkerPath: wp, Logger: log})
			if err != nil {
				return err
			}
			if err := srv.Start(); err != nil {
				_ = srv.Shutdown(context.Background())
				return err
			}
			return a.serveUntilSignal(srv, configPath, log)
		},
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "the server's configuration file (TOML)")

	setup := &cobra.Command{
		Use:   "setup --config FILE",
		Short: "Create data_dir and each tenant's home, so actions and credentials can be installed before the server starts",
		Long: `Create the data directory's layout for the configuration: the shared store
and a home for each tenant (data_dir/tenants/NAME) whose store is the shared
one and whose config.toml names the tenant. Then, as root, install for a
tenant with AILERON_HOME=data_dir/tenants/NAME aileron action add ... and
aileron vault set .... The server does the same at start; this is idempotent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := needConfig()
			if err != nil {
				return err
			}
			if err := serve.Setup(cfg); err != nil {
				return err
			}
			for _, t := range cfg.Tenants {
				fmt.Fprintf(a.stdout, "tenant %s: AILERON_HOME=%s\n", t.Name, serve.TenantHome(cfg, t.Name))
			}
			return nil
		},
	}
	hash := &cobra.Command{
		Use:   "hash-token",
		Short: "Read a bearer token from stdin (hidden at a terminal) and print the hash the configuration stores",
		Long: `Read a bearer token from stdin, or from the terminal without echo, and
print its sha256 in the form tenants.tokens takes ("sha256:<hex>"). The
configuration never holds a token itself. Use at least 32 random bytes, for
example: head -c 32 /dev/urandom | base64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := a.readHidden("token (input hidden): ", serve.MaxTokenBytes)
			if err != nil {
				return fmt.Errorf("read token: %w", err)
			}
			tok := string(raw)
			if len(tok) < 16 {
				return usageError{errors.New("token shorter than 16 bytes: use at least 32 random bytes, e.g. head -c 32 /dev/urandom | base64")}
			}
			fmt.Fprintln(a.stdout, serve.HashToken(tok))
			return nil
		},
	}
	fingerprint := &cobra.Command{
		Use:   "fingerprint CERT.pem",
		Short: "Print the public-key fingerprint of a client certificate, as tenants.certs takes it",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("fingerprint takes one PEM certificate file")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			blk, _ := pem.Decode(b)
			if blk == nil || blk.Type != "CERTIFICATE" {
				return fmt.Errorf("%s: no PEM certificate in it", args[0])
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintln(a.stdout, serve.SPKIFingerprint(c))
			return nil
		},
	}
	cmd.AddCommand(setup, hash, fingerprint)
	return cmd
}

// serveUntilSignal serves until SIGTERM/SIGINT or a listener fails (then
// drains, within limits.drain_timeout), reloading on SIGHUP.
func (a *app) serveUntilSignal(srv *serve.Server, configPath string, log hclog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(stop)
	var failed error
	for {
		select {
		case <-hup:
			cfg, err := serve.LoadConfig(configPath)
			if err == nil {
				err = srv.Reload(cfg)
			}
			if err != nil {
				log.Error("reload refused; the previous configuration stays in force", "error", err)
			}
			continue
		case err := <-srv.Err():
			log.Error("a listener failed; shutting down", "error", err)
			failed = err
		case <-stop:
			// Only signals stop the server: the command's context is
			// cancelled by the same first signal, and a copy of it must
			// not count as the second.
		}
		break
	}
	drain, cancel := context.WithTimeout(context.Background(), srv.DrainTimeout())
	defer cancel()
	go func() {
		// A second SIGTERM or SIGINT stops waiting: runs are cancelled.
		select {
		case <-stop:
			log.Warn("second signal: cancelling runs in flight")
			cancel()
		case <-drain.Done():
		}
	}()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("shutdown", "error", err)
	}
	log.Info("stopped")
	return failed
}
