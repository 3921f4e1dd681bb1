package cas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is what the index records for one installed FQN@version.
type Entry struct {
	// Ref is the canonical "FQN@version".
	Ref string `json:"ref"`
	// Manifest, Wasm and Signature are the package's blobs. Signature is
	// empty for development installs from a file:// source.
	Manifest  Digest `json:"manifest"`
	Wasm      Digest `json:"wasm"`
	Signature Digest `json:"signature,omitempty"`
	// Source says where the package came from (a URL or a directory).
	Source string `json:"source"`
	// KeyFingerprint identifies the publisher key that verified the
	// signature.
	KeyFingerprint string    `json:"key_fingerprint,omitempty"`
	InstalledAt    time.Time `json:"installed_at"`
}

// digests returns every blob e names (decodeEntry checks each one).
func (e Entry) digests() []Digest {
	out := []Digest{e.Manifest, e.Wasm}
	if e.Signature != "" {
		out = append(out, e.Signature)
	}
	return out
}

// IndexDir is the directory of the index entries: it changes whenever a
// connector is installed or removed.
func (s *Store) IndexDir() string { return filepath.Join(s.root, "index") }

// indexPath names an entry's file by the hash of its ref, so no FQN (a
// gitlab path, a file:// path) can steer the file name.
func (s *Store) indexPath(ref string) string {
	h := sha256.Sum256([]byte(ref))
	return filepath.Join(s.IndexDir(), hex.EncodeToString(h[:])+".json")
}

// Entry returns the index entry for ref.
func (s *Store) Entry(ref string) (Entry, error) {
	b, err := os.ReadFile(s.indexPath(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(ref, b)
}

func decodeEntry(ref string, b []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("index entry %s: %w", ref, err)
	}
	if ref != "" && e.Ref != ref {
		return Entry{}, fmt.Errorf("index entry for %s names %s: %w", ref, e.Ref, ErrCorrupt)
	}
	// Security: each digest becomes a path (BlobPath), so a tampered
	// entry must not name one outside the store.
	for _, d := range e.digests() {
		if _, err := ParseDigest(string(d)); err != nil {
			return Entry{}, fmt.Errorf("index entry %s: %w", e.Ref, err)
		}
	}
	return e, nil
}

// PutEntry records e. The caller holds the store lock. An existing entry
// for the same ref with different blobs is refused: a version is immutable.
func (s *Store) PutEntry(e Entry) error {
	if old, err := s.Entry(e.Ref); err == nil {
		if err := checkSameContent(old, e); err != nil {
			return err
		}
	}
	return s.writeEntry(e)
}

// checkSameContent refuses e where old, the installed entry for its ref,
// has other blobs: a version is immutable.
func checkSameContent(old, e Entry) error {
	if old.Manifest != e.Manifest || old.Wasm != e.Wasm {
		return fmt.Errorf("%s is already installed with different content (wasm %s, now %s): %w", e.Ref, old.Wasm, e.Wasm, ErrImmutable)
	}
	return nil
}

// writeEntry writes e's index file, replacing any entry for its ref.
func (s *Store) writeEntry(e Entry) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return s.writeAtomic(s.indexPath(e.Ref), b, 0o600)
}

// ErrImmutable is returned when FQN@version would change content.
var ErrImmutable = errors.New("a published version is immutable")

// RemoveEntry deletes the entry for ref. The caller holds the store lock.
func (s *Store) RemoveEntry(ref string) error {
	err := os.Remove(s.indexPath(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	return err
}

// Entries lists every index entry, sorted by ref. Any unreadable entry
// is an error.
func (s *Store) Entries() ([]Entry, error) {
	names, err := s.indexFiles()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(names))
	for _, name := range names {
		e, err := s.readIndexFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// indexFiles returns the names of the index's entry files.
func (s *Store) indexFiles() ([]string, error) {
	ents, err := os.ReadDir(s.IndexDir())
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), ".json") {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// readIndexFile reads and checks the index file name. An entry held in a
// file not named for its ref is returned with an error wrapping
// ErrCorrupt, so the caller can say which ref it holds.
func (s *Store) readIndexFile(name string) (Entry, error) {
	b, err := os.ReadFile(filepath.Join(s.IndexDir(), name))
	if err != nil {
		return Entry{}, err
	}
	e, err := decodeEntry("", b)
	if err != nil {
		return Entry{}, err
	}
	if filepath.Base(s.indexPath(e.Ref)) != name {
		return e, fmt.Errorf("index file %s holds %s: it is not named for that ref: %w", name, e.Ref, ErrCorrupt)
	}
	return e, nil
}
