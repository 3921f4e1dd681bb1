package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/examples/services/notes"
	"aileron.dev/aileron/examples/services/testca"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor/serve"
	"aileron.dev/aileron/supervisor/serve/client"
)

// serveEnv is one `aileron serve` daemon with its data directory, tenants
// and fake HTTPS services routed behind real names for every tenant's
// broker.
type serveEnv struct {
	t       *testing.T
	data    string
	cfgPath string
	sock    string
	// tenantTOML is each tenant's [[tenants]] entry, by name.
	tenants map[string]string
	// extra is server configuration added after data_dir and [listen].
	extra      string
	tcp        string // [listen] tcp, tls_cert, ... lines
	echo       *echoService
	notes      *notes.Service
	routes     map[string]string
	caPath     string
	cmd        *exec.Cmd
	stderr     *lockedBuffer
	exited     chan struct{}
	metricsURL string
	tcpAddr    string
}

// serveTenant describes one tenant of a serveEnv.
type serveTenant struct {
	name  string
	token string
	uids  []uint32
	certs []string
	// quota is TOML for [tenants.quota], e.g. "concurrent_runs = 1".
	quota string
}

// slowService answers after ?ms= milliseconds (default 1000), for runs
// that are in flight long enough to be interrupted.
type slowService struct{}

func (slowService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := time.Second
	if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil {
		d = time.Duration(ms) * time.Millisecond
	}
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
	_, _ = w.Write([]byte(`{"slow":true}`))
}

func newServeEnv(t *testing.T, extra string, tenants ...serveTenant) *serveEnv {
	t.Helper()
	data := t.TempDir()
	shareCompiled(t, data)
	// The socket's directory must be reachable by the unprivileged users
	// some tests connect as.
	sockDir, err := os.MkdirTemp("", "aileron-sock-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(sockDir, 0o755))
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	s := &serveEnv{t: t, data: data, sock: filepath.Join(sockDir, "api.sock"), tenants: map[string]string{}, extra: extra,
		echo: &echoService{}, notes: notes.New(notesKey), routes: map[string]string{}}
	ca, err := testca.New()
	require.NoError(t, err)
	echo := http.NewServeMux()
	echo.Handle("/slow", slowService{})
	echo.Handle("/", s.echo)
	for name, h := range map[string]http.Handler{"echo.example.com": echo, "notes.example.com": s.notes} {
		tlsCfg, err := ca.ServerConfig(name)
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: h, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second}
		go srv.ServeTLS(ln, "", "")
		t.Cleanup(func() { srv.Close() })
		s.routes[name+":443"] = ln.Addr().String()
	}
	s.caPath = filepath.Join(data, "ca.pem")
	require.NoError(t, os.WriteFile(s.caPath, ca.PEM, 0o600))
	for _, tn := range tenants {
		s.addTenant(tn)
	}
	s.writeConfig()
	r := s.cli("", "", "serve", "setup", "--config", s.cfgPath)
	require.Equal(t, 0, r.code, r.stderr)
	t.Cleanup(func() {
		s.stop(syscall.SIGTERM)
		assertNoChildren(t)
	})
	return s
}

// addTenant writes the tenant's home (its config.toml routes the fake
// services) and its [[tenants]] entry; writeConfig puts it in the file.
func (s *serveEnv) addTenant(tn serveTenant) {
	home := filepath.Join(s.data, "tenants", tn.name)
	require.NoError(s.t, os.MkdirAll(home, 0o700))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "tenant = %q\n[broker]\nunsafe_allow_loopback = true\nextra_root_cas = [%q]\n[broker.routes]\n", tn.name, s.caPath)
	for k, v := range s.routes {
		fmt.Fprintf(&cfg, "%q = %q\n", k, v)
	}
	require.NoError(s.t, os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg.String()), 0o600))
	var e strings.Builder
	fmt.Fprintf(&e, "\n[[tenants]]\nname = %q\n", tn.name)
	if tn.token != "" {
		fmt.Fprintf(&e, "tokens = [%q]\n", serve.HashToken(tn.token))
	}
	if len(tn.uids) > 0 {
		fmt.Fprintf(&e, "uids = %s\n", strings.ReplaceAll(fmt.Sprint(tn.uids), " ", ", "))
	}
	if len(tn.certs) > 0 {
		fmt.Fprintf(&e, "certs = [%q]\n", strings.Join(tn.certs, `", "`))
	}
	if tn.quota != "" {
		fmt.Fprintf(&e, "[tenants.quota]\n%s\n", tn.quota)
	}
	s.tenants[tn.name] = e.String()
}

func (s *serveEnv) writeConfig() {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir = %q\n[listen]\nunix = %q\nmetrics = \"127.0.0.1:0\"\n%s\n", s.data, s.sock, s.tcp)
	b.WriteString(s.extra + "\n")
	names := make([]string, 0, len(s.tenants))
	for n := range s.tenants {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b.WriteString(s.tenants[n])
	}
	s.cfgPath = filepath.Join(s.data, "serve.toml")
	require.NoError(s.t, os.WriteFile(s.cfgPath, []byte(b.String()), 0o600))
}

// cli runs the aileron CLI, in tenant's home if tenant is set.
func (s *serveEnv) cli(tenant, stdin string, args ...string) result {
	s.t.Helper()
	e := &env{t: s.t, home: filepath.Join(s.data, "tenants", tenant)}
	return e.aileron(stdin, args...)
}

// tenantEnv is an env on tenant's home, for the CLI helpers.
func (s *serveEnv) tenantEnv(tenant string) *env {
	return &env{t: s.t, home: filepath.Join(s.data, "tenants", tenant), echo: s.echo, notes: s.notes}
}

// installAction writes action name into tenant's home and installs it,
// with the connector m it runs.
func (s *serveEnv) installAction(tenant string, m *manifest.Manifest, pkg, name, intent, with string) {
	s.t.Helper()
	e := s.tenantEnv(tenant)
	e.ok("", "connector", "install", "--yes", pkgDirs[pkg])
	e.ok("", "action", "add", e.action(m, name, intent, with))
}

var listeningRE = regexp.MustCompile(`"@message":"listening".*`)

// start starts the daemon and waits until it answers.
func (s *serveEnv) start() {
	s.t.Helper()
	s.stderr = &lockedBuffer{}
	s.cmd = exec.Command(filepath.Join(binDir, "aileron"), "serve", "--config", s.cfgPath)
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = io.Discard
	require.NoError(s.t, s.cmd.Start())
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if strings.Count(s.stderr.String(), `"@message":"listening"`) >= 2+boolInt(s.tcp != "") {
			break
		}
		select {
		case <-s.exited:
			s.t.Fatalf("aileron serve exited: %s", s.stderr.String())
		default:
		}
		require.True(s.t, time.Now().Before(deadline), "aileron serve did not start: %s", s.stderr.String())
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range listeningRE.FindAllString(s.stderr.String(), -1) {
		var l struct {
			Listener string `json:"listener"`
			Address  string `json:"address"`
		}
		require.NoError(s.t, json.Unmarshal([]byte("{"+line), &l))
		switch l.Listener {
		case "metrics":
			s.metricsURL = "http://" + l.Address
		case "tcp":
			s.tcpAddr = l.Address
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stop signals the daemon and waits for it to exit (SIGKILL after 30 s).
func (s *serveEnv) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("aileron serve did not stop on %v: %s", sig, s.stderr.String())
	}
}

// client returns an API client on the unix socket with token.
func (s *serveEnv) client(token string) *client.Client {
	s.t.Helper()
	c, err := client.New(client.Config{Address: "unix://" + s.sock, Token: token})
	require.NoError(s.t, err)
	s.t.Cleanup(c.Close)
	return c
}

// raw sends one HTTP request over the unix socket and returns the status
// and the decoded error body.
func (s *serveEnv) raw(method, path, token, contentType string, body []byte) (int, client.Error) {
	s.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://aileron"+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var e client.Error
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

// metric returns the sum of the samples of a metric whose labels contain
// every one of labels ("k=\"v\"").
func (s *serveEnv) metric(name string, labels ...string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.metricsURL + "/metrics")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			var v float64
			_, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			require.NoError(s.t, err)
			sum += v
		}
	}
	return sum
}

// auditOf reads tenant's audit log.
func (s *serveEnv) auditOf(tenant string) []map[string]any {
	return s.tenantEnv(tenant).auditRecords()
}

// whoamiWith is the input of the hostile connector's request intent that
// sends tenant's name and the credential placeholder to the echo service.
func whoamiWith(tenant string) string {
	return fmt.Sprintf(`{ method = "GET", url = "https://echo.example.com/headers", headers = { X-Tenant = %q, X-Api-Key = "{{aileron.credential}}" } }`, tenant)
}

// TestServe_TwoTenants runs the same action for two tenants at once, each
// with its own credential: the service sees each tenant's credential only
// on that tenant's requests, each audit log holds only its tenant's
// records, and neither tenant can tell the other's actions or credentials
// from ones that do not exist.
func TestServe_TwoTenants(t *testing.T) {
	const keyA, keyB = "sk-tenant-a-7f3e91d2c4", "sk-tenant-b-0b8a55e6f1"
	s := newServeEnv(t, "[pool]\nsize = 2", serveTenant{name: "a", token: "token-of-tenant-a-1c9e4f"}, serveTenant{name: "b", token: "token-of-tenant-b-77d2a0"})
	hostile := packages["hostile"]
	for tenant, key := range map[string]string{"a": keyA, "b": keyB} {
		s.installAction(tenant, hostile, "hostile", "whoami", "request", whoamiWith(tenant))
		s.tenantEnv(tenant).ok(key+"\n", "vault", "set", "key", "--kind", "api_key", "--connector", hostile.Connector.Name.String())
	}
	s.installAction("a", hostile, "hostile", "only-in-a", "request", whoamiWith("a"))
	// Both tenants have the notes action; only a will have a credential
	// for the notes connector.
	notesM := packages["notes"]
	s.installAction("a", notesM, "notes", "list", "list_notes", "{}")
	s.installAction("b", notesM, "notes", "list", "list_notes", "{}")
	s.start()
	ca, cb := s.client("token-of-tenant-a-1c9e4f"), s.client("token-of-tenant-b-77d2a0")
	// One run first: it compiles the module into the shared store (runs
	// that find it missing at once would each compile it).
	res, err := ca.Run(context.Background(), "whoami", nil)
	require.NoError(t, err)
	runIDs := map[string][]string{"a": {res.RunID}}

	const perTenant = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < perTenant; i++ {
		for tenant, c := range map[string]*client.Client{"a": ca, "b": cb} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := c.Run(context.Background(), "whoami", nil)
				if !assertNoErr(t, err) {
					return
				}
				assert.NotContains(t, string(res.Output), keyA)
				assert.NotContains(t, string(res.Output), keyB)
				mu.Lock()
				runIDs[tenant] = append(runIDs[tenant], res.RunID)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	require.Len(t, runIDs["a"], perTenant+1)
	require.Len(t, runIDs["b"], perTenant)

	// The service saw each tenant's own credential on its requests, and
	// nothing else.
	count := map[string]int{}
	for _, h := range s.echo.Seen() {
		want := map[string]string{"a": keyA, "b": keyB}[h.Get("X-Tenant")]
		require.NotEmpty(t, want, "request from no known tenant: %v", h)
		require.Equal(t, want, h.Get("X-Api-Key"), "tenant %s's request carried another credential", h.Get("X-Tenant"))
		count[h.Get("X-Tenant")]++
	}
	require.Equal(t, map[string]int{"a": perTenant + 1, "b": perTenant}, count)

	// Each audit log has its tenant's records only, for its own runs.
	for tenant, other := range map[string]string{"a": "b", "b": "a"} {
		recs := s.auditOf(tenant)
		require.NotEmpty(t, recs)
		for _, r := range recs {
			require.Equal(t, tenant, r["tenant"], "record in %s's audit log: %v", tenant, r)
			require.Equal(t, "serve", r["via"], "%v", r)
			require.Contains(t, runIDs[tenant], r["run_id"], "record of another run in %s's log: %v", tenant, r)
			require.NotContains(t, runIDs[other], r["run_id"])
		}
		// Audit verification works on a tenant's log as on any other.
		s.tenantEnv(tenant).ok("", "audit", "verify")
	}

	// Tenant b naming tenant a's action learns exactly what naming an
	// action that exists nowhere tells it.
	_, errA := cb.Run(context.Background(), "only-in-a", nil)
	_, errNone := cb.Run(context.Background(), "only-nowhere", nil)
	require.Equal(t, errorOf(t, errNone), errorOf(t, errA, "only-in-a", "only-nowhere"))
	require.Equal(t, &client.Error{Status: 404, Code: "action_not_found", Message: `action "only-nowhere" is not installed`}, errorOf(t, errNone))

	// Likewise for credentials: b's notes run fails the same way before
	// and after a binds a notes credential, and a's run uses it.
	_, before := cb.Run(context.Background(), "list", nil)
	s.tenantEnv("a").ok(notesKey+"\n", "vault", "set", "notes-key", "--kind", "api_key", "--connector", notesM.Connector.Name.String())
	_, after := cb.Run(context.Background(), "list", nil)
	require.Equal(t, errorOf(t, before), errorOf(t, after))
	require.Contains(t, after.Error(), "none is bound to it")
	_, err = ca.Run(context.Background(), "list", nil)
	require.NoError(t, err)

	// Tenants list their own actions only.
	acts, err := cb.Actions(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"list", "whoami"}, actionNames(acts))
	acts, err = ca.Actions(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"list", "only-in-a", "whoami"}, actionNames(acts))

	// The CLI client prints what a local run prints, and exits the same
	// way, for a result and for a failed step.
	sockEnv := "AILERON_SERVER=unix://" + s.sock
	local := s.tenantEnv("a").aileron("", "run", "whoami")
	remote := runWithEnv(t, []string{sockEnv, "AILERON_TOKEN=token-of-tenant-a-1c9e4f"}, "run", "whoami")
	require.Equal(t, 0, remote.code, remote.stderr)
	require.Equal(t, normalizeEcho(local.stdout), normalizeEcho(remote.stdout))
	s.installAction("a", hostile, "hostile", "crash", "exit_code", "{}")
	local = s.tenantEnv("a").aileron("", "run", "crash")
	remote = runWithEnv(t, []string{sockEnv, "AILERON_TOKEN=token-of-tenant-a-1c9e4f"}, "run", "crash")
	require.Equal(t, 1, local.code)
	require.Equal(t, local.code, remote.code)
	// (A local run also warns about the tenant's unsafe_allow_loopback;
	// the server logs that instead.)
	require.Equal(t, lastLine(local.stderr), remote.stderr)
	require.Equal(t, local.stdout, remote.stdout)

	// Metrics count the runs by tenant.
	require.Equal(t, float64(perTenant), s.metric("aileron_runs_total", `tenant="b"`, `outcome="ok"`))
	require.Equal(t, float64(2), s.metric("aileron_runs_total", `tenant="b"`, `outcome="refused"`))
}

// normalizeEcho drops the parts of an echo answer that differ between two
// runs (dates, lengths).
func normalizeEcho(s string) string {
	return regexp.MustCompile(`(?m)^.*"(Date|Content-Length)".*$\n(.*\n)?`).ReplaceAllString(s, "")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return lines[len(lines)-1] + "\n"
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("run: %v", err)
		return false
	}
	return true
}

// errorOf returns err as a *client.Error, with old replaced by new in its
// message.
func errorOf(t *testing.T, err error, oldNew ...string) *client.Error {
	t.Helper()
	require.Error(t, err)
	ce, ok := err.(*client.Error)
	require.True(t, ok, "%T %v", err, err)
	out := *ce
	for i := 0; i+1 < len(oldNew); i += 2 {
		out.Message = strings.ReplaceAll(out.Message, oldNew[i], oldNew[i+1])
	}
	return &out
}

func actionNames(as []client.ActionInfo) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}

// runWithEnv runs the aileron CLI with no AILERON_HOME and extra
// environment.
func runWithEnv(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "aileron"), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AILERON_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "AILERON_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("aileron %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// TestServe_Load sends 1,000 runs from 8 concurrent clients of two tenants
// through a warm pool, while a third tenant floods the server far past its
// quota in every other block of runs. No run is lost or duplicated, no
// process is left over, and the flood does not raise the others' p99 by
// more than 2x: its requests are refused (429) before they cost a worker.
func TestServe_Load(t *testing.T) {
	total := 1000
	if testing.Short() {
		total = 160
	}
	const clients, blocks = 8, 8
	tokens := map[string]string{"a": "load-token-a-4f1d9c2e", "b": "load-token-b-83ac0b71", "f": "load-token-f-c5e2d8a4"}
	s := newServeEnv(t, "[pool]\nsize = 8",
		serveTenant{name: "a", token: tokens["a"]}, serveTenant{name: "b", token: tokens["b"]},
		serveTenant{name: "f", token: tokens["f"], quota: "concurrent_runs = 1\nruns_per_minute = 6"})
	noop := packages["noop"]
	for _, tn := range []string{"a", "b", "f"} {
		s.installAction(tn, noop, "noop", "noop", "noop", "{}")
	}
	s.start()
	cs := map[string]*client.Client{}
	for tn, tok := range tokens {
		cs[tn] = s.client(tok)
	}
	// Warm up: compile the module, start the brokers, fill the pool.
	for _, tn := range []string{"a", "b"} {
		_, err := cs[tn].Run(context.Background(), "noop", nil)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return s.metric("aileron_pool_ready") == 8 }, 20*time.Second, 20*time.Millisecond)

	var (
		mu        sync.Mutex
		ids       = map[string]string{} // run id -> tenant
		lat       [2][]time.Duration    // by flood off (0) / on (1)
		errs      []error
		floodCode = map[string]int{}
	)
	per := total / blocks
	start := time.Now()
	for blk := 0; blk < blocks; blk++ {
		flooding := blk%2 == 1
		stop := make(chan struct{})
		var fwg sync.WaitGroup
		if flooding {
			for g := 0; g < 4; g++ {
				fwg.Add(1)
				go func() {
					defer fwg.Done()
					floodUntil(t, stop, s.sock, tokens["f"], func(code string) {
						mu.Lock()
						floodCode[code]++
						mu.Unlock()
					})
				}()
			}
		}
		jobs := make(chan struct{}, per)
		for i := 0; i < per; i++ {
			jobs <- struct{}{}
		}
		close(jobs)
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			tn := []string{"a", "b"}[c%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					t0 := time.Now()
					res, err := cs[tn].Run(context.Background(), "noop", nil)
					d := time.Since(t0)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						if prev, dup := ids[res.RunID]; dup {
							errs = append(errs, fmt.Errorf("run id %s returned twice (%s, %s)", res.RunID, prev, tn))
						}
						ids[res.RunID] = tn
						lat[boolInt(flooding)] = append(lat[boolInt(flooding)], d)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(stop)
		fwg.Wait()
	}
	elapsed := time.Since(start)
	require.Empty(t, errs)
	require.Len(t, ids, per*blocks)
	all := append(append([]time.Duration(nil), lat[0]...), lat[1]...)
	for _, d := range [][]time.Duration{lat[0], lat[1], all} {
		slices.Sort(d)
	}
	t.Logf("%d runs, %d clients, 2 tenants, pool 8: %.0f runs/s; p50 %.1f ms, p99 %.1f ms",
		len(all), clients, float64(len(all))/elapsed.Seconds(), ms(pct(all, .5)), ms(pct(all, .99)))
	t.Logf("without flood: p50 %.1f ms, p99 %.1f ms (n=%d); with tenant f flooding: p50 %.1f ms, p99 %.1f ms (n=%d)",
		ms(pct(lat[0], .5)), ms(pct(lat[0], .99)), len(lat[0]), ms(pct(lat[1], .5)), ms(pct(lat[1], .99)), len(lat[1]))
	t.Logf("flooding tenant's answers: %v", floodCode)
	require.Greater(t, floodCode["quota_exceeded"], 100, "the flood was not past the quota: %v", floodCode)
	require.LessOrEqual(t, float64(floodCode["ok"]), 6+elapsed.Minutes()*6+1, "tenant f ran more than its quota: %v", floodCode)
	require.LessOrEqual(t, pct(lat[1], .99), 2*pct(lat[0], .99), "the flood raised the others' p99 more than 2x")

	// Every run is in its tenant's audit log once.
	require.Eventually(t, func() bool {
		n := 0
		for _, tn := range []string{"a", "b"} {
			for _, r := range s.auditOf(tn) {
				if r["kind"] == "run" && r["code"] == "ok" {
					n++
				}
			}
		}
		return n == len(ids)+2
	}, 10*time.Second, 50*time.Millisecond)
	for _, tn := range []string{"a", "b"} {
		for _, r := range s.auditOf(tn) {
			if r["kind"] == "run" && ids[r["run_id"].(string)] != "" {
				require.Equal(t, tn, ids[r["run_id"].(string)])
			}
		}
	}

	// No process left over: the pool's ready workers and one broker per
	// tenant that ran.
	require.Eventually(t, func() bool {
		workers, brokers := procCounts()
		return workers == 8 && brokers == 3
	}, 10*time.Second, 50*time.Millisecond, "%v", children())
}

// floodUntil sends run requests for the noop action with token over one
// kept-alive connection, about one every 2 ms, until stop closes, and
// reports each answer's code. It writes the request bytes itself: the
// flood should cost the server, not this (race-instrumented) client.
func floodUntil(t *testing.T, stop chan struct{}, sock, token string, got func(code string)) {
	body := `{"action":"noop"}`
	req := []byte(fmt.Sprintf("POST /v1/runs HTTP/1.1\r\nHost: aileron\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", token, len(body), body))
	var conn net.Conn
	var rd *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		if conn == nil {
			c, err := net.Dial("unix", sock)
			if err != nil {
				got("dial: " + err.Error())
				continue
			}
			conn, rd = c, bufio.NewReader(c)
		}
		if _, err := conn.Write(req); err != nil {
			conn.Close()
			conn = nil
			continue
		}
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			conn.Close()
			conn = nil
			continue
		}
		var e client.Error
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			got("ok")
		} else if json.Unmarshal(b, &e) == nil {
			got(e.Code)
		}
	}
}

// withHostile installs the hostile connector for tenant with a credential
// bound to it, and actions name -> {intent, with}.
func (s *serveEnv) withHostile(tenant string, actions map[string][2]string) {
	s.t.Helper()
	m := packages["hostile"]
	e := s.tenantEnv(tenant)
	e.ok("", "connector", "install", "--yes", pkgDirs["hostile"])
	e.ok("sk-"+tenant+"-3b9d0f6a2c\n", "vault", "set", "key", "--kind", "api_key", "--connector", m.Connector.Name.String())
	for name, a := range actions {
		e.ok("", "action", "add", e.action(m, name, a[0], a[1]))
	}
}

// waitInFlight waits until tenant has n runs in flight.
func (s *serveEnv) waitInFlight(tenant string, n int) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		return s.metric("aileron_runs_in_flight", `tenant="`+tenant+`"`) == float64(n)
	}, 30*time.Second, 10*time.Millisecond)
}

// runAsync starts a run and returns a channel with its outcome.
func runAsync(c *client.Client, action string) chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Run(context.Background(), action, nil)
		ch <- err
	}()
	return ch
}

func waitErr(t *testing.T, ch chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(within):
		t.Fatalf("run did not end within %s", within)
		return nil
	}
}

func (s *serveEnv) waitExit(within time.Duration) int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(within):
		s.t.Fatalf("aileron serve did not exit within %s: %s", within, s.stderr.String())
	}
	return s.cmd.ProcessState.ExitCode()
}

const slowWith = `{ url = "https://echo.example.com/slow?ms=1500" }`

// TestServe_SIGTERMDrains: a run in flight when SIGTERM arrives finishes
// and is answered; new connections are refused; the server exits 0 with
// nothing left behind.
func TestServe_SIGTERMDrains(t *testing.T) {
	s := newServeEnv(t, "[pool]\nsize = 1", serveTenant{name: "a", token: "drain-token-a-0f3c9b1e"})
	s.withHostile("a", map[string][2]string{"slow": {"fetch", slowWith}})
	s.start()
	c := s.client("drain-token-a-0f3c9b1e")
	run := runAsync(c, "slow")
	s.waitInFlight("a", 1)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		c, err := net.Dial("unix", s.sock)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "the server still accepts connections while draining")
	resp, err := http.Get(s.metricsURL + "/readyz")
	require.NoError(t, err, "health checks reach the server while it drains")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.JSONEq(t, `{"status":"draining"}`, string(b))
	require.NoError(t, waitErr(t, run, 20*time.Second), "the run in flight was not drained")
	require.Equal(t, 0, s.waitExit(20*time.Second), s.stderr.String())
	require.Contains(t, s.stderr.String(), `"@message":"drained"`)
	assertNoChildren(t)
}

// TestServe_DrainDeadlineCancels: past limits.drain_timeout the runs in
// flight are cancelled (their workers killed) and told why.
func TestServe_DrainDeadlineCancels(t *testing.T) {
	s := newServeEnv(t, "[pool]\nsize = 1\n[limits]\ndrain_timeout = \"1s\"", serveTenant{name: "a", token: "drain-token-a-0f3c9b1e"})
	s.withHostile("a", map[string][2]string{"sleep": {"sleep", "{}"}})
	s.start()
	c := s.client("drain-token-a-0f3c9b1e")

	// A caller that goes away cancels its run: the worker is killed.
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { _, err := c.Run(ctx, "sleep", nil); gone <- err }()
	s.waitInFlight("a", 1)
	cancel()
	require.ErrorIs(t, waitErr(t, gone, 10*time.Second), context.Canceled)
	s.waitInFlight("a", 0)
	require.Eventually(t, func() bool { return s.metric("aileron_runs_total", `outcome="cancelled"`) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { w, _ := procCounts(); return w <= 1 }, 5*time.Second, 10*time.Millisecond,
		"the cancelled run's worker outlived it (the pool keeps 1): %v", children())

	run := runAsync(c, "sleep")
	s.waitInFlight("a", 1)
	require.Eventually(t, hasWorker, 5*time.Second, 10*time.Millisecond, "%v", children())
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	err := waitErr(t, run, 15*time.Second)
	require.Equal(t, &client.Error{Status: 503, Code: "shutting_down", Message: "the server is shutting down: the run was cancelled and its workers killed"}, errorOf(t, err))
	require.Equal(t, 0, s.waitExit(15*time.Second), s.stderr.String())
	assertNoChildren(t)
}

// TestServe_SIGKILLLeavesNothing: a server killed with SIGKILL, with a run
// in flight, a broker and a warm pool, leaves no process behind: every
// child dies with it (Pdeathsig).
func TestServe_SIGKILLLeavesNothing(t *testing.T) {
	s := newServeEnv(t, "[pool]\nsize = 2", serveTenant{name: "a", token: "kill-token-a-55e0c7d1"})
	s.withHostile("a", map[string][2]string{"sleep": {"sleep", "{}"}})
	s.start()
	c := s.client("kill-token-a-55e0c7d1")
	run := runAsync(c, "sleep")
	s.waitInFlight("a", 1)
	require.Eventually(t, func() bool {
		workers, brokers := procCounts()
		return workers == 3 && brokers == 1 // the run's worker and the pool's two
	}, 20*time.Second, 10*time.Millisecond, "%v", children())
	require.NoError(t, s.cmd.Process.Kill())
	s.waitExit(10 * time.Second)
	require.Error(t, waitErr(t, run, 10*time.Second))
	assertNoChildren(t)
}

// TestServe_HostileClients: malformed requests, oversized bodies, slow
// clients, too many connections and unauthenticated calls each get a clear
// answer, and a run in flight meanwhile finishes undisturbed.
func TestServe_HostileClients(t *testing.T) {
	const tok = "hostile-clients-token-9e2b"
	s := newServeEnv(t, "[pool]\nsize = 2\n[limits]\nmax_body_bytes = 1024\nread_header_timeout = \"1s\"\nmax_connections = 16",
		serveTenant{name: "a", token: tok})
	s.withHostile("a", map[string][2]string{"slow": {"fetch", `{ url = "https://echo.example.com/slow?ms=4000" }`}})
	s.installAction("a", packages["noop"], "noop", "noop", "noop", "{}")
	s.start()
	c := s.client(tok)
	_, err := c.Run(context.Background(), "noop", nil) // compile, start the broker
	require.NoError(t, err)
	inFlight := runAsync(c, "slow")
	s.waitInFlight("a", 1)

	json := "application/json"
	for _, tt := range []struct {
		name, method, path, token, ctype, body string
		status                                 int
		want                                   client.Error
	}{
		{"no credentials", "POST", "/v1/runs", "", json, `{"action":"noop"}`, 401, client.Error{Code: "unauthenticated", Message: serve.ErrUnauthenticated.Error()}},
		{"wrong token", "POST", "/v1/runs", "not-the-token-00000", json, `{"action":"noop"}`, 401, client.Error{Code: "unauthenticated", Message: "the bearer token is not valid"}},
		{"health needs no credentials", "GET", "/healthz", "", "", "", 200, client.Error{}},
		{"malformed json", "POST", "/v1/runs", tok, json, `{"action":`, 400, client.Error{Code: "bad_request", Message: "invalid request body: unexpected EOF"}},
		{"unknown field", "POST", "/v1/runs", tok, json, `{"actoin":"noop"}`, 400, client.Error{Code: "bad_request", Message: `invalid request body: json: unknown field "actoin"`}},
		{"two documents", "POST", "/v1/runs", tok, json, `{"action":"noop"}{"action":"noop"}`, 400, client.Error{Code: "bad_request", Message: "invalid request body: more than one JSON value"}},
		{"no action", "POST", "/v1/runs", tok, json, `{"inputs":{}}`, 400, client.Error{Code: "bad_request", Message: `invalid request body: "action" is required: the name of an installed action`}},
		{"path for an action", "POST", "/v1/runs", tok, json, `{"action":"../b/actions/x"}`, 400, client.Error{Code: "bad_request", Message: `invalid request body: action "../b/actions/x" is not an action name (a-z, 0-9 and '-', starting with a letter)`}},
		{"wrong content type", "POST", "/v1/runs", tok, "text/plain", `{"action":"noop"}`, 415, client.Error{Code: "unsupported_media_type", Message: "send the request body as Content-Type: application/json"}},
		{"oversized body", "POST", "/v1/runs", tok, json, `{"action":"noop","inputs":{"x":"` + strings.Repeat("a", 2000) + `"}}`, 413, client.Error{Code: "request_too_large", Message: "request body larger than 1024 bytes"}},
		{"wrong method", "GET", "/v1/runs", tok, "", "", 405, client.Error{Code: "method_not_allowed", Message: "GET /v1/runs: use POST"}},
		{"no such endpoint", "GET", "/v2/anything", tok, "", "", 404, client.Error{Code: "not_found", Message: "no such endpoint /v2/anything: the API is POST /v1/runs, GET /v1/actions, GET /healthz, GET /readyz"}},
		{"bad input", "POST", "/v1/runs", tok, json, `{"action":"noop","inputs":{"x":1}}`, 400, client.Error{Code: "cannot_run"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, e := s.raw(tt.method, tt.path, tt.token, tt.ctype, []byte(tt.body))
			require.Equal(t, tt.status, status)
			if tt.want.Code == "cannot_run" {
				require.Equal(t, tt.want.Code, e.Code)
				require.NotEmpty(t, e.Message)
				return
			}
			if tt.status != 200 {
				require.Equal(t, tt.want, e)
			}
		})
	}

	// Slowloris: connections that send half a header and stall are cut
	// off after read_header_timeout, and others are served meanwhile.
	var slow []net.Conn
	for i := 0; i < 10; i++ {
		conn, err := net.Dial("unix", s.sock)
		require.NoError(t, err)
		_, err = conn.Write([]byte("POST /v1/runs HTTP/1.1\r\nHost: aileron\r\nX-Slow: "))
		require.NoError(t, err)
		slow = append(slow, conn)
	}
	_, err = c.Run(context.Background(), "noop", nil)
	require.NoError(t, err, "a slow client delayed another")
	for _, conn := range slow {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := io.ReadAll(conn) // the server closes it (after a 408, maybe)
		require.NoError(t, err, "the server did not cut a slow client off")
		conn.Close()
	}

	// Past max_connections, connections are closed at once.
	var idle []net.Conn
	for i := 0; i < 20; i++ {
		conn, err := net.Dial("unix", s.sock)
		require.NoError(t, err)
		idle = append(idle, conn)
	}
	require.Eventually(t, func() bool {
		return s.metric("aileron_connections_rejected_total", `listener="unix"`) >= 4
	}, 5*time.Second, 20*time.Millisecond)
	for _, conn := range idle {
		conn.Close()
	}
	require.Greater(t, s.metric("aileron_auth_failures_total", `listener="unix"`), 1.0)

	// The run that was in flight all along finished normally.
	require.NoError(t, waitErr(t, inFlight, 20*time.Second))
	_, err = c.Run(context.Background(), "noop", nil)
	require.NoError(t, err)
}

// testPKI makes a CA and certificates signed by it, written as PEM files.
type testPKI struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CAPath is the CA certificate's file.
	CAPath string
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &testPKI{t: t, dir: t.TempDir(), cert: cert, key: key}
	p.CAPath = p.write(name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	require.NoError(p.t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return path
}

// issue makes a leaf certificate for a server (on 127.0.0.1) or a client,
// and returns its certificate and key files and the parsed certificate.
func (p *testPKI) issue(name string, server bool) (certPath, keyPath string, cert *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(p.t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	require.NoError(p.t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(p.t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(p.t, err)
	return p.write(name+".pem", "CERTIFICATE", der), p.write(name+"-key.pem", "EC PRIVATE KEY", kder), cert
}

// TestServe_MutualTLS: over TCP a client certificate from the configured
// CA is required; its public key picks the tenant, or a token does.
func TestServe_MutualTLS(t *testing.T) {
	pki := newTestPKI(t, "aileron-test")
	srvCert, srvKey, _ := pki.issue("server", true)
	aCert, aKey, aX509 := pki.issue("client-a", false)
	xCert, xKey, _ := pki.issue("client-unmapped", false)
	other := newTestPKI(t, "other")
	oCert, oKey, _ := other.issue("client-other-ca", false)

	// The CLI prints the fingerprint the configuration takes.
	fp := runWithEnv(t, nil, "serve", "fingerprint", aCert)
	require.Equal(t, 0, fp.code, fp.stderr)
	require.Equal(t, serve.SPKIFingerprint(aX509)+"\n", fp.stdout)

	s := newServeEnv(t, "[pool]\nsize = 1", serveTenant{name: "a", certs: []string{serve.SPKIFingerprint(aX509)}}, serveTenant{name: "b", token: "tls-token-of-b-6d0e2a"})
	s.tcp = fmt.Sprintf("tcp = \"127.0.0.1:0\"\ntls_cert = %q\ntls_key = %q\nclient_ca = %q", srvCert, srvKey, pki.CAPath)
	s.writeConfig()
	for _, tn := range []string{"a", "b"} {
		s.installAction(tn, packages["noop"], "noop", "noop", "noop", "{}")
	}
	s.start()
	addr := "https://" + s.tcpAddr
	tlsClient := func(cert, key, token string) *client.Client {
		c, err := client.New(client.Config{Address: addr, CertFile: cert, KeyFile: key, CAFile: pki.CAPath, Token: token})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	ctx := context.Background()
	_, err := tlsClient(aCert, aKey, "").Run(ctx, "noop", nil)
	require.NoError(t, err, "a mapped certificate")
	_, err = tlsClient(xCert, xKey, "").Run(ctx, "noop", nil)
	require.Equal(t, &client.Error{Status: 401, Code: "unauthenticated", Message: serve.ErrUnauthenticated.Error()}, errorOf(t, err))
	_, err = tlsClient(xCert, xKey, "tls-token-of-b-6d0e2a").Run(ctx, "noop", nil)
	require.NoError(t, err, "an unmapped certificate with a token")
	_, err = tlsClient(aCert, aKey, "tls-token-of-b-6d0e2a").Run(ctx, "noop", nil)
	require.Equal(t, &client.Error{Status: 401, Code: "unauthenticated", Message: "the bearer token and the connection's identity belong to different tenants"}, errorOf(t, err))
	_, err = tlsClient(oCert, oKey, "tls-token-of-b-6d0e2a").Run(ctx, "noop", nil)
	require.ErrorContains(t, err, "tls", "a certificate from another CA")

	// The CLI over mutual TLS.
	r := runWithEnv(t, []string{"AILERON_CLIENT_CERT=" + aCert, "AILERON_CLIENT_KEY=" + aKey, "AILERON_SERVER_CA=" + pki.CAPath}, "run", "--server", addr, "noop")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "{\n  \"ok\": true\n}\n", r.stdout)
}

// TestServe_PeerUID: on the unix socket the peer's uid picks the tenant;
// a user the server does not map is refused, and a user outside the
// socket's group cannot connect at all.
func TestServe_PeerUID(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("AILERON_STRICT_TESTS") == "1" {
			t.Fatal("AILERON_STRICT_TESTS=1, not skipping: connecting as other users needs root")
		}
		t.Skip("connecting as other users needs root")
	}
	s := newServeEnv(t, "[pool]\nsize = 1", serveTenant{name: "u", uids: []uint32{65533}})
	// Group 65533 may connect (mode 0660 by default).
	cfg, err := os.ReadFile(s.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(s.cfgPath, bytes.Replace(cfg, []byte("[listen]\n"), []byte("[listen]\nunix_group = \"65533\"\n"), 1), 0o600))
	s.installAction("u", packages["noop"], "noop", "noop", "noop", "{}")
	s.start()
	fi, err := os.Stat(s.sock)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o660), fi.Mode().Perm())

	// A copy of the CLI other users can run.
	dir, err := os.MkdirTemp("", "aileron-uid-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "aileron")
	b, err := os.ReadFile(filepath.Join(binDir, "aileron"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, b, 0o755))
	as := func(uid, gid uint32) result {
		cmd := exec.Command(bin, "run", "--server", "unix://"+s.sock, "noop")
		cmd.Env = []string{"HOME=/", "AILERON_HOME=/nonexistent"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return result{out.String(), errb.String(), code}
	}
	r := as(65533, 65533)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "{\n  \"ok\": true\n}\n", r.stdout)
	r = as(65532, 65533)
	require.Equal(t, 1, r.code)
	require.Equal(t, "aileron: "+serve.ErrUnauthenticated.Error()+"\n", r.stderr)
	r = as(65531, 65531)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "permission denied")
}

// TestServe_QuotasAndAdmission: a tenant past its concurrency quota gets
// 429, the server past its admission cap sheds with 503, and a tenant that
// spends its egress quota is refused by its broker; another tenant is
// unaffected by any of it.
func TestServe_QuotasAndAdmission(t *testing.T) {
	s := newServeEnv(t, "[pool]\nsize = 2\n[limits]\nmax_concurrent_runs = 2",
		serveTenant{name: "q", token: "quota-token-q-8c1f5e", quota: "concurrent_runs = 1\negress_requests_per_minute = 3"},
		serveTenant{name: "r", token: "quota-token-r-2a7d9b"})
	acts := map[string][2]string{
		"slow":  {"fetch", `{ url = "https://echo.example.com/slow?ms=1500" }`},
		"flood": {"flood", `{ url = "https://echo.example.com/headers", n = 3 }`},
	}
	s.withHostile("q", acts)
	s.withHostile("r", acts)
	s.start()
	cq, cr := s.client("quota-token-q-8c1f5e"), s.client("quota-token-r-2a7d9b")
	ctx := context.Background()

	q1 := runAsync(cq, "slow")
	s.waitInFlight("q", 1)
	_, err := cq.Run(ctx, "slow", nil)
	require.Equal(t, &client.Error{Status: 429, Code: "quota_exceeded", Message: "tenant q is running its maximum of 1 concurrent runs; retry when one finishes"}, errorOf(t, err))
	r1 := runAsync(cr, "slow")
	s.waitInFlight("r", 1)
	_, err = cr.Run(ctx, "slow", nil)
	require.Equal(t, &client.Error{Status: 503, Code: "overloaded", Message: "the server is running its maximum of 2 runs; retry shortly"}, errorOf(t, err))
	require.NoError(t, waitErr(t, q1, 20*time.Second))
	require.NoError(t, waitErr(t, r1, 20*time.Second))

	// q has 2 egress requests left this minute: the flood's third is
	// refused by q's broker. r floods freely.
	_, err = cq.Run(ctx, "flood", nil)
	ce := errorOf(t, err)
	require.Equal(t, "egress_quota_exceeded", ce.Code, "%+v", ce)
	require.Equal(t, "egress quota of 3 requests per minute of tenant q is spent; retry later", ce.Message)
	// A failed run's answer names it, as it is in the tenant's audit log.
	require.Regexp(t, `^[0-9a-f-]{8,}$`, ce.RunID)
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(s.data, "tenants", "q", "audit.jsonl"))
		return bytes.Contains(b, []byte(`"run_id":"`+ce.RunID+`"`))
	}, 10*time.Second, 20*time.Millisecond)
	_, err = cr.Run(ctx, "flood", nil)
	require.NoError(t, err)

	require.Equal(t, 1.0, s.metric("aileron_quota_rejections_total", `tenant="q"`, `quota="concurrent_runs"`))
	require.Equal(t, 1.0, s.metric("aileron_admission_rejections_total", `reason="overloaded"`))
	require.Equal(t, 1.0, s.metric("aileron_egress_denials_total", `tenant="q"`, `reason="egress_quota_exceeded"`))
	require.Equal(t, 0.0, s.metric("aileron_egress_denials_total", `tenant="r"`))
	require.Equal(t, 1.0, s.metric("aileron_runs_total", `tenant="q"`, `outcome="step_failed"`))
}

// TestServe_Reload: SIGHUP adds and removes tenants and changes quotas; a
// configuration with an error is refused and the old one stays.
func TestServe_Reload(t *testing.T) {
	s := newServeEnv(t, "[pool]\nsize = 1", serveTenant{name: "a", token: "reload-token-a-1e8f3c"})
	s.installAction("a", packages["noop"], "noop", "noop", "noop", "{}")
	s.start()
	ca := s.client("reload-token-a-1e8f3c")
	_, err := ca.Run(context.Background(), "noop", nil)
	require.NoError(t, err)

	// A tenant whose config.toml is broken refuses the reload and leaves
	// the unchanged tenants' supervisors alone (they are reused, not
	// rebuilt, and must not be closed with what the reload built).
	s.addTenant(serveTenant{name: "b", token: "reload-token-b-5d21aa"})
	f, err := os.OpenFile(filepath.Join(s.data, "tenants", "b", "config.toml"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("[limits]\ndeadline = \"soon\"\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	s.writeConfig()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(s.stderr.String(), "reload refused")
	}, 10*time.Second, 20*time.Millisecond, s.stderr.String())
	require.Contains(t, s.stderr.String(), "limits.deadline")
	_, err = ca.Run(context.Background(), "noop", nil)
	require.NoError(t, err, "tenant a after a refused reload")
	_, err = s.client("reload-token-b-5d21aa").Run(context.Background(), "noop", nil)
	require.Equal(t, 401, errorOf(t, err).Status, "b was not added")
	delete(s.tenants, "b")

	// Add c, remove a.
	delete(s.tenants, "a")
	s.addTenant(serveTenant{name: "c", token: "reload-token-c-94b0d7", quota: "runs_per_minute = 1"})
	s.writeConfig()
	r := s.cli("", "", "serve", "setup", "--config", s.cfgPath)
	require.Equal(t, 0, r.code, r.stderr)
	s.installAction("c", packages["noop"], "noop", "noop", "noop", "{}")
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	cc := s.client("reload-token-c-94b0d7")
	require.Eventually(t, func() bool {
		_, err := cc.Run(context.Background(), "noop", nil)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, s.stderr.String())
	_, err = cc.Run(context.Background(), "noop", nil)
	require.Equal(t, "quota_exceeded", errorOf(t, err).Code, "the new tenant's quota")
	_, err = ca.Run(context.Background(), "noop", nil)
	require.Equal(t, &client.Error{Status: 401, Code: "unauthenticated", Message: "the bearer token is not valid"}, errorOf(t, err))

	// A broken configuration changes nothing.
	cfg, err := os.ReadFile(s.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(s.cfgPath, append([]byte("bogus = 1\n"), cfg...), 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(s.stderr.String(), `serve.toml:1:1: unknown key bogus`)
	}, 10*time.Second, 20*time.Millisecond, s.stderr.String())
	require.Contains(t, s.stderr.String(), "reload refused; the previous configuration stays in force")
	_, err = cc.Run(context.Background(), "noop", nil)
	require.Equal(t, "quota_exceeded", errorOf(t, err).Code)
}

// TestServe_StrictIsolation: the server refuses to start when an isolation
// layer is missing, unless the configuration says relaxed, and then it
// says so loudly.
func TestServe_StrictIsolation(t *testing.T) {
	s := newServeEnv(t, "[pool]\nsize = 1\n[isolation]\nunsafe_disable = [\"seccomp\"]", serveTenant{name: "a", token: "strict-token-a-7a2c0e"})
	r := s.cli("", "", "serve", "--config", s.cfgPath)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "aileron: strict isolation: layers unavailable: seccomp (disabled by isolation.unsafe_disable in config.toml); fix the host (aileron doctor), or set isolation.mode = \"relaxed\" to run without them\n")

	s.extra = "[pool]\nsize = 1\n[isolation]\nmode = \"relaxed\"\nunsafe_disable = [\"seccomp\"]"
	s.writeConfig()
	s.installAction("a", packages["noop"], "noop", "noop", "noop", "{}")
	s.start()
	require.Contains(t, s.stderr.String(), `"@message":"RELAXED ISOLATION: workers will run without an isolation layer"`)
	res, err := s.client("strict-token-a-7a2c0e").Run(context.Background(), "noop", nil)
	require.NoError(t, err)
	require.NotContains(t, res.Isolation, "seccomp")
	// The run's record is written as its workers go, after the answer.
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(s.data, "tenants", "a", "audit.jsonl"))
		return bytes.Contains(b, []byte(`"isolation":"relaxed"`))
	}, 10*time.Second, 20*time.Millisecond)

	// A configuration error names the line and column.
	require.NoError(t, os.WriteFile(s.cfgPath, []byte("data_dir = \"/x\"\n[listen]\nunix = \"/x.sock\"\nport = 1\n"), 0o600))
	r = s.cli("", "", "serve", "--config", s.cfgPath)
	require.Equal(t, 1, r.code)
	require.Equal(t, "aileron: "+s.cfgPath+":4:1: unknown key listen.port\n", r.stderr)
}

// procCounts counts our live workers and brokers. A worker may be two
// processes (the first one waits for the worker proper, which is PID 1 of
// its own PID namespace): only the outer one is counted.
func procCounts() (workers, brokers int) {
	isWorker := func(pid string) bool {
		exe, err := os.Readlink(filepath.Join("/proc", pid, "exe"))
		return err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "aileron-worker"
	}
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid := d.Name()
		stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if err != nil || isZombie(stat) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", pid, "exe"))
		if err != nil || filepath.Dir(strings.TrimSuffix(exe, " (deleted)")) != filepath.Clean(binDir) {
			continue
		}
		if isWorker(pid) {
			// stat: pid (comm) state ppid ...
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(f) > 1 && !isWorker(f[1]) {
				workers++
			}
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if string(bytes.TrimRight(cmdline, "\x00")) == filepath.Join(binDir, "aileron")+"\x00broker" {
			brokers++
		}
	}
	return workers, brokers
}
