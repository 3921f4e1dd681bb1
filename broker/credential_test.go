package broker

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/broker/internal/vault"
	"aileron.dev/aileron/sdk/abi"
)

var apiGrant = func(kind string) Grant {
	return Grant{Action: "test", Connector: testConnector, Hosts: []string{"api.example.com:443"}, CredentialKind: kind}
}

func TestBroker_CredentialKinds(t *testing.T) {
	const (
		apiKey     = "sk-live-8c1d2e3f4a5b"
		password   = "pw-correct-horse-77"
		accessTok  = "ya29.access-token-1f2e"
		signingKey = "whsec-signing-key-5a6b7c"
	)
	fixed := time.Unix(1767225600, 0)
	tests := []struct {
		kind    string
		secret  SecretInput
		headers map[string][]string
		// check asserts what the service received.
		check   func(t *testing.T, r *seenRequest)
		secrets []string
	}{
		{
			kind:    "api_key",
			secret:  SecretInput{Value: apiKey},
			headers: map[string][]string{"X-Api-Key": {abi.CredentialPlaceholder}, "Authorization": {"Bearer " + abi.CredentialPlaceholder}},
			check: func(t *testing.T, r *seenRequest) {
				require.Equal(t, []string{apiKey}, r.Header["X-Api-Key"])
				require.Equal(t, []string{"Bearer " + apiKey}, r.Header["Authorization"])
			},
			secrets: []string{apiKey},
		},
		{
			kind:    "basic",
			secret:  SecretInput{Username: "alice", Password: password},
			headers: map[string][]string{"Authorization": {"Basic " + abi.CredentialPlaceholder}},
			check: func(t *testing.T, r *seenRequest) {
				require.Equal(t, []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+password))}, r.Header["Authorization"])
			},
			secrets: []string{password, base64.StdEncoding.EncodeToString([]byte("alice:" + password))},
		},
		{
			kind:    "oauth2",
			secret:  SecretInput{AccessToken: accessTok, ExpiryUnix: fixed.Add(time.Hour).Unix()},
			headers: map[string][]string{"Authorization": {"Bearer " + abi.CredentialPlaceholder}},
			check: func(t *testing.T, r *seenRequest) {
				require.Equal(t, []string{"Bearer " + accessTok}, r.Header["Authorization"])
			},
			secrets: []string{accessTok},
		},
		{
			kind:    "signing_key",
			secret:  SecretInput{Value: signingKey},
			headers: map[string][]string{"X-Signature": {"v1=" + abi.SignaturePlaceholder}},
			check: func(t *testing.T, r *seenRequest) {
				require.Equal(t, []string{"1767225600"}, r.Header["X-Aileron-Timestamp"])
				sig, ok := strings.CutPrefix(r.Header.Get("X-Signature"), "v1=")
				require.True(t, ok)
				require.Len(t, sig, 64)
				require.True(t, verifySignature(signingKey, r, sig), "signature does not verify")
				for _, vs := range r.Header {
					for _, v := range vs {
						require.NotContains(t, v, signingKey)
					}
				}
			},
			secrets: []string{signingKey},
		},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			svc := &echo{}
			b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": svc})
			b.s.now = func() time.Time { return fixed }
			b.put(t, "svc-cred", tt.kind, tt.secret)
			w, _ := b.open(t, apiGrant(tt.kind))
			req := &channel.Request{Op: channel.OpHTTP, HTTP: &abi.HTTPRequest{Method: "POST", URL: "https://api.example.com/v1/items?limit=10&q=a%20b", Headers: tt.headers, Body: []byte(`{"n":1}`)}}
			resp := call(t, w, req)
			require.Equal(t, abi.ErrnoOK, resp.Errno, "%+v", resp.Error)
			seen := svc.requests()
			require.Len(t, seen, 1)
			require.Equal(t, "/v1/items?limit=10&q=a%20b", seen[0].RequestURI)
			tt.check(t, seen[0])
			// The service echoed every header back; the worker sees none
			// of the secrets, in the body or the headers.
			noSecret(t, resp, tt.secrets...)
			if sig, ok := strings.CutPrefix(seen[0].Header.Get("X-Signature"), "v1="); ok {
				noSecret(t, resp, sig) // made for this request alone
			}
			require.Contains(t, string(resp.HTTP.Body), "[REDACTED]")
			// The connector's own request still holds only placeholders.
			for _, vs := range req.HTTP.Headers {
				for _, v := range vs {
					require.Contains(t, v, "{{aileron.")
				}
			}
			rec := b.lastEgress(t)
			require.Equal(t, audit.DecisionAllow, rec.Decision)
			require.Equal(t, "svc-cred", rec.CredentialID)
			require.Equal(t, 200, rec.Status)
			require.Positive(t, rec.Redactions)
		})
	}
}

func TestBroker_PlaceholderMisuse(t *testing.T) {
	tests := []struct {
		name    string
		kind    string
		headers map[string][]string
		url     string
		errno   abi.Errno
		code    string
		msg     string
	}{
		{
			name: "credential_placeholder_for_signing_key", kind: "signing_key",
			headers: map[string][]string{"Authorization": {"Bearer " + abi.CredentialPlaceholder}},
			errno:   abi.ErrnoInvalid, code: "wrong_placeholder",
			msg: "the connector's credential is a signing_key, which never leaves the broker: use {{aileron.signature}}, not {{aileron.credential}}",
		},
		{
			name: "signature_placeholder_for_api_key", kind: "api_key",
			headers: map[string][]string{"X-Sig": {abi.SignaturePlaceholder}},
			errno:   abi.ErrnoInvalid, code: "wrong_placeholder",
			msg: "the connector's credential is api_key: {{aileron.signature}} is only for signing_key credentials",
		},
		{
			name: "connector_sets_timestamp", kind: "signing_key",
			headers: map[string][]string{"x-aileron-timestamp": {"1"}, "X-Sig": {abi.SignaturePlaceholder}},
			errno:   abi.ErrnoDenied, code: "hop_by_hop_header",
			msg: "header X-Aileron-Timestamp may not be set by a connector (set by the broker)",
		},
		{
			name: "signature_in_url", kind: "signing_key",
			url:   "https://api.example.com/?sig=" + abi.SignaturePlaceholder,
			errno: abi.ErrnoInvalid, code: "placeholder_misplaced",
			msg: "credential placeholder outside a header value: the broker substitutes it only in headers",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &echo{}
			b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": svc})
			b.put(t, "svc-cred", tt.kind, SecretInput{Value: "secret-value-123456"})
			w, _ := b.open(t, apiGrant(tt.kind))
			u := tt.url
			if u == "" {
				u = "https://api.example.com/"
			}
			resp := call(t, w, get(u, tt.headers))
			require.Equal(t, tt.errno, resp.Errno)
			require.Equal(t, &abi.Error{Code: tt.code, Message: tt.msg}, resp.Error)
			require.Empty(t, svc.requests())
			rec := b.lastEgress(t)
			require.Equal(t, audit.DecisionDeny, rec.Decision)
			require.Equal(t, tt.code, rec.Code)
		})
	}
}

// oauthSetup is an API that accepts only the token server's latest token,
// behind a broker holding an expired token.
type oauthSetup struct {
	tok *tokenServer
	api *echo
	cfg Config
}

func newOAuthSetup(t *testing.T) (*oauthSetup, *testBroker) {
	o := &oauthSetup{tok: &tokenServer{refresh: "refresh-token-1"}, api: &echo{}}
	bearerService(o.api, func() string {
		o.tok.mu.Lock()
		defer o.tok.mu.Unlock()
		if o.tok.n == 0 {
			return "access-token-1"
		}
		return fmt.Sprintf("access-token-%d", o.tok.n+1)
	})
	b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": o.api, "auth.example.com": o.tok})
	o.cfg = b.cfg
	b.put(t, "svc-oauth", "oauth2", SecretInput{
		AccessToken: "access-token-1", RefreshToken: "refresh-token-1", ExpiryUnix: time.Now().Add(-time.Minute).Unix(),
		TokenURL: "https://auth.example.com/token", ClientID: "client-1", ClientSecret: "client-secret-1",
	})
	return o, b
}

func bearer() map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + abi.CredentialPlaceholder}}
}

func TestBroker_OAuth2_ExpiredTokenRefreshedOnceAcrossChannels(t *testing.T) {
	o, b := newOAuthSetup(t)
	o.tok.delay = 50 * time.Millisecond // keep the refresh in flight while the others arrive
	const n = 8
	workers := make([]channelEnd, n)
	for i := range workers {
		w, _ := b.open(t, apiGrant("oauth2"))
		workers[i] = w
	}
	var wg sync.WaitGroup
	resps := make([]*channel.Response, n)
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = call(t, w, get("https://api.example.com/me", bearer()))
		}()
	}
	wg.Wait()
	for _, r := range resps {
		require.Equal(t, abi.ErrnoOK, r.Errno, "%+v", r.Error)
		require.Equal(t, 200, r.HTTP.Status)
		noSecret(t, r, "access-token-2", "refresh-token-2", "client-secret-1")
	}
	require.Equal(t, 1, o.tok.count(), "concurrent refreshes must coalesce")
	for _, r := range o.api.requests() {
		require.Equal(t, "Bearer access-token-2", r.Header.Get("Authorization"))
	}

	// The new token, the rotated refresh token and the expiry are in the
	// vault, encrypted.
	rec, err := b.s.vault.ForConnector(context.Background(), "", testConnector)
	require.NoError(t, err)
	require.Equal(t, "access-token-2", rec.Secret.AccessToken)
	require.Equal(t, "refresh-token-2", rec.Secret.RefreshToken)
	require.WithinDuration(t, time.Now().Add(time.Hour), rec.Secret.Expiry, time.Minute)

	// One credential record, naming the endpoint, never a token.
	var creds []audit.Record
	for _, r := range b.records(t) {
		if r.Kind == audit.KindCredential {
			creds = append(creds, r)
		}
	}
	require.Len(t, creds, 1)
	require.Equal(t, "credential_refreshed", creds[0].Code)
	require.Equal(t, "oauth2_refresh", creds[0].Event)
	require.Equal(t, "auth.example.com", creds[0].Host)
	require.EqualValues(t, 443, creds[0].Port)
	require.Equal(t, "svc-oauth", creds[0].CredentialID)
	require.NotContains(t, string(mustJSON(t, b.records(t))), "access-token-2")
}

// channelEnd is the worker's end of a channel.
type channelEnd = interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
}

func TestBroker_OAuth2_TwoBrokersRefreshOnce(t *testing.T) {
	// Two brokers on one home, as two concurrent `aileron run`s: the
	// vault lock and the re-read make them refresh once between them.
	o, b1 := newOAuthSetup(t)
	o.tok.delay = 50 * time.Millisecond
	b2 := attachBroker(t, o.cfg)
	w1, _ := b1.open(t, apiGrant("oauth2"))
	w2, _ := b2.open(t, apiGrant("oauth2"))
	var wg sync.WaitGroup
	resps := make([]*channel.Response, 2)
	for i, w := range []channelEnd{w1, w2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = call(t, w, get("https://api.example.com/me", bearer()))
		}()
	}
	wg.Wait()
	for _, r := range resps {
		require.Equal(t, abi.ErrnoOK, r.Errno, "%+v", r.Error)
		require.Equal(t, 200, r.HTTP.Status)
	}
	require.Equal(t, 1, o.tok.count())
}

func TestBroker_OAuth2_RefreshOn401(t *testing.T) {
	o, b := newOAuthSetup(t)
	var clock atomic.Int64 // offset from the real time
	b.s.now = func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
	// The token looks valid for an hour, but the service has revoked it.
	b.put(t, "svc-oauth", "oauth2", SecretInput{
		AccessToken: "access-token-revoked", RefreshToken: "refresh-token-1", ExpiryUnix: time.Now().Add(time.Hour).Unix(),
		TokenURL: "https://auth.example.com/token", ClientID: "client-1", ClientSecret: "client-secret-1",
	})
	w, _ := b.open(t, apiGrant("oauth2"))
	resp := call(t, w, &channel.Request{Op: channel.OpHTTP, HTTP: &abi.HTTPRequest{Method: "POST", URL: "https://api.example.com/items", Headers: bearer(), Body: []byte(`{"a":1}`)}})
	require.Equal(t, abi.ErrnoOK, resp.Errno, "%+v", resp.Error)
	require.Equal(t, 200, resp.HTTP.Status)
	require.Equal(t, 1, o.tok.count())
	seen := o.api.requests()
	require.Len(t, seen, 2)
	require.Equal(t, "Bearer access-token-revoked", seen[0].Header.Get("Authorization"))
	require.Equal(t, "Bearer access-token-2", seen[1].Header.Get("Authorization"))
	require.Equal(t, `{"a":1}`, string(seen[1].Body), "the retry repeats the request")

	var codes []string
	for _, r := range b.records(t) {
		codes = append(codes, r.Kind+":"+r.Code)
	}
	require.Equal(t, []string{"egress:retry_after_refresh", "credential:credential_refreshed", "egress:"}, codes)

	// A 401 to the token just refreshed goes back to the connector as is:
	// another refresh would not help, and a path that always answers 401
	// must not become a way to hammer the token endpoint.
	o.api.status = func(*http.Request) int { return http.StatusUnauthorized }
	for range 3 {
		resp = call(t, w, get("https://api.example.com/me", bearer()))
		require.Equal(t, abi.ErrnoOK, resp.Errno)
		require.Equal(t, 401, resp.HTTP.Status)
	}
	require.Equal(t, 1, o.tok.count())
	require.Len(t, o.api.requests(), 5)

	// Later, a 401 refreshes again.
	clock.Store(int64(minRefreshInterval))
	resp = call(t, w, get("https://api.example.com/me", bearer()))
	require.Equal(t, 401, resp.HTTP.Status)
	require.Equal(t, 2, o.tok.count())
	require.Len(t, o.api.requests(), 7)
}

func TestBroker_OAuth2_RefreshFailures(t *testing.T) {
	base := SecretInput{
		AccessToken: "access-token-1", RefreshToken: "refresh-token-1", ExpiryUnix: 1,
		TokenURL: "https://auth.example.com/token", ClientID: "client-1", ClientSecret: "client-secret-1",
	}
	tests := []struct {
		name    string
		edit    func(*SecretInput)
		cfg     Config
		msg     string
		network bool // a token request was attempted
	}{
		{
			name:    "invalid_grant",
			edit:    func(s *SecretInput) { s.RefreshToken = "refresh-token-stolen" },
			msg:     "credential svc-oauth could not be refreshed: token endpoint auth.example.com answered 400 Bad Request (invalid_grant)",
			network: true,
		},
		{
			name: "no_refresh_token",
			edit: func(s *SecretInput) { s.RefreshToken = "" },
			msg:  "credential svc-oauth has no refresh token or token URL: store a fresh one with `aileron vault set svc-oauth --kind oauth2`",
		},
		{
			name: "plaintext_token_url",
			edit: func(s *SecretInput) { s.TokenURL = "http://auth.example.com/token" },
			msg:  "credential svc-oauth: token URL refused: endpoint auth.example.com:80 must use https",
		},
		{
			name: "userinfo_in_token_url",
			edit: func(s *SecretInput) { s.TokenURL = "https://u:p@auth.example.com/token" },
			msg:  "credential svc-oauth: token URL refused: URL must not contain userinfo (user:password@)",
		},
		{
			name: "token_endpoint_on_loopback_by_default",
			cfg:  Config{Routes: map[string]string{}, HostsOverride: map[string][]string{"auth.example.com": {"127.0.0.1"}}},
			msg:  "credential svc-oauth could not be refreshed: token endpoint auth.example.com: host auth.example.com:443 resolved to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)",
		},
	}
	for _, tt := range tests {
		if tt.cfg.Routes == nil {
			tt.cfg = loopbackOK
		}
		t.Run(tt.name, func(t *testing.T) {
			tok := &tokenServer{refresh: "refresh-token-1"}
			api := &echo{}
			b := newTestBroker(t, tt.cfg, map[string]http.Handler{"api.example.com": api, "auth.example.com": tok})
			var clock atomic.Int64 // offset from the real time
			b.s.now = func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
			sec := base
			if tt.edit != nil {
				tt.edit(&sec)
			}
			b.put(t, "svc-oauth", "oauth2", sec)
			w, _ := b.open(t, apiGrant("oauth2"))
			resp := call(t, w, get("https://api.example.com/me", bearer()))
			require.Equal(t, abi.ErrnoUnavailable, resp.Errno)
			require.Equal(t, &abi.Error{Code: "credential_refresh_failed", Message: tt.msg}, resp.Error)
			noSecret(t, resp, "refresh-token-1", "refresh-token-stolen", "client-secret-1", "access-token-1")
			require.Empty(t, api.requests(), "no request without a valid token")
			require.Equal(t, tt.network, tok.count() > 0)

			recs := b.records(t)
			require.Len(t, recs, 2)
			require.Equal(t, audit.KindCredential, recs[0].Kind)
			require.Equal(t, "credential_refresh_failed", recs[0].Code)
			require.Equal(t, tt.msg, recs[0].Reason)
			require.Equal(t, audit.KindEgress, recs[1].Kind)
			require.Equal(t, audit.DecisionDeny, recs[1].Decision)
			require.Equal(t, "credential_refresh_failed", recs[1].Code)
			require.NotContains(t, string(mustJSON(t, recs)), "refresh-token-")

			// The stored credential is unchanged.
			rec, err := b.s.vault.ForConnector(context.Background(), "", testConnector)
			require.NoError(t, err)
			require.Equal(t, sec.RefreshToken, rec.Secret.RefreshToken)

			// The next request fails the same way without asking the
			// endpoint again; after a pause it tries again.
			calls := tok.count()
			resp = call(t, w, get("https://api.example.com/me", bearer()))
			require.Equal(t, &abi.Error{Code: "credential_refresh_failed", Message: tt.msg}, resp.Error)
			require.Equal(t, calls, tok.count())
			require.Len(t, b.records(t), 3)
			clock.Store(int64(refreshRetryAfter))
			resp = call(t, w, get("https://api.example.com/me", bearer()))
			require.Equal(t, &abi.Error{Code: "credential_refresh_failed", Message: tt.msg}, resp.Error)
			require.Len(t, b.records(t), 5, "a new attempt, audited")
		})
	}
}

const signatureVector = "d3706dea1b2e62d6ef264c43a60032ddd551f8d3e4bfaf0411c9e770fd8d8356"

func TestNeedsRefresh(t *testing.T) {
	now := time.Unix(1000, 0)
	require.True(t, needsRefresh(vault.Secret{}, now), "no access token")
	require.False(t, needsRefresh(vault.Secret{AccessToken: "t"}, now), "unknown expiry: use it until a 401")
	require.True(t, needsRefresh(vault.Secret{AccessToken: "t", Expiry: now.Add(refreshSkew)}, now))
	require.False(t, needsRefresh(vault.Secret{AccessToken: "t", Expiry: now.Add(refreshSkew + time.Second)}, now))
}

func TestSignature_Vector(t *testing.T) {
	// A fixed vector, so other implementations can check theirs against
	// docs/ABI.md.
	sig, err := signature([]byte("key-0123456789"), "1767225600", "POST", "https://api.example.com/v1/items?limit=10", []byte(`{"n":1}`))
	require.NoError(t, err)
	require.Equal(t, signatureVector, sig)
	r := &seenRequest{Method: "POST", Host: "api.example.com", RequestURI: "/v1/items?limit=10", Body: []byte(`{"n":1}`),
		Header: http.Header{"X-Aileron-Timestamp": {"1767225600"}}}
	require.True(t, verifySignature("key-0123456789", r, sig))
	// Non-default ports are part of the host; an empty path is "/".
	sig2, err := signature([]byte("key-0123456789"), "1767225600", "GET", "https://api.example.com:8443", nil)
	require.NoError(t, err)
	r2 := &seenRequest{Method: "GET", Host: "api.example.com:8443", RequestURI: "/", Header: http.Header{"X-Aileron-Timestamp": {"1767225600"}}}
	require.True(t, verifySignature("key-0123456789", r2, sig2))
}

func TestBroker_ShortSecretRefused(t *testing.T) {
	b := newTestBroker(t, loopbackOK, nil)
	// vault set refuses it, naming the field.
	err := b.s.VaultSet(VaultSetArgs{Name: "svc-cred", Kind: "basic", Connectors: []string{testConnector}, Secret: SecretInput{Username: "alice", Password: "pw3"}})
	require.EqualError(t, err, "credential svc-cred: password is shorter than 4 bytes, too short to redact from responses")
}

func TestBroker_ShortSecretStoredEarlierIsNeverSent(t *testing.T) {
	// A record written before the vault refused short secrets: the
	// broker cannot redact its password, so it never sends it.
	svc := &echo{}
	b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": svc})
	require.NoError(t, b.s.vault.Backend().Put(context.Background(), vault.Record{
		Meta:   vault.Meta{Name: "svc-cred", Kind: vault.KindBasic, Connectors: []string{testConnector}},
		Secret: vault.Secret{Username: "alice", Password: "pw3"},
	}))
	w, _ := b.open(t, apiGrant("basic"))
	resp := call(t, w, get("https://api.example.com/", map[string][]string{"Authorization": {"Basic " + abi.CredentialPlaceholder}}))
	require.Equal(t, abi.ErrnoUnavailable, resp.Errno)
	require.Equal(t, &abi.Error{Code: "credential_unavailable", Message: "credential cannot be redacted safely: redact: secret 1 is 3 bytes: secret shorter than 4 bytes would redact ordinary text"}, resp.Error)
	require.Empty(t, svc.requests())
	rec := b.lastEgress(t)
	require.Equal(t, audit.DecisionDeny, rec.Decision)
	require.Equal(t, "credential_unavailable", rec.Code)
}

func TestAttacher_RedactorBuiltOncePerRecord(t *testing.T) {
	rec := vault.Record{Meta: vault.Meta{Name: "k", Kind: vault.KindOAuth2}, Secret: vault.Secret{AccessToken: "access-token-1", RefreshToken: "refresh-token-1"}}
	a := newAttacher(rec)
	_, r1, err := a.snapshot()
	require.NoError(t, err)
	_, r2, _ := a.snapshot()
	require.Same(t, r1, r2, "every request of a channel shares one redactor")

	// A refresh installs a new record and, with it, a new redactor.
	rec.Secret.AccessToken = "access-token-2"
	a.set(rec)
	got, r3, err := a.snapshot()
	require.NoError(t, err)
	require.NotSame(t, r1, r3)
	require.Equal(t, "access-token-2", got.Secret.AccessToken)
	out, n := r3.String("Bearer access-token-2")
	require.Equal(t, 1, n)
	require.Equal(t, "Bearer [REDACTED]", out)

	// A record the vault would refuse today keeps its error.
	rec.Secret.RefreshToken = "r1"
	a.set(rec)
	_, r4, err := a.snapshot()
	require.Nil(t, r4)
	require.EqualError(t, err, "redact: secret 1 is 2 bytes: secret shorter than 4 bytes would redact ordinary text")
}
