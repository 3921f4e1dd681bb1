package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// tmpdir is a TMPDIR the workers may pass through.
func tmpdir(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o711))
	return dir
}

func TestScratchRoot_HonoursTMPDIR(t *testing.T) {
	base := tmpdir(t)
	t.Setenv("TMPDIR", base)
	r, err := newScratchRoot()
	require.NoError(t, err)
	require.Equal(t, base, filepath.Dir(r.path))
	require.True(t, strings.HasPrefix(filepath.Base(r.path), scratchPrefix), r.path)
	st, err := os.Stat(r.path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o711), st.Mode().Perm())

	w, err := r.workerDir()
	require.NoError(t, err)
	require.Equal(t, r.path, filepath.Dir(w))
	st, err = os.Stat(w)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	require.NoError(t, r.Close())
	require.NoDirExists(t, r.path)
}

func TestScratchBase(t *testing.T) {
	t.Setenv("TMPDIR", "")
	base, err := scratchBase()
	require.NoError(t, err)
	if isTmpfs("/dev/shm", scratchMinFree) {
		require.Equal(t, "/dev/shm", base)
	} else {
		require.Equal(t, os.TempDir(), base)
	}

	// A base others may write in, without the sticky bit, is refused:
	// they could rename the root and put their own in its place.
	open := tmpdir(t)
	require.NoError(t, os.Chmod(open, 0o777))
	t.Setenv("TMPDIR", open)
	_, err = scratchBase()
	require.ErrorContains(t, err, "lets others replace what is made in it")
	require.NoError(t, os.Chmod(open, 0o711))
	base, err = scratchBase()
	require.NoError(t, err)
	require.Equal(t, open, base)
	if os.Geteuid() == 0 {
		// Workers run as another uid and must pass through it.
		require.NoError(t, os.Chmod(open, 0o700))
		_, err = scratchBase()
		require.ErrorContains(t, err, "cannot be searched by the workers' uid: make it 0711")
	}
}

// TestScratchRoot_Replaced: once its directory is removed (a tmpfs cleaner)
// and another made at its path, the supervisor makes nothing in it and does
// not remove it.
func TestScratchRoot_Replaced(t *testing.T) {
	t.Setenv("TMPDIR", tmpdir(t))
	r, err := newScratchRoot()
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(r.path))
	require.NoError(t, os.Mkdir(r.path, 0o777))
	_, err = r.workerDir()
	require.ErrorContains(t, err, "was removed or replaced while in use")
	entries, err := os.ReadDir(r.path)
	require.NoError(t, err)
	require.Empty(t, entries)
	require.NoError(t, r.Close())
	require.DirExists(t, r.path, "someone else's directory was removed")
}

// TestRemoveStaleScratch: a root whose supervisor is gone (no lock held) is
// removed with what it holds; a live supervisor's root, names of another
// shape and symlinks are left alone.
func TestRemoveStaleScratch(t *testing.T) {
	base := tmpdir(t)
	t.Setenv("TMPDIR", base)
	live, err := newScratchRoot()
	require.NoError(t, err)
	defer live.Close()

	mk := func(name string) string {
		p := filepath.Join(base, name)
		require.NoError(t, os.MkdirAll(filepath.Join(p, "w-1"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(p, "w-1", "stdin-1"), []byte("secret input"), 0o600))
		return p
	}
	stale := mk(scratchPrefix + "123")
	other := mk("aileron-123-x")
	target := mk("target")
	link := filepath.Join(base, scratchPrefix+"456")
	require.NoError(t, os.Symlink(target, link))

	removeStaleScratch(base)
	require.NoDirExists(t, stale)
	for _, p := range []string{live.path, other, target, link} {
		_, err := os.Lstat(p)
		require.NoError(t, err, "%s was removed", p)
	}
	require.FileExists(t, filepath.Join(target, "w-1", "stdin-1"))
	_, err = live.workerDir()
	require.NoError(t, err, "the live root still works")
}
