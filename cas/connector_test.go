package cas

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/stretchr/testify/require"
)

func newRepoKey(t *testing.T) minisign.PrivateKey {
	t.Helper()
	_, k, err := minisign.GenerateKey(nil)
	require.NoError(t, err)
	return k
}

// TestReadPackage_NotRegular_Errors: every reader of a package directory
// refuses a file that is not a regular one at once, instead of reading
// /dev/zero until memory runs out or blocking on a FIFO with no writer.
func TestReadPackage_NotRegular_Errors(t *testing.T) {
	ref := mustRef(t, "github://acme/hostile@1.0.0")
	readers := []struct {
		name string
		read func(dir string) error
	}{
		{"ReadDir", func(dir string) error { _, err := ReadDir(dir); return err }},
		{"Pack", func(dir string) error {
			_, err := Pack(filepath.Join(dir, ManifestFile), filepath.Join(dir, WasmFile), t.TempDir())
			return err
		}},
		{"SignPackage", func(dir string) error { _, err := SignPackage(dir, newRepoKey(t)); return err }},
		{"Local", func(dir string) error {
			s, err := Open(t.TempDir())
			require.NoError(t, err)
			_, err = (&Installer{Store: s, Trust: OpenTrust(t.TempDir())}).Local(dir)
			return err
		}},
	}
	files := []struct {
		name string
		make func(t *testing.T, path string)
		msg  string
	}{
		{"symlink_to_dev_zero", func(t *testing.T, p string) { require.NoError(t, os.Symlink("/dev/zero", p)) }, "$P: not a regular file: it is a device"},
		{"fifo", func(t *testing.T, p string) { require.NoError(t, syscall.Mkfifo(p, 0o644)) }, "$P: not a regular file: it is a named pipe"},
		{"directory", func(t *testing.T, p string) { require.NoError(t, os.Mkdir(p, 0o755)) }, "$P: not a regular file: it is a directory"},
	}
	for _, r := range readers {
		for _, bad := range []string{ManifestFile, WasmFile} {
			for _, f := range files {
				t.Run(r.name+"/"+bad+"/"+f.name, func(t *testing.T) {
					dir := t.TempDir()
					for name, b := range map[string][]byte{ManifestFile: manifestFor(ref, tinyWasm), WasmFile: tinyWasm} {
						if name != bad {
							require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
						}
					}
					p := filepath.Join(dir, bad)
					f.make(t, p)
					done := make(chan error, 1)
					go func() { done <- r.read(dir) }()
					select {
					case err := <-done:
						require.ErrorIs(t, err, ErrNotRegular)
						require.Equal(t, replaceAll(f.msg, "$P", p), err.Error())
					case <-time.After(5 * time.Second):
						t.Fatal("reading a package file that is not a regular one hung")
					}
				})
			}
		}
	}
}

// TestCheckPackage_Size_Errors: the size limits hold for every way into
// the store, because CheckPackage enforces them and every path calls it.
func TestCheckPackage_Size_Errors(t *testing.T) {
	ref := mustRef(t, "github://acme/big@1.0.0")
	// Over MaxManifestBytes but under manifest.MaxFileBytes, so only
	// the connector limit can refuse it.
	bigManifest := append(manifestFor(ref, tinyWasm), bytes.Repeat([]byte("# pad\n"), MaxManifestBytes/6+1)...)
	bigWasm := make([]byte, MaxWasmBytes+1)
	copy(bigWasm, tinyWasm)
	tests := []struct {
		name     string
		mb, wasm []byte
		msg      string
	}{
		{"manifest", bigManifest, tinyWasm, "m.toml: content exceeds the size limit: a connector manifest may have at most 262144 bytes, and this one has 262326"},
		{"wasm", manifestFor(ref, bigWasm), bigWasm, "connector.wasm: content exceeds the size limit: a connector module may have at most 67108864 bytes, and this one has 67108865"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckPackage("m.toml", tt.mb, tt.wasm)
			require.ErrorIs(t, err, ErrTooLarge)
			require.EqualError(t, err, tt.msg)
		})
	}
}
