package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/examples/services/testca"
	"aileron.dev/aileron/manifest"
)

// pkgServer is a package source on loopback HTTPS: the real download,
// verify and store code path runs against it. GitHub layout:
// /ORG/REPO/releases/download/vVERSION/FILE.
type pkgServer struct {
	t      *testing.T
	srv    *httptest.Server
	caPath string
	pub    minisign.PublicKey
	priv   minisign.PrivateKey

	mu       sync.Mutex
	files    map[string][]byte
	handlers map[string]http.HandlerFunc
	hits     int
	// tripwire fails the test on any request (offline runs).
	tripwire bool
}

func newPkgServer(t *testing.T) *pkgServer {
	t.Helper()
	ca, err := testca.New()
	require.NoError(t, err)
	s := &pkgServer{t: t, files: map[string][]byte{}, handlers: map[string]http.HandlerFunc{}}
	s.pub, s.priv, err = minisign.GenerateKey(nil)
	require.NoError(t, err)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits++
		trip, h, b := s.tripwire, s.handlers[r.URL.Path], s.files[r.URL.Path]
		s.mu.Unlock()
		if trip {
			t.Errorf("the package source was contacted while it must not be: %s %s", r.Method, r.URL.Path)
		}
		switch {
		case h != nil:
			h(w, r)
		case b != nil:
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	s.srv.TLS, err = ca.ServerConfig("127.0.0.1")
	require.NoError(t, err)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.caPath = filepath.Join(t.TempDir(), "source-ca.pem")
	require.NoError(t, os.WriteFile(s.caPath, ca.PEM, 0o600))
	return s
}

// config is the [sources] table pointing github:// at the server.
func (s *pkgServer) config() string {
	return fmt.Sprintf("[sources]\ngithub = %q\nextra_root_cas = [%q]\n", s.srv.URL, s.caPath)
}

func (s *pkgServer) path(ref manifest.Ref, file string) string {
	u, err := cas.Bases{GitHub: s.srv.URL}.ReleaseURL(ref, file)
	require.NoError(s.t, err)
	return strings.TrimPrefix(u, s.srv.URL)
}

func (s *pkgServer) set(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

func (s *pkgServer) handle(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[path] = h
}

func (s *pkgServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func (s *pkgServer) setTripwire(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tripwire = on
}

// variant returns the packed connector name's manifest renamed to ref,
// with edit applied, re-encoded.
func variant(t *testing.T, name string, ref manifest.Ref, edit func(m *manifest.Manifest)) (*manifest.Manifest, []byte, []byte) {
	t.Helper()
	wasm, err := os.ReadFile(filepath.Join(pkgDirs[name], cas.WasmFile))
	require.NoError(t, err)
	mb, err := os.ReadFile(filepath.Join(pkgDirs[name], cas.ManifestFile))
	require.NoError(t, err)
	m, err := manifest.ParseManifest("m", mb)
	require.NoError(t, err)
	m.Connector.Name, m.Connector.Version = ref.FQN, ref.Version
	if edit != nil {
		edit(m)
	}
	mb = m.Encode()
	m, err = manifest.ParseManifest("m", mb)
	require.NoError(t, err)
	return m, mb, wasm
}

// publish signs and serves the packed connector name as ref.
func (s *pkgServer) publish(name string, ref manifest.Ref, edit func(m *manifest.Manifest)) *manifest.Manifest {
	s.t.Helper()
	m, mb, wasm := variant(s.t, name, ref, edit)
	s.set(s.path(ref, cas.ManifestFile), mb)
	s.set(s.path(ref, cas.WasmFile), wasm)
	s.set(s.path(ref, cas.SignatureFile), cas.Sign(s.priv, mb, ref.String()))
	pk, _ := s.pub.MarshalText()
	s.set(s.path(ref, cas.KeyFile), pk)
	return m
}

func (s *pkgServer) publishIndex(f manifest.FQN, versions ...string) {
	u, err := cas.Bases{GitHub: s.srv.URL}.IndexURL(f)
	require.NoError(s.t, err)
	s.set(strings.TrimPrefix(u, s.srv.URL), cas.EncodeVersionIndex(f, versions))
}

func ref(t *testing.T, s string) manifest.Ref {
	t.Helper()
	r, err := manifest.ParseRef(s)
	require.NoError(t, err)
	return r
}

// storeSnapshot lists every file in the store with its hash.
func storeSnapshot(t *testing.T, home string) []string {
	t.Helper()
	root := filepath.Join(home, "store")
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

// installedEnv is an env whose notes connector was installed from the
// package source, with its key pinned and its API key in the vault.
func installedEnv(t *testing.T) (*env, *pkgServer, *manifest.Manifest) {
	t.Helper()
	src := newPkgServer(t)
	e := newEnv(t, src.config())
	m := packages["notes"]
	src.publish("notes", m.Ref(), nil)
	e.ok("", "trust", "add", m.Connector.Name.Authority(), src.pub.String())
	out := e.ok("", "connector", "install", "--yes", m.Ref().String())
	require.Contains(t, out, "installed "+m.Ref().String())
	e.ok(notesKey+"\n", "vault", "set", "notes-key", "--kind", "api_key", "--connector", m.Connector.Name.String())
	return e, src, m
}

func TestInstall_FromSource_ThenRunsOffline(t *testing.T) {
	e, src, m := installedEnv(t)
	// Cold: no compiled module yet.
	require.NoError(t, os.RemoveAll(filepath.Join(e.home, "store", "compiled")))
	require.NoError(t, os.Mkdir(filepath.Join(e.home, "store", "compiled"), 0o711))
	list := e.ok("", "connector", "list")
	require.Contains(t, list, m.Ref().String())
	require.Contains(t, list, "key "+cas.KeyID(src.pub.ID()))

	// Adding an action that uses the installed connector downloads
	// nothing; neither does a second one.
	before := src.requests()
	e.ok("", "action", "add", e.action(m, "add-one", "create_note", `{ title = "first" }`))
	e.ok("", "action", "add", e.action(m, "list-all", "list_notes", `{}`))
	require.Equal(t, before, src.requests(), "adding actions for an installed connector downloaded something")

	// Offline: runs make no request to the package source (or anywhere
	// but the connector's declared host).
	src.setTripwire(true)
	start := time.Now()
	e.ok("", "run", "add-one")
	cold := time.Since(start)
	compiled, err := filepath.Glob(filepath.Join(e.home, "store", "compiled", "*.cwasm"))
	require.NoError(t, err)
	require.Len(t, compiled, 1, "the first run did not cache the compiled module")
	var warm []time.Duration
	for i := 0; i < 3; i++ {
		start = time.Now()
		e.ok("", "run", "list-all")
		warm = append(warm, time.Since(start))
	}
	sort.Slice(warm, func(i, j int) bool { return warm[i] < warm[j] })
	t.Logf("aileron run wall time: first run (compiles, then caches) %v; cached runs median %v (min %v)", cold.Round(time.Millisecond), warm[1].Round(time.Millisecond), warm[0].Round(time.Millisecond))
	src.setTripwire(false)
	require.Equal(t, before, src.requests())
	require.Len(t, e.notes.Seen(), 4)

	// The store verifies; nothing is garbage while the connector is
	// installed.
	require.Contains(t, e.ok("", "store", "verify"), "store verified")
	var rep cas.GCReport
	require.NoError(t, json.Unmarshal([]byte(e.ok("", "store", "gc", "--json")), &rep))
	require.Empty(t, rep.Removed)
	require.Equal(t, 1, len(compiled))
}

func TestInstall_Refusals(t *testing.T) {
	e, src, m := installedEnv(t)
	e.ok("", "action", "add", e.action(m, "list-all", "list_notes", `{}`))
	e.ok("", "run", "list-all")
	_, other, err := minisign.GenerateKey(nil)
	require.NoError(t, err)

	wasmLen := func() int {
		st, err := os.Stat(filepath.Join(pkgDirs["notes"], cas.WasmFile))
		require.NoError(t, err)
		return int(st.Size())
	}()
	fqn := m.Connector.Name.String()
	tests := []struct {
		name string
		// setup publishes what the case needs and returns the arguments.
		setup func(t *testing.T) []string
		code  int
		msg   string
	}{
		{"tampered_wasm", func(t *testing.T) []string {
			r := ref(t, fqn+"@1.0.1")
			_, _, wasm := variant(t, "notes", r, nil)
			src.publish("notes", r, nil)
			bad := append([]byte(nil), wasm...)
			bad[len(bad)-1] ^= 0xff
			src.set(src.path(r, cas.WasmFile), bad)
			return []string{"connector", "install", "--yes", r.String()}
		}, 1, "connector.wasm is sha256:"},
		{"tampered_manifest", func(t *testing.T) []string {
			r := ref(t, fqn+"@1.0.2")
			src.publish("notes", r, nil)
			_, mb, _ := variant(t, "notes", r, func(m *manifest.Manifest) {
				h, _ := manifest.ParseHostPort("evil.example.com:443")
				m.Capabilities.Network.Hosts = append(m.Capabilities.Network.Hosts, h)
			})
			src.set(src.path(r, cas.ManifestFile), mb)
			return []string{"connector", "install", "--yes", r.String()}
		}, 1, "manifest.toml: signature does not verify with key"},
		{"wrong_signature", func(t *testing.T) []string {
			r := ref(t, fqn+"@1.0.3")
			src.publish("notes", r, nil)
			_, mb, _ := variant(t, "notes", r, nil)
			src.set(src.path(r, cas.SignatureFile), cas.Sign(other, mb, "x"))
			return []string{"connector", "install", "--yes", r.String()}
		}, 1, "github://aileron-examples is pinned to key " + cas.KeyID(src.pub.ID()) + ": signed by a different key than the one pinned for this source"},
		{"unknown_key", func(t *testing.T) []string {
			r := ref(t, "github://stranger/notes@1.0.0")
			src.publish("notes", r, nil)
			return []string{"connector", "install", "--yes", r.String()}
		}, 1, "no publisher key is pinned for this source: github://stranger; compare the key with the one the publisher announces, then run `aileron trust add github://stranger " + src.pub.String() + "`, or pass --trust-on-first-use"},
		{"action_hash_differs", func(t *testing.T) []string {
			r := ref(t, fqn+"@1.0.4")
			pm := src.publish("notes", r, nil)
			pinned := *pm
			pinned.Connector.ProvenanceHash = string(cas.Sum([]byte("another build")))
			return []string{"action", "add", "--yes", e.action(&pinned, "mismatch", "list_notes", "{}")}
		}, 1, "pin mismatch: the package has hash " + m.Connector.ProvenanceHash + ", but " + string(cas.Sum([]byte("another build"))) + " is required"},
		{"truncated_download", func(t *testing.T) []string {
			r := ref(t, fqn+"@1.0.5")
			src.publish("notes", r, nil)
			src.handle(src.path(r, cas.WasmFile), func(w http.ResponseWriter, req *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(wasmLen))
				b, _ := os.ReadFile(filepath.Join(pkgDirs["notes"], cas.WasmFile))
				_, _ = w.Write(b[:wasmLen/2])
			})
			return []string{"connector", "install", "--yes", r.String()}
		}, 1, "download failed: connector.wasm: transfer cut short after"},
		{"html_instead_of_wasm", func(t *testing.T) []string {
			r := ref(t, fqn+"@1.0.6")
			src.publish("notes", r, nil)
			src.handle(src.path(r, cas.WasmFile), func(w http.ResponseWriter, req *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html><body>Please sign in</body></html>"))
			})
			return []string{"connector", "install", "--yes", r.String()}
		}, 1, "connector.wasm: the server sent an HTML page (check the source's base URL)"},
		{"oversized_download", func(t *testing.T) []string {
			r := ref(t, fqn+"@1.0.7")
			src.publish("notes", r, nil)
			src.handle(src.path(r, cas.WasmFile), func(w http.ResponseWriter, req *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(cas.MaxWasmBytes+1))
				_, _ = w.Write([]byte("\x00asm\x01\x00\x00\x00"))
			})
			return []string{"connector", "install", "--yes", r.String()}
		}, 1, "connector.wasm is 67108865 bytes: content exceeds the size limit (67108864)"},
		{"traversal_in_name", func(t *testing.T) []string {
			return []string{"connector", "install", "--yes", "github://aileron-examples/../../etc@1.0.0"}
		}, 2, `invalid connector name "github://aileron-examples/../../etc": path segment ".." is not allowed`},
		{"traversal_in_version", func(t *testing.T) []string {
			return []string{"connector", "install", "--yes", fqn + "@1.0.0/../../../x"}
		}, 2, `invalid version "1.0.0/../../../x": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{"traversal_in_index", func(t *testing.T) []string {
			u, _ := cas.Bases{GitHub: src.srv.URL}.IndexURL(m.Connector.Name)
			src.set(strings.TrimPrefix(u, src.srv.URL), []byte(`{"connector": "`+fqn+`", "versions": ["0.2.0", "../../../../x"]}`))
			return []string{"connector", "check"}
		}, 1, `bad version index: invalid version "../../../../x"`},
		{"same_version_other_bytes", func(t *testing.T) []string {
			// A directory package claiming the installed version.
			dir := t.TempDir()
			_, mb, wasm := variant(t, "notes", m.Ref(), func(m *manifest.Manifest) {
				m.Provides.Intents = append(m.Provides.Intents, "extra")
			})
			require.NoError(t, os.WriteFile(filepath.Join(dir, cas.ManifestFile), mb, 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, cas.WasmFile), wasm, 0o644))
			return []string{"connector", "install", "--yes", dir}
		}, 1, "is already installed with different content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.setup(t)
			before := storeSnapshot(t, e.home)
			actions, _ := os.ReadDir(filepath.Join(e.home, "actions"))
			r := e.aileron("", args...)
			require.Equal(t, tt.code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Contains(t, r.stderr, tt.msg)
			require.Equal(t, before, storeSnapshot(t, e.home), "a refused command changed the store")
			after, _ := os.ReadDir(filepath.Join(e.home, "actions"))
			require.Equal(t, len(actions), len(after), "a refused command installed an action")
		})
	}
	// The connector installed before all that still runs.
	src.setTripwire(true)
	e.ok("", "run", "list-all")
	src.setTripwire(false)
}

func TestInstall_ConcurrentInstallsShareOneCopy(t *testing.T) {
	src := newPkgServer(t)
	e := newEnv(t, src.config())
	m := packages["notes"]
	src.publish("notes", m.Ref(), nil)
	e.ok("", "trust", "add", m.Connector.Name.Authority(), src.pub.String())
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = e.aileron("", "connector", "install", "--yes", m.Ref().String())
		}(i)
	}
	wg.Wait()
	for _, r := range results {
		require.Equal(t, 0, r.code, r.stderr)
	}
	blobs, err := os.ReadDir(filepath.Join(e.home, "store", "blobs", "sha256"))
	require.NoError(t, err)
	require.Len(t, blobs, 3, "manifest, module and signature, each stored once")
	require.Contains(t, e.ok("", "store", "verify"), "store verified")
}

func TestInstall_TrustOnFirstUse(t *testing.T) {
	src := newPkgServer(t)
	e := newEnv(t, src.config())
	m := packages["notes"]
	src.publish("notes", m.Ref(), nil)

	// --yes consents to the connector, not to a publisher nobody pinned.
	r := e.aileron("", "connector", "install", "--yes", m.Ref().String())
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "public key  "+src.pub.String())
	require.Contains(t, r.stderr, "or pass --trust-on-first-use")
	_, err := os.Stat(filepath.Join(e.home, cas.TrustFile))
	require.True(t, os.IsNotExist(err), "a refused install pinned a key")

	r = e.aileron("", "connector", "install", "--yes", "--trust-on-first-use", m.Ref().String())
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "WARNING: trusting it on first use")
	require.Contains(t, e.ok("", "trust", "list"), src.pub.String())

	// The publisher's key is now pinned: another key is refused, even
	// with --trust-on-first-use.
	_, other, err := minisign.GenerateKey(nil)
	require.NoError(t, err)
	next := ref(t, m.Connector.Name.String()+"@0.1.1")
	src.publish("notes", next, nil)
	_, mb, _ := variant(t, "notes", next, nil)
	src.set(src.path(next, cas.SignatureFile), cas.Sign(other, mb, "x"))
	r = e.aileron("", "connector", "install", "--yes", "--trust-on-first-use", next.String())
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "signed by a different key than the one pinned for this source")
	r = e.aileron("", "trust", "add", m.Connector.Name.Authority(), other.Public().(minisign.PublicKey).String())
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "run `aileron trust rm github://aileron-examples` first")
}

func TestInstall_CheckAndUpdate(t *testing.T) {
	e, src, m := installedEnv(t)
	e.ok("", "action", "add", e.action(m, "list-all", "list_notes", `{}`))
	next := ref(t, m.Connector.Name.String()+"@0.2.0")
	src.publish("notes", next, func(m *manifest.Manifest) {
		h, _ := manifest.ParseHostPort("echo.example.com:443")
		m.Capabilities.Network.Hosts = append(m.Capabilities.Network.Hosts, h)
	})
	src.publishIndex(m.Connector.Name, "0.1.0", "0.2.0", "0.3.0-rc.1")

	before := storeSnapshot(t, e.home)
	out := e.ok("", "connector", "check")
	require.Equal(t, m.Connector.Name.String()+" 0.1.0: newer: 0.2.0\n", out)
	require.Equal(t, before, storeSnapshot(t, e.home), "check installed something")

	// The update widens egress: without a terminal it needs --yes, and
	// the diff says why.
	r := e.aileron("", "action", "update", "list-all")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, m.Connector.Name.String()+" 0.1.0 -> 0.2.0\n  + host echo.example.com:443\n")
	require.Contains(t, r.stderr, "no terminal to ask for consent")
	require.Equal(t, before, storeSnapshot(t, e.home))

	out = e.ok("", "action", "update", "list-all", "--yes")
	require.Equal(t, "updated action list-all: "+next.String()+"\n", out)
	a, err := manifest.LoadAction(filepath.Join(e.home, "actions", "list-all.toml"))
	require.NoError(t, err)
	require.Equal(t, "0.2.0", a.Requires[0].Version)
	e.ok("", "run", "list-all")
	require.Equal(t, "action list-all: its connectors are up to date\n", e.ok("", "action", "update", "list-all"))

	// The old version is unused now; removing it and collecting garbage
	// keeps the new one intact. The blobs are shared (same module), so
	// only the old manifest and signature go.
	e.ok("", "connector", "rm", m.Ref().String())
	var rep cas.GCReport
	require.NoError(t, json.Unmarshal([]byte(e.ok("", "store", "gc", "--json")), &rep))
	var blobs []string
	for _, r := range rep.Removed {
		// Compiled modules other tests shared into this home (see
		// shareCompiled) are unreferenced here and go too.
		if strings.HasPrefix(r, "blobs/") {
			blobs = append(blobs, r)
		}
	}
	require.Len(t, blobs, 2, "%v", rep.Removed)
	e.ok("", "run", "list-all")
	require.Contains(t, e.ok("", "store", "verify"), "store verified")
}

func TestInstall_PublishedAction(t *testing.T) {
	src := newPkgServer(t)
	e := newEnv(t, src.config())
	m := packages["notes"]
	src.publish("notes", m.Ref(), nil)
	e.ok("", "trust", "add", m.Connector.Name.Authority(), src.pub.String())
	// The action is published in a release of its own repository.
	b, err := os.ReadFile(e.action(m, "published", "list_notes", "{}"))
	require.NoError(t, err)
	aref := ref(t, "github://aileron-examples/flows@1.0.0")
	src.set(src.path(aref, cas.ActionFile), b)
	src.set(src.path(aref, cas.ActionSignatureFile), cas.Sign(src.priv, b, "published"))

	out := e.ok("", "action", "add", "--yes", aref.String())
	require.Equal(t, "installed "+m.Ref().String()+"\nadded action published 0.1.0\n", out)
	e.ok(notesKey+"\n", "vault", "set", "notes-key", "--kind", "api_key", "--connector", m.Connector.Name.String())
	e.ok("", "run", "published")
}
