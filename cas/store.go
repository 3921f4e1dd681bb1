// Package cas is the content-addressed store under $AILERON_HOME/store:
// blobs named by their sha256, an index from FQN@version to the blobs of a
// connector package, and the cache of compiled machine code.
//
// # Guarantees
//
//   - A blob is written to a temp file, fsynced, and renamed into place, so
//     a reader sees all of it or none of it.
//   - A blob's name is its hash: [Store.Read] re-hashes what it read and
//     refuses a mismatch, so a corrupted or swapped file is never used.
//   - Writers take a file lock, so concurrent installs are safe and the
//     same content is stored once.
package cas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"aileron.dev/aileron/cas/atomicfile"
	"aileron.dev/aileron/cas/filelock"
	"aileron.dev/aileron/manifest"
)

// Digest is "sha256:" followed by 64 lowercase hex digits.
type Digest string

// Errors.
var (
	// ErrBadDigest is returned for a string that is not a Digest.
	ErrBadDigest = errors.New(`digest must be "sha256:" followed by 64 lowercase hex digits`)
	// ErrNotFound is returned when a blob or index entry is absent.
	ErrNotFound = errors.New("not in the store")
	// ErrCorrupt is returned when stored bytes do not match their name.
	ErrCorrupt = errors.New("stored content does not match its hash")
	// ErrTooLarge is returned when content exceeds the size limit.
	ErrTooLarge = errors.New("content exceeds the size limit")
	// ErrNotRegular is returned when a package file to read is a
	// directory, a device, a pipe or a socket rather than a regular file
	// (or a symlink to one).
	ErrNotRegular = errors.New("not a regular file")
)

// ParseDigest checks s and returns it as a Digest.
func ParseDigest(s string) (Digest, error) {
	if manifest.HashProblem(s) != "" {
		return "", fmt.Errorf("%q: %w", s, ErrBadDigest)
	}
	return Digest(s), nil
}

// Sum returns the Digest of b.
func Sum(b []byte) Digest {
	s := sha256.Sum256(b)
	return Digest("sha256:" + hex.EncodeToString(s[:]))
}

// Hex returns the hex part of d.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), "sha256:") }

// Store is a content-addressed store rooted at a directory.
type Store struct {
	root string
	lock *filelock.Lock
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "index", "compiled", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "compiled"), 0o711); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &Store{root: root, lock: filelock.New(filepath.Join(root, ".lock"))}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// Lock takes the store's exclusive writer lock, against other goroutines
// and other processes; the returned function releases it.
func (s *Store) Lock() (func(), error) {
	unlock, err := s.lock.Lock()
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	return unlock, nil
}

// BlobPath returns where the blob d lives (it may not exist).
func (s *Store) BlobPath(d Digest) string {
	return filepath.Join(s.root, "blobs", "sha256", d.Hex())
}

// Has reports whether the blob d is present (without verifying it).
func (s *Store) Has(d Digest) bool {
	_, err := os.Stat(s.BlobPath(d))
	return err == nil
}

// PutBytes stores b and returns its digest. Storing content that is already
// present writes nothing.
func (s *Store) PutBytes(b []byte) (Digest, error) {
	d := Sum(b)
	if _, err := s.putBlob(d, b); err != nil {
		return "", err
	}
	return d, nil
}

// putBlob stores b, whose digest is d (the caller computed it), and
// reports whether the blob was absent before. A bad copy is replaced but
// does not count as created, so undoing a failed install never removes a
// blob it repaired.
func (s *Store) putBlob(d Digest, b []byte) (created bool, err error) {
	had := s.Has(d)
	if had && s.Verify(d) == nil {
		return false, nil
	}
	if err := s.writeAtomic(s.BlobPath(d), b, 0o400); err != nil {
		return false, fmt.Errorf("store blob %s: %w", d, err)
	}
	return !had, nil
}

// Read returns the blob d after checking its hash, and at most max bytes.
func (s *Store) Read(d Digest, max int64) ([]byte, error) {
	f, err := os.Open(s.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("blob %s: %w", d, ErrTooLarge)
	}
	if Sum(b) != d {
		return nil, fmt.Errorf("blob %s: %w", d, ErrCorrupt)
	}
	return b, nil
}

// Verify re-hashes the blob d.
func (s *Store) Verify(d Digest) error {
	got, err := hashFile(s.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if got != d {
		return fmt.Errorf("blob %s: %w", d, ErrCorrupt)
	}
	return nil
}

// hashFile returns the Digest of the file at path, reading it in pieces.
func hashFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), nil
}

// writeAtomic writes data to path through a temp file in the store's tmp
// directory (see package atomicfile).
func (s *Store) writeAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, data, mode, filepath.Join(s.root, "tmp"))
}
