package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/cas/atomicfile"
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

// ActionInstall is how [Supervisor.AddAction] and [Supervisor.PlanUpdate]
// get connectors.
type ActionInstall struct {
	// Installer fetches and verifies packages; its store must be this
	// supervisor's.
	Installer *cas.Installer
	// Consent is asked once for each connector that is not installed
	// yet, with the verified package; nil installs it. Nil consents to
	// nothing.
	Consent func(f *cas.Fetched) error
}

// AddAction installs the action file data (named file in errors) and every
// connector it requires that is not installed yet. Each missing connector
// is fetched and verified against the action's pinned version and hash,
// and the action's grants are checked against all the manifests, before
// anything is stored; then each missing connector is put to Consent and
// stored, and the action is stored under its name. A connector that is
// installed already is only checked against the pins: nothing is
// downloaded. It returns the action and what was fetched (Installed is set
// for connectors that were there already).
func (s *Supervisor) AddAction(ctx context.Context, file string, data []byte, ai ActionInstall) (*manifest.Action, []*cas.Fetched, error) {
	a, err := manifest.ParseAction(file, data)
	if err != nil {
		return nil, nil, err
	}
	var fetched []*cas.Fetched
	manifests := map[string]*manifest.Manifest{}
	for _, req := range a.Requires {
		ref := manifest.Ref{FQN: req.Name, Version: req.Version}
		f, err := ai.Installer.Fetch(ctx, ref, req.Hash)
		if err != nil {
			return nil, nil, fmt.Errorf("action %s requires %s: %w", a.Name, ref, err)
		}
		fetched = append(fetched, f)
		manifests[req.Name.String()] = f.Manifest
	}
	if err := manifest.CheckAction(a, manifests); err != nil {
		return nil, nil, err
	}
	for _, f := range fetched {
		if f.Installed {
			continue
		}
		if ai.Consent == nil {
			return nil, nil, fmt.Errorf("install %s: no consent", f.Ref)
		}
		if err := ai.Consent(f); err != nil {
			return nil, nil, err
		}
	}
	for _, f := range fetched {
		if _, err := ai.Installer.Commit(f); err != nil {
			return nil, nil, err
		}
	}
	if err := s.writeAction(a.Name, data); err != nil {
		return nil, nil, err
	}
	return a, fetched, nil
}

func (s *Supervisor) writeAction(name string, data []byte) error {
	return atomicfile.WriteFile(filepath.Join(s.actionsDir(), name+".toml"), data, 0o600, "")
}

// ConnectorUpdate is one connector of an action moving to a newer version.
type ConnectorUpdate struct {
	// Diff is the capability change from the installed manifest (or from
	// nothing, if the old version is not installed) to the new one.
	Diff manifest.CapabilityDiff
	// Fetched is the verified new package.
	Fetched *cas.Fetched
}

// UpdatePlan is what [Supervisor.PlanUpdate] found; nothing is stored
// until [Supervisor.ApplyUpdate].
type UpdatePlan struct {
	// Action is the installed action with its pins moved to the new
	// versions.
	Action *manifest.Action
	// Updates has one entry per connector with a newer version.
	Updates []ConnectorUpdate
}

// Widens reports whether any update may do something its old version
// could not, so the person must consent again.
func (p *UpdatePlan) Widens() bool {
	for _, u := range p.Updates {
		if u.Diff.Widens() {
			return true
		}
	}
	return false
}

// PlanUpdate finds the newest version (see [cas.Newer]) of each remote
// connector the installed action name requires, fetches and verifies it,
// computes the capability diff, and checks that the action, pinned to the
// new versions, is still valid. It stores nothing.
func (s *Supervisor) PlanUpdate(ctx context.Context, name string, in *cas.Installer) (*UpdatePlan, error) {
	a, err := s.LoadAction(name)
	if err != nil {
		return nil, err
	}
	plan := &UpdatePlan{Action: a}
	manifests := map[string]*manifest.Manifest{}
	for i, req := range a.Requires {
		old, err := s.store.Connector(manifest.Ref{FQN: req.Name, Version: req.Version}.String())
		var oldM *manifest.Manifest
		if err == nil {
			oldM = old.Manifest
		}
		manifests[req.Name.String()] = oldM
		if !cas.Remote(req.Name) {
			continue
		}
		vs, err := in.Versions(ctx, req.Name)
		if err != nil {
			return nil, fmt.Errorf("action %s: %w", a.Name, err)
		}
		newer := cas.Newer(req.Version, vs)
		if len(newer) == 0 {
			continue
		}
		ref := manifest.Ref{FQN: req.Name, Version: newer[len(newer)-1]}
		f, err := in.Fetch(ctx, ref, "")
		if err != nil {
			return nil, fmt.Errorf("action %s: update to %s: %w", a.Name, ref, err)
		}
		plan.Updates = append(plan.Updates, ConnectorUpdate{Diff: manifest.Diff(oldM, f.Manifest), Fetched: f})
		a.Requires[i].Version, a.Requires[i].Hash = ref.Version, f.Manifest.Connector.ProvenanceHash
		manifests[req.Name.String()] = f.Manifest
	}
	if len(plan.Updates) == 0 {
		return plan, nil
	}
	// The re-encoded action must read back as itself, and the new
	// connectors must still grant what it uses.
	if _, err := manifest.ParseAction(a.Name+".toml", a.Encode()); err != nil {
		return nil, fmt.Errorf("BUG(aileron): updated action does not parse: %w", err)
	}
	if err := manifest.CheckAction(a, manifests); err != nil {
		return nil, fmt.Errorf("action %s cannot move to the new versions: %w", a.Name, err)
	}
	return plan, nil
}

// ApplyUpdate stores the plan's packages and rewrites the installed action
// with the new pins.
func (s *Supervisor) ApplyUpdate(p *UpdatePlan, in *cas.Installer) error {
	for _, u := range p.Updates {
		if _, err := in.Commit(u.Fetched); err != nil {
			return err
		}
	}
	if len(p.Updates) == 0 {
		return nil
	}
	return s.writeAction(p.Action.Name, p.Action.Encode())
}

// ActionsRequiring lists the installed actions that pin ref ("FQN@version").
func (s *Supervisor) ActionsRequiring(ref string) []string {
	var out []string
	for _, n := range s.ActionNames() {
		a, err := s.LoadAction(n)
		if err != nil {
			continue
		}
		for _, r := range a.Requires {
			if r.Name.String()+"@"+r.Version == ref {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
