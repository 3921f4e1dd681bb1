package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"aileron.dev/aileron/sdk/abi"
)

// Send defaults, used when a [Limits] field is zero.
const (
	// DefaultMaxRequestBody bounds a request body (8 MiB).
	DefaultMaxRequestBody = 8 << 20
	// DefaultMaxResponseBody bounds a response body (8 MiB).
	DefaultMaxResponseBody = 8 << 20
	// DefaultTimeout bounds a whole exchange, redirects included.
	DefaultTimeout = 30 * time.Second
)

// Limits bounds one [Client.Send]. The zero value applies the defaults and
// follows no redirects.
type Limits struct {
	// MaxRequestBody bounds the request body; zero means
	// DefaultMaxRequestBody.
	MaxRequestBody int64
	// MaxResponseBody bounds each response body; zero means
	// DefaultMaxResponseBody. A larger body is a [*ResponseTooLargeError].
	MaxResponseBody int64
	// Timeout bounds the whole exchange, every redirect hop and reading the
	// body included; zero means DefaultTimeout.
	Timeout time.Duration
	// FollowRedirects is how many redirects to follow. Zero returns a 3xx
	// to the caller like any other response. Every hop is re-decided
	// against the rules, and a hop from https to http is refused. A hop
	// carries the original headers only when it is [Hop.Original], so a
	// credential placed in any header never follows a redirect to another
	// host.
	FollowRedirects int
}

func (l Limits) withDefaults() (Limits, error) {
	if l.MaxRequestBody < 0 || l.MaxResponseBody < 0 || l.Timeout < 0 || l.FollowRedirects < 0 {
		return l, errors.New("egress: negative value in Limits")
	}
	l.MaxRequestBody = orInt64(l.MaxRequestBody, DefaultMaxRequestBody)
	l.MaxResponseBody = orInt64(l.MaxResponseBody, DefaultMaxResponseBody)
	l.Timeout = orDuration(l.Timeout, DefaultTimeout)
	return l, nil
}

// Hop is one request that Send made, or decided not to make, for one call.
// The first hop is the connector's own request; the others follow
// redirects.
type Hop struct {
	// Method and URL are what was (or would have been) sent. URL is the
	// vetted URL of an allowed hop, and the URL as requested (or as
	// resolved from a Location header) of a refused one.
	Method string
	URL    string
	// Decision is the policy decision for this hop.
	Decision Decision
	// Original reports whether the hop goes to the same scheme, host and
	// port as the connector's request: the destination the credential was
	// meant for. Only such hops carry the request's headers.
	Original bool
	// Sent reports whether the request was handed to a connection to the
	// vetted address (TLS verified, for https): from then on its headers
	// may have reached the service, so it counts as sent even if no
	// response came back. A hop refused by policy, or whose name did not
	// resolve or whose connection or TLS handshake failed, was not sent.
	Sent bool
	// RequestBytes is the size of the body the hop carries (or would have
	// carried, if it was not sent).
	RequestBytes int64
	// Status is the response status, or 0 if none was read.
	Status int
}

// Response is a response read in full under the size limit.
type Response struct {
	// Status is the HTTP status code. A 3xx arrives here when redirects are
	// not followed.
	Status int
	// Header holds the response headers.
	Header http.Header
	// Body is the whole body, at most Limits.MaxResponseBody bytes.
	Body []byte
	// Hops lists, in order, every hop Send decided: each one it sent and,
	// if it stopped at a hop it did not send (refused or failed), that
	// one last. The broker audits one record per hop.
	Hops []Hop
}

// ABI converts r to the wire type the worker receives. Redact it first.
func (r *Response) ABI() *abi.HTTPResponse {
	return &abi.HTTPResponse{Status: r.Status, Headers: r.Header, Body: r.Body}
}

// ResponseTooLargeError is returned when a response body exceeds
// Limits.MaxResponseBody.
type ResponseTooLargeError struct {
	// Limit is the limit in bytes.
	Limit int64
}

// Error returns "response exceeds N bytes".
func (e *ResponseTooLargeError) Error() string {
	return "response exceeds " + strconv.FormatInt(e.Limit, 10) + " bytes"
}

// Client sends connector requests under the egress policy. It is safe for
// concurrent use; one Client serves every invocation, while the rules come
// with each call.
type Client struct {
	hc *http.Client
	tr *http.Transport
}

// NewClient returns a Client over [NewTransport](cfg).
func NewClient(cfg TransportConfig) (*Client, error) {
	tr, err := NewTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{tr: tr, hc: &http.Client{
		Transport: tr,
		// Security: never follow a redirect inside net/http; Send
		// follows them itself, re-deciding each hop.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Send decides req against rules and, if allowed, sends it and reads the
// response under lim.
//
// The returned Decision is the one for the last hop: the one whose response
// is returned, or that was refused or failed. err is nil only on success. A
// policy refusal, whether by [Decide], the address policy in the [Dialer]
// or a redirect hop, is a [*DeniedError] carrying that Decision.
//
// The Response is never nil, so its Hops, which say what left the broker,
// can be audited whatever happened. On error, Status, Header and Body are
// empty, except that a refused redirect hop returns the 3xx that pointed
// there.
func (c *Client) Send(ctx context.Context, rules Rules, req *abi.HTTPRequest, lim Limits) (*Response, Decision, error) {
	resp := &Response{}
	if req == nil {
		return resp, Decision{}, errors.New("egress: nil request")
	}
	lim, err := lim.withDefaults()
	if err != nil {
		return resp, Decision{}, err
	}
	refused := func(method, u string, body []byte, d Decision) (*Response, Decision, error) {
		resp.Hops = append(resp.Hops, Hop{Method: method, URL: u, Decision: d, RequestBytes: int64(len(body))})
		return resp, d, &DeniedError{d}
	}
	d := Decide(rules, req.Method, req.URL, req.Headers)
	if !d.Allowed() {
		return refused(req.Method, req.URL, req.Body, d)
	}
	if int64(len(req.Body)) > lim.MaxRequestBody {
		d = deny(CodeRequestTooLarge, d.Host, d.Port, "request body to %s:%d is %d bytes, over the limit of %d",
			d.Host, d.Port, len(req.Body), lim.MaxRequestBody)
		return refused(req.Method, req.URL, req.Body, d)
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()

	origin := originOf(d.URL)
	method, headers, body := req.Method, req.Headers, req.Body
	for hop := 0; ; hop++ {
		status, header, b, sent, err := c.roundTrip(ctx, d, method, headers, body, lim.MaxResponseBody)
		resp.Hops = append(resp.Hops, Hop{Method: method, URL: d.URL, Decision: d, Original: originOf(d.URL) == origin,
			Sent: sent, RequestBytes: int64(len(body)), Status: status})
		if err != nil {
			failed := &Response{Hops: resp.Hops}
			var de *DeniedError
			if errors.As(err, &de) {
				failed.Hops[len(failed.Hops)-1].Decision = de.Decision
				return failed, de.Decision, err
			}
			return failed, d, err
		}
		resp.Status, resp.Header, resp.Body = status, header, b
		loc := header.Get("Location")
		if hop >= lim.FollowRedirects || !isRedirect(status) || loc == "" {
			return resp, d, nil
		}
		next, ok := resolveLocation(d.URL, loc)
		if !ok {
			return resp, d, nil // unusable Location: hand the 3xx back
		}
		// RFC 9110 section 15.4: 301/302 after POST and 303 after
		// anything but HEAD become GET without a body (as browsers and
		// net/http do); 307/308 repeat the request as is.
		if status == http.StatusSeeOther && method != http.MethodHead ||
			(status == http.StatusMovedPermanently || status == http.StatusFound) && method == http.MethodPost {
			method, body = http.MethodGet, nil
		}
		nd := decideHop(rules, method, next, d)
		if nd.Allowed() {
			headers = nil
			if originOf(nd.URL) == origin {
				headers = req.Headers
			}
			nd = Decide(rules, method, next, headers)
		}
		if !nd.Allowed() {
			return refused(method, next, body, nd)
		}
		d = nd
	}
}

// decideHop decides a redirect target without headers, refusing a
// downgrade from https to http.
func decideHop(rules Rules, method, next string, from Decision) Decision {
	nd := Decide(rules, method, next, nil)
	if !nd.Allowed() {
		nd.Reason = "redirect: " + nd.Reason
		return nd
	}
	// Security: a redirect must not move a TLS exchange to plaintext,
	// even to a declared port (SSL stripping).
	if schemeOf(from.URL) == "https" && schemeOf(nd.URL) == "http" {
		return deny(CodeRedirectDowngrade, nd.Host, nd.Port,
			"redirect from https to plaintext http at %s:%d is refused", nd.Host, nd.Port)
	}
	return nd
}

// roundTrip sends one hop and reads its response. sent reports whether the
// request reached a connection (see [Hop.Sent]).
func (c *Client) roundTrip(ctx context.Context, d Decision, method string, headers map[string][]string, body []byte, max int64) (status int, header http.Header, b []byte, sent bool, err error) {
	var got atomic.Bool
	// Every return, error or not, reports whether GotConn fired.
	defer func() { sent = got.Load() }()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { got.Store(true) }})
	var rdr io.Reader
	if len(body) > 0 {
		rdr = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, d.URL, rdr)
	if err != nil {
		return 0, nil, nil, false, fmt.Errorf("egress: BUG: vetted URL for %s:%d did not parse: %w", d.Host, d.Port, err)
	}
	for k, vs := range headers {
		k = textproto.CanonicalMIMEHeaderKey(k)
		if k == "Host" {
			continue // Decide checked it equals the URL host
		}
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	// Security: the Host header comes from the vetted URL and nothing
	// else.
	hr.Host = ""
	resp, err := c.hc.Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the whole URL, query included
		}
		var de *DeniedError
		if errors.As(err, &de) {
			return 0, nil, nil, false, de
		}
		return 0, nil, nil, false, fmt.Errorf("egress: %s %s:%d: %w", method, d.Host, d.Port, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > max {
		return resp.StatusCode, nil, nil, false, &ResponseTooLargeError{Limit: max}
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	if int64(len(b)) > max {
		return resp.StatusCode, nil, nil, false, &ResponseTooLargeError{Limit: max}
	}
	if err != nil {
		return resp.StatusCode, nil, nil, false, fmt.Errorf("egress: %s %s:%d: read body: %w", method, d.Host, d.Port, err)
	}
	return resp.StatusCode, resp.Header, b, false, nil
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// resolveLocation resolves a Location header against the vetted URL.
func resolveLocation(base, loc string) (string, bool) {
	b, err := url.Parse(base)
	if err != nil {
		return "", false
	}
	l, err := b.Parse(loc)
	if err != nil {
		return "", false
	}
	return l.String(), true
}

// originOf returns scheme://host:port of a vetted URL.
func originOf(vetted string) string {
	t, _ := parseTarget(vetted)
	return t.scheme + "://" + t.host.String() + ":" + strconv.Itoa(int(t.port))
}

func schemeOf(vetted string) string {
	t, _ := parseTarget(vetted)
	return t.scheme
}
