package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// stdinTerminal returns stdin if it is a terminal.
func (a *app) stdinTerminal() (*os.File, bool) {
	f, ok := a.stdin.(*os.File)
	return f, ok && isTerminal(f)
}

// readHidden reads a secret of at most max bytes: at a terminal, one line
// typed without echo after prompt; otherwise all of stdin. Trailing line
// ends are removed. Longer input is refused, never truncated.
func (a *app) readHidden(prompt string, max int) ([]byte, error) {
	var raw []byte
	var err error
	if f, ok := a.stdinTerminal(); ok {
		fmt.Fprint(a.stderr, prompt)
		raw, err = term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
	} else {
		raw, err = io.ReadAll(io.LimitReader(a.stdin, int64(max)+1))
	}
	if err != nil {
		return nil, err
	}
	if len(raw) > max {
		return nil, usageError{fmt.Errorf("input is longer than %d bytes", max)}
	}
	return bytes.TrimRight(raw, "\r\n"), nil
}
