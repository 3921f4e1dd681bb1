package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
)

func (a *app) actionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "action", Short: "Install, list and update actions"}
	var yes, tofu bool
	add := &cobra.Command{
		Use:   "add PATH | FQN@VERSION",
		Short: "Install an action and every connector it requires that is missing (one consent each)",
		Long: `Install an action file (PATH), or the action published in a release
(FQN@VERSION: action.toml and its signature action.toml.minisig, verified with
the key pinned for the authority). Each connector it requires that is not
installed is downloaded, verified against the version and hash the action
pins, shown, and installed after your consent (--yes for scripts).
Connectors already installed are only checked against the pins.`,
		Args: exactArgs(1, "add takes one action file or FQN@VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.installer(tofu)
			if err != nil {
				return err
			}
			defer in.close()
			data, file, err := a.actionSource(cmd, in, args[0])
			if err != nil {
				return err
			}
			act, fetched, err := supervisor.AddAction(cmd.Context(), supervisor.ActionsDir(in.home), file, data, supervisor.ActionInstall{
				Installer: in.Installer,
				Consent:   func(f *cas.Fetched) error { return a.consent(f, yes) },
			})
			if err != nil {
				return err
			}
			for _, f := range fetched {
				if !f.Installed {
					fmt.Fprintf(a.stdout, "installed %s\n", f.Ref)
				}
			}
			fmt.Fprintf(a.stdout, "added action %s %s\n", act.Name, act.Version)
			return nil
		},
	}
	add.Flags().BoolVarP(&yes, "yes", "y", false, "consent without a prompt (scripts); does not trust unknown publishers")
	add.Flags().BoolVar(&tofu, "trust-on-first-use", false, "pin the key an unknown publisher's source offers (shown), without a prompt")

	list := &cobra.Command{
		Use:   "list",
		Short: "List installed actions",
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			for _, n := range supervisor.ActionNames(supervisor.ActionsDir(home)) {
				fmt.Fprintln(a.stdout, n)
			}
			return nil
		},
	}
	var uyes bool
	update := &cobra.Command{
		Use:   "update NAME",
		Short: "Move an action's connectors to their newest versions; shows the capability diff and asks again for anything new",
		Args:  exactArgs(1, "update takes one installed action NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.installer(false)
			if err != nil {
				return err
			}
			defer in.close()
			dir := supervisor.ActionsDir(in.home)
			plan, err := supervisor.PlanUpdate(cmd.Context(), dir, args[0], in.Installer)
			if err != nil {
				return err
			}
			if len(plan.Updates) == 0 {
				fmt.Fprintf(a.stdout, "action %s: its connectors are up to date\n", args[0])
				return nil
			}
			for _, u := range plan.Updates {
				fmt.Fprint(a.stderr, u.Diff.String())
			}
			if plan.Widens() {
				fmt.Fprintln(a.stderr, "\nThe update lets the action's connectors do more than before (+ and ~ above).")
				if err := a.confirm(uyes, "Update action "+args[0]+"?"); err != nil {
					return err
				}
			}
			if err := supervisor.ApplyUpdate(dir, plan, in.Installer); err != nil {
				return err
			}
			var moved []string
			for _, u := range plan.Updates {
				moved = append(moved, u.Fetched.Ref.String())
			}
			fmt.Fprintf(a.stdout, "updated action %s: %s\n", args[0], strings.Join(moved, ", "))
			return nil
		},
	}
	update.Flags().BoolVarP(&uyes, "yes", "y", false, "consent to widened capabilities without a prompt (scripts)")
	cmd.AddCommand(add, list, update)
	return cmd
}

// actionSource reads the action file named by arg: a path, or FQN@VERSION
// for a published action, verified; a publisher key the person trusted on
// first use for it is pinned at once, so the connectors of the same
// publisher are checked against it.
func (a *app) actionSource(cmd *cobra.Command, in *installSession, arg string) (data []byte, file string, err error) {
	if strings.Contains(arg, "://") && !strings.HasPrefix(arg, "file://") {
		ref, err := manifest.ParseRef(arg)
		if err != nil {
			return nil, "", usageError{err}
		}
		fa, err := in.FetchAction(cmd.Context(), ref)
		if err != nil {
			return nil, "", err
		}
		if err := in.PinKey(fa); err != nil {
			return nil, "", err
		}
		return fa.Bytes, fa.Source, nil
	}
	path := strings.TrimPrefix(arg, "file://")
	b, err := manifest.ReadFile(path)
	return b, path, err
}
