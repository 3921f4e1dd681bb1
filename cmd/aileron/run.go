package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/supervisor"
)

func (a *app) runCmd() *cobra.Command {
	var inputs []string
	var isolation, server string
	cmd := &cobra.Command{
		Use:   "run ACTION",
		Short: "Run an installed action (by name) or an action file (by path)",
		Long: `Run an action. Each connector the action uses runs in its own sandboxed
worker process; the broker attaches credentials and is the only process with
network access. Exit status: 0 ok, 1 the action failed, 2 bad arguments,
130 cancelled.

With --server (or AILERON_SERVER) the action runs on an aileron serve
daemon instead, as the tenant the daemon maps this caller to: ACTION is the
name of an action installed for that tenant, and the output and exit status
are the same. A bearer token comes from AILERON_TOKEN or the file named by
AILERON_TOKEN_FILE; over https the client certificate and key from
AILERON_CLIENT_CERT and AILERON_CLIENT_KEY, and the server's CA from
AILERON_SERVER_CA.`,
		Args: exactArgs(1, "run takes exactly one ACTION (a name or a path to an action file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := parseInputs(inputs)
			if err != nil {
				return err
			}
			if server == "" {
				server = os.Getenv(envServer)
			}
			if server != "" {
				if isolation != "" {
					return usageError{errors.New("--isolation does not apply with --server: the server's isolation mode does")}
				}
				return a.runRemote(cmd.Context(), server, args[0], given)
			}
			strict, err := isolationFlag(isolation)
			if err != nil {
				return err
			}
			sup, err := a.supervisor(strict, true)
			if err != nil {
				return err
			}
			defer sup.Close()
			act, err := sup.LoadAction(args[0])
			if err != nil {
				return err
			}
			res, err := sup.Run(cmd.Context(), act, given)
			if err != nil {
				var se *supervisor.StepError
				if errors.As(err, &se) && se.Log != "" && a.verbose {
					fmt.Fprintf(a.stderr, "connector log (%s):\n%s\n", se.Connector, se.Log)
				}
				return err
			}
			if a.jsonOut {
				return writeJSON(a.stdout, res)
			}
			return writeJSON(a.stdout, res.Output)
		},
	}
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "an input as name=value (repeatable)")
	cmd.Flags().StringVar(&isolation, "isolation", "", "strict: refuse to run without every isolation layer; relaxed: warn (default from config.toml)")
	cmd.Flags().BoolVar(&a.jsonOut, "json", false, "print the whole run result as JSON (run id, every step's output)")
	cmd.Flags().StringVar(&server, "server", "", "run on an aileron serve daemon: unix:///path/to/socket or https://host:port (default $"+envServer+")")
	return cmd
}

func parseInputs(kvs []string) (map[string]any, error) {
	out := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--input %q: write name=value", kv)}
		}
		if _, dup := out[k]; dup {
			return nil, usageError{fmt.Errorf("--input %s given twice", k)}
		}
		out[k] = v
	}
	return out, nil
}

func isolationFlag(s string) (*bool, error) {
	switch s {
	case "":
		return nil, nil
	case "strict":
		t := true
		return &t, nil
	case "relaxed":
		f := false
		return &f, nil
	}
	return nil, usageError{fmt.Errorf("--isolation %q: must be strict or relaxed", s)}
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
