package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/worker/sandbox"
)

func (a *app) doctorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report which isolation layers workers get on this host",
		Long: `Start the worker binary the way a run does and report each isolation
layer as active or unavailable, with the reason. Exit status 1 means a layer
is missing: strict mode (--isolation=strict, the default for servers)
would refuse to run connectors here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			sup, err := a.supervisor(nil, false)
			if err != nil {
				return err
			}
			defer sup.Close()
			rep := sup.Doctor()
			if a.jsonOut {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "isolation mode: %s\n\nLAYER\tSTATE\tDETAIL\n", rep.Mode)
				for _, l := range rep.Layers {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Name, state(l), l.Detail)
				}
				fmt.Fprintln(tw, "\nWASM\t\t")
				for _, l := range rep.WASM {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Name, state(l), l.Detail)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if m := rep.Missing(); len(m) > 0 {
				return fmt.Errorf("%d isolation layer(s) unavailable: strict mode would refuse to run connectors on this host", len(m))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&a.jsonOut, "json", false, "print JSON")
	return cmd
}

func state(l sandbox.Layer) string {
	if l.Active {
		return "active"
	}
	return "UNAVAILABLE"
}
