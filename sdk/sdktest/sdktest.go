// Package sdktest runs a connector's handlers natively, under `go test`,
// against a fake service. [Host] stands in for the worker and the broker:
// it checks each request's destination against the declared hosts, puts
// the test credential where the connector wrote the placeholder (header
// values only, as the broker does), hands the request to an http.Handler
// and redacts the credential from the response.
//
// Write handlers as named functions so a test can call them directly:
//
//	func postMessage(c *sdk.Call, in postInput) (any, error) { ... }
//
//	func TestPostMessage(t *testing.T) {
//		svc := slack.New()
//		svc.AddToken("xoxb-test-token-1234", "chat:write")
//		h := &sdktest.Host{Service: svc, Hosts: []string{"slack.com:443"}, Credential: "xoxb-test-token-1234"}
//		out, err := postMessage(h.Call("run-1/post", 1), postInput{Channel: "#general", Text: "hi"})
//		...
//	}
//
// It is no substitute for an integration test through the real runtime
// (examples/kit packs a connector for one); it makes the connector's own
// logic quick to test. It imports only the standard library and the SDK.
package sdktest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"

	"aileron.dev/aileron/sdk"
	"aileron.dev/aileron/sdk/abi"
)

// Host sends a connector's requests to a fake service. Its exported fields
// are set before use; it is safe for concurrent use.
type Host struct {
	// Service answers every allowed request, whatever its host.
	Service http.Handler
	// Hosts are the manifest's "host:port" entries; a request anywhere
	// else fails with code "host_not_declared", as in the broker.
	Hosts []string
	// Credential replaces the placeholder in header values. Empty: a
	// request that carries the placeholder fails with "no_credential".
	Credential string

	mu   sync.Mutex
	sent []sdk.Request
}

// Call returns the Call of one invocation whose requests go to h.
func (h *Host) Call(id string, attempt int) *sdk.Call {
	return &sdk.Call{ID: id, Attempt: attempt, HTTP: &sdk.Client{Send: h.Send}, Log: &sdk.Logger{}}
}

// Sent returns the requests as the connector wrote them, placeholder and
// all, in order.
func (h *Host) Sent() []sdk.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sent)
}

// Send implements sdk.Client.Send. A service handler that panics with
// http.ErrAbortHandler (a response lost in transit) gives the connector an
// "unavailable" error, as a broken connection does in the broker.
func (h *Host) Send(req sdk.Request) (resp *sdk.Response, err error) {
	h.mu.Lock()
	h.sent = append(h.sent, cloneRequest(req))
	h.mu.Unlock()

	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return nil, &abi.Error{Code: "invalid", Message: fmt.Sprintf("bad URL %q", req.URL)}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	hp := net.JoinHostPort(u.Hostname(), port)
	if !slices.Contains(h.Hosts, hp) {
		return nil, &abi.Error{Code: abi.CodeHostNotDeclared, Message: fmt.Sprintf("host %s is not declared in the manifest", hp)}
	}
	if abi.PlaceholderOutsideHeaders(req.URL, req.Body) {
		return nil, &abi.Error{Code: abi.CodePlaceholderMisplaced, Message: abi.MisplacedPlaceholderMessage}
	}
	ph := abi.CredentialPlaceholder

	hr := httptest.NewRequest(req.Method, req.URL, bytes.NewReader(req.Body))
	for k, v := range req.Headers {
		if strings.Contains(v, ph) {
			if h.Credential == "" {
				return nil, &abi.Error{Code: abi.CodeNoCredential, Message: "the request carries the credential placeholder but the test host has no credential"}
			}
			v = strings.ReplaceAll(v, ph, h.Credential)
		}
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				panic(r)
			}
			resp, err = nil, &abi.Error{Code: "unavailable", Message: "connection reset before the response arrived"}
		}
	}()
	h.Service.ServeHTTP(rec, hr)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	out := &sdk.Response{Status: res.StatusCode, Headers: map[string][]string{}, Body: h.redact(body)}
	for k, vs := range res.Header {
		for _, v := range vs {
			out.Headers[k] = append(out.Headers[k], string(h.redact([]byte(v))))
		}
	}
	return out, nil
}

// redact hides the credential from the connector, as the broker does.
func (h *Host) redact(b []byte) []byte {
	if h.Credential == "" {
		return b
	}
	return bytes.ReplaceAll(b, []byte(h.Credential), []byte("[REDACTED]"))
}

func cloneRequest(r sdk.Request) sdk.Request {
	c := r
	c.Body = bytes.Clone(r.Body)
	if r.Headers != nil {
		c.Headers = make(map[string]string, len(r.Headers))
		for k, v := range r.Headers {
			c.Headers[k] = v
		}
	}
	return c
}
