package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

const testHash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name string
		file string
		want *Manifest
	}{
		{
			name: "slack from the spec",
			file: "testdata/good/slack.toml",
			want: &Manifest{
				Connector: Connector{Name: FQN{Scheme: "github", Namespace: "aileron", Name: "slack"}, Version: "1.2.3", ProvenanceHash: testHash},
				Capabilities: Capabilities{
					Network:    Network{Hosts: []HostPort{{Host: "slack.com", Port: 443}, {Host: "slack.com", Port: 443, Wildcard: true}}},
					Credential: &Credential{Kind: CredentialOAuth2, Scopes: []string{"chat:write", "channels:read"}},
					Runtime:    Runtime{Imports: []string{abi.CapHTTP, abi.CapClocks, abi.CapRandom, abi.CapLog}},
				},
				Provides: Provides{Intents: []string{"post_message", "list_channels"}},
				Intents: map[string]Intent{
					"post_message": {
						Description: "Post a message to a channel",
						Scopes:      []string{"chat:write"},
						Input:       json.RawMessage(`{"type":"object","required":["channel","text"],"properties":{"channel":{"type":"string"},"text":{"type":"string"}}}`),
					},
					"list_channels": {Description: "List public channels", Scopes: []string{"channels:read"}},
				},
			},
		},
		{
			name: "api key without scopes",
			file: "testdata/good/notes.toml",
			want: &Manifest{
				Connector: Connector{Name: FQN{Scheme: "github", Namespace: "aileron", Name: "notes"}, Version: "0.1.0", ProvenanceHash: "sha256:" + strings.Repeat("a", 64)},
				Capabilities: Capabilities{
					Network:    Network{Hosts: []HostPort{{Host: "localhost", Port: 8080}}},
					Credential: &Credential{Kind: CredentialAPIKey},
					Runtime:    Runtime{Imports: []string{abi.CapHTTP, abi.CapLog}},
				},
				Provides: Provides{Intents: []string{"create_note"}},
			},
		},
		{
			name: "no capabilities; intent declares no scopes",
			file: "testdata/good/minimal.toml",
			want: &Manifest{
				Connector: Connector{Name: FQN{Scheme: "file", Path: "/home/dev/connectors/echo"}, Version: "0.0.1-dev", ProvenanceHash: "sha256:" + strings.Repeat("b", 64)},
				Provides:  Provides{Intents: []string{"echo"}},
				Intents:   map[string]Intent{"echo": {Description: "Returns its input", Scopes: []string{}}},
			},
		},
		{
			name: "inline tables and dotted keys",
			file: "testdata/good/gitlab_inline.toml",
			want: &Manifest{
				Connector: Connector{Name: FQN{Scheme: "gitlab", Namespace: "team/sub", Name: "linear"}, Version: "2.0.0-rc.1", ProvenanceHash: "sha256:" + strings.Repeat("c", 64)},
				Capabilities: Capabilities{
					Network:    Network{Hosts: []HostPort{{Host: "api.linear.app", Port: 443}}},
					Credential: &Credential{Kind: CredentialOAuth2, Scopes: []string{"read", "write", "issues:create"}},
					Runtime:    Runtime{Imports: []string{abi.CapHTTP, abi.CapAudit, abi.CapClocks}},
				},
				Provides: Provides{Intents: []string{"create_issue"}},
				Intents:  map[string]Intent{"create_issue": {Description: "Create an issue", Input: json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"}}}`)}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadManifest(tc.file)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// manifestWith returns a valid manifest with extra TOML appended.
func manifestWith(extra string) string {
	return `[connector]
name = "github://aileron/slack"
version = "1.2.3"
provenance_hash = "` + testHash + `"

[provides]
intents = ["post_message"]
` + extra
}

func TestParseManifest_Errors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string
		sentinel error
	}{
		{
			name:     "connector not a table",
			in:       `connector = "github://aileron/slack"` + "\n[provides]\nintents = [\"x\"]\n",
			want:     `m.toml:1:13: connector: must be a table, not a string`,
			sentinel: ErrType,
		},
		{
			name:     "empty name",
			in:       strings.Replace(manifestWith(""), `name = "github://aileron/slack"`, `name = ""`, 1),
			want:     `m.toml:2:8: connector.name: must not be empty`,
			sentinel: ErrMissing,
		},
		{
			name:     "hosts not strings",
			in:       manifestWith("[capabilities.network]\nhosts = [443]\n[capabilities.runtime]\nimports = [\"wasi:http/outgoing-handler\"]\n"),
			want:     `m.toml:9:10: capabilities.network.hosts[0]: must be a string, not an integer`,
			sentinel: ErrType,
		},
		{
			name:     "too many hosts",
			in:       manifestWith("[capabilities.network]\nhosts = [" + strings.Repeat(`"a.com:1",`, 65) + "]\n[capabilities.runtime]\nimports = [\"wasi:http/outgoing-handler\"]\n"),
			want:     `m.toml:9:1: capabilities.network.hosts: has 65 entries; at most 64 are allowed`,
			sentinel: ErrTooLarge,
		},
		{
			name:     "network table without hosts",
			in:       manifestWith("[capabilities.network]\n"),
			want:     `m.toml:8:15: capabilities.network.hosts: missing required field "hosts" in [capabilities.network]; list the host:port pairs the connector reaches, or remove the table`,
			sentinel: ErrMissing,
		},
		{
			name:     "runtime table without imports",
			in:       manifestWith("[capabilities.runtime]\n"),
			want:     `m.toml:8:15: capabilities.runtime.imports: missing required field "imports" in [capabilities.runtime]; list capability IDs, or remove the table`,
			sentinel: ErrMissing,
		},
		{
			name:     "intents table entry not a table",
			in:       manifestWith("[intents]\npost_message = \"Post\"\n"),
			want:     `m.toml:9:16: intents.post_message: must be a table, not a string`,
			sentinel: ErrType,
		},
		{
			name:     "unknown field in intent table",
			in:       manifestWith("[intents.post_message]\ndescripton = \"x\"\n"),
			want:     `m.toml:9:1: intents.post_message.descripton: unknown field "descripton" in [intents.post_message]; known fields: description, input, scopes`,
			sentinel: ErrUnknownField,
		},
		{
			name:     "schema too large",
			in:       manifestWith("[intents.post_message]\ninput = '{\"description\":\"" + strings.Repeat("x", 64<<10) + "\"}'\n"),
			want:     `m.toml:9:9: intents.post_message.input: schema is larger than 65536 bytes`,
			sentinel: ErrTooLarge,
		},
		{
			name:     "description too long",
			in:       manifestWith("[intents.post_message]\ndescription = \"" + strings.Repeat("x", 1025) + "\"\n"),
			want:     `m.toml:9:15: intents.post_message.description: longer than 1024 bytes`,
			sentinel: ErrInvalid,
		},
		{
			name:     "file too large",
			in:       manifestWith("# " + strings.Repeat("x", MaxFileBytes)),
			want:     `m.toml: file is larger than 1048576 bytes`,
			sentinel: ErrTooLarge,
		},
		{
			// go-toml's duplicate-key check is quadratic per table; the
			// shape check refuses such files before it runs.
			name:     "too many keys",
			in:       manyKeys(5000),
			want:     `m.toml:4097:1: more than 4096 keys`,
			sentinel: ErrTooLarge,
		},
		{
			name:     "dotted key too deep",
			in:       strings.Repeat("a.", 60) + "b = 1\n",
			want:     `m.toml:1:97: keys are nested more than 48 levels deep`,
			sentinel: ErrTooLarge,
		},
		{
			name:     "array too deep",
			in:       "x = " + strings.Repeat("[", 60) + strings.Repeat("]", 60) + "\n",
			want:     `m.toml:1:1: keys are nested more than 48 levels deep`,
			sentinel: ErrTooLarge,
		},
		{
			name:     "quoted key is not bare",
			in:       manifestWith("[capabilities]\n\"network \" = {}\n"),
			want:     `m.toml:9:1: capabilities."network ": unknown field "network " in [capabilities]; known fields: credential, network, runtime`,
			sentinel: ErrUnknownField,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest("m.toml", []byte(tc.in))
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, tc.sentinel)
			var e *Error
			require.True(t, errors.As(err, &e))
			require.Equal(t, "m.toml", e.File)
		})
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "k%d = 1\n", i)
	}
	return b.String()
}

func TestParseManifest_AllProblemsAtOnce(t *testing.T) {
	in := manifestWith("[capabilities.network]\nhostz = []\n[capabilities.credential]\nkind = \"token\"\n[foo]\n")
	_, err := ParseManifest("m.toml", []byte(in))
	var list ErrorList
	require.True(t, errors.As(err, &list))
	require.Len(t, list, 5)
	require.ErrorIs(t, err, ErrUnknownField)
	require.ErrorIs(t, err, ErrMissing)
	require.ErrorIs(t, err, ErrInvalid)
	for i := 1; i < len(list); i++ {
		require.LessOrEqual(t, list[i-1].Line, list[i].Line, "sorted by position")
	}
}

func TestParseManifest_ManyErrorsAreCapped(t *testing.T) {
	in := manifestWith("[capabilities.network]\nhosts = [" + strings.Repeat(`"x",`, 60) + "]\n[capabilities.runtime]\nimports = [\"wasi:http/outgoing-handler\"]\n")
	_, err := ParseManifest("m.toml", []byte(in))
	var list ErrorList
	require.True(t, errors.As(err, &list))
	require.Len(t, list, maxErrors+1)
	require.Equal(t, "m.toml: 10 more problems not shown", list[maxErrors].Error())
}

func TestLoadManifest_Errors(t *testing.T) {
	_, err := LoadManifest(filepath.Join(t.TempDir(), "missing.toml"))
	require.ErrorIs(t, err, os.ErrNotExist)

	big := filepath.Join(t.TempDir(), "big.toml")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxFileBytes+1), 0o644))
	_, err = LoadManifest(big)
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestManifest_JSON(t *testing.T) {
	m, err := LoadManifest("testdata/good/slack.toml")
	require.NoError(t, err)
	b, err := json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	golden(t, "testdata/json/slack.json.golden", string(b)+"\n")
}

func TestManifest_Encode(t *testing.T) {
	m, err := LoadManifest("testdata/good/slack.toml")
	require.NoError(t, err)
	golden(t, "testdata/encode/slack.toml.golden", string(m.Encode()))
}

// FuzzParseManifest checks that ParseManifest never panics, that every
// error is located, and that every manifest it accepts survives
// Encode → ParseManifest unchanged.
func FuzzParseManifest(f *testing.F) {
	for _, dir := range []string{"testdata/good/*.toml", "testdata/bad/*.toml"} {
		files, _ := filepath.Glob(dir)
		for _, path := range files {
			if strings.HasPrefix(filepath.Base(path), "action") {
				continue
			}
			data, err := os.ReadFile(path)
			require.NoError(f, err)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest("fuzz.toml", data)
		if err != nil {
			var list ErrorList
			require.True(t, errors.As(err, &list), "%T: %v", err, err)
			return
		}
		enc := m.Encode()
		again, err := ParseManifest("encoded.toml", enc)
		require.NoError(t, err, "encoded:\n%s", enc)
		require.Equal(t, m, again)
		require.Equal(t, string(enc), string(again.Encode()))
		_ = Describe(m)
	})
}
