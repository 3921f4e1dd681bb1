package manifest

import (
	"strings"
)

// CapabilityDiff is what changes in a connector's capabilities between two
// manifests, for review at consent and by `aileron action update`. Lists
// are in manifest order: added entries in the new manifest's, removed ones
// in the old one's.
type CapabilityDiff struct {
	// Connector is the new manifest's canonical FQN.
	Connector string `json:"connector"`
	// OldVersion is the old manifest's version; empty when there is no
	// old manifest.
	OldVersion string `json:"old_version,omitempty"`
	// NewVersion is the new manifest's version.
	NewVersion string `json:"new_version"`
	// HostsAdded and HostsRemoved are canonical host:port entries.
	HostsAdded   []string `json:"hosts_added,omitempty"`
	HostsRemoved []string `json:"hosts_removed,omitempty"`
	// OldKind and NewKind are the credential kinds; they differ when the
	// kind changed (empty means no credential).
	OldKind CredentialKind `json:"old_kind,omitempty"`
	NewKind CredentialKind `json:"new_kind,omitempty"`
	// ScopesAdded and ScopesRemoved are credential scopes.
	ScopesAdded   []string `json:"scopes_added,omitempty"`
	ScopesRemoved []string `json:"scopes_removed,omitempty"`
	// ImportsAdded and ImportsRemoved are runtime capability IDs.
	ImportsAdded   []string `json:"imports_added,omitempty"`
	ImportsRemoved []string `json:"imports_removed,omitempty"`
	// IntentsAdded and IntentsRemoved are provided intents.
	IntentsAdded   []string `json:"intents_added,omitempty"`
	IntentsRemoved []string `json:"intents_removed,omitempty"`
}

// Diff compares the capabilities of two manifests. old may be nil (a first
// install): then everything in new is added.
func Diff(old, new *Manifest) CapabilityDiff {
	if old == nil {
		old = &Manifest{}
	}
	d := CapabilityDiff{
		Connector:  new.Connector.Name.String(),
		OldVersion: old.Connector.Version,
		NewVersion: new.Connector.Version,
	}
	d.HostsAdded, d.HostsRemoved = added(hostStrings(old), hostStrings(new)), added(hostStrings(new), hostStrings(old))
	if c := old.Capabilities.Credential; c != nil {
		d.OldKind = c.Kind
	}
	if c := new.Capabilities.Credential; c != nil {
		d.NewKind = c.Kind
	}
	d.ScopesAdded, d.ScopesRemoved = added(old.Scopes(), new.Scopes()), added(new.Scopes(), old.Scopes())
	oi, ni := old.Capabilities.Runtime.Imports, new.Capabilities.Runtime.Imports
	d.ImportsAdded, d.ImportsRemoved = added(oi, ni), added(ni, oi)
	op, np := old.Provides.Intents, new.Provides.Intents
	d.IntentsAdded, d.IntentsRemoved = added(op, np), added(np, op)
	return d
}

// added returns the entries of to that are not in from, in to's order.
func added(from, to []string) []string {
	have := set(from)
	var out []string
	for _, s := range to {
		if !have[s] {
			out = append(out, s)
		}
	}
	return out
}

func hostStrings(m *Manifest) []string {
	var out []string
	for _, h := range m.Capabilities.Network.Hosts {
		out = append(out, h.String())
	}
	return out
}

// KindChanged reports whether the credential kind changed, including from
// or to no credential.
func (d CapabilityDiff) KindChanged() bool { return d.OldKind != d.NewKind }

// Empty reports whether the capabilities are the same (the version may
// still differ).
func (d CapabilityDiff) Empty() bool {
	return !d.Widens() && len(d.HostsRemoved) == 0 && len(d.ScopesRemoved) == 0 &&
		len(d.ImportsRemoved) == 0 && len(d.IntentsRemoved) == 0
}

// Widens reports whether the new manifest may do anything the old one could
// not: something was added or the credential kind changed. A widening
// update needs consent again.
func (d CapabilityDiff) Widens() bool {
	return len(d.HostsAdded) > 0 || len(d.ScopesAdded) > 0 || len(d.ImportsAdded) > 0 ||
		len(d.IntentsAdded) > 0 || d.KindChanged()
}

// String returns the diff for a person to review, one change per line:
// "+" added, "-" removed, "~" changed. Wildcard hosts carry a warning.
func (d CapabilityDiff) String() string {
	var b strings.Builder
	old := d.OldVersion
	if old == "" {
		old = "(not installed)"
	}
	b.WriteString(d.Connector + " " + old + " -> " + d.NewVersion + "\n")
	if d.Empty() {
		b.WriteString("  no capability changes\n")
		return b.String()
	}
	line := func(sign, what, s string) { b.WriteString("  " + sign + " " + what + " " + s + "\n") }
	for _, h := range d.HostsAdded {
		line("+", "host", h+hostWarning(h))
	}
	for _, h := range d.HostsRemoved {
		line("-", "host", h)
	}
	if d.KindChanged() {
		line("~", "credential kind:", kindName(d.OldKind)+" -> "+kindName(d.NewKind))
	}
	for _, s := range d.ScopesAdded {
		line("+", "scope", s)
	}
	for _, s := range d.ScopesRemoved {
		line("-", "scope", s)
	}
	for _, s := range d.ImportsAdded {
		line("+", "import", s+"  ("+importDescription(s)+")")
	}
	for _, s := range d.ImportsRemoved {
		line("-", "import", s)
	}
	for _, s := range d.IntentsAdded {
		line("+", "intent", s)
	}
	for _, s := range d.IntentsRemoved {
		line("-", "intent", s)
	}
	return b.String()
}

func kindName(k CredentialKind) string {
	if k == "" {
		return "(none)"
	}
	return string(k)
}

// hostWarning returns the wildcard warning for a canonical host entry.
func hostWarning(h string) string {
	hp, err := ParseHostPort(h)
	if err != nil || !hp.Wildcard {
		return ""
	}
	return "  " + wildcardWarning(hp)
}
