package integration

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const hostileFQN = "github://aileron-tests/hostile"

// hostileVariant is the manifest of the hostile connector's module under another
// name, credential kind ("" for none) and host list.
func hostileVariant(name, kind string, hosts ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[connector]\nname = %q\nversion = \"0.0.1\"\nprovenance_hash = \"sha256:%s\"\n\n", name, strings.Repeat("0", 64))
	quoted := make([]string, len(hosts))
	for i, h := range hosts {
		quoted[i] = fmt.Sprintf("%q", h)
	}
	fmt.Fprintf(&b, "[capabilities.network]\nhosts = [%s]\n\n", strings.Join(quoted, ", "))
	if kind != "" {
		fmt.Fprintf(&b, "[capabilities.credential]\nkind = %q\n\n", kind)
	}
	b.WriteString("[capabilities.runtime]\nimports = [\"wasi:http/outgoing-handler\", \"wasi:clocks\", \"wasi:random\", \"aileron:log\"]\n\n")
	b.WriteString("[provides]\nintents = [\"request\", \"try\", \"flood\"]\n")
	return b.String()
}

// recorder is a fake API: it records each request and echoes its headers
// back in the body and in X-Echo-* headers, as httpbin does.
type recorder struct {
	mu   sync.Mutex
	seen []*recorded
	// allow, if set, decides whether a request is authorized.
	allow func(r *http.Request) bool
}

type recorded struct {
	Method, Host, RequestURI string
	Header                   http.Header
	Body                     []byte
}

func (s *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, &recorded{r.Method, r.Host, r.RequestURI, r.Header.Clone(), body})
	allow := s.allow
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
	w.Header().Set("X-Echo-Signature", r.Header.Get("X-Signature"))
	if allow != nil && !allow(r) {
		w.WriteHeader(http.StatusUnauthorized)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header})
}

func (s *recorder) requests() []*recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*recorded(nil), s.seen...)
}

func (s *recorder) byPath(t *testing.T, path string) *recorded {
	t.Helper()
	for _, r := range s.requests() {
		if strings.HasPrefix(r.RequestURI, path) {
			return r
		}
	}
	t.Fatalf("the service received no request for %s", path)
	return nil
}

// requestOutput is what the hostile connector's request intent returns:
// exactly what the connector sent and what it got back.
type requestOutput struct {
	SentHeaders     map[string]string   `json:"sent_headers"`
	Status          int                 `json:"status"`
	Body            string              `json:"body"`
	ResponseHeaders map[string][]string `json:"response_headers"`
}

func TestBroker_EachCredentialKind(t *testing.T) {
	const (
		apiKey     = "sk-live-3b9f0c1d2e"
		password   = "pw-Tr0ub4dor-and-3"
		accessTok  = "ya29.a0-access-7c5d4e"
		refreshTok = "1//refresh-9a8b7c6d"
		clientSec  = "client-secret-4f3e2d"
		signingKey = "whsec_sign-0e1f2a3b4c"
	)
	basicValue := base64.StdEncoding.EncodeToString([]byte("alice:" + password))
	api := &recorder{}
	e := newEnvWith(t, envOptions{Services: map[string]http.Handler{"api.example.com": api}})
	oauthJSON := fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"expiry":"2099-01-01T00:00:00Z","token_url":"https://auth.example.com/token","client_id":"client-1","client_secret":%q}`, accessTok, refreshTok, clientSec)
	kinds := []struct {
		short, kind, stdin string
		args               []string
		headers            map[string]string
		check              func(t *testing.T, r *recorded)
	}{
		{
			short: "apikey", kind: "api_key", stdin: apiKey + "\n",
			headers: map[string]string{"X-Api-Key": "{{aileron.credential}}"},
			check: func(t *testing.T, r *recorded) {
				require.Equal(t, []string{apiKey}, r.Header["X-Api-Key"])
				require.Empty(t, r.Header["Authorization"])
			},
		},
		{
			short: "basic", kind: "basic", stdin: password + "\n", args: []string{"--username", "alice"},
			headers: map[string]string{"Authorization": "Basic {{aileron.credential}}"},
			check: func(t *testing.T, r *recorded) {
				require.Equal(t, []string{"Basic " + basicValue}, r.Header["Authorization"])
			},
		},
		{
			short: "oauth2", kind: "oauth2", stdin: oauthJSON,
			headers: map[string]string{"Authorization": "Bearer {{aileron.credential}}"},
			check: func(t *testing.T, r *recorded) {
				require.Equal(t, []string{"Bearer " + accessTok}, r.Header["Authorization"])
			},
		},
		{
			short: "signing", kind: "signing_key", stdin: signingKey + "\n",
			headers: map[string]string{"X-Signature": "v1={{aileron.signature}}"},
			check: func(t *testing.T, r *recorded) {
				ts := r.Header.Get("X-Aileron-Timestamp")
				require.NotEmpty(t, ts)
				sig, ok := strings.CutPrefix(r.Header.Get("X-Signature"), "v1=")
				require.True(t, ok)
				// Verified as a service would, from docs/ABI.md section 5.
				bh := sha256.Sum256(r.Body)
				mac := hmac.New(sha256.New, []byte(signingKey))
				fmt.Fprintf(mac, "AILERON-HMAC-SHA256\n%s\n%s\n%s\n%s\n%s", ts, r.Method, r.Host, r.RequestURI, hex.EncodeToString(bh[:]))
				require.Equal(t, hex.EncodeToString(mac.Sum(nil)), sig)
				for _, vs := range r.Header {
					require.NotContains(t, strings.Join(vs, ","), signingKey)
				}
			},
		},
	}
	var steps []step
	for _, k := range kinds {
		m := e.installVariant(hostileVariant("github://aileron-tests/hostile-"+k.short, k.kind, "api.example.com:443"))
		e.ok(k.stdin, append([]string{"vault", "set", "cred-" + k.short, "--kind", k.kind, "--connector", m.Connector.Name.String()}, k.args...)...)
		var hs []string
		for name, v := range k.headers {
			hs = append(hs, fmt.Sprintf("%q = %q", name, v))
		}
		steps = append(steps, step{m, "request", fmt.Sprintf(`{ method = "POST", url = "https://api.example.com/%s?x=1", headers = { %s }, body = '{"n":1}' }`, k.short, strings.Join(hs, ", "))})
	}
	out := e.ok("", "run", "--json", e.actionSteps("kinds", steps...))
	var res struct {
		Steps []struct {
			ID     string          `json:"id"`
			Output json.RawMessage `json:"output"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Len(t, res.Steps, len(kinds))

	// Nothing the workers saw holds a secret, in any step.
	for _, secret := range []string{apiKey, password, basicValue, accessTok, refreshTok, clientSec, signingKey} {
		require.NotContains(t, out, secret)
	}
	for i, k := range kinds {
		t.Run(k.short, func(t *testing.T) {
			var got requestOutput
			require.NoError(t, json.Unmarshal(res.Steps[i].Output, &got))
			// The connector's request held only the placeholder...
			require.Equal(t, k.headers, got.SentHeaders)
			// ...the service received exactly the credential...
			r := api.byPath(t, "/"+k.short)
			require.Equal(t, "/"+k.short+"?x=1", r.RequestURI)
			k.check(t, r)
			// ...and echoed it back, redacted before the worker saw it.
			require.Equal(t, 200, got.Status)
			require.Contains(t, got.Body, "[REDACTED]")
		})
	}
	// Every request is audited with the credential's name, never its value.
	var ids []string
	for _, rec := range e.auditRecords() {
		if rec["kind"] == "egress" {
			ids = append(ids, fmt.Sprint(rec["credential_id"]))
		}
	}
	require.Equal(t, []string{"cred-apikey", "cred-basic", "cred-oauth2", "cred-signing"}, ids)
}

// tokenService is a fake OAuth2 token endpoint that rotates refresh tokens.
type tokenService struct {
	mu      sync.Mutex
	calls   int
	issued  int
	refresh string
	fail    bool
	delay   time.Duration
}

func (s *tokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(s.delay) // keep a refresh in flight while other brokers arrive
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	id, secret, _ := r.BasicAuth()
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	if s.fail || id != "client-1" || secret != "client-secret-1" || r.PostForm.Get("refresh_token") != s.refresh {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"refresh token %s is not valid"}`, r.PostForm.Get("refresh_token"))
		return
	}
	s.issued++
	s.refresh = fmt.Sprintf("refresh-token-%d", s.issued+1)
	fmt.Fprintf(w, `{"access_token":"access-token-%d","token_type":"Bearer","expires_in":3600,"refresh_token":%q}`, s.issued+1, s.refresh)
}

func (s *tokenService) state() (calls int, current string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, fmt.Sprintf("access-token-%d", s.issued+1)
}

func TestBroker_OAuth2RefreshedOnceAndPersisted(t *testing.T) {
	tok := &tokenService{refresh: "refresh-token-1", delay: 300 * time.Millisecond}
	api := &recorder{}
	api.allow = func(r *http.Request) bool {
		_, cur := tok.state()
		return r.Header.Get("Authorization") == "Bearer "+cur
	}
	// The token endpoint is not among the connector's hosts: the operator
	// stored its URL in the vault, the connector never names it.
	e := newEnvWith(t, envOptions{Services: map[string]http.Handler{"api.example.com": api, "auth.example.com": tok}})
	m := e.installVariant(hostileVariant("github://aileron-tests/hostile-oauth2", "oauth2", "api.example.com:443"))
	expired := func(refresh string) string {
		return fmt.Sprintf(`{"access_token":"access-token-1","refresh_token":%q,"expiry":"2020-01-01T00:00:00Z","token_url":"https://auth.example.com/token","client_id":"client-1","client_secret":"client-secret-1"}`, refresh)
	}
	e.ok(expired("refresh-token-1"), "vault", "set", "svc-oauth", "--kind", "oauth2", "--connector", m.Connector.Name.String())
	action := e.action(m, "me", "request", `{ method = "GET", url = "https://api.example.com/me", headers = { Authorization = "Bearer {{aileron.credential}}" } }`)

	// Four runs at once: four broker processes find the token expired.
	const n = 4
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.aileron("", "run", action)
		}()
	}
	wg.Wait()
	for _, r := range results {
		require.Equal(t, 0, r.code, r.stderr)
		var got requestOutput
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Equal(t, 200, got.Status)
		require.NotContains(t, r.stdout+r.stderr, "access-token-2")
		require.NotContains(t, r.stdout+r.stderr, "refresh-token-2")
	}
	calls, _ := tok.state()
	require.Equal(t, 1, calls, "the expired token must be refreshed once")
	for _, r := range api.requests() {
		require.Equal(t, "Bearer access-token-2", r.Header.Get("Authorization"))
	}

	// Persisted: a later run, in a new broker, uses the stored token.
	e.ok("", "run", action)
	calls, _ = tok.state()
	require.Equal(t, 1, calls)
	reqs := api.requests()
	require.Equal(t, "Bearer access-token-2", reqs[len(reqs)-1].Header.Get("Authorization"))
	refreshed := 0
	for _, rec := range e.auditRecords() {
		if rec["kind"] == "credential" {
			refreshed++
			require.Equal(t, "credential_refreshed", rec["code"])
			require.Equal(t, "auth.example.com", rec["host"])
			require.Equal(t, "svc-oauth", rec["credential_id"])
		}
	}
	require.Equal(t, 1, refreshed)

	// A refresh the endpoint refuses is a clear error, and audited.
	tok.mu.Lock()
	tok.fail, tok.delay = true, 0
	tok.mu.Unlock()
	e.ok(expired("refresh-token-revoked"), "vault", "set", "svc-oauth", "--kind", "oauth2", "--connector", m.Connector.Name.String())
	r := e.aileron("", "run", action)
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "step only (github://aileron-tests/hostile-oauth2 request): credential_refresh_failed: credential svc-oauth could not be refreshed: token endpoint auth.example.com answered 400 Bad Request (invalid_grant)")
	require.NotContains(t, r.stdout+r.stderr, "refresh-token-revoked")
	var recs []map[string]any
	for _, rec := range e.auditRecords() {
		if rec["kind"] != "run" { // the run's own record comes last
			recs = append(recs, rec)
		}
	}
	last, cred := recs[len(recs)-1], recs[len(recs)-2]
	require.Equal(t, "credential", cred["kind"])
	require.Equal(t, "credential_refresh_failed", cred["code"])
	require.Equal(t, "egress", last["kind"])
	require.Equal(t, "deny", last["decision"])
	require.Equal(t, "credential_refresh_failed", last["code"])
	require.NotContains(t, fmt.Sprint(recs), "refresh-token-revoked")
}

// tryOutcome is one entry of the hostile connector's try intent.
type tryOutcome struct {
	URL      string `json:"url"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	Status   int    `json:"status"`
	Location string `json:"location"`
}

// tryWith builds the `with` table of a try step.
func tryWith(reqs ...string) string {
	return "{ requests = [ " + strings.Join(reqs, ", ") + " ] }"
}

func (e *env) try(action string) []tryOutcome {
	e.t.Helper()
	out := e.ok("", "run", action)
	var got []tryOutcome
	require.NoError(e.t, json.Unmarshal([]byte(out), &got), out)
	return got
}

func TestBroker_Denied(t *testing.T) {
	e := newEnv(t, "max_requests_per_step = 20\nmax_response_bytes = 4096\n")
	m := e.install("hostile", notesKey)
	const of = " in the manifest of " + hostileFQN
	tests := []struct {
		req        string
		code, msg  string
		status     int
		location   string
		auditHost  string
		auditAllow bool
	}{
		{req: `{ url = "https://evil.example.com/steal" }`, code: "host_not_declared", auditHost: "evil.example.com",
			msg: "host evil.example.com:443 is not declared" + of},
		{req: `{ url = "https://echo.example.com:8443/headers" }`, code: "port_not_declared", auditHost: "echo.example.com",
			msg: "host echo.example.com:8443 is not declared" + of + " (declared ports for echo.example.com: 443)"},
		{req: `{ url = "http://echo.example.com:443/headers" }`, code: "plaintext_to_tls_port", auditHost: "echo.example.com",
			msg: "plaintext http to a port declared for TLS: echo.example.com:443 requires https"},
		{req: `{ url = "https://echo.example.com/headers", headers = { Host = "evil.example.com" } }`, code: "host_header_mismatch", auditHost: "echo.example.com",
			msg: "Host header does not match the URL host echo.example.com:443"},
		{req: `{ url = "https://user:pass@echo.example.com/headers" }`, code: "userinfo_in_url",
			msg: "URL must not contain userinfo (user:password@)"},
		{req: `{ url = "https://2130706433/" }`, code: "ip_literal_not_declared", auditHost: "127.0.0.1",
			msg: "host 127.0.0.1:443 is an IP literal that is not declared" + of + "; use a declared host name"},
		{req: `{ url = "https://0177.0.0.1/" }`, code: "ip_literal_not_declared", auditHost: "127.0.0.1",
			msg: "host 127.0.0.1:443 is an IP literal that is not declared" + of + "; use a declared host name"},
		{req: `{ url = "https://0x7f.1/" }`, code: "ip_literal_not_declared", auditHost: "127.0.0.1",
			msg: "host 127.0.0.1:443 is an IP literal that is not declared" + of + "; use a declared host name"},
		{req: `{ url = "https://[::ffff:127.0.0.1]/" }`, code: "ip_literal_not_declared", auditHost: "127.0.0.1",
			msg: "host 127.0.0.1:443 is an IP literal that is not declared" + of + "; use a declared host name"},
		{req: `{ url = "https://echo.example.com/redirect?to=https://evil.example.com/steal" }`, status: 302,
			location: "https://evil.example.com/steal", auditHost: "echo.example.com", auditAllow: true},
		// Sent, so audited as allowed: only the response was refused.
		{req: `{ url = "https://echo.example.com/big?n=5000" }`, code: "response_too_large", auditHost: "echo.example.com",
			msg: "response exceeds 4096 bytes", auditAllow: true},
	}
	reqs := make([]string, len(tests))
	for i, tt := range tests {
		reqs[i] = tt.req
	}
	got := e.try(e.action(m, "denied", "try", tryWith(reqs...)))
	require.Len(t, got, len(tests))
	var egress []map[string]any
	for _, rec := range e.auditRecords() {
		if rec["kind"] == "egress" {
			egress = append(egress, rec)
		}
	}
	require.Len(t, egress, len(tests), "one audit record per request")
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s", i, tt.code), func(t *testing.T) {
			require.Equal(t, tt.code, got[i].Code, "%+v", got[i])
			require.Equal(t, tt.msg, got[i].Message)
			require.Equal(t, tt.status, got[i].Status)
			require.Equal(t, tt.location, got[i].Location)
			rec := egress[i]
			require.Equal(t, hostileFQN, rec["connector"])
			require.Equal(t, "try", rec["intent"])
			if tt.auditHost != "" {
				require.Equal(t, tt.auditHost, rec["host"])
			}
			if tt.auditAllow {
				require.Equal(t, "allow", rec["decision"])
				if tt.code == "" {
					require.EqualValues(t, tt.status, rec["status"])
					return
				}
				require.Equal(t, tt.code, rec["code"])
				require.Equal(t, tt.msg, rec["reason"])
				return
			}
			require.Equal(t, "deny", rec["decision"])
			require.Equal(t, tt.code, rec["code"])
			require.Equal(t, tt.msg, rec["reason"])
		})
	}
	// Only the redirect and the oversized response reached a service,
	// and nothing reached the name the redirect pointed at.
	require.Len(t, e.echo.Seen(), 2)

	// A connector that keeps sending runs out of its per-step budget.
	r := e.aileron("", "run", e.action(m, "flood", "flood", `{ url = "https://echo.example.com/headers", n = 30 }`))
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "step only ("+hostileFQN+" flood): request_budget_exceeded: request budget of 20 per step exceeded")
	recs := e.auditRecords()
	last := recs[len(recs)-1]
	require.Equal(t, "deny", last["decision"])
	require.Equal(t, "request_budget_exceeded", last["code"])
	require.Len(t, e.echo.Seen(), 2+20)

	t.Run("audit_verify", func(t *testing.T) {
		out := e.ok("", "audit", "verify")
		path := filepath.Join(e.home, "audit.jsonl")
		require.Contains(t, out, fmt.Sprintf("%s: %d records verify\nhead: record %d, hash ", path, len(recs), len(recs)))
		tail := e.ok("", "audit", "tail", "-n", "2", "--json")
		require.Equal(t, 2, strings.Count(tail, "\n"))
		require.Contains(t, tail, `"code":"request_budget_exceeded"`)

		// Change one byte of record 3 (its status digit, say): verify
		// fails and names the record.
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := bytes.SplitAfter(b, []byte("\n"))
		off := len(lines[0]) + len(lines[1])
		i := bytes.Index(lines[2], []byte(`"host":"`))
		require.Positive(t, i)
		b[off+i+len(`"host":"`)] ^= 0x20 // flip the case of the host's first letter
		require.NoError(t, os.WriteFile(path, b, 0o600))
		r := e.aileron("", "audit", "verify")
		require.Equal(t, 1, r.code)
		require.Equal(t, "aileron: audit log "+path+" does not verify: line 3 (record 3): hash mismatch: the record was modified\n", r.stderr)
		r = e.aileron("", "audit", "tail")
		require.Equal(t, 1, r.code)
		require.Empty(t, r.stdout, "tail shows nothing from a log that does not verify")
	})
}

func TestBroker_DeniedAddressesUnderDefaultPolicy(t *testing.T) {
	// Declared names that resolve (through [broker.hosts], which tests
	// control) to addresses the default policy denies.
	names := []struct{ name, addr, msg string }{
		{"loop4", "127.0.0.1", "host loop4.example.com:443 resolved to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"ten", "10.0.0.1", "host ten.example.com:443 resolved to 10.0.0.1, which is private (RFC 1918, 10.0.0.0/8)"},
		{"meta", "169.254.169.254", "host meta.example.com:443 resolved to 169.254.169.254, which is the cloud metadata service (169.254.169.254)"},
		{"loop6", "::1", "host loop6.example.com:443 resolved to ::1, which is loopback (RFC 4291, ::1)"},
		{"mapped", "::ffff:127.0.0.1", "host mapped.example.com:443 resolved to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"nat64", "64:ff9b::7f00:1", "host nat64.example.com:443 resolved to 64:ff9b::7f00:1, which is NAT64 (RFC 6052) for 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"sixtofour", "2002:7f00:1::1", "host sixtofour.example.com:443 resolved to 2002:7f00:1::1, which is 6to4 (RFC 3056) for 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"cgnat", "100.64.0.1", "host cgnat.example.com:443 resolved to 100.64.0.1, which is shared address space for carrier-grade NAT (RFC 6598, 100.64.0.0/10)"},
		{"ula", "fd00::1", "host ula.example.com:443 resolved to fd00::1, which is unique local (RFC 4193, fc00::/7)"},
	}
	var cfg strings.Builder
	cfg.WriteString("\n[broker.hosts]\n")
	hosts := []string{"echo.example.com:443"}
	var reqs []string
	for _, n := range names {
		fmt.Fprintf(&cfg, "%q = [%q]\n", n.name+".example.com", n.addr)
		hosts = append(hosts, n.name+".example.com:443")
		reqs = append(reqs, fmt.Sprintf(`{ url = "https://%s.example.com/" }`, n.name))
	}
	reqs = append(reqs, `{ url = "https://echo.example.com/headers" }`)
	e := newEnvWith(t, envOptions{DenyLoopback: true, Config: cfg.String()})
	m := e.installVariant(hostileVariant("github://aileron-tests/hostile-net", "", hosts...))
	got := e.try(e.action(m, "addresses", "try", tryWith(reqs...)))
	require.Len(t, got, len(names)+1)
	var egress []map[string]any
	for _, rec := range e.auditRecords() {
		if rec["kind"] == "egress" {
			egress = append(egress, rec)
		}
	}
	require.Len(t, egress, len(names)+1)
	for i, n := range names {
		require.Equal(t, "address_denied", got[i].Code, "%+v", got[i])
		require.Equal(t, n.msg, got[i].Message)
		require.Equal(t, "deny", egress[i]["decision"])
		require.Equal(t, "address_denied", egress[i]["code"])
		require.Equal(t, n.name+".example.com", egress[i]["host"])
	}
	// The fake service itself, routed to loopback, is denied too.
	require.Equal(t, "address_denied", got[len(names)].Code)
	require.Equal(t, "host echo.example.com:443 is routed to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)", got[len(names)].Message)
	require.Empty(t, e.echo.Seen())
}
