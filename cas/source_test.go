package cas

import (
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
)

func TestBases_URLs(t *testing.T) {
	b := Bases{Hub: "https://mirror.example/hub/"}
	tests := []struct{ ref, file, want, index string }{
		{"github://aileron/slack@1.2.3", WasmFile, "https://github.com/aileron/slack/releases/download/v1.2.3/connector.wasm", "https://github.com/aileron/slack/releases/latest/download/versions.json"},
		{"gitlab://team/sub/notes@2.0.0-rc.1", SignatureFile, "https://gitlab.com/team/sub/notes/-/releases/v2.0.0-rc.1/downloads/manifest.toml.minisig", "https://gitlab.com/team/sub/notes/-/releases/permalink/latest/downloads/versions.json"},
		{"hub://acme/notes@0.1.0", ManifestFile, "https://mirror.example/hub/acme/notes/0.1.0/manifest.toml", "https://mirror.example/hub/acme/notes/versions.json"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			ref, err := manifest.ParseRef(tt.ref)
			require.NoError(t, err)
			got, err := b.ReleaseURL(ref, tt.file)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			got, err = b.IndexURL(ref.FQN)
			require.NoError(t, err)
			require.Equal(t, tt.index, got)
		})
	}
}

func TestBases_Errors(t *testing.T) {
	tests := []struct {
		name  string
		bases Bases
		msg   string
	}{
		{"plain_http", Bases{GitHub: "http://127.0.0.1:8080"}, `source github: bad package source: "http://127.0.0.1:8080": the base URL must be https`},
		{"userinfo", Bases{GitLab: "https://user:pw@gitlab.example"}, `source gitlab: bad package source: "https://user:pw@gitlab.example": write a base URL like https://host[:port][/path]`},
		{"query", Bases{Hub: "https://hub.example/?x=1"}, `source hub: bad package source: "https://hub.example/?x=1": write a base URL like https://host[:port][/path]`},
		{"no_host", Bases{Hub: "https:///path"}, `source hub: bad package source: "https:///path": write a base URL like https://host[:port][/path]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.EqualError(t, tt.bases.Validate(), tt.msg)
			_, err := NewFetcher(SourceConfig{Bases: tt.bases})
			require.ErrorIs(t, err, ErrBadSource)
		})
	}
}

func TestBases_RefusesUncheckedNames(t *testing.T) {
	// Names not made by ParseFQN/ParseRef: the URL builder checks again.
	tests := []struct {
		name string
		ref  manifest.Ref
		msg  string
	}{
		{"traversal_segment", manifest.Ref{FQN: manifest.FQN{Scheme: "github", Namespace: "..", Name: "x"}, Version: "1.0.0"}, `bad package source: "github://../x" is not a remote connector name`},
		{"slash_in_name", manifest.Ref{FQN: manifest.FQN{Scheme: "hub", Namespace: "a", Name: "b/../../c"}, Version: "1.0.0"}, `bad package source: "hub://a/b/../../c" is not a remote connector name`},
		{"traversal_version", manifest.Ref{FQN: manifest.FQN{Scheme: "github", Namespace: "a", Name: "b"}, Version: "1.0.0/../../x"}, `bad package source: invalid version "1.0.0/../../x": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{"file", manifest.Ref{FQN: manifest.FQN{Scheme: "file", Path: "/tmp/x"}, Version: "1.0.0"}, `bad package source: "file:///tmp/x" is not a remote connector name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Bases{}.ReleaseURL(tt.ref, ManifestFile)
			require.EqualError(t, err, tt.msg)
		})
	}
}
