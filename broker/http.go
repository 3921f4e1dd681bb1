package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/broker/egress"
	"aileron.dev/aileron/broker/internal/vault"
	"aileron.dev/aileron/broker/redact"
	"aileron.dev/aileron/sdk/abi"
)

// handleHTTP runs one egress request through every check, in order: budget,
// placeholder placement, destination policy, credential attachment, the
// pinned request (which decides again, on the final headers), redaction,
// audit. Every outcome is audited.
func (s *server) handleHTTP(ch *channelState, step *Step, hr *abi.HTTPRequest) *channel.Response {
	start := time.Now()
	rec := withRun(audit.Record{Kind: audit.KindEgress, Method: hr.Method, RequestBytes: int64(len(hr.Body))}, ch, step, s.cfg.Tenant)
	if u, err := url.Parse(hr.URL); err == nil {
		rec.Path = u.Path // never the query: it carries data
	}
	finish := func(d egress.Decision, errno abi.Errno, code, reason string, resp *abi.HTTPResponse) *channel.Response {
		rec.Code, rec.Reason = code, reason
		if d.Host != "" {
			rec.Host, rec.Port = d.Host, d.Port
		}
		rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
		rec.Decision = audit.DecisionAllow
		if errno == abi.ErrnoDenied || errno == abi.ErrnoLimit || errno == abi.ErrnoInvalid || errno == abi.ErrnoTooLarge {
			rec.Decision = audit.DecisionDeny
			ch.mu.Lock()
			ch.denied++
			ch.mu.Unlock()
			s.log.Warn("egress denied", "decision", rec.Decision, "reason", reason, "connector", rec.Connector, "intent", rec.Intent, "host", rec.Host)
		}
		if err := s.audit.Append(rec); err != nil {
			// Security: no audit record, no request result.
			s.log.Error("audit append failed", "error", err)
			return deny(abi.ErrnoUnavailable, "audit_unavailable", "the audit log cannot be written")
		}
		if errno != abi.ErrnoOK {
			return deny(errno, code, reason)
		}
		return &channel.Response{Errno: abi.ErrnoOK, HTTP: resp}
	}

	ch.mu.Lock()
	ch.requests++
	ch.stepRequests++
	n := ch.stepRequests
	ch.mu.Unlock()
	if n > s.cfg.MaxRequestsPerStep {
		return finish(egress.Decision{}, abi.ErrnoLimit, "request_budget_exceeded", fmt.Sprintf("request budget of %d per step exceeded", s.cfg.MaxRequestsPerStep), nil)
	}

	// Security: the placeholder is only ever substituted in header values;
	// one in the URL or body is a connector bug, refused so it is found.
	ph := abi.CredentialPlaceholder
	if strings.Contains(hr.URL, ph) || bytes.Contains(hr.Body, []byte(ph)) {
		return finish(egress.Decision{}, abi.ErrnoInvalid, "placeholder_misplaced", "credential placeholder outside a header value: the broker substitutes it only in headers", nil)
	}

	d := egress.Decide(ch.rules, hr.Method, hr.URL, hr.Headers)
	if !d.Allowed() {
		return finish(d, abi.ErrnoDenied, d.Code, withConnector(d.Reason, ch.grant.Connector), nil)
	}

	req := *hr
	req.Headers = make(map[string][]string, len(hr.Headers))
	usesCred := false
	for k, vs := range hr.Headers {
		req.Headers[k] = append([]string(nil), vs...)
		for _, v := range vs {
			usesCred = usesCred || strings.Contains(v, ph)
		}
	}
	var red *redact.Redactor
	if usesCred {
		if ch.cred == nil {
			return finish(d, abi.ErrnoDenied, "no_credential", fmt.Sprintf("connector %s declares no credential, but its request carries the credential placeholder", ch.grant.Connector), nil)
		}
		secrets, err := ch.cred.attach(req.Headers)
		if err != nil {
			return finish(d, abi.ErrnoUnavailable, "credential_unavailable", "attach credential: "+err.Error(), nil)
		}
		if red, err = redact.New(secrets); err != nil {
			// Security: a secret too short to redact safely is never sent.
			return finish(d, abi.ErrnoUnavailable, "credential_unavailable", "credential cannot be redacted safely: "+err.Error(), nil)
		}
		rec.CredentialID = ch.cred.id()
	}

	lim := s.limits
	if step.DeadlineMS > 0 {
		lim.Timeout = min(orDefault(lim.Timeout, egress.DefaultTimeout), time.Duration(step.DeadlineMS)*time.Millisecond)
	}
	resp, d2, err := s.egress.Send(context.Background(), ch.rules, &req, lim)
	if d2.Host != "" {
		d = d2
	}
	if err != nil {
		var de *egress.DeniedError
		var tl *egress.ResponseTooLargeError
		switch {
		case errors.As(err, &de):
			return finish(de.Decision, abi.ErrnoDenied, de.Decision.Code, withConnector(de.Decision.Reason, ch.grant.Connector), nil)
		case errors.As(err, &tl):
			return finish(d, abi.ErrnoTooLarge, "response_too_large", tl.Error(), nil)
		}
		return finish(d, abi.ErrnoUnavailable, "unavailable", scrub(err.Error(), red), nil)
	}
	out := resp.ABI()
	// Security: an echoing service must not hand the secret back to the
	// connector, in any of its usual encodings.
	if red != nil {
		var n int
		out.Body, n = red.Bytes(out.Body)
		rec.Redactions = n + red.Headers(out.Headers)
	}
	rec.Status, rec.Bytes = out.Status, int64(len(out.Body))
	return finish(d, abi.ErrnoOK, "", "", out)
}

func withConnector(reason, connector string) string {
	if strings.Contains(reason, "not declared") {
		return reason + " of " + connector
	}
	return reason
}

func scrub(msg string, r *redact.Redactor) string {
	if r == nil {
		return msg
	}
	out, _ := r.String(msg)
	return out
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// attacher substitutes one channel's credential into header values.
type attacher struct {
	mu  sync.Mutex
	rec vault.Record
	v   *vault.Vault
}

func newAttacher(rec vault.Record, v *vault.Vault) *attacher { return &attacher{rec: rec, v: v} }

func (a *attacher) id() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec.Meta.Tenant != "" {
		return a.rec.Meta.Tenant + "/" + a.rec.Meta.Name
	}
	return a.rec.Meta.Name
}

// attach replaces the placeholder in headers and returns every secret byte
// string that went on the wire, for redaction.
func (a *attacher) attach(headers map[string][]string) ([][]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var value string
	var secrets []string
	s := a.rec.Secret
	switch a.rec.Meta.Kind {
	case vault.KindAPIKey:
		value = s.Value
		secrets = []string{s.Value}
	case vault.KindBasic:
		value = base64.StdEncoding.EncodeToString([]byte(s.Username + ":" + s.Password))
		secrets = []string{value, s.Password}
	case vault.KindOAuth2:
		if s.AccessToken == "" {
			return nil, fmt.Errorf("credential %s has no access token", a.rec.Meta.Name)
		}
		value = s.AccessToken
		secrets = []string{s.AccessToken, s.RefreshToken, s.ClientSecret}
	default:
		return nil, fmt.Errorf("credential kind %s cannot be placed in a header", a.rec.Meta.Kind)
	}
	for k, vs := range headers {
		for i, v := range vs {
			headers[k][i] = strings.ReplaceAll(v, abi.CredentialPlaceholder, value)
		}
	}
	out := make([][]byte, 0, len(secrets))
	for _, sec := range secrets {
		if len(sec) >= redact.MinSecretLen {
			out = append(out, []byte(sec))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("credential %s is shorter than %d bytes", a.rec.Meta.Name, redact.MinSecretLen)
	}
	return out, nil
}
