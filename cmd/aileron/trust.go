package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/cas"
)

func (a *app) trustCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "trust", Short: "Pin publisher keys per source authority (github://org, gitlab://group, hub://namespace)"}
	add := &cobra.Command{
		Use:   "add AUTHORITY KEY",
		Short: "Pin a publisher's minisign public key (the \"RW...\" string or a minisign.pub file)",
		Long: `Pin the minisign public key that signs every package of AUTHORITY, e.g.
  aileron trust add github://aileron RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3
Packages of that authority then install only if signed by this key. An
authority has one key: to replace it, run aileron trust rm first.`,
		Args: exactArgs(2, "trust add takes an AUTHORITY (e.g. github://org) and a KEY (a minisign public key or a minisign.pub file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			authority, err := cas.ParseAuthority(args[0])
			if err != nil {
				return usageError{err}
			}
			text := []byte(args[1])
			if !strings.HasPrefix(args[1], "RW") {
				if b, err := os.ReadFile(args[1]); err == nil {
					text = b
				}
			}
			key, err := cas.ParsePublicKey(text)
			if err != nil {
				return usageError{fmt.Errorf("KEY: %w", err)}
			}
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			if err := cas.OpenTrust(home).Add(authority, key, "aileron trust add"); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "pinned key %s for %s\n", cas.KeyID(key.ID()), authority)
			return nil
		},
	}
	var jsonOut bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List pinned keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			ks, err := cas.OpenTrust(home).List()
			if err != nil {
				return err
			}
			if jsonOut {
				if ks == nil {
					ks = []cas.TrustedKey{}
				}
				return writeJSON(a.stdout, ks)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AUTHORITY\tKEY ID\tPUBLIC KEY\tADDED\tHOW")
			for _, k := range ks {
				pk, _ := cas.ParsePublicKey([]byte(k.PublicKey))
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Authority, cas.KeyID(pk.ID()), k.PublicKey, k.Added.Format(time.RFC3339), k.Origin)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:   "rm AUTHORITY",
		Short: "Unpin an authority's key (installed packages stay installed)",
		Args:  exactArgs(1, "trust rm takes one AUTHORITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			authority, err := cas.ParseAuthority(args[0])
			if err != nil {
				return usageError{err}
			}
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			if err := cas.OpenTrust(home).Remove(authority); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "unpinned the key of %s\n", authority)
			return nil
		},
	}
	cmd.AddCommand(add, list, rm)
	return cmd
}
