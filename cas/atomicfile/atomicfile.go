// Package atomicfile writes files so that a reader, or a crash, sees either
// the old content or the new, never a mix: write a temp file, fsync it, set
// its mode, rename it over the target, fsync the directory. The store, the
// trust file and the vault all write this way. It imports only the
// standard library.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically with the given mode. The temp
// file is created in tmpDir, which must be on the same filesystem as path;
// an empty tmpDir means path's own directory. Missing parent directories of
// path are created with mode 0700.
func WriteFile(path string, data []byte, mode os.FileMode, tmpDir string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if tmpDir == "" {
		tmpDir = dir
	}
	tmp, err := os.CreateTemp(tmpDir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // a no-op after the rename
	// Security: the mode is set before any byte is written, so a secret is
	// never briefly readable under CreateTemp's 0600-then-chmod window in
	// the wider direction either.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making a rename or removal in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
