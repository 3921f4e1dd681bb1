package manifest

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./manifest -update to create it")
	require.Equal(t, string(want), got)
}

// parseFile parses a testdata file as an action when its name starts with
// "action", else as a manifest.
func parseFile(path string) (any, error) {
	if strings.HasPrefix(filepath.Base(path), "action") {
		return LoadAction(path)
	}
	return LoadManifest(path)
}

// TestBadFiles parses each hostile or broken file in testdata/bad and
// compares every error with its golden file. Every problem must carry a
// position unless it is about the whole file (a missing top-level table).
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".toml")
		t.Run(name, func(t *testing.T) {
			v, err := parseFile(path)
			require.Error(t, err, "parsed as %+v", v)
			var list ErrorList
			require.True(t, errors.As(err, &list), "want an ErrorList, got %T", err)
			for _, e := range list {
				require.Equal(t, path, e.File)
				require.NotNil(t, e.Err, "%s: no sentinel", e)
				if e.Line == 0 {
					require.ErrorIs(t, e, ErrMissing, "%s: no position", e)
					require.NotContains(t, e.Field, ".", "%s: a nested field has a position", e)
				}
			}
			golden(t, strings.TrimSuffix(path, ".toml")+".golden", err.Error()+"\n")
		})
	}
}

// TestGoodFiles parses each file in testdata/good and checks that encoding
// and parsing again gives the same value.
func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.toml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			v, err := parseFile(path)
			require.NoError(t, err)
			switch v := v.(type) {
			case *Manifest:
				again, err := ParseManifest("encoded", v.Encode())
				require.NoError(t, err)
				require.Equal(t, v, again)
				require.Equal(t, string(v.Encode()), string(again.Encode()))
			case *Action:
				again, err := ParseAction("encoded", v.Encode())
				require.NoError(t, err)
				require.Equal(t, withoutSource(v), withoutSource(again))
				require.Equal(t, string(v.Encode()), string(again.Encode()))
			}
		})
	}
}

// withoutSource returns a copy of a without its positions, for comparing
// values parsed from different text.
func withoutSource(a *Action) Action {
	c := *a
	c.src = nil
	return c
}
