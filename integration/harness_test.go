// Package integration runs the real aileron and aileron-worker binaries
// against fake services on loopback: end-to-end runs, and hostile connectors
// that must fail safely.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/examples/kit"
	"aileron.dev/aileron/examples/services/notes"
	"aileron.dev/aileron/examples/services/testca"
	"aileron.dev/aileron/manifest"
)

// Built once per test binary.
var (
	binDir string
	// compiledCache collects modules compiled by earlier tests; each new
	// AILERON_HOME starts with hard links to them, so only the first test
	// that runs a connector pays Cranelift's ~2 s.
	compiledCache string
	// testTmp is the test binary's scratch directory (mode 0755, removed
	// at exit) for what every test shares.
	testTmp  string
	packages = map[string]*manifest.Manifest{} // by short name
	pkgDirs  = map[string]string{}
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		tmp, err := os.MkdirTemp("", "aileron-integration-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		// Workers run as another uid and exec binaries and read the
		// compiled cache below tmp: MkdirTemp's 0700 would shut them out.
		if err := os.Chmod(tmp, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		testTmp = tmp
		compiledCache = filepath.Join(tmp, "compiled")
		if err := os.MkdirAll(compiledCache, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = os.Getenv("AILERON_TEST_BIN")
		if binDir == "" {
			binDir = filepath.Join(tmp, "bin")
			if err := kit.BuildBinaries(ctx, binDir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		for name, src := range map[string]string{
			"notes":   "examples/connectors/notes",
			"hostile": "integration/testdata/connectors/hostile",
			"noop":    "integration/testdata/connectors/noop",
			"slack":   "examples/connectors/slack",
			"linear":  "examples/connectors/linear",
			"stripe":  "examples/connectors/stripe",
		} {
			dir := filepath.Join(tmp, "pkg", name)
			mf, err := kit.PackConnector(ctx, src, dir)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			packages[name], pkgDirs[name] = mf, dir
		}
		return m.Run()
	}())
}

// env is one AILERON_HOME with fake services routed behind real names.
type env struct {
	t     *testing.T
	home  string
	notes *notes.Service
	echo  *echoService
}

const notesKey = "sk-notes-41b7d2e9c0"

func newEnv(t *testing.T, extraConfig string) *env {
	t.Helper()
	return newEnvWith(t, envOptions{Config: extraConfig})
}

// envOptions adjust newEnvWith.
type envOptions struct {
	// Config is written into config.toml after the [broker] keys; it may
	// open other tables.
	Config string
	// DenyLoopback leaves unsafe_allow_loopback off, so the broker runs
	// under the default address policy (the fake services become
	// unreachable).
	DenyLoopback bool
	// Services are more fake HTTPS services, routed behind their names
	// like notes and echo.
	Services map[string]http.Handler
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	home := t.TempDir()
	shareCompiled(t, home)
	ca, err := testca.New()
	require.NoError(t, err)
	e := &env{t: t, home: home, notes: notes.New(notesKey), echo: &echoService{}}
	services := map[string]http.Handler{"notes.example.com": e.notes, "echo.example.com": e.echo}
	for name, h := range o.Services {
		services[name] = h
	}
	routes := map[string]string{}
	for name, h := range services {
		tlsCfg, err := ca.ServerConfig(name)
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: h, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second}
		go srv.ServeTLS(ln, "", "")
		t.Cleanup(func() { srv.Close() })
		routes[name+":443"] = ln.Addr().String()
	}
	caPath := filepath.Join(home, "ca.pem")
	require.NoError(t, os.WriteFile(caPath, ca.PEM, 0o600))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[broker]\nunsafe_allow_loopback = %t\nextra_root_cas = [%q]\n", !o.DenyLoopback, caPath)
	cfg.WriteString(o.Config)
	cfg.WriteString("\n[broker.routes]\n")
	for k, v := range routes {
		fmt.Fprintf(&cfg, "%q = %q\n", k, v)
	}
	require.NoError(t, os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg.String()), 0o600))
	t.Cleanup(func() { assertNoChildren(t) })
	return e
}

// shareCompiled links the modules other tests compiled into home's store,
// and the ones this test compiles back into the shared cache when it ends.
func shareCompiled(t *testing.T, home string) {
	dir := filepath.Join(home, "store", "compiled")
	require.NoError(t, os.MkdirAll(dir, 0o711))
	link := func(from, to string) {
		ents, _ := os.ReadDir(from)
		for _, e := range ents {
			_ = os.Link(filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
		}
	}
	link(compiledCache, dir)
	t.Cleanup(func() { link(dir, compiledCache) })
}

// result of one CLI invocation.
type result struct {
	stdout, stderr string
	code           int
}

func (e *env) aileron(stdin string, args ...string) result {
	return e.aileronCtx(context.Background(), stdin, args...)
}

func (e *env) aileronCtx(ctx context.Context, stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "aileron"), args...)
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("aileron %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs aileron and fails the test unless it exits 0.
func (e *env) ok(stdin string, args ...string) string {
	e.t.Helper()
	r := e.aileron(stdin, args...)
	require.Equal(e.t, 0, r.code, "aileron %v\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	return r.stdout
}

// install installs a packed connector and binds an API key to it.
func (e *env) install(name, key string) *manifest.Manifest {
	e.t.Helper()
	e.ok("", "connector", "install", "--yes", pkgDirs[name])
	m := packages[name]
	if key != "" {
		e.ok(key+"\n", "vault", "set", name+"-key", "--kind", "api_key", "--connector", m.Connector.Name.String())
	}
	return m
}

// action writes an action calling one intent of the connector m and
// returns its path.
func (e *env) action(m *manifest.Manifest, name, intent, with string) string {
	e.t.Helper()
	src := fmt.Sprintf(`[action]
name = %q
version = "0.1.0"

[[requires.connectors]]
name = %q
version = %q
hash = %q
capabilities = []

[[steps]]
id = "only"
connector = %q
intent = %q
with = %s
`, name, m.Connector.Name, m.Connector.Version, m.Connector.ProvenanceHash, m.Connector.Name, intent, with)
	path := filepath.Join(e.home, name+".toml")
	require.NoError(e.t, os.WriteFile(path, []byte(src), 0o600))
	return path
}

// installVariant packs the hostile connector's module under another
// manifest (another name, credential kind or host list) and installs it.
func (e *env) installVariant(manifestTOML string) *manifest.Manifest {
	e.t.Helper()
	dir := e.t.TempDir()
	mpath := filepath.Join(dir, cas.ManifestFile)
	require.NoError(e.t, os.WriteFile(mpath, []byte(manifestTOML), 0o600))
	m, err := cas.Pack(mpath, filepath.Join(pkgDirs["hostile"], cas.WasmFile), filepath.Join(dir, "pkg"))
	require.NoError(e.t, err)
	e.ok("", "connector", "install", "--yes", filepath.Join(dir, "pkg"))
	return m
}

// step is one step of an action written by actionSteps.
type step struct {
	m      *manifest.Manifest
	intent string
	with   string
}

// actionSteps writes an action running steps in order and returns its
// path.
func (e *env) actionSteps(name string, steps ...step) string {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[action]\nname = %q\nversion = \"0.1.0\"\n", name)
	seen := map[string]bool{}
	for _, st := range steps {
		c := st.m.Connector
		if seen[c.Name.String()] {
			continue
		}
		seen[c.Name.String()] = true
		fmt.Fprintf(&b, "\n[[requires.connectors]]\nname = %q\nversion = %q\nhash = %q\ncapabilities = []\n", c.Name, c.Version, c.ProvenanceHash)
	}
	for i, st := range steps {
		fmt.Fprintf(&b, "\n[[steps]]\nid = \"s%d\"\nconnector = %q\nintent = %q\nwith = %s\n", i+1, st.m.Connector.Name, st.intent, st.with)
	}
	path := filepath.Join(e.home, name+".toml")
	require.NoError(e.t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// auditRecords reads the audit log.
func (e *env) auditRecords() []map[string]any {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.home, "audit.jsonl"))
	require.NoError(e.t, err)
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r map[string]any
		require.NoError(e.t, json.Unmarshal(line, &r))
		out = append(out, r)
	}
	return out
}

// children lists live processes started from our binaries: those in binDir
// and the test builds of the worker under testTmp.
func children() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe"))
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if filepath.Dir(exe) == filepath.Clean(binDir) || strings.HasPrefix(exe, testTmp+string(filepath.Separator)) {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
			stat, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
			if isZombie(stat) {
				continue
			}
			out = append(out, fmt.Sprintf("pid %d: %s: %s", pid, exe, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return out
}

func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// assertNoChildren fails if any aileron process outlived its command.
func assertNoChildren(t *testing.T) {
	t.Helper()
	var left []string
	for i := 0; i < 50; i++ {
		if left = children(); len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("processes left behind: %v", left)
}

// echoService answers like an httpbin: it echoes request headers, sends
// redirects and oversized bodies, and records what it received.
type echoService struct {
	mu   sync.Mutex
	seen []http.Header
}

func (s *echoService) Seen() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.seen...)
}

func (s *echoService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r.Header.Clone())
	s.mu.Unlock()
	switch r.URL.Path {
	case "/headers":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Api-Key", r.Header.Get("X-Api-Key"))
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header})
	case "/redirect":
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	case "/big":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		_, _ = w.Write(bytes.Repeat([]byte("a"), n))
	default:
		http.NotFound(w, r)
	}
}
