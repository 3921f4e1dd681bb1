package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/cas"
)

func (a *app) storeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Check and clean the content-addressed store"}
	var jsonOut bool
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every blob and compiled artifact, check every index entry; report each bad one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := a.openStore()
			if err != nil {
				return err
			}
			probs, err := store.VerifyAll()
			if err != nil {
				return err
			}
			if jsonOut {
				if probs == nil {
					probs = []cas.Problem{}
				}
				if err := writeJSON(a.stdout, probs); err != nil {
					return err
				}
			} else {
				for _, p := range probs {
					fmt.Fprintln(a.stdout, p)
				}
			}
			if len(probs) > 0 {
				return fmt.Errorf("store verify: %d problem(s); reinstall the affected connectors (a bad compiled artifact is rebuilt on the next run)", len(probs))
			}
			if !jsonOut {
				fmt.Fprintln(a.stdout, "store verified: every blob, index entry and compiled artifact is intact")
			}
			return nil
		},
	}
	verify.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove blobs and compiled code no installed connector references",
		Long: `Remove what no installed connector (a connector with an index entry, as
aileron connector list shows) references: unreferenced blobs, compiled code
of modules no entry names, and stale temp files. Installed actions keep
nothing alive by themselves: an action's connectors are installed
connectors. Uninstall a version with aileron connector rm first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := a.openStore()
			if err != nil {
				return err
			}
			rep, err := store.GC()
			if err != nil {
				return err
			}
			if jsonOut {
				if rep.Removed == nil {
					rep.Removed = []string{}
				}
				return writeJSON(a.stdout, rep)
			}
			for _, r := range rep.Removed {
				fmt.Fprintln(a.stdout, "removed", r)
			}
			fmt.Fprintf(a.stdout, "freed %d bytes in %d file(s)\n", rep.Bytes, len(rep.Removed))
			return nil
		},
	}
	gc.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	cmd.AddCommand(verify, gc)
	return cmd
}
