package broker

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/examples/services/testca"
	"aileron.dev/aileron/sdk/abi"
)

// loopbackOK is the configuration most tests start from: the fake
// services run on loopback.
var loopbackOK = Config{UnsafeAllowLoopback: true}

// testConnector is the FQN every test grant is for.
const testConnector = "github://acme/svc"

// testBroker is a broker server in this process with fake HTTPS services
// on loopback routed behind real names, as the integration harness does
// with the real process.
type testBroker struct {
	t   *testing.T
	s   *server
	sup *os.File
	cfg Config
	n   int
}

// startServices runs each handler as an HTTPS service for its name and
// returns the routes ("name:443" -> loopback address) and the CA.
func startServices(t testing.TB, services map[string]http.Handler) (map[string]string, *testca.CA) {
	t.Helper()
	ca, err := testca.New()
	require.NoError(t, err)
	routes := map[string]string{}
	for name, h := range services {
		tlsCfg, err := ca.ServerConfig(name)
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: h, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second, ErrorLog: nil}
		go srv.ServeTLS(ln, "", "")
		t.Cleanup(func() { srv.Close() })
		routes[name+":443"] = ln.Addr().String()
	}
	return routes, ca
}

// newTestBroker configures a server with cfg (Home, routes and CA filled
// in) in front of services.
func newTestBroker(t testing.TB, cfg Config, services map[string]http.Handler) *testBroker {
	t.Helper()
	routes, ca := startServices(t, services)
	if cfg.Home == "" {
		cfg.Home = t.TempDir()
	}
	cfg.ExtraRootCAs = ca.PEM
	if cfg.Routes == nil {
		cfg.Routes = routes
	}
	return attachBroker(t, cfg)
}

// attachBroker starts one more server on an already prepared cfg, as
// another `aileron run` would start another broker on the same home.
func attachBroker(t testing.TB, cfg Config) *testBroker {
	t.Helper()
	sup, brk, err := NewPassPair()
	require.NoError(t, err)
	s := newServer(hclog.NewNullLogger(), brk)
	require.NoError(t, s.Configure(cfg))
	tt, _ := t.(*testing.T)
	b := &testBroker{t: tt, s: s, sup: sup, cfg: *s.cfg}
	t.Cleanup(func() {
		s.closeAll()
		s.audit.Close()
		sup.Close()
		brk.Close()
	})
	return b
}

// open passes a new channel to the broker, binds it to g and starts a step.
// It returns the worker's end.
func (b *testBroker) open(t testing.TB, g Grant) (*os.File, string) {
	t.Helper()
	w, id, err := b.tryOpen(g)
	require.NoError(t, err)
	require.NoError(t, b.s.Step(StepArgs{ChannelID: id, Step: Step{StepID: "s1", Intent: "go", Via: "test"}}))
	return w, id
}

var openMu sync.Mutex

func (b *testBroker) tryOpen(g Grant) (*os.File, string, error) {
	openMu.Lock()
	defer openMu.Unlock()
	w, be, err := NewChannelPair()
	if err != nil {
		return nil, "", err
	}
	b.n++
	id := fmt.Sprintf("ch-%d", b.n)
	if g.RunID == "" {
		g.RunID = "run-1"
	}
	if err := SendChannel(b.sup, id, be); err != nil {
		be.Close()
		w.Close()
		return nil, "", err
	}
	be.Close()
	if err := b.s.Open(OpenArgs{ChannelID: id, Grant: g}); err != nil {
		w.Close()
		return nil, id, err
	}
	return w, id, nil
}

// put stores a credential through the control API, as `aileron vault set`
// does.
func (b *testBroker) put(t testing.TB, name, kind string, sec SecretInput) {
	t.Helper()
	require.NoError(t, b.s.VaultSet(VaultSetArgs{Name: name, Kind: kind, Connectors: []string{testConnector}, Secret: sec}))
}

// call sends one request frame and reads the answer.
func call(t testing.TB, w io.ReadWriter, req *channel.Request) *channel.Response {
	t.Helper()
	require.NoError(t, channel.WriteFrame(w, req))
	var resp channel.Response
	require.NoError(t, channel.ReadFrame(w, &resp))
	return &resp
}

func get(url string, headers map[string][]string) *channel.Request {
	return &channel.Request{Op: channel.OpHTTP, HTTP: &abi.HTTPRequest{Method: "GET", URL: url, Headers: headers}}
}

// records reads the audit log, verifying it.
func (b *testBroker) records(t testing.TB) []audit.Record {
	t.Helper()
	f, err := os.Open(filepath.Join(b.cfg.Home, "audit.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	recs, err := audit.Tail(f, 1<<20)
	require.NoError(t, err)
	return recs
}

// lastEgress returns the last egress record in the log.
func (b *testBroker) lastEgress(t testing.TB) audit.Record {
	t.Helper()
	recs := b.records(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Kind == audit.KindEgress {
			return recs[i]
		}
	}
	t.Fatal("no egress record")
	return audit.Record{}
}

// echo is a service that records what it receives and echoes the request
// headers back in its body and in X-Echo-Authorization.
type echo struct {
	mu   sync.Mutex
	seen []*seenRequest
	// status, if set, decides the answer for a request.
	status func(r *http.Request) int
}

type seenRequest struct {
	Method, Host, RequestURI string
	Header                   http.Header
	Body                     []byte
}

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.seen = append(e.seen, &seenRequest{r.Method, r.Host, r.RequestURI, r.Header.Clone(), body})
	e.mu.Unlock()
	code := http.StatusOK
	if e.status != nil {
		code = e.status(r)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header})
}

func (e *echo) requests() []*seenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*seenRequest(nil), e.seen...)
}

// verifySignature checks a signing_key signature the way a service would,
// written from docs/ABI.md section 5 rather than from the broker's code.
func verifySignature(key string, r *seenRequest, got string) bool {
	bh := sha256.Sum256(r.Body)
	canon := "AILERON-HMAC-SHA256\n" + r.Header.Get("X-Aileron-Timestamp") + "\n" + r.Method + "\n" + r.Host + "\n" + r.RequestURI + "\n" + hex.EncodeToString(bh[:])
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(canon))
	return hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(got))
}

// tokenServer is a fake OAuth2 token endpoint: it accepts one refresh
// token, rotates it, and counts refreshes.
type tokenServer struct {
	mu      sync.Mutex
	calls   int
	refresh string // the refresh token it accepts
	n       int    // tokens issued
	delay   time.Duration
	fail    bool
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ts.delay > 0 {
		time.Sleep(ts.delay)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.calls++
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || ts.fail || !ok || id != "client-1" || secret != "client-secret-1" ||
		r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != ts.refresh {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		// An endpoint that echoes what it got: the broker must not repeat it.
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"bad refresh token %s"}`, r.PostForm.Get("refresh_token"))
		return
	}
	ts.n++
	ts.refresh = fmt.Sprintf("refresh-token-%d", ts.n+1)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"access-token-%d","token_type":"Bearer","expires_in":3600,"refresh_token":%q}`, ts.n+1, ts.refresh)
}

func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.calls
}

// bearerService accepts only the given bearer token.
func bearerService(e *echo, token func() string) *echo {
	e.status = func(r *http.Request) int {
		if r.Header.Get("Authorization") != "Bearer "+token() {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	}
	return e
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// noSecret fails if any secret is in what the worker received: the
// response body, its headers or the error.
func noSecret(t testing.TB, resp *channel.Response, secrets ...string) {
	t.Helper()
	var seen bytes.Buffer
	seen.Write(mustJSON(t, resp))
	if resp.HTTP != nil {
		seen.Write(resp.HTTP.Body)
	}
	for _, s := range secrets {
		require.False(t, bytes.Contains(seen.Bytes(), []byte(s)), "the worker saw secret %q: %s", s, seen.Bytes())
	}
}

func newPool(t testing.TB, pemCerts []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	require.True(t, p.AppendCertsFromPEM(pemCerts))
	return p
}
