package egress

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// OriginClient returns an *http.Client for requests the broker makes on its
// own behalf to one endpoint the operator configured, such as an OAuth2
// token endpoint stored in the vault. base must be an absolute https URL;
// the client then sends only to base's exact host and port:
//
//   - every request is decided by [Decide] against a single rule for that
//     origin, so its URL is parsed as strictly as a connector's and a Host
//     header naming another host is refused;
//   - plain http is refused, even to a non-443 port: what is sent there is
//     a client secret and a refresh token;
//   - connections go through the same pinned [Dialer] and verified TLS
//     configuration as connector egress, so the address policy (no
//     loopback, private or metadata addresses unless the operator allows
//     them) applies;
//   - redirects are never followed (a 3xx is returned to the caller);
//   - the whole exchange is bounded by timeout (zero: DefaultTimeout).
//
// Refusals are [*DeniedError] (wrapped in a *url.Error by net/http).
func (c *Client) OriginClient(base string, timeout time.Duration) (*http.Client, error) {
	t, d := parseTarget(base)
	if !t.ok {
		return nil, &DeniedError{d}
	}
	if t.scheme != "https" {
		d := deny(CodeBadScheme, t.host.String(), t.port, "endpoint %s:%d must use https", t.host, t.port)
		return nil, &DeniedError{d}
	}
	ru, err := parseRule(t.host.String() + ":" + strconv.Itoa(int(t.port)))
	if err != nil {
		return nil, &DeniedError{deny(CodeBadHost, t.host.String(), t.port, "endpoint %s:%d: %v", t.host, t.port, err)}
	}
	return &http.Client{
		Transport: &originTransport{rules: Rules{rules: []rule{ru}}, next: c.tr},
		// Security: a token endpoint that redirects gets its 3xx back,
		// never a second request with the client secret elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       orDuration(timeout, DefaultTimeout),
	}, nil
}

// originTransport decides every request before the shared transport sends
// it.
type originTransport struct {
	rules Rules
	next  http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (o *originTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL == nil {
		return nil, errors.New("egress: request without URL")
	}
	headers := map[string][]string(r.Header)
	if r.Host != "" {
		headers = make(map[string][]string, len(r.Header)+1)
		for k, v := range r.Header {
			headers[k] = v
		}
		headers["Host"] = []string{r.Host}
	}
	d := Decide(o.rules, r.Method, r.URL.String(), headers)
	if d.Allowed() && schemeOf(d.URL) != "https" {
		d = deny(CodeBadScheme, d.Host, d.Port, "endpoint %s:%d must use https", d.Host, d.Port)
	}
	if !d.Allowed() {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, &DeniedError{d}
	}
	return o.next.RoundTrip(r)
}
