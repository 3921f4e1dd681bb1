package manifest

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

func TestDescribe(t *testing.T) {
	for _, name := range []string{"slack", "notes", "minimal"} {
		t.Run(name, func(t *testing.T) {
			m, err := LoadManifest(filepath.Join("testdata/good", name+".toml"))
			require.NoError(t, err)
			golden(t, filepath.Join("testdata/describe", name+".golden"), Describe(m))
		})
	}
}

func TestDescribe_WildcardIsLoud(t *testing.T) {
	m, err := LoadManifest("testdata/good/slack.toml")
	require.NoError(t, err)
	require.Contains(t, Describe(m), "*.slack.com:443  WARNING: wildcard: any subdomain of slack.com")
}

// TestImportDescriptions keeps the consent text in step with the ABI: every
// capability has a description and there are no stale ones.
func TestImportDescriptions(t *testing.T) {
	for _, id := range abi.CapabilityIDs() {
		require.NotEmpty(t, importDescriptions[id], "no description for %s", id)
	}
	require.Len(t, importDescriptions, len(abi.ImportTable))
	require.Equal(t, "(no description)", importDescription("wasi:unknown"))
	for id, d := range importDescriptions {
		require.False(t, strings.HasSuffix(d, "."), "%s: no trailing period", id)
	}
}
