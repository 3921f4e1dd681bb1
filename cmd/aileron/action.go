package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) actionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "action", Short: "Install and list actions"}
	add := &cobra.Command{
		Use:   "add PATH",
		Short: "Install an action file under its name",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("add takes one action file")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sup, err := a.supervisor(nil)
			if err != nil {
				return err
			}
			defer sup.Close()
			act, err := sup.InstallAction(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added action %s %s\n", act.Name, act.Version)
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List installed actions",
		RunE: func(cmd *cobra.Command, args []string) error {
			sup, err := a.supervisor(nil)
			if err != nil {
				return err
			}
			defer sup.Close()
			for _, n := range sup.ActionNames() {
				fmt.Fprintln(a.stdout, n)
			}
			return nil
		},
	}
	cmd.AddCommand(add, list)
	return cmd
}
