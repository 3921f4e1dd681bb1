package manifest

import (
	"fmt"
	"slices"
	"strings"
)

// Grant is what one step of an action may do: the connector's manifest
// narrowed by the action. It is the value the supervisor checks before a
// worker starts and the broker checks again at egress. The zero Grant
// grants nothing: no connector, no host, no credential, no scope, no
// optional import.
type Grant struct {
	// Connector is the canonical FQN of the connector.
	Connector string `json:"connector"`
	// Version and Hash are the pinned version and provenance hash, equal
	// in the action and the installed manifest.
	Version string `json:"version"`
	Hash    string `json:"hash"`
	// Intent is the operation the step calls.
	Intent string `json:"intent"`
	// Hosts are canonical "host:port" entries (with "*." for a wildcard):
	// the action's narrowing if it has one, else the manifest's hosts.
	Hosts []string `json:"hosts"`
	// CredentialKind is the manifest's credential kind; empty for none.
	CredentialKind CredentialKind `json:"credential_kind,omitempty"`
	// Scopes are the credential scopes the step may use: the intent's
	// declared scopes if its [intents.NAME] table has a scopes list, else
	// the action's capabilities for the connector.
	Scopes []string `json:"scopes"`
	// Imports are the capability IDs linked beyond [abi.BaseImports].
	Imports []string `json:"imports"`
}

// CheckAction checks an action against the installed manifests of its
// connectors, keyed by canonical FQN. For each requirement: the manifest
// is present, its version and provenance hash equal the pin, the
// requirement's capabilities are scopes of the manifest's credential and
// its hosts (if any) are covered by the manifest's hosts. For each step:
// the connector provides the intent, and the intent's declared scopes are
// among the requirement's capabilities (an intent that declares no scopes
// needs none).
//
// On failure the error is an [ErrorList] of [*Error]s located in the
// action file, wrapping [ErrNotInstalled], [ErrPinMismatch] or
// [ErrNotGranted].
func CheckAction(a *Action, connectors map[string]*Manifest) error {
	var errs ErrorList
	for i := range a.Requires {
		errs = append(errs, checkRequirement(a, i, connectors[a.Requires[i].Name.String()])...)
	}
	for i, s := range a.Steps {
		req, _ := a.requirement(s.Connector)
		m := connectors[s.Connector.String()]
		switch {
		case req == nil:
			errs = append(errs, a.errAt(indexPath("steps", i)+".connector", ErrNotGranted, "step %q uses connector %s, which is not required; add a [[requires.connectors]] entry", s.ID, s.Connector))
		case m != nil:
			errs = append(errs, checkStep(a, i, req, m)...)
		}
	}
	return errs.err()
}

// StepGrant computes the effective grant of step stepIndex of a, whose
// connector's installed manifest is m. It runs the same checks as
// [CheckAction] for that step and its requirement, and returns the zero
// Grant with an error if any fails.
func StepGrant(a *Action, stepIndex int, m *Manifest) (Grant, error) {
	if stepIndex < 0 || stepIndex >= len(a.Steps) {
		return Grant{}, ErrorList{{Msg: fmt.Sprintf("action %q has no step %d", a.Name, stepIndex), Err: ErrInvalid}}.err()
	}
	s := a.Steps[stepIndex]
	req, ri := a.requirement(s.Connector)
	if req == nil {
		return Grant{}, ErrorList{a.errAt(indexPath("steps", stepIndex)+".connector", ErrNotGranted, "step %q uses connector %s, which is not required; add a [[requires.connectors]] entry", s.ID, s.Connector)}.err()
	}
	errs := checkRequirement(a, ri, m)
	if m != nil {
		errs = append(errs, checkStep(a, stepIndex, req, m)...)
	}
	if err := errs.err(); err != nil {
		return Grant{}, err
	}
	g := Grant{
		Connector: req.Name.String(),
		Version:   req.Version,
		Hash:      req.Hash,
		Intent:    s.Intent,
		Imports:   slices.Clone(m.Capabilities.Runtime.Imports),
	}
	hosts := m.Capabilities.Network.Hosts
	if req.Hosts != nil {
		hosts = req.Hosts
	}
	for _, h := range hosts {
		g.Hosts = append(g.Hosts, h.String())
	}
	if c := m.Capabilities.Credential; c != nil {
		g.CredentialKind = c.Kind
	}
	if in, ok := m.Intents[s.Intent]; ok && in.Scopes != nil {
		g.Scopes = slices.Clone(in.Scopes)
	} else {
		g.Scopes = slices.Clone(req.Capabilities)
	}
	return g, nil
}

// checkRequirement checks requirement ri of a against its installed
// manifest m (nil if not installed).
func checkRequirement(a *Action, ri int, m *Manifest) ErrorList {
	req := a.Requires[ri]
	path := indexPath("requires.connectors", ri)
	if m == nil {
		return ErrorList{a.errAt(path+".name", ErrNotInstalled, "connector %s is not installed; install %s@%s", req.Name, req.Name, req.Version)}
	}
	if m.Connector.Name != req.Name {
		return ErrorList{a.errAt(path+".name", ErrPinMismatch, "the manifest supplied for connector %s names %s", req.Name, m.Connector.Name)}
	}
	var errs ErrorList
	if m.Connector.Version != req.Version {
		errs = append(errs, a.errAt(path+".version", ErrPinMismatch, "the action pins %s@%s but %s@%s is installed; install the pinned version or update the action", req.Name, req.Version, req.Name, m.Connector.Version))
	}
	if m.Connector.ProvenanceHash != req.Hash {
		errs = append(errs, a.errAt(path+".hash", ErrPinMismatch, "the action pins hash %s but the installed %s@%s has %s", req.Hash, req.Name, m.Connector.Version, m.Connector.ProvenanceHash))
	}
	scopes := m.Scopes()
	for j, c := range req.Capabilities {
		if slices.Contains(scopes, c) {
			continue
		}
		if m.Capabilities.Credential == nil {
			errs = append(errs, a.errAt(fmt.Sprintf("%s.capabilities[%d]", path, j), ErrNotGranted, "capability %q is not granted: connector %s declares no credential", c, req.Name))
		} else {
			errs = append(errs, a.errAt(fmt.Sprintf("%s.capabilities[%d]", path, j), ErrNotGranted, "capability %q is not granted: connector %s has the scopes %s", c, req.Name, listOrNone(scopes)))
		}
	}
	for j, h := range req.Hosts {
		if !slices.ContainsFunc(m.Capabilities.Network.Hosts, func(mh HostPort) bool { return mh.Covers(h) }) {
			errs = append(errs, a.errAt(fmt.Sprintf("%s.hosts[%d]", path, j), ErrNotGranted, "host %q is not granted: connector %s may reach %s", h, req.Name, hostList(m.Capabilities.Network.Hosts)))
		}
	}
	return errs
}

// checkStep checks step si of a, whose requirement is req, against the
// connector's manifest m.
func checkStep(a *Action, si int, req *Requirement, m *Manifest) ErrorList {
	s := a.Steps[si]
	path := indexPath("steps", si) + ".intent"
	if !slices.Contains(m.Provides.Intents, s.Intent) {
		return ErrorList{a.errAt(path, ErrNotGranted, "step %q: connector %s does not provide intent %q; it provides %s", s.ID, s.Connector, s.Intent, strings.Join(m.Provides.Intents, ", "))}
	}
	var errs ErrorList
	for _, sc := range m.Intents[s.Intent].Scopes {
		if !slices.Contains(req.Capabilities, sc) {
			errs = append(errs, a.errAt(path, ErrNotGranted, "step %q: intent %q of connector %s needs scope %q, which the action does not grant; add it to capabilities in the [[requires.connectors]] entry for %s", s.ID, s.Intent, s.Connector, sc, s.Connector))
		}
	}
	return errs
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, ", ")
}

func hostList(hosts []HostPort) string {
	s := make([]string, len(hosts))
	for i, h := range hosts {
		s[i] = h.String()
	}
	return listOrNone(s)
}
