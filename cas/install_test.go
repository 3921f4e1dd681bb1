package cas

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"aead.dev/minisign"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
)

type installFixture struct {
	repo *repo
	in   *Installer
	home string
}

func newInstall(t *testing.T, pin bool) *installFixture {
	t.Helper()
	r := newRepo(t)
	home := t.TempDir()
	s, err := Open(filepath.Join(home, "store"))
	require.NoError(t, err)
	tr := OpenTrust(home)
	if pin {
		require.NoError(t, tr.Add("github://acme", r.pub, "test"))
	}
	return &installFixture{repo: r, home: home, in: &Installer{Store: s, Trust: tr, Fetcher: r.fetcher()}}
}

func (f *installFixture) install(ref manifest.Ref, want string) (Entry, error) {
	fe, err := f.in.Fetch(context.Background(), ref, want)
	if err != nil {
		return Entry{}, err
	}
	return f.in.Commit(fe)
}

func TestInstall_Signed(t *testing.T) {
	f := newInstall(t, true)
	ref := mustRef(t, "github://acme/tiny@1.0.0")
	mb, wasm, sig := f.repo.publish(ref)
	e, err := f.install(ref, "")
	require.NoError(t, err)
	require.Equal(t, Sum(mb), e.Manifest)
	require.Equal(t, Sum(wasm), e.Wasm)
	require.Equal(t, Sum(sig), e.Signature)
	require.Equal(t, Fingerprint(f.repo.pub), e.KeyFingerprint)
	require.Equal(t, f.repo.srv.URL+"/acme/tiny/releases/download/v1.0.0", e.Source)
	inst, err := f.in.Store.Connector(ref.String())
	require.NoError(t, err)
	require.Equal(t, ref, inst.Manifest.Ref())

	// Installing it again downloads nothing.
	before := f.repo.totalHits()
	fe, err := f.in.Fetch(context.Background(), ref, string(Sum(wasm)))
	require.NoError(t, err)
	require.True(t, fe.Installed)
	require.Equal(t, before, f.repo.totalHits())
	// ...and a pin that does not match the installed package is refused.
	_, err = f.in.Fetch(context.Background(), ref, string(Sum([]byte("other"))))
	require.ErrorIs(t, err, manifest.ErrPinMismatch)
}

func TestInstall_Errors(t *testing.T) {
	other := func() minisign.PrivateKey {
		_, k, err := minisign.GenerateKey(nil)
		require.NoError(t, err)
		return k
	}()
	html := []byte("<!DOCTYPE html><html><body>Sign in</body></html>")
	tests := []struct {
		name string
		ref  string
		// setup changes the published package; it returns the pin to
		// ask for ("" for none).
		setup func(f *installFixture, ref manifest.Ref) string
		want  error
		msg   string
	}{
		{
			name: "tampered_wasm", ref: "github://acme/a@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.set(f.repo.path(ref, WasmFile), append(append([]byte(nil), tinyWasm...), 0))
				return ""
			},
			msg: "github://acme/a@1.0.0: connector.wasm is sha256:$HASH, but provenance_hash says sha256:$HASH: the package was altered or built from other sources",
		},
		{
			name: "tampered_manifest", ref: "github://acme/b@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				mb := manifestFor(ref, tinyWasm)
				f.repo.set(f.repo.path(ref, ManifestFile), bytes.Replace(mb, []byte(`"noop"`), []byte(`"noop", "steal"`), 1))
				return ""
			},
			want: ErrBadSignature,
			msg:  "github://acme/b@1.0.0: manifest.toml: signature does not verify with key $KEY of github://acme: the file or its signature was altered",
		},
		{
			name: "wrong_signature", ref: "github://acme/c@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.set(f.repo.path(ref, SignatureFile), Sign(other, manifestFor(ref, tinyWasm), "x"))
				return ""
			},
			want: ErrKeyMismatch,
			msg:  "github://acme/c@1.0.0: manifest.toml: signed by key $KEY, but github://acme is pinned to key $KEY: signed by a different key than the one pinned for this source",
		},
		{
			name: "garbage_signature", ref: "github://acme/c2@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.set(f.repo.path(ref, SignatureFile), []byte("untrusted comment: x\nAAAA\n"))
				return ""
			},
			want: ErrBadContent,
			msg:  "download https://$SRV/acme/c2/releases/download/v1.0.0/manifest.toml.minisig: downloaded content is not a package file: manifest.toml.minisig: minisign: invalid signature",
		},
		{
			name: "unsigned", ref: "github://acme/d@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.set(f.repo.path(ref, SignatureFile), nil)
				return ""
			},
			want: ErrUnsignedRemote,
			msg:  "github://acme/d@1.0.0: the package is not signed: https://$SRV/acme/d/releases/download/v1.0.0 has no manifest.toml.minisig (unsigned packages install only from a local directory)",
		},
		{
			name: "unknown_authority", ref: "github://stranger/e@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string { return "" },
			want:  ErrUnknownAuthority,
			msg:   "github://stranger/e@1.0.0: no publisher key is pinned for this source: github://stranger (the package is signed by key $KEY)",
		},
		{
			name: "other_version_served", ref: "github://acme/f@1.0.1",
			setup: func(f *installFixture, ref manifest.Ref) string {
				// A genuine, signed 1.0.0 served as 1.0.1: a downgrade.
				old := mustRef(t, "github://acme/f@1.0.0")
				mb, _, sig := f.repo.publish(old)
				f.repo.set(f.repo.path(ref, ManifestFile), mb)
				f.repo.set(f.repo.path(ref, SignatureFile), sig)
				return ""
			},
			want: ErrWrongPackage,
			msg:  "github://acme/f@1.0.1: the source served another package than the one asked for: its manifest names github://acme/f@1.0.0",
		},
		{
			name: "pin_mismatch", ref: "github://acme/g@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.set(f.repo.path(ref, WasmFile), nil) // never fetched
				return string(Sum([]byte("something else")))
			},
			want: manifest.ErrPinMismatch,
			msg:  "github://acme/g@1.0.0: pin mismatch: the package has hash sha256:$HASH, but sha256:$HASH is required",
		},
		{
			name: "html_page", ref: "github://acme/h@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.handle(f.repo.path(ref, WasmFile), func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					_, _ = w.Write(html)
				})
				return ""
			},
			want: ErrBadContent,
			msg:  "download https://$SRV/acme/h/releases/download/v1.0.0/connector.wasm: downloaded content is not a package file: connector.wasm: the server sent an HTML page (check the source's base URL)",
		},
		{
			name: "html_sniffed", ref: "github://acme/h2@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.set(f.repo.path(ref, ManifestFile), html)
				return ""
			},
			want: ErrBadContent,
			msg:  "download https://$SRV/acme/h2/releases/download/v1.0.0/manifest.toml: downloaded content is not a package file: manifest.toml: the server sent an HTML page (check the source's base URL)",
		},
		{
			name: "not_wasm", ref: "github://acme/i@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.set(f.repo.path(ref, WasmFile), []byte("#!/bin/sh\nrm -rf /\n"))
				return ""
			},
			want: ErrBadContent,
			msg:  `download https://$SRV/acme/i/releases/download/v1.0.0/connector.wasm: downloaded content is not a package file: connector.wasm: not a WebAssembly module (no \0asm version 1 header)`,
		},
		{
			name: "oversized_declared", ref: "github://acme/j@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.handle(f.repo.path(ref, WasmFile), func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", strconv.Itoa(MaxWasmBytes+1))
					_, _ = w.Write(tinyWasm)
				})
				return ""
			},
			want: ErrTooLarge,
			msg:  "download https://$SRV/acme/j/releases/download/v1.0.0/connector.wasm: connector.wasm is 67108865 bytes: content exceeds the size limit (67108864)",
		},
		{
			name: "oversized_streamed", ref: "github://acme/k@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.handle(f.repo.path(ref, ManifestFile), func(w http.ResponseWriter, r *http.Request) {
					w.(http.Flusher).Flush() // chunked: no Content-Length
					_, _ = w.Write(bytes.Repeat([]byte("# pad\n"), MaxManifestBytes/6+10))
				})
				return ""
			},
			want: ErrTooLarge,
			msg:  "download https://$SRV/acme/k/releases/download/v1.0.0/manifest.toml: manifest.toml: content exceeds the size limit (262144 bytes)",
		},
		{
			name: "truncated", ref: "github://acme/l@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.handle(f.repo.path(ref, WasmFile), func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "1000")
					_, _ = w.Write(tinyWasm)
				})
				return ""
			},
			want: ErrDownload,
			msg:  "download https://$SRV/acme/l/releases/download/v1.0.0/connector.wasm: download failed: connector.wasm: transfer cut short after 8 bytes: unexpected EOF",
		},
		{
			name: "server_error", ref: "github://acme/m@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.handle(f.repo.path(ref, WasmFile), func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, "down", http.StatusBadGateway)
				})
				return ""
			},
			want: ErrDownload,
			msg:  "download https://$SRV/acme/m/releases/download/v1.0.0/connector.wasm: download failed: server answered 502 Bad Gateway",
		},
		{
			name: "forbidden", ref: "github://acme/n@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.handle(f.repo.path(ref, WasmFile), func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, "no", http.StatusForbidden)
				})
				return ""
			},
			msg: "download https://$SRV/acme/n/releases/download/v1.0.0/connector.wasm: server answered 403 Forbidden",
		},
		{
			name: "redirect_to_http", ref: "github://acme/o@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				f.repo.handle(f.repo.path(ref, WasmFile), func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "http://127.0.0.1:1/connector.wasm", http.StatusFound)
				})
				return ""
			},
			msg: `download https://$SRV/acme/o/releases/download/v1.0.0/connector.wasm: Get "http://127.0.0.1:$PORT/connector.wasm": refusing a redirect to http://127.0.0.1:$PORT/connector.wasm: not https`,
		},
		{
			name: "not_published", ref: "github://acme/nothing@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) string {
				for _, file := range []string{ManifestFile, WasmFile, SignatureFile} {
					f.repo.set(f.repo.path(ref, file), nil)
				}
				return ""
			},
			want: ErrNotPublished,
			msg:  "download https://$SRV/acme/nothing/releases/download/v1.0.0/manifest.toml: not published at the source: $SRV answered 404 Not Found",
		},
	}
	f := newInstall(t, true)
	// A connector installed before: every refusal must leave it as it was.
	good := mustRef(t, "github://acme/good@1.0.0")
	f.repo.publish(good)
	_, err := f.install(good, "")
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := mustRef(t, tt.ref)
			f.repo.publish(ref)
			want := tt.setup(f, ref)
			before := snapshot(t, f.in.Store.Root())
			trustBefore, _ := os.ReadFile(f.in.Trust.Path())
			_, err := f.install(ref, want)
			require.Error(t, err)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
			require.Equal(t, tt.msg, scrub(err.Error(), f.repo))
			require.Equal(t, before, snapshot(t, f.in.Store.Root()), "a refused install changed the store")
			trustAfter, _ := os.ReadFile(f.in.Trust.Path())
			require.Equal(t, trustBefore, trustAfter)
			_, err = f.in.Store.Connector(good.String())
			require.NoError(t, err)
		})
	}
}

func TestInstall_RetriesOnlyTransientFailures(t *testing.T) {
	f := newInstall(t, true)
	ref := mustRef(t, "github://acme/flaky@1.0.0")
	f.repo.publish(ref)
	p := f.repo.path(ref, WasmFile)
	var mu sync.Mutex
	n := 0
	f.repo.handle(p, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(tinyWasm)
	})
	_, err := f.install(ref, "")
	require.NoError(t, err)
	require.Equal(t, 2, f.repo.hitCount(p))

	// 404 is final: one request.
	missing := mustRef(t, "github://acme/missing@1.0.0")
	_, err = f.install(missing, "")
	require.ErrorIs(t, err, ErrNotPublished)
	require.Equal(t, 1, f.repo.hitCount(f.repo.path(missing, ManifestFile)))

	// A cut transfer is retried up to Attempts times.
	cut := mustRef(t, "github://acme/cut@1.0.0")
	f.repo.publish(cut)
	f.repo.handle(f.repo.path(cut, WasmFile), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write(tinyWasm)
	})
	_, err = f.install(cut, "")
	require.ErrorIs(t, err, ErrDownload)
	require.Equal(t, 3, f.repo.hitCount(f.repo.path(cut, WasmFile)))
}

func TestInstall_TrustOnFirstUse(t *testing.T) {
	f := newInstall(t, false)
	ref := mustRef(t, "github://acme/tofu@1.0.0")
	f.repo.publish(ref)

	// Declined: nothing stored, nothing pinned.
	before := snapshot(t, f.in.Store.Root())
	var offered string
	f.in.TrustOnFirstUse = func(authority string, key minisign.PublicKey, from string) error {
		offered = authority + " " + key.String()
		return errors.New("declined")
	}
	_, err := f.install(ref, "")
	require.EqualError(t, err, "github://acme/tofu@1.0.0: declined")
	require.Equal(t, "github://acme "+f.repo.pub.String(), offered)
	require.Equal(t, before, snapshot(t, f.in.Store.Root()))
	_, err = f.in.Trust.Key("github://acme")
	require.ErrorIs(t, err, ErrUnknownAuthority)

	// Accepted: pinned when the package is stored.
	f.in.TrustOnFirstUse = func(string, minisign.PublicKey, string) error { return nil }
	fe, err := f.in.Fetch(context.Background(), ref, "")
	require.NoError(t, err)
	require.NotNil(t, fe.NewKey)
	_, err = f.in.Trust.Key("github://acme")
	require.ErrorIs(t, err, ErrUnknownAuthority, "pinned before the install was committed")
	_, err = f.in.Commit(fe)
	require.NoError(t, err)
	k, err := f.in.Trust.Key("github://acme")
	require.NoError(t, err)
	require.True(t, k.Equal(f.repo.pub))
	ks, err := f.in.Trust.List()
	require.NoError(t, err)
	require.Equal(t, "trust on first use from "+f.repo.srv.URL+"/acme/tofu/releases/download/v1.0.0/minisign.pub", ks[0].Origin)

	// From now on a package of the authority signed by another key is
	// refused, and TOFU is not offered again.
	_, other, err := minisign.GenerateKey(nil)
	require.NoError(t, err)
	ref2 := mustRef(t, "github://acme/tofu@2.0.0")
	f.repo.publish(ref2)
	f.repo.set(f.repo.path(ref2, SignatureFile), Sign(other, manifestFor(ref2, tinyWasm), "x"))
	f.in.TrustOnFirstUse = func(string, minisign.PublicKey, string) error {
		t.Fatal("offered TOFU for a pinned authority")
		return nil
	}
	_, err = f.install(ref2, "")
	require.ErrorIs(t, err, ErrKeyMismatch)
}

func TestInstall_TrustOnFirstUse_CommitUnpinsOnFailure(t *testing.T) {
	f := newInstall(t, false)
	ref := mustRef(t, "github://acme/x@1.0.0")
	f.repo.publish(ref)
	f.in.TrustOnFirstUse = func(string, minisign.PublicKey, string) error { return nil }
	fe, err := f.in.Fetch(context.Background(), ref, "")
	require.NoError(t, err)
	// Someone installs other bytes as x@1.0.0 meanwhile (a dev install).
	other := otherWasm
	m, err := manifest.ParseManifest("m", manifestFor(ref, other))
	require.NoError(t, err)
	_, err = f.in.Store.Put(&Package{ManifestBytes: manifestFor(ref, other), Wasm: other, Manifest: m, Source: "dev"})
	require.NoError(t, err)
	_, err = f.in.Commit(fe)
	require.ErrorIs(t, err, ErrImmutable)
	_, err = f.in.Trust.Key("github://acme")
	require.ErrorIs(t, err, ErrUnknownAuthority, "a failed install left its key pinned")
}

func TestInstall_ConcurrentSamePackage_Hammer(t *testing.T) {
	f := newInstall(t, true)
	ref := mustRef(t, "github://acme/same@1.0.0")
	f.repo.publish(ref)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own Store and Trust, as separate processes would.
			s, err := Open(f.in.Store.Root())
			if err != nil {
				errs <- err
				return
			}
			in := &Installer{Store: s, Trust: OpenTrust(f.home), Fetcher: f.in.Fetcher}
			fe, err := in.Fetch(context.Background(), ref, "")
			if err == nil {
				_, err = in.Commit(fe)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	blobs, err := os.ReadDir(filepath.Join(f.in.Store.Root(), "blobs", "sha256"))
	require.NoError(t, err)
	require.Len(t, blobs, 3) // manifest, wasm, signature: each once
	es, err := f.in.Store.Entries()
	require.NoError(t, err)
	require.Len(t, es, 1)
}

func TestStore_Put_ImmutableWritesNothing(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	ref := mustRef(t, "github://acme/v@1.0.0")
	pkg := func(wasm []byte) *Package {
		mb := manifestFor(ref, wasm)
		m, err := CheckPackage("m", mb, wasm)
		require.NoError(t, err)
		return &Package{ManifestBytes: mb, Wasm: wasm, Manifest: m, Source: "dev"}
	}
	_, err = s.Put(pkg(tinyWasm))
	require.NoError(t, err)
	before := snapshot(t, s.Root())
	_, err = s.Put(pkg(otherWasm))
	require.ErrorIs(t, err, ErrImmutable)
	require.EqualError(t, err, "github://acme/v@1.0.0 is already installed with different content (wasm "+string(Sum(tinyWasm))+", now "+string(Sum(otherWasm))+"): a published version is immutable")
	require.Equal(t, before, snapshot(t, s.Root()))

	// The same bytes again: nothing changes, not even the entry's time.
	_, err = s.Put(pkg(tinyWasm))
	require.NoError(t, err)
	require.Equal(t, before, snapshot(t, s.Root()))
}

func TestInstaller_Local(t *testing.T) {
	r := newRepo(t)
	home := t.TempDir()
	s, err := Open(filepath.Join(home, "store"))
	require.NoError(t, err)
	var warnings []string
	in := &Installer{Store: s, Trust: OpenTrust(home), Warn: func(m string) { warnings = append(warnings, m) }}
	dir := t.TempDir()
	ref := mustRef(t, "github://acme/local@1.0.0")
	mb := manifestFor(ref, tinyWasm)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ManifestFile), mb, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, WasmFile), tinyWasm, 0o644))

	fe, err := in.Local(dir)
	require.NoError(t, err)
	require.False(t, fe.Signed)
	require.Equal(t, []string{"WARNING: github://acme/local@1.0.0 is UNSIGNED: it is a development package from " + dir + ", and nothing but this directory vouches for it"}, warnings)

	// Signed, but no key pinned: installed as unsigned, with a warning.
	_, err = SignPackage(dir, r.priv)
	require.NoError(t, err)
	warnings = nil
	fe, err = in.Local(dir)
	require.NoError(t, err)
	require.False(t, fe.Signed)
	require.Equal(t, []string{"WARNING: github://acme/local@1.0.0: no key is pinned for github://acme, so its signature was NOT checked; installing it as UNSIGNED"}, warnings)

	// Pinned: the signature must verify.
	require.NoError(t, in.Trust.Add("github://acme", r.pub, "test"))
	fe, err = in.Local(dir)
	require.NoError(t, err)
	require.True(t, fe.Signed)
	e, err := in.Commit(fe)
	require.NoError(t, err)
	require.NotEmpty(t, e.Signature)
	// A tampered manifest in the directory is refused.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ManifestFile), append(mb, "\n# changed\n"...), 0o644))
	_, err = in.Local(dir)
	require.ErrorIs(t, err, ErrBadSignature)
}

var (
	keyIDRe = regexp.MustCompile(`key [0-9A-F]{1,16}\b`)
	hashRe  = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	portRe  = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)
)

// scrub replaces what changes from run to run in an error message.
func scrub(s string, r *repo) string {
	s = strings.ReplaceAll(s, strings.TrimPrefix(r.srv.URL, "https://"), "$SRV")
	s = keyIDRe.ReplaceAllString(s, "key $$KEY")
	s = hashRe.ReplaceAllString(s, "sha256:$$HASH")
	return portRe.ReplaceAllString(s, "127.0.0.1:$$PORT")
}

// TestInstall_TrustOnFirstUse_VerifiesBeforeAsking: a person is asked to
// trust a published key only once it is known to sign what is installed;
// otherwise the consent would be asked for a key that proves nothing, and
// a "yes" would be wasted on a package that is then refused anyway.
func TestInstall_TrustOnFirstUse_VerifiesBeforeAsking(t *testing.T) {
	_, other, err := minisign.GenerateKey(nil)
	require.NoError(t, err)
	tests := []struct {
		name  string
		ref   string
		setup func(f *installFixture, ref manifest.Ref)
		fetch func(f *installFixture, ref manifest.Ref) error
		want  error
		msg   string
	}{
		{
			name: "signed_by_another_key", ref: "github://acme/p@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) {
				f.repo.publish(ref)
				f.repo.set(f.repo.path(ref, SignatureFile), Sign(other, manifestFor(ref, tinyWasm), "x"))
			},
			want: ErrBadSignature,
			msg:  "github://acme/p@1.0.0: manifest.toml: signed by key $KEY, but the key published at https://$SRV/acme/p/releases/download/v1.0.0/minisign.pub is key $KEY: signature does not verify",
		},
		{
			name: "tampered_manifest", ref: "github://acme/q@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) {
				mb, _, _ := f.repo.publish(ref)
				f.repo.set(f.repo.path(ref, ManifestFile), append(append([]byte(nil), mb...), "# changed\n"...))
			},
			want: ErrBadSignature,
			msg:  "github://acme/q@1.0.0: manifest.toml: signature does not verify with key $KEY published at https://$SRV/acme/q/releases/download/v1.0.0/minisign.pub: the file or its signature was altered",
		},
		{
			name: "tampered_action", ref: "github://acme/flows@1.0.0",
			setup: func(f *installFixture, ref manifest.Ref) {
				f.repo.publish(ref)
				f.repo.set(f.repo.path(ref, ActionFile), append(append([]byte(nil), flowAction...), "# changed\n"...))
				f.repo.set(f.repo.path(ref, ActionSignatureFile), Sign(f.repo.priv, flowAction, "flow"))
			},
			fetch: func(f *installFixture, ref manifest.Ref) error {
				_, err := f.in.FetchAction(context.Background(), ref)
				return err
			},
			want: ErrBadSignature,
			msg:  "github://acme/flows@1.0.0: action.toml: signature does not verify with key $KEY published at https://$SRV/acme/flows/releases/download/v1.0.0/minisign.pub: the file or its signature was altered",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newInstall(t, false)
			ref := mustRef(t, tt.ref)
			tt.setup(f, ref)
			asked := 0
			f.in.TrustOnFirstUse = func(string, minisign.PublicKey, string) error {
				asked++
				return nil
			}
			before := snapshot(t, f.in.Store.Root())
			if tt.fetch == nil {
				_, err = f.install(ref, "")
			} else {
				err = tt.fetch(f, ref)
			}
			require.ErrorIs(t, err, tt.want)
			require.Equal(t, tt.msg, scrub(err.Error(), f.repo))
			require.Zero(t, asked, "asked to trust a key that does not verify the signature")
			require.Equal(t, before, snapshot(t, f.in.Store.Root()))
			_, err = f.in.Trust.Key("github://acme")
			require.ErrorIs(t, err, ErrUnknownAuthority)
		})
	}
}

// TestInstall_TrustOnFirstUse_FailedCommitKeepsOthersPin_Hammer: a commit
// that fails unpins a key only if it pinned it itself. Here one commit
// fails (its version is taken by other bytes) while another of the same
// publisher succeeds: whichever pinned the key, the successful install's
// key must stay pinned.
func TestInstall_TrustOnFirstUse_FailedCommitKeepsOthersPin_Hammer(t *testing.T) {
	for round := range 40 {
		f := newInstall(t, false)
		f.in.TrustOnFirstUse = func(string, minisign.PublicKey, string) error { return nil }
		bad, good := mustRef(t, "github://acme/bad@1.0.0"), mustRef(t, "github://acme/good@1.0.0")
		f.repo.publish(bad)
		f.repo.publish(good)
		feBad, err := f.in.Fetch(context.Background(), bad, "")
		require.NoError(t, err)
		feGood, err := f.in.Fetch(context.Background(), good, "")
		require.NoError(t, err)
		m, err := manifest.ParseManifest("m", manifestFor(bad, otherWasm))
		require.NoError(t, err)
		_, err = f.in.Store.Put(&Package{ManifestBytes: manifestFor(bad, otherWasm), Wasm: otherWasm, Manifest: m, Source: "dev"})
		require.NoError(t, err)

		start := make(chan struct{})
		var wg sync.WaitGroup
		var errBad, errGood error
		wg.Add(2)
		commitBad := func() { defer wg.Done(); <-start; _, errBad = f.in.Commit(feBad) }
		commitGood := func() { defer wg.Done(); <-start; _, errGood = f.in.Commit(feGood) }
		if round%2 == 0 { // the scheduler tends to run the last one first
			go commitBad()
			go commitGood()
		} else {
			go commitGood()
			go commitBad()
		}
		close(start)
		wg.Wait()
		require.ErrorIs(t, errBad, ErrImmutable)
		require.NoError(t, errGood)
		_, err = f.in.Trust.Key("github://acme")
		require.NoError(t, err, "round %d: a failed commit unpinned the key of a successful one", round)
	}
}
