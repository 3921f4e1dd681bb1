package cas

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Problem is one bad item found by [Store.VerifyAll].
type Problem struct {
	// Kind is "blob", "index" or "compiled".
	Kind string `json:"kind"`
	// Name is the item's file name in its directory (a blob's is its
	// hash; an index entry's also gives its ref when readable).
	Name string `json:"name"`
	// Err says what is wrong.
	Err string `json:"error"`
}

func (p Problem) String() string { return p.Kind + " " + p.Name + ": " + p.Err }

// VerifyAll re-hashes every blob and compiled artifact and checks every
// index entry, and returns every problem found (none: an empty list). It
// changes nothing: a bad compiled artifact is rebuilt on the next run
// anyway, and a bad blob is repaired by installing its package again.
func (s *Store) VerifyAll() ([]Problem, error) {
	var out []Problem
	blobs, err := os.ReadDir(filepath.Join(s.root, "blobs", "sha256"))
	if err != nil {
		return nil, err
	}
	for _, de := range blobs {
		d, err := ParseDigest("sha256:" + de.Name())
		if err != nil {
			out = append(out, Problem{"blob", de.Name(), "not named by a sha256"})
			continue
		}
		if err := s.Verify(d); err != nil {
			out = append(out, Problem{"blob", de.Name(), ErrCorrupt.Error()})
		}
	}
	idx, err := s.indexFiles()
	if err != nil {
		return nil, err
	}
	for _, name := range idx {
		e, err := s.readIndexFile(name)
		if e.Ref != "" {
			name += " (" + e.Ref + ")"
		}
		if err != nil {
			out = append(out, Problem{"index", name, err.Error()})
			continue
		}
		for _, d := range e.digests() {
			if !s.Has(d) {
				out = append(out, Problem{"index", name, "blob " + string(d) + " is missing"})
			}
		}
	}
	comp, err := os.ReadDir(s.CompiledDir())
	if err != nil {
		return nil, err
	}
	for _, de := range comp {
		base, ok := strings.CutSuffix(de.Name(), ".cwasm")
		if !ok {
			continue
		}
		if _, err := s.checkArtifact(filepath.Join(s.CompiledDir(), base), false); err != nil {
			out = append(out, Problem{"compiled", de.Name(), err.Error()})
		}
	}
	return out, nil
}

// staleTemp is the age after which GC removes a temp file.
const staleTemp = time.Hour

// GCReport says what [Store.GC] removed.
type GCReport struct {
	// Removed are paths relative to the store root, sorted.
	Removed []string `json:"removed"`
	// Bytes is their total size.
	Bytes int64 `json:"bytes"`
}

// GC removes what no installed connector references. An installed
// connector is one with an index entry; the entries themselves are never
// removed by GC (see [Store.RemoveConnector]). It removes blobs that no
// entry names, compiled artifacts (and sidecars) whose module no entry
// names, and temp files over an hour old. It holds the store lock throughout, so it
// never races an install, and it refuses to run if any index entry cannot
// be read: it never deletes what it cannot prove unreferenced.
func (s *Store) GC() (GCReport, error) {
	unlock, err := s.Lock()
	if err != nil {
		return GCReport{}, err
	}
	defer unlock()
	entries, err := s.Entries()
	if err != nil {
		return GCReport{}, fmt.Errorf("gc: %w (nothing was removed; run `aileron store verify`)", err)
	}
	live := map[string]bool{}
	for _, e := range entries {
		for _, d := range e.digests() {
			live[d.Hex()] = true
		}
	}
	var rep GCReport
	// A compiled artifact found corrupt by a run is removed by that run,
	// without the lock: gone already is done.
	remove := func(rel string) error {
		p := filepath.Join(s.root, rel)
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		rep.Removed = append(rep.Removed, rel)
		rep.Bytes += st.Size()
		return nil
	}
	blobs, err := os.ReadDir(filepath.Join(s.root, "blobs", "sha256"))
	if err != nil {
		return rep, err
	}
	for _, de := range blobs {
		if !live[de.Name()] {
			if err := remove(filepath.Join("blobs", "sha256", de.Name())); err != nil {
				return rep, err
			}
		}
	}
	comp, err := os.ReadDir(s.CompiledDir())
	if err != nil {
		return rep, err
	}
	for _, de := range comp {
		wasmHex, _, _ := strings.Cut(de.Name(), "-")
		if !live[wasmHex] {
			compiledVerified.forget(filepath.Join(s.CompiledDir(), de.Name()))
			if err := remove(filepath.Join("compiled", de.Name())); err != nil {
				return rep, err
			}
		}
	}
	tmp, err := os.ReadDir(filepath.Join(s.root, "tmp"))
	if err != nil {
		return rep, err
	}
	// Runs write compiled artifacts without the lock, so only temp files
	// too old to belong to a live writer are leftovers.
	for _, de := range tmp {
		if info, err := de.Info(); err != nil || time.Since(info.ModTime()) < staleTemp {
			continue
		}
		if err := remove(filepath.Join("tmp", de.Name())); err != nil {
			return rep, err
		}
	}
	sort.Strings(rep.Removed)
	return rep, nil
}

// RemoveConnector deletes ref's index entry under the store lock. Its blobs
// and compiled code stay until [Store.GC].
func (s *Store) RemoveConnector(ref string) error {
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	return s.RemoveEntry(ref)
}
