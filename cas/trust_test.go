package cas

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"aead.dev/minisign"
	"github.com/stretchr/testify/require"
)

func TestParseAuthority(t *testing.T) {
	for _, ok := range []string{"github://aileron", "gitlab://team/sub", "gitlab://team", "hub://acme"} {
		got, err := ParseAuthority(ok)
		require.NoError(t, err, ok)
		require.Equal(t, ok, got)
	}
	for _, bad := range []string{"", "github://", "github://a/b", "GitHub://a", "github://A", "file://", "file:///tmp", "https://github.com/a", "hub://a/../b", "github://a?x", "github://../x"} {
		_, err := ParseAuthority(bad)
		require.ErrorIs(t, err, ErrBadAuthority, bad)
	}
}

func TestTrust_AddListRemove(t *testing.T) {
	home := t.TempDir()
	tr := OpenTrust(home)
	k1, _, err := minisign.GenerateKey(nil)
	require.NoError(t, err)
	k2, _, err := minisign.GenerateKey(nil)
	require.NoError(t, err)

	_, err = tr.Key("github://acme")
	require.ErrorIs(t, err, ErrUnknownAuthority)
	require.NoError(t, tr.Add("github://acme", k1, "test"))
	require.NoError(t, tr.Add("github://acme", k1, "again"), "pinning the same key twice is a no-op")
	require.NoError(t, tr.Add("hub://zed", k2, "test"))
	got, err := tr.Key("github://acme")
	require.NoError(t, err)
	require.True(t, got.Equal(k1))

	// Another key for a pinned authority is refused, loudly.
	err = tr.Add("github://acme", k2, "test")
	require.ErrorIs(t, err, ErrKeyMismatch)
	require.EqualError(t, err, "github://acme is already pinned to key "+KeyID(k1.ID())+", not "+KeyID(k2.ID())+": signed by a different key than the one pinned for this source; if the publisher really changed keys, run `aileron trust rm github://acme` first")

	ks, err := tr.List()
	require.NoError(t, err)
	require.Len(t, ks, 2)
	require.Equal(t, "github://acme", ks[0].Authority)
	require.Equal(t, "test", ks[0].Origin)

	st, err := os.Stat(tr.Path())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	require.NoError(t, tr.Remove("github://acme"))
	require.ErrorIs(t, tr.Remove("github://acme"), ErrUnknownAuthority)
	require.NoError(t, tr.Add("github://acme", k2, "rotated"))
	// No temp files are left in home.
	ents, err := os.ReadDir(home)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"trust.toml", "trust.toml.lock"}, names)
}

func TestTrust_Add_Hammer(t *testing.T) {
	tr := OpenTrust(t.TempDir())
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k, _, _ := minisign.GenerateKey(nil)
			require.NoError(t, OpenTrust(filepath.Dir(tr.Path())).Add("hub://n"+string(rune('a'+i)), k, "test"))
		}(i)
	}
	wg.Wait()
	ks, err := tr.List()
	require.NoError(t, err)
	require.Len(t, ks, 12, "a concurrent pin was lost")
}

func TestTrust_File_Errors(t *testing.T) {
	k, _, _ := minisign.GenerateKey(nil)
	tests := []struct{ name, file, msg string }{
		{"unknown_field", "[[keys]]\nauthority = \"github://a\"\npublic_key = \"" + k.String() + "\"\ncomment = \"x\"\n", "$F: strict mode: fields in the document are missing in the target struct"},
		{"bad_authority", "[[keys]]\nauthority = \"github://a/b\"\npublic_key = \"" + k.String() + "\"\n", `$F: keys[0]: not a source authority: "github://a/b": write e.g. "github://org", "gitlab://group/sub" or "hub://namespace"`},
		{"bad_key", "[[keys]]\nauthority = \"github://a\"\npublic_key = \"RWnope\"\n", "$F: keys[0] (github://a): not a minisign public key: minisign: invalid public key: illegal base64 data at input byte 4"},
		{"two_keys", "[[keys]]\nauthority = \"github://a\"\npublic_key = \"" + k.String() + "\"\n[[keys]]\nauthority = \"github://a\"\npublic_key = \"" + k.String() + "\"\n", "$F: keys[1]: github://a has two keys; an authority has one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			tr := OpenTrust(home)
			require.NoError(t, os.WriteFile(tr.Path(), []byte(tt.file), 0o600))
			_, err := tr.Key("github://a")
			require.Error(t, err)
			require.Equal(t, tt.msg, replaceAll(err.Error(), tr.Path(), "$F"))
			// A store that cannot be read is never rewritten.
			require.Error(t, tr.Add("hub://x", k, "test"))
			b, _ := os.ReadFile(tr.Path())
			require.Equal(t, tt.file, string(b))
		})
	}
}

func TestVerifySignature_Errors(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(nil)
	_, other, _ := minisign.GenerateKey(nil)
	msg := []byte("manifest bytes")
	good := Sign(priv, msg, "x")
	require.NoError(t, VerifySignature("github://a", pub, msg, good))
	// A signature made by the minisign tool (pre-hashed) verifies too.
	r := minisign.NewReader(bytes.NewReader(msg))
	_, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, VerifySignature("github://a", pub, msg, r.SignWithComments(priv, "t", "u")))

	tests := []struct {
		name     string
		msg, sig []byte
		want     error
		text     string
	}{
		{"altered_message", []byte("manifest bytes!"), good, ErrBadSignature, "signature does not verify with key " + KeyID(pub.ID()) + " of github://a: the file or its signature was altered"},
		{"other_key", msg, Sign(other, msg, "x"), ErrKeyMismatch, "signed by key " + KeyID(other.ID()) + ", but github://a is pinned to key " + KeyID(pub.ID()) + ": signed by a different key than the one pinned for this source"},
		{"garbage", msg, []byte("hello"), ErrBadSignature, "signature does not verify: minisign: invalid signature"},
		{"oversized", msg, make([]byte, MaxSignatureBytes+1), ErrBadSignature, "signature does not verify: the signature is over 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature("github://a", pub, tt.msg, tt.sig)
			require.ErrorIs(t, err, tt.want)
			require.EqualError(t, err, tt.text)
		})
	}
}

func replaceAll(s, old, new string) string { return strings.ReplaceAll(s, old, new) }

// TestTrust_Add_OneHandle_Hammer: goroutines sharing one Trust must not
// share its file lock too (a second flock on one handle returns at once,
// and the first unlock releases both), or concurrent pins are lost.
func TestTrust_Add_OneHandle_Hammer(t *testing.T) {
	tr := OpenTrust(t.TempDir())
	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k, _, _ := minisign.GenerateKey(nil)
			authority := "hub://n" + string(rune('a'+i))
			require.NoError(t, tr.Add(authority, k, "test"))
			if i%2 == 0 {
				require.NoError(t, tr.Remove(authority))
			}
		}(i)
	}
	wg.Wait()
	ks, err := tr.List()
	require.NoError(t, err)
	require.Len(t, ks, 12, "a concurrent pin was lost or a removal undone")
}
