package cas

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
)

func putTiny(t *testing.T, s *Store, ref string, wasm []byte) Entry {
	t.Helper()
	r := mustRef(t, ref)
	mb := manifestFor(r, wasm)
	m, err := CheckPackage("m", mb, wasm)
	require.NoError(t, err)
	e, err := s.Put(&Package{ManifestBytes: mb, Wasm: wasm, Manifest: m, Source: "dev"})
	require.NoError(t, err)
	return e
}

func TestStore_VerifyAll(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	e := putTiny(t, s, "github://acme/a@1.0.0", tinyWasm)
	other := putTiny(t, s, "github://acme/b@1.0.0", otherWasm)
	_, err = s.PutCompiled(e.Wasm, "cfg", []byte("machine code"))
	require.NoError(t, err)
	probs, err := s.VerifyAll()
	require.NoError(t, err)
	require.Empty(t, probs)

	// Corrupt a blob, an artifact, and remove another entry's blob.
	p := s.BlobPath(e.Manifest)
	require.NoError(t, os.Chmod(p, 0o600))
	require.NoError(t, os.WriteFile(p, []byte("changed"), 0o600))
	art, _ := s.Compiled(e.Wasm, "cfg")
	require.NoError(t, os.Chmod(art, 0o600))
	require.NoError(t, os.WriteFile(art, []byte("evil code!!!"), 0o600))
	require.NoError(t, os.Remove(s.BlobPath(other.Wasm)))
	require.NoError(t, os.WriteFile(filepath.Join(s.Root(), "index", "junk.json"), []byte("{"), 0o600))

	probs, err = s.VerifyAll()
	require.NoError(t, err)
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	require.ElementsMatch(t, []string{
		"blob " + e.Manifest.Hex() + ": stored content does not match its hash",
		"index " + filepath.Base(s.indexPath(other.Ref)) + " (github://acme/b@1.0.0): blob " + string(other.Wasm) + " is missing",
		"index junk.json: index entry : unexpected EOF",
		"compiled " + filepath.Base(art) + ": stored content does not match its hash",
	}, got)
	// VerifyAll changes nothing: the bad artifact is still there.
	_, err = os.Stat(art)
	require.NoError(t, err)
}

func TestStore_GC(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	keep := putTiny(t, s, "github://acme/keep@1.0.0", tinyWasm)
	drop := putTiny(t, s, "github://acme/drop@1.0.0", otherWasm)
	_, err = s.PutCompiled(keep.Wasm, "cfg", []byte("keep code"))
	require.NoError(t, err)
	_, err = s.PutCompiled(drop.Wasm, "cfg", []byte("drop code"))
	require.NoError(t, err)
	stale := filepath.Join(s.Root(), "tmp", "w-stale")
	require.NoError(t, os.WriteFile(stale, []byte("half"), 0o600))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))
	fresh := filepath.Join(s.Root(), "tmp", "w-fresh")
	require.NoError(t, os.WriteFile(fresh, []byte("being written"), 0o600))

	// Nothing is unreferenced yet, but the stale temp file.
	rep, err := s.GC()
	require.NoError(t, err)
	require.Equal(t, []string{"tmp/w-stale"}, rep.Removed)

	require.NoError(t, s.RemoveConnector(drop.Ref))
	rep, err = s.GC()
	require.NoError(t, err)
	base := filepath.Base(s.compiledBase(drop.Wasm, "cfg"))
	require.Equal(t, []string{
		"blobs/sha256/" + drop.Manifest.Hex(),
		"blobs/sha256/" + drop.Wasm.Hex(),
		"compiled/" + base + ".cwasm",
		"compiled/" + base + ".json",
	}, rep.Removed)
	_, err = s.Connector(keep.Ref)
	require.NoError(t, err)
	_, err = s.Compiled(keep.Wasm, "cfg")
	require.NoError(t, err)
	_, err = os.Stat(fresh)
	require.NoError(t, err, "gc removed a temp file a writer may still own")
	probs, err := s.VerifyAll()
	require.NoError(t, err)
	require.Empty(t, probs)

	// An unreadable index entry stops GC before it removes anything.
	orphan, err := s.PutBytes([]byte("orphan"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.Root(), "index", "junk.json"), []byte("{"), 0o600))
	_, err = s.GC()
	require.ErrorContains(t, err, "nothing was removed")
	require.True(t, s.Has(orphan))
}

func TestInstaller_FetchAction(t *testing.T) {
	f := newInstall(t, true)
	ref := mustRef(t, "github://acme/flows@1.0.0")
	action := flowAction
	f.repo.set(f.repo.path(ref, ActionFile), action)
	f.repo.set(f.repo.path(ref, ActionSignatureFile), Sign(f.repo.priv, action, "flow"))
	fa, err := f.in.FetchAction(context.Background(), ref)
	require.NoError(t, err)
	require.Equal(t, action, fa.Bytes)
	_, err = manifest.ParseAction("a", fa.Bytes)
	require.NoError(t, err)

	// Altered after signing: refused.
	f.repo.set(f.repo.path(ref, ActionFile), append(append([]byte(nil), action...), "# x\n"...))
	_, err = f.in.FetchAction(context.Background(), ref)
	require.ErrorIs(t, err, ErrBadSignature)
	require.Equal(t, "github://acme/flows@1.0.0: action.toml: signature does not verify with key $KEY of github://acme: the file or its signature was altered", scrub(err.Error(), f.repo))
}

// flowAction is a published action that requires github://acme/tiny.
var flowAction = []byte(`[action]
name = "flow"
version = "1.0.0"

[[requires.connectors]]
name = "github://acme/tiny"
version = "1.0.0"
hash = "` + string(Sum(tinyWasm)) + `"
capabilities = []

[[steps]]
id = "a"
connector = "github://acme/tiny"
intent = "noop"
`)

// TestStore_IndexFileMisnamed: an entry copied under another entry's file
// name (so Entry(ref) would find the wrong package) is refused by Entries
// and reported by VerifyAll, which both read the index the same way.
func TestStore_IndexFileMisnamed(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	e := putTiny(t, s, "github://acme/a@1.0.0", tinyWasm)
	b, err := os.ReadFile(s.indexPath(e.Ref))
	require.NoError(t, err)
	other := filepath.Base(s.indexPath("github://acme/b@1.0.0"))
	require.NoError(t, os.WriteFile(filepath.Join(s.Root(), "index", other), b, 0o600))
	msg := "index file " + other + " holds github://acme/a@1.0.0: it is not named for that ref: stored content does not match its hash"
	_, err = s.Entries()
	require.ErrorIs(t, err, ErrCorrupt)
	require.EqualError(t, err, msg)
	probs, err := s.VerifyAll()
	require.NoError(t, err)
	require.Equal(t, []Problem{{"index", other + " (github://acme/a@1.0.0)", msg}}, probs)
}
