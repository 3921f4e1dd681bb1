package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScratchRoot_HonoursTMPDIR(t *testing.T) {
	base := t.TempDir()
	t.Setenv("TMPDIR", base)
	dir, err := newScratchRoot()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.Equal(t, base, filepath.Dir(dir))
	require.True(t, strings.HasPrefix(filepath.Base(dir), fmt.Sprintf("aileron-%d-", os.Getpid())), dir)
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o711), st.Mode().Perm())
}

func TestScratchRoot_PrefersMemory(t *testing.T) {
	t.Setenv("TMPDIR", "")
	if !isTmpfs("/dev/shm") {
		t.Skip("no tmpfs at /dev/shm")
	}
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // not a tmpfs here: skipped
	bases := scratchBases()
	require.Equal(t, "/dev/shm", bases[0], "bases %v", bases)
	require.Equal(t, os.TempDir(), bases[len(bases)-1])
}

func TestRemoveStaleScratch(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	dead := cmd.ProcessState.Pid()

	base := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(base, name)
		require.NoError(t, os.MkdirAll(filepath.Join(p, "w-1"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(p, "w-1", "stdin-1"), []byte("secret input"), 0o600))
		return p
	}
	stale := mk(fmt.Sprintf("aileron-%d-123", dead))
	keep := []string{
		mk(fmt.Sprintf("aileron-%d-123", os.Getpid())),  // ours
		mk(fmt.Sprintf("aileron-%d-123", os.Getppid())), // a live supervisor's
		mk(fmt.Sprintf("aileron-0%d-123", dead)),        // not a pid as we write it
		mk(fmt.Sprintf("other-%d-123", dead)),
	}
	// A symlink named like a stale root is not followed or removed.
	target := mk("target")
	link := filepath.Join(base, fmt.Sprintf("aileron-%d-456", dead))
	require.NoError(t, os.Symlink(target, link))
	keep = append(keep, target, link)

	removeStaleScratch(base)
	require.NoDirExists(t, stale)
	for _, p := range keep {
		_, err := os.Lstat(p)
		require.NoError(t, err, "%s was removed", p)
	}
	require.FileExists(t, filepath.Join(target, "w-1", "stdin-1"))
}
