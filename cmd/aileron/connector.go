package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
)

func (a *app) connectorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "connector", Short: "Install and inspect connectors"}
	var yes bool
	install := &cobra.Command{
		Use:   "install DIR",
		Short: "Install a connector package (a directory with manifest.toml and connector.wasm)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("install takes one package directory")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pkg, err := cas.ReadDir(args[0])
			if err != nil {
				return fmt.Errorf("install %s: %w", args[0], err)
			}
			fmt.Fprint(a.stderr, manifest.Describe(pkg.Manifest))
			if err := a.confirm(yes, "Install this connector?"); err != nil {
				return err
			}
			sup, err := a.supervisor(nil)
			if err != nil {
				return err
			}
			defer sup.Close()
			e, err := sup.Store().Put(pkg)
			if err != nil {
				return fmt.Errorf("install %s: %w", pkg.Manifest.Ref(), err)
			}
			fmt.Fprintf(a.stdout, "installed %s (%s)\n", e.Ref, e.Wasm)
			return nil
		},
	}
	install.Flags().BoolVarP(&yes, "yes", "y", false, "consent without a prompt (scripts)")

	var manifestPath, wasmPath, out string
	pack := &cobra.Command{
		Use:   "pack --manifest FILE --wasm FILE --out DIR",
		Short: "Make a connector package: fill in provenance_hash and check the module's imports (publishers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if manifestPath == "" || wasmPath == "" || out == "" {
				return usageError{errors.New("pack needs --manifest, --wasm and --out")}
			}
			m, err := cas.Pack(manifestPath, wasmPath, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "packed %s into %s (%s)\n", m.Ref(), out, m.Connector.ProvenanceHash)
			return nil
		},
	}
	pack.Flags().StringVar(&manifestPath, "manifest", "", "manifest.toml (its provenance_hash is replaced)")
	pack.Flags().StringVar(&wasmPath, "wasm", "", "the built module")
	pack.Flags().StringVar(&out, "out", "", "output directory")
	cmd.AddCommand(install, pack)
	return cmd
}

// confirm asks a yes/no question on the terminal. Without a terminal it
// never waits: it needs --yes.
func (a *app) confirm(yes bool, question string) error {
	if yes {
		return nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return usageError{errors.New("no terminal to ask for consent: review the summary above and pass --yes")}
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	var answer string
	fmt.Fscanln(f, &answer)
	if answer != "y" && answer != "Y" && answer != "yes" {
		return errors.New("not confirmed; nothing was installed")
	}
	return nil
}
