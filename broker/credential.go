package broker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/egress"
	"aileron.dev/aileron/broker/internal/vault"
	"aileron.dev/aileron/broker/redact"
	"aileron.dev/aileron/sdk/abi"
)

// Codes the broker adds to the egress codes for credential outcomes.
const (
	// codeCredentialUnavailable: the credential could not be attached.
	codeCredentialUnavailable = "credential_unavailable"
	// codeRefreshFailed: an OAuth2 access token was expired or refused
	// and could not be refreshed.
	codeRefreshFailed = "credential_refresh_failed"
	// codeRefreshed: a KindCredential record of a successful refresh.
	codeRefreshed = "credential_refreshed"
	// codeWrongPlaceholder: a placeholder that the credential kind does
	// not use.
	codeWrongPlaceholder = "wrong_placeholder"
)

// Refresh timing.
const (
	// refreshSkew is how long before its Expiry an access token is
	// refreshed, so a token does not expire between the check and the
	// service.
	refreshSkew = 30 * time.Second
	// minRefreshInterval: a token this broker got by a refresh less than
	// this long ago is not refreshed again because a service answered 401
	// to it. A fresh token that is refused will not be helped by another,
	// and a connector must not be able to hammer the token endpoint by
	// calling a path that always answers 401.
	minRefreshInterval = 30 * time.Second
	// refreshRetryAfter: after a failed refresh, requests within this
	// time fail with the same error without asking the token endpoint
	// again.
	refreshRetryAfter = 10 * time.Second
)

// refreshMemo is the last refresh outcome of one credential in this
// broker.
type refreshMemo struct {
	at    time.Time
	token string // the access token a successful refresh got
	err   error
}

func (s *server) memo(id string) (refreshMemo, bool) {
	s.memoMu.Lock()
	defer s.memoMu.Unlock()
	m, ok := s.memos[id]
	return m, ok
}

func (s *server) setMemo(id string, m refreshMemo) {
	s.memoMu.Lock()
	defer s.memoMu.Unlock()
	if s.memos == nil {
		s.memos = map[string]refreshMemo{}
	}
	s.memos[id] = m
}

// refreshedRecently reports whether token is one this broker got by a
// refresh less than minRefreshInterval ago.
func (s *server) refreshedRecently(id, token string) bool {
	m, ok := s.memo(id)
	return ok && m.err == nil && m.token == token && s.now().Sub(m.at) < minRefreshInterval
}

// attacher holds one channel's copy of its credential, and the redactor
// for it. A refresh by any channel, or by another broker process, reaches
// it through [server.refresh].
type attacher struct {
	mu  sync.Mutex
	rec vault.Record
	// red redacts rec's secrets; built once per record, since deriving
	// every encoding of every secret is most of redaction's cost. redErr
	// says why it could not be built.
	red    *redact.Redactor
	redErr error
}

func newAttacher(rec vault.Record) *attacher {
	a := &attacher{}
	a.set(rec)
	return a
}

func (a *attacher) get() vault.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec
}

// snapshot returns the record with its redactor, or the error that kept
// the redactor from being built.
func (a *attacher) snapshot() (vault.Record, *redact.Redactor, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec, a.red, a.redErr
}

func (a *attacher) set(rec vault.Record) {
	red, err := redact.New(credentialSecrets(rec))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rec, a.red, a.redErr = rec, red, err
}

func (a *attacher) id() string { return credentialID(a.get().Meta) }

func credentialID(m vault.Meta) string {
	if m.Tenant != "" {
		return m.Tenant + "/" + m.Name
	}
	return m.Name
}

// placeholderError is a connector's misuse of a placeholder (ErrnoInvalid).
type placeholderError struct{ msg string }

func (e *placeholderError) Error() string { return e.msg }

// credentialSecrets returns every secret of rec that a request can carry or
// a service could echo, for redaction: each one set, whatever its length
// (redact.New refuses one too short to redact, and then nothing is sent).
func credentialSecrets(rec vault.Record) [][]byte {
	s := rec.Secret
	var secrets []string
	switch rec.Meta.Kind {
	case vault.KindAPIKey, vault.KindSigningKey:
		secrets = []string{s.Value}
	case vault.KindBasic:
		secrets = []string{basicValue(s), s.Password}
	case vault.KindOAuth2:
		secrets = []string{s.AccessToken, s.RefreshToken, s.ClientSecret}
	}
	out := make([][]byte, 0, len(secrets))
	for _, sec := range secrets {
		if sec != "" { // an optional field that is not set
			out = append(out, []byte(sec))
		}
	}
	return out
}

func basicValue(s vault.Secret) string {
	return base64.StdEncoding.EncodeToString([]byte(s.Username + ":" + s.Password))
}

// applyCredential replaces the placeholders in header values with what rec
// provides. It returns the secrets made for this request alone (a
// signature), for redaction on top of [credentialSecrets]. method,
// vettedURL and body are the request as it will be sent: a signature
// covers them.
//
//   - api_key: {{aileron.credential}} becomes the key;
//   - basic: {{aileron.credential}} becomes base64("user:password");
//   - oauth2: {{aileron.credential}} becomes the access token;
//   - signing_key: {{aileron.signature}} becomes the signature of the
//     canonical request ([signature]) and X-Aileron-Timestamp is set; the
//     key itself is never placed anywhere.
func applyCredential(rec vault.Record, headers map[string][]string, method, vettedURL string, body []byte, now time.Time) ([][]byte, error) {
	s := rec.Secret
	var value string
	var extra [][]byte
	ph, other := abi.CredentialPlaceholder, abi.SignaturePlaceholder
	switch rec.Meta.Kind {
	case vault.KindAPIKey:
		value = s.Value
	case vault.KindBasic:
		value = basicValue(s)
	case vault.KindOAuth2:
		if s.AccessToken == "" {
			return nil, fmt.Errorf("credential %s has no access token", rec.Meta.Name)
		}
		value = s.AccessToken
	case vault.KindSigningKey:
		ph, other = abi.SignaturePlaceholder, abi.CredentialPlaceholder
		ts := strconv.FormatInt(now.Unix(), 10)
		sig, err := signature([]byte(s.Value), ts, method, vettedURL, body)
		if err != nil {
			return nil, err
		}
		value, extra = sig, [][]byte{[]byte(sig)}
		headers[abi.SignatureTimestampHeader] = []string{ts}
	default:
		return nil, fmt.Errorf("credential kind %s cannot be placed in a header", rec.Meta.Kind)
	}
	for _, vs := range headers {
		for _, v := range vs {
			if strings.Contains(v, other) {
				if rec.Meta.Kind == vault.KindSigningKey {
					return nil, &placeholderError{fmt.Sprintf("the connector's credential is a signing_key, which never leaves the broker: use %s, not %s", abi.SignaturePlaceholder, abi.CredentialPlaceholder)}
				}
				return nil, &placeholderError{fmt.Sprintf("the connector's credential is %s: %s is only for signing_key credentials", rec.Meta.Kind, abi.SignaturePlaceholder)}
			}
		}
	}
	for k, vs := range headers {
		for i, v := range vs {
			headers[k][i] = strings.ReplaceAll(v, ph, value)
		}
	}
	return extra, nil
}

// signature computes the signing_key signature (docs/ABI.md section 5):
// lower-case hex HMAC-SHA256 under key of the canonical request
//
//	AILERON-HMAC-SHA256 \n timestamp \n METHOD \n host \n request-target \n hex(sha256(body))
//
// where host is the Host header the broker sends (lower case, default port
// omitted) and request-target the path and query exactly as sent.
func signature(key []byte, ts, method, vettedURL string, body []byte) (string, error) {
	u, err := url.Parse(vettedURL)
	if err != nil {
		return "", fmt.Errorf("BUG: vetted URL does not parse: %w", err)
	}
	bh := sha256.Sum256(body)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s\n%s\n%s\n%s\n%s\n%s", abi.SignatureAlgorithm, ts, method, u.Host, u.RequestURI(), hex.EncodeToString(bh[:]))
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// needsRefresh reports whether an OAuth2 record's access token is missing
// or expires within refreshSkew. A zero Expiry means unknown: the token is
// used until the service answers 401.
func needsRefresh(s vault.Secret, now time.Time) bool {
	return s.AccessToken == "" || !s.Expiry.IsZero() && !now.Add(refreshSkew).Before(s.Expiry)
}

// refreshError is a failed refresh; its message is safe for the connector.
type refreshError struct{ msg string }

func (e *refreshError) Error() string { return e.msg }

// refresh gets a usable access token for ch's OAuth2 credential, in place
// of stale (the token that is expired or that the service refused), and
// installs it in ch.
//
// Concurrent refreshes of one credential in this broker coalesce into one
// (singleflight, across channels). The one that runs holds the vault's
// write lock, re-reads the record and refreshes only if the stored token is
// still stale: a token another channel or another broker process stored
// meanwhile is adopted as is. So N brokers that find the same token expired
// make one token request, and a rotated refresh token is never reused.
//
// The refresh runs under its own timeout, not ctx: a worker that goes away
// must not fail the refresh other channels are waiting for.
func (s *server) refresh(ctx context.Context, ch *channelState, step *Step, stale string) error {
	m := ch.cred.get().Meta
	id := credentialID(m)
	if memo, ok := s.memo(id); ok && memo.err != nil && s.now().Sub(memo.at) < refreshRetryAfter {
		return memo.err
	}
	res := s.refreshes.DoChan(id, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.RequestTimeoutMS)*time.Millisecond)
		defer cancel()
		return s.refreshLocked(rctx, ch, step, m, stale)
	})
	select {
	case r := <-res:
		var re *refreshError
		if errors.As(r.Err, &re) {
			s.setMemo(id, refreshMemo{at: s.now(), err: r.Err})
		}
		if r.Err != nil {
			return r.Err
		}
		ch.cred.set(r.Val.(vault.Record))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *server) refreshLocked(ctx context.Context, ch *channelState, step *Step, m vault.Meta, stale string) (vault.Record, error) {
	return s.vault.Update(ctx, m.Tenant, m.Name, func(cur vault.Record) (vault.Record, bool, error) {
		if cur.Meta.Kind != vault.KindOAuth2 {
			return cur, false, &refreshError{fmt.Sprintf("credential %s is no longer oauth2", m.Name)}
		}
		if cur.Secret.AccessToken != stale && !needsRefresh(cur.Secret, s.now()) {
			return cur, false, nil // refreshed meanwhile by another channel or broker
		}
		sec := cur.Secret
		start := time.Now()
		rec := withRun(audit.Record{Kind: audit.KindCredential, Event: "oauth2_refresh", CredentialID: credentialID(m)}, ch, step, s.cfg.Tenant)
		if u, err := url.Parse(sec.TokenURL); err == nil {
			rec.Host, rec.Path = u.Hostname(), u.Path
			if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
				rec.Port = uint16(p)
			} else if u.Scheme == "https" {
				rec.Port = 443
			}
		}
		tok, err := s.exchange(ctx, cur)
		rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
		if err != nil {
			rec.Code, rec.Reason = codeRefreshFailed, err.Error()
			if aerr := s.audit.Append(rec); aerr != nil {
				s.log.Error("audit append failed", "error", aerr)
			}
			s.log.Warn("oauth2 refresh failed", "credential", rec.CredentialID, "reason", err.Error())
			return cur, false, err
		}
		s.setMemo(credentialID(m), refreshMemo{at: s.now(), token: tok.AccessToken})
		rec.Code = codeRefreshed
		if err := s.audit.Append(rec); err != nil {
			// Security: the new token is still stored (the old refresh
			// token may be spent), but the request that needed it fails.
			s.log.Error("audit append failed", "error", err)
		}
		next := cur
		next.Secret.AccessToken = tok.AccessToken
		if tok.RefreshToken != "" {
			next.Secret.RefreshToken = tok.RefreshToken
		}
		next.Secret.Expiry = time.Time{}
		if !tok.Expiry.IsZero() {
			next.Secret.Expiry = tok.Expiry.UTC()
		}
		return next, true, nil
	})
}

// exchange trades the stored refresh token for a new token at the stored
// token URL, through the egress transport (pinned dialer, verified TLS, the
// address policy) but not the connector's host rules: the operator chose
// the token URL when storing the credential, the connector never does.
func (s *server) exchange(ctx context.Context, cur vault.Record) (*oauth2.Token, error) {
	sec, name := cur.Secret, cur.Meta.Name
	if sec.RefreshToken == "" || sec.TokenURL == "" {
		return nil, &refreshError{fmt.Sprintf("credential %s has no refresh token or token URL: store a fresh one with `aileron vault set %s --kind oauth2`", name, name)}
	}
	hc, err := s.egress.OriginClient(sec.TokenURL, time.Duration(s.cfg.RequestTimeoutMS)*time.Millisecond)
	if err != nil {
		return nil, &refreshError{fmt.Sprintf("credential %s: token URL refused: %s", name, reasonOf(err))}
	}
	conf := &oauth2.Config{ClientID: sec.ClientID, ClientSecret: sec.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: sec.TokenURL}}
	tok, err := conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc), &oauth2.Token{RefreshToken: sec.RefreshToken}).Token()
	if err == nil && tok.AccessToken == "" {
		err = errors.New("the token endpoint returned no access token")
	}
	if err == nil {
		return tok, nil
	}
	u, _ := url.Parse(sec.TokenURL)
	where := "token endpoint"
	if u != nil {
		where += " " + u.Host
	}
	// Security: never echo the endpoint's body; it may repeat what was
	// sent (the refresh token, the client secret).
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.Response != nil:
		msg := fmt.Sprintf("%s answered %d %s", where, re.Response.StatusCode, http.StatusText(re.Response.StatusCode))
		if re.ErrorCode != "" && validCode(re.ErrorCode) {
			msg += " (" + re.ErrorCode + ")"
		}
		return nil, &refreshError{fmt.Sprintf("credential %s could not be refreshed: %s", name, msg)}
	case ctx.Err() != nil:
		return nil, &refreshError{fmt.Sprintf("credential %s could not be refreshed: %s did not answer in time", name, where)}
	}
	return nil, &refreshError{fmt.Sprintf("credential %s could not be refreshed: %s: %s", name, where, reasonOf(err))}
}

// reasonOf returns a denial's reason, or a short description of err that
// does not repeat URLs (their query may carry data).
func reasonOf(err error) string {
	var de *egress.DeniedError
	if errors.As(err, &de) {
		return de.Decision.Reason
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// validCode reports whether an RFC 6749 error code is plain enough to show.
func validCode(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ValidTenant reports whether name may name a tenant: it scopes vault
// records and names files, so the vault's name rule decides.
func ValidTenant(name string) bool { return vault.ValidName(name) }
