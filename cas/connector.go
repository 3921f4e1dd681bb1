package cas

import (
	"errors"
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

// Size limits for package parts. [CheckPackage] enforces the first two, so
// every way into the store (a directory, a download, packing, signing)
// agrees; readers also stop reading there.
const (
	// MaxManifestBytes bounds a connector's manifest.toml. It is
	// stricter than [manifest.MaxFileBytes], which bounds any TOML file
	// the manifest package parses (actions too).
	MaxManifestBytes = 256 << 10
	// MaxWasmBytes bounds a connector's module.
	MaxWasmBytes = 64 << 20
	// MaxSignatureBytes bounds a minisign signature file.
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

// CheckPackage checks the parts' sizes, parses the manifest and checks that
// the wasm is the one the manifest's provenance_hash names and imports
// nothing undeclared.
func CheckPackage(name string, manifestBytes, wasm []byte) (*manifest.Manifest, error) {
	// The size is checked before parsing, so a manifest between this
	// limit and manifest.MaxFileBytes is refused with this limit's number.
	if len(manifestBytes) > MaxManifestBytes {
		return nil, fmt.Errorf("%s: %w: a connector manifest may have at most %d bytes, and this one has %d", name, ErrTooLarge, MaxManifestBytes, len(manifestBytes))
	}
	if len(wasm) > MaxWasmBytes {
		return nil, fmt.Errorf("%s: %w: a connector module may have at most %d bytes, and this one has %d", WasmFile, ErrTooLarge, MaxWasmBytes, len(wasm))
	}
	m, err := manifest.ParseManifest(name, manifestBytes)
	if err != nil {
		return nil, err
	}
	if got := string(Sum(wasm)); got != m.Connector.ProvenanceHash {
		return nil, fmt.Errorf("%s: %s is %s, but provenance_hash says %s: the package was altered or built from other sources", m.Ref(), WasmFile, got, m.Connector.ProvenanceHash)
	}
	imps, err := manifest.ModuleImports(wasm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", WasmFile, err)
	}
	if err := manifest.CheckImports(m, imps); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Ref(), err)
	}
	return m, nil
}

// ReadDir reads an unsigned development package from a directory.
func ReadDir(dir string) (*Package, error) {
	mb, err := readLimited(filepath.Join(dir, ManifestFile), MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	wasm, err := readLimited(filepath.Join(dir, WasmFile), MaxWasmBytes)
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

// Put stores a checked package and indexes it under its FQN@version, under
// the store lock. It is all or nothing: a version installed with other
// bytes is refused before anything is written ([ErrImmutable]), and if a
// write fails, the blobs this call created are removed again, so the store
// is as it was. Storing a package that is installed already changes
// nothing, except that a signed copy replaces an unsigned development
// install of the same bytes.
func (s *Store) Put(p *Package) (Entry, error) {
	unlock, err := s.Lock()
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	e := Entry{Ref: p.Manifest.Ref().String(), Manifest: Sum(p.ManifestBytes), Wasm: Sum(p.Wasm), Source: p.Source, KeyFingerprint: p.KeyFingerprint, InstalledAt: time.Now().UTC()}
	if len(p.Signature) > 0 {
		e.Signature = Sum(p.Signature)
	}
	old, err := s.Entry(e.Ref)
	if err == nil {
		if err := checkSameContent(old, e); err != nil {
			return Entry{}, err
		}
	}
	switch {
	case err == nil && (old.Signature != "" || e.Signature == ""):
		// Installed already, as well or better. Repair its blobs if one
		// went missing or bad; otherwise this writes nothing.
		for d, b := range map[Digest][]byte{e.Manifest: p.ManifestBytes, e.Wasm: p.Wasm} {
			if _, err := s.putBlob(d, b); err != nil {
				return Entry{}, err
			}
		}
		return old, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return Entry{}, err
	}
	var created []Digest
	undo := func() {
		for _, d := range created {
			_ = os.Remove(s.BlobPath(d))
		}
	}
	blobs := map[Digest][]byte{e.Manifest: p.ManifestBytes, e.Wasm: p.Wasm}
	if e.Signature != "" {
		blobs[e.Signature] = p.Signature
	}
	for d, b := range blobs {
		made, err := s.putBlob(d, b)
		if err != nil {
			undo()
			return Entry{}, err
		}
		if made {
			created = append(created, d)
		}
	}
	if err := s.writeEntry(e); err != nil {
		undo()
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
