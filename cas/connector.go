package cas

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"aileron.dev/aileron/manifest"
)

// Package file names inside a connector package (a directory or a release).
const (
	ManifestFile  = "manifest.toml"
	WasmFile      = "connector.wasm"
	SignatureFile = "manifest.toml.minisig"
)

// Size limits for package parts.
const (
	MaxManifestBytes  = 256 << 10
	MaxWasmBytes      = 64 << 20
	MaxSignatureBytes = 4 << 10
)

// Installed is one connector package read back from the store, verified.
type Installed struct {
	Entry    Entry
	Manifest *manifest.Manifest
	// WasmPath is the verified blob of connector.wasm.
	WasmPath string
}

// Package is a connector package in memory, before it is stored.
type Package struct {
	ManifestBytes  []byte
	Wasm           []byte
	Signature      []byte
	Manifest       *manifest.Manifest
	Source         string
	KeyFingerprint string
}

// CheckPackage parses the manifest and checks that the wasm is the one the
// manifest's provenance_hash names and imports nothing undeclared.
func CheckPackage(name string, manifestBytes, wasm []byte) (*manifest.Manifest, error) {
	m, err := manifest.ParseManifest(name, manifestBytes)
	if err != nil {
		return nil, err
	}
	if got := string(Sum(wasm)); got != m.Connector.ProvenanceHash {
		return nil, fmt.Errorf("%s: %s is %s, but provenance_hash says %s: the package was altered or built from other sources", m.Connector.Name, WasmFile, got, m.Connector.ProvenanceHash)
	}
	imps, err := manifest.ModuleImports(wasm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", WasmFile, err)
	}
	if err := manifest.CheckImports(m, imps); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Connector.Name, err)
	}
	return m, nil
}

// ReadDir reads an unsigned development package from a directory.
func ReadDir(dir string) (*Package, error) {
	read := func(name string, max int64) ([]byte, error) {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.Size() > max {
			return nil, fmt.Errorf("%s is %d bytes, over the limit of %d", p, st.Size(), max)
		}
		return os.ReadFile(p)
	}
	mb, err := read(ManifestFile, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	wasm, err := read(WasmFile, MaxWasmBytes)
	if err != nil {
		return nil, err
	}
	m, err := CheckPackage(filepath.Join(dir, ManifestFile), mb, wasm)
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(dir)
	return &Package{ManifestBytes: mb, Wasm: wasm, Manifest: m, Source: abs}, nil
}

// Put stores a checked package and indexes it under its FQN@version. It is
// all or nothing: blobs first, then the index entry, under the store lock.
func (s *Store) Put(p *Package) (Entry, error) {
	unlock, err := s.Lock()
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	md, err := s.PutBytes(p.ManifestBytes)
	if err != nil {
		return Entry{}, err
	}
	wd, err := s.PutBytes(p.Wasm)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Ref: p.Manifest.Ref().String(), Manifest: md, Wasm: wd, Source: p.Source, KeyFingerprint: p.KeyFingerprint, InstalledAt: time.Now().UTC()}
	if len(p.Signature) > 0 {
		if e.Signature, err = s.PutBytes(p.Signature); err != nil {
			return Entry{}, err
		}
	}
	if err := s.PutEntry(e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Connector reads the installed package for ref ("FQN@version") back and
// verifies the manifest blob's hash and that it names the indexed wasm. The
// wasm blob itself is verified when it is read ([Store.Read]) for
// compilation; runs load the verified compiled artifact instead.
func (s *Store) Connector(ref string) (*Installed, error) {
	e, err := s.Entry(ref)
	if err != nil {
		return nil, err
	}
	mb, err := s.Read(e.Manifest, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	m, err := manifest.ParseManifest(ref+"/"+ManifestFile, mb)
	if err != nil {
		return nil, err
	}
	if m.Ref().String() != ref || Digest(m.Connector.ProvenanceHash) != e.Wasm {
		return nil, fmt.Errorf("%s: index entry and manifest disagree: %w", ref, ErrCorrupt)
	}
	return &Installed{Entry: e, Manifest: m, WasmPath: s.BlobPath(e.Wasm)}, nil
}
