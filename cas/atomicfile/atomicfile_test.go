package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f")
	require.NoError(t, WriteFile(p, []byte("one"), 0o600, ""))
	require.NoError(t, WriteFile(p, []byte("two"), 0o444, ""))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o444), st.Mode().Perm())
	ents, err := os.ReadDir(filepath.Dir(p))
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temp file may be left behind")

	// A temp directory elsewhere on the same filesystem works too.
	tmp := filepath.Join(dir, "tmp")
	require.NoError(t, os.Mkdir(tmp, 0o700))
	require.NoError(t, WriteFile(filepath.Join(dir, "g"), []byte("x"), 0o600, tmp))
	ents, err = os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, ents)

	require.Error(t, WriteFile(filepath.Join(dir, "missing-tmp", "h"), []byte("x"), 0o600, filepath.Join(dir, "nope")))
}
