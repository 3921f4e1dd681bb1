package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"aileron.dev/aileron/manifest"
)

// ErrActionNotFound is returned for an action name that is not installed.
var ErrActionNotFound = errors.New("action not found")

// actionsDir holds installed action files, one per action name.
func (s *Supervisor) actionsDir() string { return filepath.Join(s.cfg.Home, "actions") }

// LoadAction returns the action named ref: a path to an action file if ref
// contains a path separator or ends in .toml, else an installed action's
// name.
func (s *Supervisor) LoadAction(ref string) (*manifest.Action, error) {
	if strings.ContainsRune(ref, os.PathSeparator) || strings.HasSuffix(ref, ".toml") {
		return manifest.LoadAction(ref)
	}
	path := filepath.Join(s.actionsDir(), ref+".toml")
	a, err := manifest.LoadAction(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%q: %w (installed: %s)", ref, ErrActionNotFound, strings.Join(s.ActionNames(), ", "))
	}
	return a, err
}

// ActionNames lists installed actions.
func (s *Supervisor) ActionNames() []string {
	ents, _ := os.ReadDir(s.actionsDir())
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".toml"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// InstallAction stores the action file at path under its name after parsing
// it. It does not install connectors.
func (s *Supervisor) InstallAction(path string) (*manifest.Action, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	a, err := manifest.ParseAction(path, b)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.actionsDir(), 0o700); err != nil {
		return nil, err
	}
	return a, os.WriteFile(filepath.Join(s.actionsDir(), a.Name+".toml"), b, 0o600)
}
