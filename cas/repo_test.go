package cas

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/examples/services/testca"
	"aileron.dev/aileron/manifest"
)

// tinyWasm is the smallest valid module: it imports nothing.
var tinyWasm = []byte("\x00asm\x01\x00\x00\x00")

// otherWasm is another valid module: tinyWasm with a custom section.
var otherWasm = []byte("\x00asm\x01\x00\x00\x00\x00\x02\x01x")

// repo is a package source on a loopback HTTPS server.
type repo struct {
	t    *testing.T
	srv  *httptest.Server
	ca   *testca.CA
	pub  minisign.PublicKey
	priv minisign.PrivateKey

	mu       sync.Mutex
	files    map[string][]byte
	handlers map[string]http.HandlerFunc
	hits     map[string]int
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	ca, err := testca.New()
	require.NoError(t, err)
	r := &repo{t: t, ca: ca, files: map[string][]byte{}, handlers: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	r.pub, r.priv, err = minisign.GenerateKey(nil)
	require.NoError(t, err)
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.URL.Path]++
		h, b, ok := r.handlers[req.URL.Path], r.files[req.URL.Path], false
		if b != nil {
			ok = true
		}
		r.mu.Unlock()
		switch {
		case h != nil:
			h(w, req)
		case ok:
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(b)
		default:
			http.NotFound(w, req)
		}
	}))
	r.srv.TLS, err = ca.ServerConfig("127.0.0.1")
	require.NoError(t, err)
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *repo) bases() Bases {
	return Bases{GitHub: r.srv.URL, GitLab: r.srv.URL + "/gl", Hub: r.srv.URL + "/hub"}
}

func (r *repo) fetcher() *Fetcher {
	f, err := NewFetcher(SourceConfig{Bases: r.bases(), ExtraRootCAs: r.ca.PEM, Backoff: time.Millisecond, Timeout: 5 * time.Second})
	require.NoError(r.t, err)
	return f
}

func (r *repo) path(ref manifest.Ref, file string) string {
	u, err := r.bases().ReleaseURL(ref, file)
	require.NoError(r.t, err)
	return strings.TrimPrefix(u, r.srv.URL)
}

func (r *repo) set(path string, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = b
}

func (r *repo) handle(path string, h http.HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[path] = h
}

func (r *repo) hitCount(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

func (r *repo) totalHits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.hits {
		n += c
	}
	return n
}

// manifestFor returns a manifest for ref pinning wasm.
func manifestFor(ref manifest.Ref, wasm []byte) []byte {
	return []byte(fmt.Sprintf(`[connector]
name = %q
version = %q
provenance_hash = %q

[provides]
intents = ["noop"]
`, ref.FQN, ref.Version, Sum(wasm)))
}

// publish puts a signed package for ref (and the publisher key) in the
// release directory and returns its files.
func (r *repo) publish(ref manifest.Ref) (mb, wasm, sig []byte) {
	wasm = append([]byte(nil), tinyWasm...)
	mb = manifestFor(ref, wasm)
	sig = Sign(r.priv, mb, ref.String())
	r.set(r.path(ref, ManifestFile), mb)
	r.set(r.path(ref, WasmFile), wasm)
	r.set(r.path(ref, SignatureFile), sig)
	pk, _ := r.pub.MarshalText()
	r.set(r.path(ref, KeyFile), pk)
	return mb, wasm, sig
}

func mustRef(t *testing.T, s string) manifest.Ref {
	t.Helper()
	ref, err := manifest.ParseRef(s)
	require.NoError(t, err)
	return ref
}

// snapshot lists every file under root with its hash, to show that a
// refused install changed nothing.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out = append(out, rel+" "+hex.EncodeToString(h[:8]))
		return nil
	}))
	sort.Strings(out)
	return out
}
