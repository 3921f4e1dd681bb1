package mcpserver

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
)

func TestDescription(t *testing.T) {
	root := filepath.Join("..", "..", "examples")
	a, err := manifest.LoadAction(filepath.Join(root, "actions", "add-note.toml"))
	require.NoError(t, err)
	notes, err := manifest.LoadManifest(filepath.Join(root, "connectors", "notes", "manifest.toml"))
	require.NoError(t, err)
	other := *notes
	other.Connector.Version = "0.2.0"

	const head = "Add a note to the team notes service\n\nAileron action add-note 0.1.0. It runs in a sandbox; credentials are attached by Aileron and never shown to you.\n"
	tests := []struct {
		name      string
		installed map[string]*manifest.Manifest
		want      string
	}{
		{
			name:      "installed: hosts and credential from the grant",
			installed: map[string]*manifest.Manifest{"github://aileron-examples/notes": notes},
			want:      head + "Uses github://aileron-examples/notes@0.1.0 (create_note, list_notes): may reach notes.example.com:443; credential api_key.",
		},
		{
			name: "not installed",
			want: head + "Uses github://aileron-examples/notes@0.1.0 (create_note, list_notes): not installed; calls fail until a person installs it.",
		},
		{
			name:      "installed version differs from the pin",
			installed: map[string]*manifest.Manifest{"github://aileron-examples/notes": &other},
			want:      head + "Uses github://aileron-examples/notes@0.1.0 (create_note, list_notes): the installed connector does not match this action; calls fail until a person fixes it.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Description(a, tt.installed))
		})
	}
}

func TestDescription_NarrowedHostsAndScopes(t *testing.T) {
	m, err := manifest.ParseManifest("m.toml", []byte(`[connector]
name = "github://acme/chat"
version = "1.0.0"
provenance_hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
[capabilities.network]
hosts = ["*.chat.example:443", "files.example:443"]
[capabilities.credential]
kind = "oauth2"
scope = "chat:write,chat:read"
[capabilities.runtime]
imports = ["wasi:http/outgoing-handler"]
[provides]
intents = ["post"]
`))
	require.NoError(t, err)
	a, err := manifest.ParseAction("a.toml", []byte(`[action]
name = "post"
version = "1.0.0"
[[requires.connectors]]
name = "github://acme/chat"
version = "1.0.0"
hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
capabilities = ["chat:write"]
hosts = ["api.chat.example:443"]
[[steps]]
id = "p"
connector = "github://acme/chat"
intent = "post"
`))
	require.NoError(t, err)
	require.Equal(t, "Run the post action.\n\nAileron action post 1.0.0. It runs in a sandbox; credentials are attached by Aileron and never shown to you.\n"+
		"Uses github://acme/chat@1.0.0 (post): may reach api.chat.example:443; credential oauth2 (scopes chat:write).",
		Description(a, map[string]*manifest.Manifest{"github://acme/chat": m}))
}
