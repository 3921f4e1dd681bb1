package manifest

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

func mustManifest(t *testing.T, src string) *Manifest {
	t.Helper()
	m, err := ParseManifest("m.toml", []byte(src))
	require.NoError(t, err)
	return m
}

func slackManifest(version, hosts, cred, imports, intents string) string {
	s := `[connector]
name = "github://aileron/slack"
version = "` + version + `"
provenance_hash = "` + testHash + `"
`
	if hosts != "" {
		s += "[capabilities.network]\nhosts = " + hosts + "\n"
	}
	if cred != "" {
		s += "[capabilities.credential]\n" + cred + "\n"
	}
	if imports != "" {
		s += "[capabilities.runtime]\nimports = " + imports + "\n"
	}
	return s + "[provides]\nintents = " + intents + "\n"
}

func TestDiff(t *testing.T) {
	old := slackManifest("1.2.0", `["slack.com:443"]`, `kind = "oauth2"`+"\n"+`scope = "chat:write,channels:read"`, `["wasi:http/outgoing-handler", "aileron:log"]`, `["post_message", "list_channels"]`)
	tests := []struct {
		name    string
		old     string // "" for a first install
		new     string
		want    CapabilityDiff
		empty   bool
		widens  bool
		display string // golden file under testdata/diff
	}{
		{
			name:  "same capabilities, new version",
			old:   old,
			new:   strings.Replace(old, `"1.2.0"`, `"1.2.1"`, 1),
			want:  CapabilityDiff{Connector: "github://aileron/slack", OldVersion: "1.2.0", NewVersion: "1.2.1", OldKind: CredentialOAuth2, NewKind: CredentialOAuth2},
			empty: true, display: "unchanged",
		},
		{
			name: "only removals narrow",
			old:  old,
			new:  slackManifest("1.3.0", `["slack.com:443"]`, `kind = "oauth2"`+"\n"+`scope = "chat:write"`, `["wasi:http/outgoing-handler"]`, `["post_message"]`),
			want: CapabilityDiff{Connector: "github://aileron/slack", OldVersion: "1.2.0", NewVersion: "1.3.0", OldKind: CredentialOAuth2, NewKind: CredentialOAuth2,
				ScopesRemoved: []string{"channels:read"}, ImportsRemoved: []string{abi.CapLog}, IntentsRemoved: []string{"list_channels"}},
			display: "narrows",
		},
		{
			name: "everything widens",
			old:  old,
			new:  slackManifest("2.0.0", `["api.slack.com:443", "*.slack.com:443"]`, `kind = "signing_key"`+"\n"+`scope = "chat:write,channels:read,admin"`, `["wasi:http/outgoing-handler", "aileron:log", "wasi:random"]`, `["post_message", "list_channels", "delete_channel"]`),
			want: CapabilityDiff{Connector: "github://aileron/slack", OldVersion: "1.2.0", NewVersion: "2.0.0",
				HostsAdded: []string{"api.slack.com:443", "*.slack.com:443"}, HostsRemoved: []string{"slack.com:443"},
				OldKind: CredentialOAuth2, NewKind: CredentialSigningKey, ScopesAdded: []string{"admin"},
				ImportsAdded: []string{abi.CapRandom}, IntentsAdded: []string{"delete_channel"}},
			widens: true, display: "widens",
		},
		{
			name:   "kind change alone widens",
			old:    old,
			new:    strings.Replace(old, `kind = "oauth2"`, `kind = "basic"`, 1),
			want:   CapabilityDiff{Connector: "github://aileron/slack", OldVersion: "1.2.0", NewVersion: "1.2.0", OldKind: CredentialOAuth2, NewKind: CredentialBasic},
			widens: true,
		},
		{
			name: "dropping the credential is a kind change",
			old:  old,
			new:  slackManifest("1.2.0", `["slack.com:443"]`, "", `["wasi:http/outgoing-handler", "aileron:log"]`, `["post_message", "list_channels"]`),
			want: CapabilityDiff{Connector: "github://aileron/slack", OldVersion: "1.2.0", NewVersion: "1.2.0", OldKind: CredentialOAuth2,
				ScopesRemoved: []string{"chat:write", "channels:read"}},
			widens: true,
		},
		{
			name: "first install",
			new:  old,
			want: CapabilityDiff{Connector: "github://aileron/slack", NewVersion: "1.2.0", HostsAdded: []string{"slack.com:443"}, NewKind: CredentialOAuth2,
				ScopesAdded: []string{"chat:write", "channels:read"}, ImportsAdded: []string{abi.CapHTTP, abi.CapLog}, IntentsAdded: []string{"post_message", "list_channels"}},
			widens: true, display: "install",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o *Manifest
			if tc.old != "" {
				o = mustManifest(t, tc.old)
			}
			d := Diff(o, mustManifest(t, tc.new))
			require.Equal(t, tc.want, d)
			require.Equal(t, tc.empty, d.Empty())
			require.Equal(t, tc.widens, d.Widens())
			if tc.display != "" {
				golden(t, filepath.Join("testdata/diff", tc.display+".golden"), d.String())
			}
		})
	}
}
