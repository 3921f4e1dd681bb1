package manifest

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"aileron.dev/aileron/sdk/abi"
)

// importDescriptions says, for a person at a consent prompt, what each
// runtime capability lets a connector do. One entry per capability in
// [abi.ImportTable]; a test keeps the two in step.
var importDescriptions = map[string]string{
	abi.CapHTTP:   "send HTTP requests through the broker to the hosts above",
	abi.CapLog:    "write structured log records",
	abi.CapAudit:  "append events to the audit log",
	abi.CapClocks: "read the wall clock and a monotonic clock",
	abi.CapRandom: "read random bytes",
}

func importDescription(id string) string {
	if d, ok := importDescriptions[id]; ok {
		return d
	}
	return "(no description)"
}

// wildcardWarning is the loud line shown beside a wildcard host.
func wildcardWarning(h HostPort) string {
	return fmt.Sprintf("WARNING: wildcard: any subdomain of %s (one label, e.g. x.%s)", h.Host, h.Host)
}

// Describe returns a summary of m for a person deciding whether to install
// it (consent prompts, `aileron connector inspect`): name, version and
// hash; hosts, with wildcards flagged; credential kind and scopes; each
// runtime import with what it grants; intents with their descriptions and
// scopes. Every string in a valid manifest is free of control characters,
// so the text is safe to print to a terminal.
func Describe(m *Manifest) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("%s@%s\n", m.Connector.Name, m.Connector.Version)
	p("provenance: %s\n", m.Connector.ProvenanceHash)

	hosts := m.Capabilities.Network.Hosts
	if len(hosts) == 0 {
		p("\nnetwork: none (cannot reach any host)\n")
	} else {
		p("\nnetwork: may reach\n")
		for _, h := range hosts {
			if h.Wildcard {
				p("  %s  %s\n", h, wildcardWarning(h))
			} else {
				p("  %s\n", h)
			}
		}
	}

	if c := m.Capabilities.Credential; c == nil {
		p("\ncredential: none\n")
	} else {
		p("\ncredential: %s\n", c.Kind)
		p("  scopes: %s\n", listOrNone(c.Scopes))
	}

	p("\nruntime imports:\n")
	width := 0
	for _, id := range m.Capabilities.Runtime.Imports {
		width = max(width, utf8.RuneCountInString(id))
	}
	for _, id := range m.Capabilities.Runtime.Imports {
		p("  %-*s  %s\n", width, id, importDescription(id))
	}
	p("  (always: read its input, write its result and log, exit)\n")

	p("\nintents:\n")
	width = 0
	for _, name := range m.Provides.Intents {
		width = max(width, len(name))
	}
	for _, name := range m.Provides.Intents {
		in := m.Intents[name]
		line := fmt.Sprintf("  %-*s", width, name)
		if in.Description != "" {
			line += "  " + in.Description
		}
		if in.Scopes != nil {
			line += "  [scopes: " + listOrNone(in.Scopes) + "]"
		}
		p("%s\n", strings.TrimRight(line, " "))
	}
	return b.String()
}
