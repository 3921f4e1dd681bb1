package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

// loadCheckCase loads testdata/check/<name>: action.toml and, if present,
// manifest.toml, supplied under the action's first requirement.
func loadCheckCase(t *testing.T, dir string) (*Action, map[string]*Manifest) {
	t.Helper()
	a, err := LoadAction(filepath.Join(dir, "action.toml"))
	require.NoError(t, err)
	installed := map[string]*Manifest{}
	path := filepath.Join(dir, "manifest.toml")
	if _, err := os.Stat(path); err == nil {
		m, err := LoadManifest(path)
		require.NoError(t, err)
		installed[a.Requires[0].Name.String()] = m
	}
	return a, installed
}

// TestCheckAction_Errors runs each case in testdata/check, named after the
// attack or mistake, and compares the errors with check.golden.
func TestCheckAction_Errors(t *testing.T) {
	dirs, err := filepath.Glob("testdata/check/*")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			a, installed := loadCheckCase(t, dir)
			err := CheckAction(a, installed)
			require.Error(t, err)
			var list ErrorList
			require.True(t, errors.As(err, &list))
			for _, e := range list {
				require.NotZero(t, e.Line, "%s: no position", e)
			}
			golden(t, filepath.Join(dir, "check.golden"), err.Error()+"\n")

			// StepGrant refuses every step that CheckAction refuses.
			for i := range a.Steps {
				_, stepErr := StepGrant(a, i, installed[a.Steps[i].Connector.String()])
				if stepErr == nil {
					continue
				}
				var stepList ErrorList
				require.True(t, errors.As(stepErr, &stepList))
				for _, e := range stepList {
					require.Contains(t, list, e, "StepGrant found a problem CheckAction did not")
				}
			}
		})
	}
}

func TestCheckAction(t *testing.T) {
	a, err := LoadAction("testdata/good/action_ship_update.toml")
	require.NoError(t, err)
	m, err := LoadManifest("testdata/good/slack.toml")
	require.NoError(t, err)
	require.NoError(t, CheckAction(a, map[string]*Manifest{"github://aileron/slack": m}))
}

func TestStepGrant(t *testing.T) {
	slack, err := LoadManifest("testdata/good/slack.toml")
	require.NoError(t, err)
	notes, err := LoadManifest("testdata/good/notes.toml")
	require.NoError(t, err)

	action := func(name, caps, hosts, intent string) *Action {
		src := `[action]
name = "a"
version = "1.0.0"

[[requires.connectors]]
name = "` + name + `"
version = "1.2.3"
hash = "` + testHash + `"
capabilities = ` + caps + "\n" + hosts + `
[[steps]]
id = "s"
connector = "` + name + `"
intent = "` + intent + `"
`
		if name == "github://aileron/notes" {
			src = strings.NewReplacer("1.2.3", "0.1.0", testHash, notes.Connector.ProvenanceHash).Replace(src)
		}
		a, err := ParseAction("a.toml", []byte(src))
		require.NoError(t, err)
		return a
	}
	tests := []struct {
		name string
		a    *Action
		m    *Manifest
		want Grant
	}{
		{
			name: "intent scopes narrow the action's capabilities",
			a:    action("github://aileron/slack", `["chat:write", "channels:read"]`, "", "post_message"),
			m:    slack,
			want: Grant{Connector: "github://aileron/slack", Version: "1.2.3", Hash: testHash, Intent: "post_message",
				Hosts: []string{"slack.com:443", "*.slack.com:443"}, CredentialKind: CredentialOAuth2, Scopes: []string{"chat:write"},
				Imports: []string{abi.CapHTTP, abi.CapClocks, abi.CapRandom, abi.CapLog}},
		},
		{
			name: "action hosts narrow the manifest's",
			a:    action("github://aileron/slack", `["channels:read"]`, `hosts = ["api.slack.com:443"]`, "list_channels"),
			m:    slack,
			want: Grant{Connector: "github://aileron/slack", Version: "1.2.3", Hash: testHash, Intent: "list_channels",
				Hosts: []string{"api.slack.com:443"}, CredentialKind: CredentialOAuth2, Scopes: []string{"channels:read"},
				Imports: []string{abi.CapHTTP, abi.CapClocks, abi.CapRandom, abi.CapLog}},
		},
		{
			name: "empty host narrowing grants no host",
			a:    action("github://aileron/slack", `["channels:read"]`, `hosts = []`, "list_channels"),
			m:    slack,
			want: Grant{Connector: "github://aileron/slack", Version: "1.2.3", Hash: testHash, Intent: "list_channels",
				CredentialKind: CredentialOAuth2, Scopes: []string{"channels:read"},
				Imports: []string{abi.CapHTTP, abi.CapClocks, abi.CapRandom, abi.CapLog}},
		},
		{
			name: "undeclared intent scopes fall back to the action's capabilities",
			a:    action("github://aileron/notes", `[]`, "", "create_note"),
			m:    notes,
			want: Grant{Connector: "github://aileron/notes", Version: "0.1.0", Hash: notes.Connector.ProvenanceHash, Intent: "create_note",
				Hosts: []string{"localhost:8080"}, CredentialKind: CredentialAPIKey,
				Imports: []string{abi.CapHTTP, abi.CapLog}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StepGrant(tc.a, 0, tc.m)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestStepGrant_Errors(t *testing.T) {
	a, installed := loadCheckCase(t, "testdata/check/intent_scope_not_granted")
	m := installed["github://aileron/slack"]
	tests := []struct {
		name string
		step int
		m    *Manifest
		want string
	}{
		{name: "index out of range", step: 2, m: m, want: `action "ship-update" has no step 2`},
		{name: "negative index", step: -1, m: m, want: `action "ship-update" has no step -1`},
		{name: "not installed", step: 0, m: nil, want: `testdata/check/intent_scope_not_granted/action.toml:12:8: requires.connectors[0].name: connector github://aileron/slack is not installed; install github://aileron/slack@1.2.3`},
		{name: "scope not granted", step: 1, m: m, want: `testdata/check/intent_scope_not_granted/action.toml:25:10: steps[1].intent: step "post": intent "post_message" of connector github://aileron/slack needs scope "chat:write", which the action does not grant; add it to capabilities in the [[requires.connectors]] entry for github://aileron/slack`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := StepGrant(a, tc.step, tc.m)
			require.EqualError(t, err, tc.want)
			require.Equal(t, Grant{}, g, "a refused step gets the zero Grant")
		})
	}
}
