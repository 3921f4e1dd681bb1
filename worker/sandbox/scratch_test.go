//go:build linux

package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func init() {
	// scratch locks down with arg as the one read-write directory, then
	// tries what a worker does there and what it never needs to.
	helpers["scratch"] = func(dir string) int {
		if err := Init(InitConfig{}); err != nil {
			return fail("Init: %v", err)
		}
		if _, err := Lockdown(LockdownConfig{ReadWritePaths: []string{dir}, Landlock: LandlockRequired, Seccomp: SeccompOff}); err != nil {
			return fail("Lockdown: %v", err)
		}
		res := map[string]string{}
		try := func(name string, err error) {
			res[name] = "ok"
			if err != nil {
				res[name] = errors.Unwrap(err).Error()
			}
		}
		f, err := os.CreateTemp(dir, "stdin-*")
		try("create", err)
		if err == nil {
			_, err = f.Write([]byte("{}"))
			try("write", err)
			f.Close()
			_, err = os.ReadFile(f.Name())
			try("read", err)
			try("truncate", os.Truncate(f.Name(), 0))
			try("remove", os.Remove(f.Name()))
		}
		try("mkdir", os.Mkdir(filepath.Join(dir, "sub"), 0o700))
		try("rmdir", os.Remove(filepath.Join(dir, "existing")))
		_, err = os.ReadDir(dir)
		try("readdir", err)
		emit(res)
		return 0
	}
}

// TestLockdownScratchRights: in its scratch directory the worker can
// create, write, read, truncate and remove its stream files, and nothing
// else: no directories made or removed, no listing.
func TestLockdownScratchRights(t *testing.T) {
	requireNamespaces(t)
	requireLandlock(t, MinLandlockABI)
	dir, err := os.MkdirTemp("", "aileron-scratch-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "existing"), 0o777))
	require.NoError(t, os.Chmod(dir, 0o777))
	res, err := runHelper(t, "scratch", &SpawnConfig{Namespaces: true}, dir)
	require.NoError(t, err)
	got := decodeLines[map[string]string](t, res.Stdout)
	require.Equal(t, []map[string]string{{
		"create": "ok", "write": "ok", "read": "ok", "truncate": "ok", "remove": "ok",
		"mkdir": "permission denied", "rmdir": "permission denied", "readdir": "permission denied",
	}}, got)
}
