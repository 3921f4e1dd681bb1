package mcpserver

import (
	"fmt"
	"slices"
	"strings"

	"aileron.dev/aileron/manifest"
)

// Description is the tool description an agent sees for action a: the
// action's own description, then what the action can reach, so the agent
// (and the person reviewing its tool list) sees its reach. installed maps a
// connector's canonical FQN to its installed manifest; a connector missing
// from it is reported as not installed.
//
// For each connector the action requires, one line gives its pinned
// version, the intents the action calls, the hosts its steps may reach (the
// grant [manifest.StepGrant] computes) and the credential kind and scopes.
func Description(a *manifest.Action, installed map[string]*manifest.Manifest) string {
	var b strings.Builder
	if a.Description != "" {
		b.WriteString(a.Description)
	} else {
		fmt.Fprintf(&b, "Run the %s action.", a.Name)
	}
	fmt.Fprintf(&b, "\n\nAileron action %s %s. It runs in a sandbox; credentials are attached by Aileron and never shown to you.", a.Name, a.Version)
	for _, req := range a.Requires {
		fqn := req.Name.String()
		var intents []string
		first := -1
		for i, st := range a.Steps {
			if st.Connector.String() == fqn {
				if first < 0 {
					first = i
				}
				if !slices.Contains(intents, st.Intent) {
					intents = append(intents, st.Intent)
				}
			}
		}
		fmt.Fprintf(&b, "\nUses %s@%s", fqn, req.Version)
		if len(intents) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(intents, ", "))
		}
		m := installed[fqn]
		switch {
		case m == nil:
			b.WriteString(": not installed; calls fail until a person installs it.")
			continue
		case first < 0:
			b.WriteString(": no step calls it.")
			continue
		}
		g, err := manifest.StepGrant(a, first, m)
		if err != nil {
			b.WriteString(": the installed connector does not match this action; calls fail until a person fixes it.")
			continue
		}
		if len(g.Hosts) == 0 {
			b.WriteString(": reaches no host")
		} else {
			fmt.Fprintf(&b, ": may reach %s", strings.Join(g.Hosts, ", "))
		}
		if g.CredentialKind == "" {
			b.WriteString("; no credential.")
		} else {
			fmt.Fprintf(&b, "; credential %s", g.CredentialKind)
			if len(req.Capabilities) > 0 {
				fmt.Fprintf(&b, " (scopes %s)", strings.Join(req.Capabilities, ", "))
			}
			b.WriteString(".")
		}
	}
	return b.String()
}
