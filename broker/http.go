package broker

import (
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
// refreshed, redaction, audit.
//
// Every outcome is audited, and the decision in a record says whether the
// request left the broker. A request refused or failed before it was sent
// is one deny record. One that [egress.Client.Send] handled gets one allow
// record per hop it sent (redirects included, each with its own host and
// path) and, if Send stopped at a hop it did not send (refused, or the
// connection failed), a deny record for that hop.
func (s *server) handleHTTP(ctx context.Context, ch *channelState, step *Step, hr *abi.HTTPRequest) *channel.Response {
	start := time.Now()
	rec := withRun(audit.Record{Kind: audit.KindEgress, Method: hr.Method, Path: pathOf(hr.URL), RequestBytes: int64(len(hr.Body))}, ch, step, s.cfg.Tenant)
	// finish audits an outcome reached before anything was sent.
	finish := func(d egress.Decision, errno abi.Errno, code, reason string) *channel.Response {
		r := rec
		r.Decision, r.Code, r.Reason = audit.DecisionDeny, code, reason
		if d.Host != "" {
			r.Host, r.Port = d.Host, d.Port
		}
		return s.answer(ch, start, deny(errno, code, reason), r)
	}

	ch.mu.Lock()
	ch.requests++
	ch.stepRequests++
	n, total, deadline := ch.stepRequests, ch.requests, ch.deadline
	ch.mu.Unlock()
	if n > s.cfg.MaxRequestsPerStep {
		return finish(egress.Decision{}, abi.ErrnoLimit, "request_budget_exceeded", fmt.Sprintf("request budget of %d per step exceeded", s.cfg.MaxRequestsPerStep))
	}
	if total > s.cfg.MaxRequestsPerChannel {
		return finish(egress.Decision{}, abi.ErrnoLimit, "request_budget_exceeded", fmt.Sprintf("request budget of %d per run of the connector exceeded", s.cfg.MaxRequestsPerChannel))
	}

	// Security: placeholders are only ever substituted in header values;
	// one in the URL or body is a connector bug, refused so it is found.
	if abi.PlaceholderOutsideHeaders(hr.URL, hr.Body) {
		return finish(egress.Decision{}, abi.ErrnoInvalid, abi.CodePlaceholderMisplaced, abi.MisplacedPlaceholderMessage)
	}

	d := egress.Decide(ch.rules, hr.Method, hr.URL, hr.Headers)
	if !d.Allowed() {
		return finish(d, abi.ErrnoDenied, d.Code, withConnector(d.Reason, ch.grant.Connector))
	}

	usesCred := false
	for k, vs := range hr.Headers {
		// Security: the timestamp a signature covers is the broker's, so
		// a connector cannot collect signatures for future times.
		if textproto.CanonicalMIMEHeaderKey(k) == abi.SignatureTimestampHeader {
			return finish(d, abi.ErrnoDenied, egress.CodeHopByHopHeader, "header "+abi.SignatureTimestampHeader+" may not be set by a connector (set by the broker)")
		}
		for _, v := range vs {
			usesCred = usesCred || strings.Contains(v, abi.CredentialPlaceholder) || strings.Contains(v, abi.SignaturePlaceholder)
		}
	}
	if usesCred && ch.cred == nil {
		return finish(d, abi.ErrnoDenied, abi.CodeNoCredential, fmt.Sprintf("connector %s declares no credential, but its request carries a credential placeholder", ch.grant.Connector))
	}
	var oauth bool
	if usesCred {
		rec.CredentialID = ch.cred.id()
		oauth = ch.cred.get().Meta.Kind == vault.KindOAuth2
		if cur := ch.cred.get().Secret; oauth && needsRefresh(cur, s.now()) {
			if err := s.refresh(ctx, ch, step, cur.AccessToken); err != nil {
				return finish(d, abi.ErrnoUnavailable, codeRefreshFailed, refreshMessage(ctx, err))
			}
		}
	}

	lim := s.limits
	for attempt := 1; ; attempt++ {
		// Per attempt: a refresh and a retry spend the step's time too.
		var ok bool
		if lim.Timeout, ok = requestTimeout(s.limits.Timeout, deadline, time.Now()); !ok {
			return finish(d, abi.ErrnoLimit, codeStepDeadline, "the step's deadline has passed")
		}
		req := *hr
		req.Headers = make(map[string][]string, len(hr.Headers)+1)
		for k, vs := range hr.Headers {
			req.Headers[k] = append([]string(nil), vs...)
		}
		var red *redact.Redactor
		var token string
		if usesCred {
			cred, base, redErr := ch.cred.snapshot()
			token = cred.Secret.AccessToken
			extra, err := applyCredential(cred, req.Headers, req.Method, d.URL, req.Body, s.now())
			var pe *placeholderError
			if errors.As(err, &pe) {
				return finish(d, abi.ErrnoInvalid, codeWrongPlaceholder, pe.msg)
			}
			if err != nil {
				return finish(d, abi.ErrnoUnavailable, codeCredentialUnavailable, "attach credential: "+err.Error())
			}
			red = base
			if redErr == nil && len(extra) > 0 {
				red, redErr = base.With(extra)
			}
			if redErr != nil {
				// Security: a secret too short to redact safely is never sent.
				return finish(d, abi.ErrnoUnavailable, codeCredentialUnavailable, "credential cannot be redacted safely: "+redErr.Error())
			}
		}
		// The tenant's egress quota, checked last so that a request the
		// policy refuses is reported for that reason, and per attempt: a
		// retry after a refresh leaves again.
		if reason := s.quota.admit(s.now()); reason != "" {
			return finish(d, abi.ErrnoLimit, codeEgressQuota, reason)
		}
		resp, _, err := s.egress.Send(ctx, ch.rules, &req, lim)
		s.quota.charge(s.now(), sentBytes(resp))
		recs := hopRecords(rec, resp.Hops, ch.grant.Connector)
		last := &recs[len(recs)-1]
		if err != nil {
			var de *egress.DeniedError
			var tl *egress.ResponseTooLargeError
			errno := abi.ErrnoUnavailable
			switch {
			case errors.As(err, &de):
				errno = abi.ErrnoDenied
				last.Code, last.Reason = de.Decision.Code, withConnector(de.Decision.Reason, ch.grant.Connector)
			case errors.As(err, &tl):
				errno = abi.ErrnoTooLarge
				last.Code, last.Reason = "response_too_large", tl.Error()
			case ctx.Err() != nil:
				last.Code, last.Reason = "cancelled", "the request was cancelled: the worker went away or the channel closed"
			default:
				last.Code, last.Reason = "unavailable", scrub(err.Error(), red)
			}
			return s.answer(ch, start, deny(errno, last.Code, last.Reason), recs...)
		}
		if oauth && attempt == 1 && resp.Status == http.StatusUnauthorized && !s.refreshedRecently(rec.CredentialID, token) {
			// The service refused the token (revoked, or expired early):
			// refresh once and repeat the request, which was not acted on.
			last.Code, last.Reason = "retry_after_refresh", "the service answered 401; refreshing the token and retrying once"
			last.Bytes = int64(len(resp.Body))
			if a := s.answer(ch, start, nil, recs...); a != nil {
				return a
			}
			if err := s.refresh(ctx, ch, step, token); err != nil {
				return finish(d, abi.ErrnoUnavailable, codeRefreshFailed, refreshMessage(ctx, err))
			}
			continue
		}
		out := resp.ABI()
		// Security: an echoing service must not hand the secret back to
		// the connector, in any of its usual encodings.
		if red != nil {
			var n int
			out.Body, n = red.Bytes(out.Body)
			last.Redactions = n + red.Headers(out.Headers)
		}
		last.Bytes = int64(len(out.Body))
		if a := s.answer(ch, start, nil, recs...); a != nil {
			return a
		}
		return &channel.Response{Errno: abi.ErrnoOK, HTTP: out}
	}
}

// answer appends recs to the audit log, counting and logging each denial,
// and returns then. If a record cannot be written it returns a refusal
// instead (no audit record, no request result).
func (s *server) answer(ch *channelState, start time.Time, then *channel.Response, recs ...audit.Record) *channel.Response {
	for _, r := range recs {
		r.DurationMS = float64(time.Since(start).Microseconds()) / 1000
		if r.Decision == audit.DecisionDeny {
			ch.mu.Lock()
			ch.denied++
			ch.mu.Unlock()
			s.log.Warn("egress denied", "decision", r.Decision, "code", r.Code, "reason", r.Reason, "connector", r.Connector, "intent", r.Intent, "host", r.Host)
		}
		if err := s.audit.Append(r); err != nil {
			// Security: no audit record, no request result.
			s.log.Error("audit append failed", "error", err)
			return deny(abi.ErrnoUnavailable, "audit_unavailable", "the audit log cannot be written")
		}
	}
	return then
}

// hopRecords returns one egress record per hop of one Send, built on base:
// allow for a hop that was sent, deny for one that was not (with the hop's
// decision when policy refused it). The credential id stays only on hops
// that carried the request's headers, the only ones a credential reaches.
func hopRecords(base audit.Record, hops []egress.Hop, connector string) []audit.Record {
	if len(hops) == 0 {
		// BUG: Send reports at least one hop for every request it takes.
		base.Decision = audit.DecisionDeny
		return []audit.Record{base}
	}
	recs := make([]audit.Record, len(hops))
	for i, h := range hops {
		r := base
		r.Method, r.Path, r.Status, r.RequestBytes = h.Method, pathOf(h.URL), h.Status, h.RequestBytes
		if h.Decision.Host != "" {
			r.Host, r.Port = h.Decision.Host, h.Decision.Port
		}
		if !h.Original {
			r.CredentialID = ""
		}
		r.Decision = audit.DecisionAllow
		if !h.Sent {
			r.Decision = audit.DecisionDeny
			if !h.Decision.Allowed() {
				r.Code, r.Reason = h.Decision.Code, withConnector(h.Decision.Reason, connector)
			}
		}
		recs[i] = r
	}
	return recs
}

// sentBytes is what the egress quota counts for one Send: the request
// bodies that left and the response body that came back.
func sentBytes(r *egress.Response) int {
	n := len(r.Body)
	for _, h := range r.Hops {
		if h.Sent {
			n += int(h.RequestBytes)
		}
	}
	return n
}

// pathOf returns the path of a URL for the audit log, never its query,
// which carries data.
func pathOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Path
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

// codeStepDeadline: the step's deadline passed before the request was
// sent.
const codeStepDeadline = "step_deadline_exceeded"

// requestTimeout bounds one request: the egress limit (zero: the egress
// default), or what is left before the step's deadline (zero: none) if
// that is shorter. ok is false when the deadline has passed.
func requestTimeout(limit time.Duration, deadline, now time.Time) (time.Duration, bool) {
	if limit <= 0 {
		limit = egress.DefaultTimeout
	}
	if deadline.IsZero() {
		return limit, true
	}
	left := deadline.Sub(now)
	if left <= 0 {
		return 0, false
	}
	return min(limit, left), true
}
