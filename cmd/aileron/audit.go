package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/supervisor"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Check and read the hash-chained audit log of every broker decision"}
	var file string
	cmd.PersistentFlags().StringVar(&file, "file", "", "audit log to read (default $AILERON_HOME/audit.jsonl)")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check every record of the audit log; exit 1 naming the first that does not verify",
		Long: `Check every record of the audit log: its hash, its canonical form, its
sequence number and its link to the record before. Any edited byte, deleted,
inserted or reordered record is reported with its line and record number,
and the command exits 1.

Records cut from the end cannot be detected from the log alone: compare the
head printed here with a copy kept somewhere else.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, f, err := a.openAuditLog(file)
			if err != nil {
				return err
			}
			defer f.Close()
			last, err := audit.Tail(f, 1)
			if err != nil {
				return auditError(path, err)
			}
			if len(last) == 0 {
				fmt.Fprintf(a.stdout, "%s: empty, nothing to verify\n", path)
				return nil
			}
			fmt.Fprintf(a.stdout, "%s: %d records verify\nhead: record %d, hash %s\n", path, last[0].Seq, last[0].Seq, last[0].Hash)
			return nil
		},
	}

	var n int
	var jsonOut bool
	tail := &cobra.Command{
		Use:   "tail [-n N] [--json]",
		Short: "Print the last records of the audit log, after verifying all of it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n <= 0 {
				return usageError{errors.New("-n must be at least 1")}
			}
			path, f, err := a.openAuditLog(file)
			if err != nil {
				return err
			}
			defer f.Close()
			// Security: Tail verifies the whole chain first and shows
			// nothing from a log that does not verify.
			recs, err := audit.Tail(f, n)
			if err != nil {
				return auditError(path, err)
			}
			if jsonOut {
				enc := json.NewEncoder(a.stdout)
				enc.SetEscapeHTML(false)
				for _, r := range recs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tDECISION\tCODE\tCONNECTOR\tINTENT\tWHAT\tSTATUS")
			for _, r := range recs {
				status := ""
				if r.Status != 0 {
					status = strconv.Itoa(r.Status)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.Local().Format(time.DateTime), r.Kind,
					dash(r.Decision), dash(r.Code), dash(r.Connector), dash(r.Intent), dash(what(r)), dash(status))
			}
			return tw.Flush()
		},
	}
	tail.Flags().IntVarP(&n, "lines", "n", 20, "how many records to print")
	tail.Flags().BoolVar(&jsonOut, "json", false, "print records as JSON lines")
	cmd.AddCommand(verify, tail)
	return cmd
}

// openAuditLog opens the log named by --file, or the home's.
func (a *app) openAuditLog(file string) (string, *os.File, error) {
	path := file
	if path == "" {
		home, err := a.homeDir()
		if err != nil {
			return "", nil, err
		}
		path = supervisor.AuditPath(home)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil, fmt.Errorf("audit log %s does not exist: nothing has been audited yet, or use --file", path)
	}
	if err != nil {
		return path, nil, fmt.Errorf("audit log: %w", err)
	}
	return path, f, nil
}

func auditError(path string, err error) error {
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return fmt.Errorf("audit log %s does not verify: %s", path, strings.TrimPrefix(ve.Error(), "audit: "))
	}
	return fmt.Errorf("audit log %s: %w", path, err)
}

// what summarises a record's subject in one column.
func what(r audit.Record) string {
	switch {
	case r.Method != "" || r.Host != "":
		s := strings.TrimSpace(r.Method + " " + r.Host)
		if r.Port != 0 && r.Port != 443 {
			s += ":" + strconv.Itoa(int(r.Port))
		}
		return s + r.Path
	case r.Event != "":
		return r.Event
	}
	return r.Reason
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
