package cas

import (
	"fmt"
	"os"
	"path/filepath"

	"aileron.dev/aileron/manifest"
)

// Pack makes a connector package from a manifest and a wasm module: it sets
// the manifest's provenance_hash to the module's hash, checks the result as
// an installer would, and writes manifest.toml and connector.wasm to outDir.
// It returns the packed manifest. Signing is a separate step.
func Pack(manifestPath, wasmPath, outDir string) (*manifest.Manifest, error) {
	mb, err := readLimited(manifestPath, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	wasm, err := readLimited(wasmPath, MaxWasmBytes)
	if err != nil {
		return nil, err
	}
	m, err := manifest.ParseManifest(manifestPath, mb)
	if err != nil {
		return nil, err
	}
	m.Connector.ProvenanceHash = string(Sum(wasm))
	packed := m.Encode()
	if m, err = CheckPackage(filepath.Join(outDir, ManifestFile), packed, wasm); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(outDir, ManifestFile), packed, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(outDir, WasmFile), wasm, 0o644); err != nil {
		return nil, err
	}
	return m, nil
}
