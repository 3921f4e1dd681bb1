package cas

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// The compiled cache keeps Module.Serialize output per (wasm hash, engine
// configuration). Loading such an artifact runs no checks on the machine
// code in it, so the cache records each artifact's sha256 when it is written
// and [Store.Compiled] checks it before returning a path to load.

// compiledMeta is the sidecar written next to each artifact.
type compiledMeta struct {
	Wasm     Digest `json:"wasm"`
	ConfigID string `json:"config_id"`
	Artifact Digest `json:"artifact"`
	Size     int64  `json:"size"`
}

func (s *Store) compiledBase(wasm Digest, configID string) string {
	h := sha256.Sum256([]byte(configID))
	return filepath.Join(s.root, "compiled", wasm.Hex()+"-"+hex.EncodeToString(h[:8]))
}

// PutCompiled stores an artifact for (wasm, configID) with its hash.
func (s *Store) PutCompiled(wasm Digest, configID string, artifact []byte) (string, error) {
	base := s.compiledBase(wasm, configID)
	meta, err := json.Marshal(compiledMeta{Wasm: wasm, ConfigID: configID, Artifact: Sum(artifact), Size: int64(len(artifact))})
	if err != nil {
		return "", err
	}
	if err := s.writeAtomic(base+".cwasm", artifact, 0o444); err != nil {
		return "", fmt.Errorf("store compiled module: %w", err)
	}
	if err := s.writeAtomic(base+".json", meta, 0o400); err != nil {
		return "", fmt.Errorf("store compiled module: %w", err)
	}
	compiledVerified.forget(base + ".cwasm")
	return base + ".cwasm", nil
}

// ErrCompiledMissing is returned when no artifact is cached; the caller
// compiles and calls PutCompiled.
var ErrCompiledMissing = errors.New("no compiled module cached")

// Compiled returns the path of the verified artifact for (wasm, configID).
// A missing artifact is ErrCompiledMissing; one whose bytes do not match the
// recorded hash is removed and also reported as ErrCompiledMissing (wrapped
// with ErrCorrupt), so the caller rebuilds it and never loads it.
//
// Within one process, an artifact already verified is not re-hashed while
// its inode, size, modification and change times are unchanged.
func (s *Store) Compiled(wasm Digest, configID string) (string, error) {
	base := s.compiledBase(wasm, configID)
	meta, err := s.checkArtifact(base, true)
	switch {
	case errors.Is(err, errNoSidecar):
		return "", ErrCompiledMissing
	case errors.Is(err, ErrCorrupt), errors.Is(err, fs.ErrNotExist):
		s.dropCompiled(base)
		return "", fmt.Errorf("%w: %w", ErrCompiledMissing, err)
	case err != nil:
		return "", err
	case meta.Wasm != wasm || meta.ConfigID != configID:
		// The same base name for another configuration: a collision
		// of compiledBase's shortened hash.
		s.dropCompiled(base)
		return "", fmt.Errorf("%w: %w: bad sidecar", ErrCompiledMissing, ErrCorrupt)
	}
	return base + ".cwasm", nil
}

// errNoSidecar is returned by checkArtifact when an artifact has no
// sidecar: it is missing, or still being written (the sidecar comes last).
var errNoSidecar = errors.New("no sidecar with its hash")

// checkArtifact checks the artifact base+".cwasm" against its sidecar,
// changing nothing: the sidecar must be the one for its place (base is
// compiledBase of the wasm and configuration it names), and the artifact
// must have the size and sha256 the sidecar records. A problem with the
// content wraps ErrCorrupt. With cached, an artifact verified before in
// this process and unchanged since, as far as stat can tell, is not
// re-hashed; one verified now is remembered.
func (s *Store) checkArtifact(base string, cached bool) (compiledMeta, error) {
	var meta compiledMeta
	mb, err := os.ReadFile(base + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return meta, errNoSidecar
	}
	if err != nil {
		return meta, err
	}
	if err := json.Unmarshal(mb, &meta); err != nil || s.compiledBase(meta.Wasm, meta.ConfigID) != base {
		return meta, fmt.Errorf("%w: bad sidecar", ErrCorrupt)
	}
	path := base + ".cwasm"
	st, err := os.Stat(path)
	if err != nil {
		return meta, err
	}
	key := statKey(st)
	if cached && compiledVerified.ok(path, key, meta.Artifact) {
		return meta, nil
	}
	if st.Size() != meta.Size {
		return meta, fmt.Errorf("%w: size changed", ErrCorrupt)
	}
	d, err := hashFile(path)
	if err != nil {
		return meta, err
	}
	if d != meta.Artifact {
		return meta, ErrCorrupt
	}
	if cached {
		compiledVerified.remember(path, key, meta.Artifact)
	}
	return meta, nil
}

func (s *Store) dropCompiled(base string) {
	compiledVerified.forget(base + ".cwasm")
	_ = os.Remove(base + ".cwasm")
	_ = os.Remove(base + ".json")
}

// fileKey identifies a file's content as far as stat can tell.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
	artifactHash Digest
}

func statKey(st fs.FileInfo) fileKey {
	k := fileKey{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(sys.Dev), sys.Ino
		k.ctime = sys.Ctim.Sec*1e9 + sys.Ctim.Nsec
	}
	return k
}

type verifiedSet struct {
	mu sync.Mutex
	m  map[string]fileKey
}

var compiledVerified = &verifiedSet{m: map[string]fileKey{}}

func (v *verifiedSet) ok(path string, k fileKey, want Digest) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	got, found := v.m[path]
	if !found || got.artifactHash != want {
		return false
	}
	got.artifactHash = ""
	return got == k
}

func (v *verifiedSet) remember(path string, k fileKey, h Digest) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k.artifactHash = h
	v.m[path] = k
}

func (v *verifiedSet) forget(path string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, path)
}

// CompiledDir is the directory of compiled artifacts. Workers, which run as
// another uid, get a descriptor of it and can search it and read the
// artifacts (mode 0711 and 0444: machine code of public modules is not
// secret) but not list or change them.
func (s *Store) CompiledDir() string { return filepath.Join(s.root, "compiled") }
