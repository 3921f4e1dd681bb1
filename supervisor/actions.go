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

// IsActionPath reports whether ref names an action file rather than an
// installed action: it contains a path separator or ends in .toml.
func IsActionPath(ref string) bool {
	return strings.ContainsRune(ref, os.PathSeparator) || strings.HasSuffix(ref, ".toml")
}

// LoadAction returns the action named ref: the action file ref if
// [IsActionPath] says it is one, else the action installed under that name
// in dir (see [ActionsDir]).
func LoadAction(dir, ref string) (*manifest.Action, error) {
	if IsActionPath(ref) {
		return manifest.LoadAction(ref)
	}
	a, err := manifest.LoadAction(filepath.Join(dir, ref+".toml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%q: %w (installed: %s)", ref, ErrActionNotFound, strings.Join(ActionNames(dir), ", "))
	}
	return a, err
}

// ActionNames lists the actions installed in dir, sorted.
func ActionNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".toml"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// LoadAction is [LoadAction] in the supervisor's home.
func (s *Supervisor) LoadAction(ref string) (*manifest.Action, error) {
	return LoadAction(ActionsDir(s.cfg.Home), ref)
}

// ActionNames is [ActionNames] in the supervisor's home.
func (s *Supervisor) ActionNames() []string { return ActionNames(ActionsDir(s.cfg.Home)) }

// ActionInstall is how [AddAction] gets connectors.
type ActionInstall struct {
	// Installer fetches, verifies and stores packages in its store.
	Installer *cas.Installer
	// Consent is asked once for each connector that is not installed
	// yet, with the verified package; nil installs it. Nil consents to
	// nothing.
	Consent func(f *cas.Fetched) error
}

// AddAction installs the action file data (named file in errors) in dir
// (see [ActionsDir]), and every
// connector it requires that is not installed yet. Each missing connector
// is fetched and verified against the action's pinned version and hash,
// and the action's grants are checked against all the manifests, before
// anything is stored; then each missing connector is put to Consent and
// stored, and the action is stored under its name. A connector that is
// installed already is only checked against the pins: nothing is
// downloaded. It returns the action and what was fetched (Installed is set
// for connectors that were there already).
func AddAction(ctx context.Context, dir, file string, data []byte, ai ActionInstall) (*manifest.Action, []*cas.Fetched, error) {
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
	if err := writeAction(dir, a.Name, data); err != nil {
		return nil, nil, err
	}
	return a, fetched, nil
}

func writeAction(dir, name string, data []byte) error {
	return atomicfile.WriteFile(filepath.Join(dir, name+".toml"), data, 0o600, "")
}

// ConnectorUpdate is one connector of an action moving to a newer version.
type ConnectorUpdate struct {
	// Diff is the capability change from the installed manifest (or from
	// nothing, if the old version is not installed) to the new one.
	Diff manifest.CapabilityDiff
	// Fetched is the verified new package.
	Fetched *cas.Fetched
}

// UpdatePlan is what [PlanUpdate] found; nothing is stored until
// [ApplyUpdate].
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
// connector the action name installed in dir requires, fetches and
// verifies it, computes the capability diff from the version in the
// installer's store, and checks that the action, pinned to the new
// versions, is still valid. It stores nothing.
func PlanUpdate(ctx context.Context, dir, name string, in *cas.Installer) (*UpdatePlan, error) {
	a, err := LoadAction(dir, name)
	if err != nil {
		return nil, err
	}
	plan := &UpdatePlan{Action: a}
	manifests := map[string]*manifest.Manifest{}
	for i, req := range a.Requires {
		old, err := in.Store.Connector(manifest.Ref{FQN: req.Name, Version: req.Version}.String())
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

// ApplyUpdate stores the plan's packages and rewrites the action installed
// in dir with the new pins.
func ApplyUpdate(dir string, p *UpdatePlan, in *cas.Installer) error {
	for _, u := range p.Updates {
		if _, err := in.Commit(u.Fetched); err != nil {
			return err
		}
	}
	if len(p.Updates) == 0 {
		return nil
	}
	return writeAction(dir, p.Action.Name, p.Action.Encode())
}

// ActionsRequiring lists the actions installed in dir that pin ref
// ("FQN@version").
func ActionsRequiring(dir, ref string) []string {
	var out []string
	for _, n := range ActionNames(dir) {
		a, err := LoadAction(dir, n)
		if err != nil {
			continue
		}
		for _, r := range a.Requires {
			if r.Ref().String() == ref {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
