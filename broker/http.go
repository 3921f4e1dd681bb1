package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/broker/egress"
	"aileron.dev/aileron/broker/internal/vault"
	"aileron.dev/aileron/broker/redact"
	"aileron.dev/aileron/sdk/abi"
)

// handleHTTP runs one egress request through every check, in order: budget,
// placeholder placement, destination policy, credential attachment (an
// OAuth2 token is refreshed first if it has expired), the pinned request
// (which decides again, on the final headers), one retry after a refresh if
// an OAuth2 service answers 401 to a token that was not itself just
// refreshed, redaction, audit. Every outcome is audited.
func (s *server) handleHTTP(ctx context.Context, ch *channelState, step *Step, hr *abi.HTTPRequest) *channel.Response {
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
		if notSent(errno, code) {
			rec.Decision = audit.DecisionDeny
			ch.mu.Lock()
			ch.denied++
			ch.mu.Unlock()
			s.log.Warn("egress denied", "decision", rec.Decision, "code", code, "reason", reason, "connector", rec.Connector, "intent", rec.Intent, "host", rec.Host)
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
	n, total := ch.stepRequests, ch.requests
	ch.mu.Unlock()
	if n > s.cfg.MaxRequestsPerStep {
		return finish(egress.Decision{}, abi.ErrnoLimit, "request_budget_exceeded", fmt.Sprintf("request budget of %d per step exceeded", s.cfg.MaxRequestsPerStep), nil)
	}
	if total > s.cfg.MaxRequestsPerChannel {
		return finish(egress.Decision{}, abi.ErrnoLimit, "request_budget_exceeded", fmt.Sprintf("request budget of %d per run of the connector exceeded", s.cfg.MaxRequestsPerChannel), nil)
	}

	// Security: placeholders are only ever substituted in header values;
	// one in the URL or body is a connector bug, refused so it is found.
	for _, ph := range []string{abi.CredentialPlaceholder, abi.SignaturePlaceholder} {
		if strings.Contains(hr.URL, ph) || bytes.Contains(hr.Body, []byte(ph)) {
			return finish(egress.Decision{}, abi.ErrnoInvalid, "placeholder_misplaced", "credential placeholder outside a header value: the broker substitutes it only in headers", nil)
		}
	}

	d := egress.Decide(ch.rules, hr.Method, hr.URL, hr.Headers)
	if !d.Allowed() {
		return finish(d, abi.ErrnoDenied, d.Code, withConnector(d.Reason, ch.grant.Connector), nil)
	}

	usesCred := false
	for k, vs := range hr.Headers {
		// Security: the timestamp a signature covers is the broker's, so
		// a connector cannot collect signatures for future times.
		if textproto.CanonicalMIMEHeaderKey(k) == abi.SignatureTimestampHeader {
			return finish(d, abi.ErrnoDenied, egress.CodeHopByHopHeader, "header "+abi.SignatureTimestampHeader+" may not be set by a connector (set by the broker)", nil)
		}
		for _, v := range vs {
			usesCred = usesCred || strings.Contains(v, abi.CredentialPlaceholder) || strings.Contains(v, abi.SignaturePlaceholder)
		}
	}
	if usesCred && ch.cred == nil {
		return finish(d, abi.ErrnoDenied, "no_credential", fmt.Sprintf("connector %s declares no credential, but its request carries a credential placeholder", ch.grant.Connector), nil)
	}
	var oauth bool
	if usesCred {
		rec.CredentialID = ch.cred.id()
		oauth = ch.cred.get().Meta.Kind == vault.KindOAuth2
		if cur := ch.cred.get().Secret; oauth && needsRefresh(cur, s.now()) {
			if err := s.refresh(ctx, ch, step, cur.AccessToken); err != nil {
				return finish(d, abi.ErrnoUnavailable, codeRefreshFailed, refreshMessage(ctx, err), nil)
			}
		}
	}

	lim := s.limits
	if step.DeadlineMS > 0 {
		lim.Timeout = min(orDefault(lim.Timeout, egress.DefaultTimeout), time.Duration(step.DeadlineMS)*time.Millisecond)
	}
	for attempt := 1; ; attempt++ {
		req := *hr
		req.Headers = make(map[string][]string, len(hr.Headers)+1)
		for k, vs := range hr.Headers {
			req.Headers[k] = append([]string(nil), vs...)
		}
		var red *redact.Redactor
		var token string
		if usesCred {
			cred := ch.cred.get()
			token = cred.Secret.AccessToken
			secrets, err := applyCredential(cred, req.Headers, req.Method, d.URL, req.Body, s.now())
			var pe *placeholderError
			if errors.As(err, &pe) {
				return finish(d, abi.ErrnoInvalid, codeWrongPlaceholder, pe.msg, nil)
			}
			if err != nil {
				return finish(d, abi.ErrnoUnavailable, codeCredentialUnavailable, "attach credential: "+err.Error(), nil)
			}
			if red, err = redact.New(secrets); err != nil {
				// Security: a secret too short to redact safely is never sent.
				return finish(d, abi.ErrnoUnavailable, codeCredentialUnavailable, "credential cannot be redacted safely: "+err.Error(), nil)
			}
		}
		// The tenant's egress quota, checked last so that a request the
		// policy refuses is reported for that reason, and per attempt: a
		// retry after a refresh leaves again.
		if reason := s.quota.admit(s.now()); reason != "" {
			return finish(d, abi.ErrnoLimit, codeEgressQuota, reason, nil)
		}
		resp, d2, err := s.egress.Send(ctx, ch.rules, &req, lim)
		sent := len(req.Body)
		if resp != nil {
			sent += len(resp.Body)
		}
		s.quota.charge(s.now(), sent)
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
			case ctx.Err() != nil:
				return finish(d, abi.ErrnoUnavailable, "cancelled", "the request was cancelled: the worker went away or the channel closed", nil)
			}
			return finish(d, abi.ErrnoUnavailable, "unavailable", scrub(err.Error(), red), nil)
		}
		if oauth && attempt == 1 && resp.Status == http.StatusUnauthorized && !s.refreshedRecently(rec.CredentialID, token) {
			// The service refused the token (revoked, or expired early):
			// refresh once and repeat the request, which was not acted on.
			first := rec
			first.Code, first.Reason, first.Decision = "retry_after_refresh", "the service answered 401; refreshing the token and retrying once", audit.DecisionAllow
			first.Host, first.Port, first.Status, first.Bytes = d.Host, d.Port, resp.Status, int64(len(resp.Body))
			first.DurationMS = float64(time.Since(start).Microseconds()) / 1000
			if err := s.audit.Append(first); err != nil {
				s.log.Error("audit append failed", "error", err)
				return deny(abi.ErrnoUnavailable, "audit_unavailable", "the audit log cannot be written")
			}
			if err := s.refresh(ctx, ch, step, token); err != nil {
				return finish(d, abi.ErrnoUnavailable, codeRefreshFailed, refreshMessage(ctx, err), nil)
			}
			continue
		}
		out := resp.ABI()
		// Security: an echoing service must not hand the secret back to
		// the connector, in any of its usual encodings.
		if red != nil {
			var n int
			out.Body, n = red.Bytes(out.Body)
			rec.Redactions = n + red.Headers(out.Headers)
		}
		rec.Status, rec.Bytes = out.Status, int64(len(out.Body))
		return finish(d, abi.ErrnoOK, "", "", out)
	}
}

// notSent reports whether an outcome means the request never left the
// broker: those are audited as denials.
func notSent(errno abi.Errno, code string) bool {
	switch errno {
	case abi.ErrnoDenied, abi.ErrnoLimit, abi.ErrnoInvalid, abi.ErrnoTooLarge:
		return true
	}
	return code == codeRefreshFailed || code == codeCredentialUnavailable
}

func refreshMessage(ctx context.Context, err error) string {
	var re *refreshError
	if errors.As(err, &re) {
		return re.msg
	}
	if ctx.Err() != nil {
		return "the request was cancelled while its credential was being refreshed"
	}
	return "credential refresh failed: " + err.Error()
}

// withConnector names the connector whose manifest a reason refers to.
func withConnector(reason, connector string) string {
	return strings.Replace(reason, "in the connector manifest", "in the manifest of "+connector, 1)
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
