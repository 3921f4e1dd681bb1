package cas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDigest_Errors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"no_prefix", "abc"},
		{"md5", "md5:d41d8cd98f00b204e9800998ecf8427e"},
		{"short", "sha256:abc"},
		{"uppercase", "sha256:" + "A" + string(make([]byte, 0)) + "0000000000000000000000000000000000000000000000000000000000000000"[1:]},
		{"path_traversal", "sha256:../../../../etc/passwd0000000000000000000000000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDigest(tt.in)
			require.ErrorIs(t, err, ErrBadDigest)
		})
	}
	d, err := ParseDigest(string(Sum([]byte("x"))))
	require.NoError(t, err)
	require.Equal(t, Sum([]byte("x")), d)
}

func TestStore_PutReadVerify(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	d, err := s.PutBytes([]byte("hello"))
	require.NoError(t, err)
	b, err := s.Read(d, 100)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))

	_, err = s.Read(d, 3)
	require.ErrorIs(t, err, ErrTooLarge)

	// A swapped file is refused, not returned.
	p := s.BlobPath(d)
	require.NoError(t, os.Chmod(p, 0o600))
	require.NoError(t, os.WriteFile(p, []byte("HELLO"), 0o600))
	_, err = s.Read(d, 100)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorIs(t, s.Verify(d), ErrCorrupt)

	// Putting the content again repairs it.
	_, err = s.PutBytes([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, s.Verify(d))

	_, err = s.Read(Sum([]byte("absent")), 10)
	require.ErrorIs(t, err, ErrNotFound)

	// No temp files are left behind.
	ents, err := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	require.NoError(t, err)
	require.Empty(t, ents)
}

func TestStore_PutBytes_Hammer(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutBytes([]byte("same content"))
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	ents, err := os.ReadDir(filepath.Join(s.Root(), "blobs", "sha256"))
	require.NoError(t, err)
	require.Len(t, ents, 1)
}

func TestStore_Entries(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	w := Sum([]byte("wasm"))
	m := Sum([]byte("manifest"))
	e := Entry{Ref: "github://a/b@1.0.0", Manifest: m, Wasm: w, Source: "test"}
	require.NoError(t, s.PutEntry(e))
	got, err := s.Entry("github://a/b@1.0.0")
	require.NoError(t, err)
	require.Equal(t, w, got.Wasm)

	// Same ref, other bytes: a published version is immutable.
	e2 := e
	e2.Wasm = Sum([]byte("other"))
	require.ErrorIs(t, s.PutEntry(e2), ErrImmutable)

	all, err := s.Entries()
	require.NoError(t, err)
	require.Len(t, all, 1)
	_, err = s.Entry("github://a/b@2.0.0")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestStore_Compiled(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	w := Sum([]byte("wasm"))
	_, err = s.Compiled(w, "cfg1")
	require.ErrorIs(t, err, ErrCompiledMissing)

	p, err := s.PutCompiled(w, "cfg1", []byte("machine code"))
	require.NoError(t, err)
	got, err := s.Compiled(w, "cfg1")
	require.NoError(t, err)
	require.Equal(t, p, got)

	// Another engine configuration is another entry.
	_, err = s.Compiled(w, "cfg2")
	require.ErrorIs(t, err, ErrCompiledMissing)

	// Swap the artifact (same size, so only the hash can tell): it is
	// detected, removed, and reported missing so the caller rebuilds it.
	require.NoError(t, os.Chmod(p, 0o600))
	require.NoError(t, os.WriteFile(p, []byte("evil code!!!"), 0o600))
	_, err = s.Compiled(w, "cfg1")
	require.ErrorIs(t, err, ErrCompiledMissing)
	require.ErrorIs(t, err, ErrCorrupt)
	_, statErr := os.Stat(p)
	require.True(t, os.IsNotExist(statErr), "corrupt artifact was not removed")
}

// TestStore_Lock_OneHandle: Lock excludes other goroutines using the same
// Store, not only other processes.
func TestStore_Lock_OneHandle(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	unlock, err := s.Lock()
	require.NoError(t, err)
	got := make(chan func(), 1)
	go func() {
		u, err := s.Lock()
		require.NoError(t, err)
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("a second Lock on the same Store did not wait for the first")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-got:
		u()
	case <-time.After(5 * time.Second):
		t.Fatal("the second Lock did not get the lock after the first was released")
	}
}

// TestStore_Entry_TamperedDigest_Errors: every digest in an index entry is
// checked when it is read, because each one becomes a path (BlobPath) that
// Has, Read and GC use: a tampered entry must not steer them outside the
// store.
func TestStore_Entry_TamperedDigest_Errors(t *testing.T) {
	const outside = `sha256:../../../../../../../../etc/passwd`
	for _, field := range []string{"manifest", "wasm", "signature"} {
		t.Run(field, func(t *testing.T) {
			s, err := Open(t.TempDir())
			require.NoError(t, err)
			e := Entry{Ref: "github://a/b@1.0.0", Manifest: Sum([]byte("m")), Wasm: Sum([]byte("w")), Signature: Sum([]byte("s")), Source: "test"}
			require.NoError(t, s.PutEntry(e))
			p := s.indexPath(e.Ref)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			var raw map[string]any
			require.NoError(t, json.Unmarshal(b, &raw))
			raw[field] = outside
			b, err = json.Marshal(raw)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b, 0o600))

			msg := `index entry github://a/b@1.0.0: "` + outside + `": digest must be "sha256:" followed by 64 lowercase hex digits`
			_, err = s.Entry(e.Ref)
			require.ErrorIs(t, err, ErrBadDigest)
			require.EqualError(t, err, msg)
			_, err = s.Entries()
			require.EqualError(t, err, msg)
			probs, err := s.VerifyAll()
			require.NoError(t, err)
			require.Equal(t, []Problem{{"index", filepath.Base(p), msg}}, probs)
			_, err = s.GC()
			require.ErrorIs(t, err, ErrBadDigest)
		})
	}
}
