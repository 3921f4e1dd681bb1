package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

// seen records what a test server received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func (s *seen) add(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	s.body = append(s.body, string(b))
}

func (s *seen) all() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

func portOf(t *testing.T, srvURL string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(srvURL, "http://"), "https://"))
	require.NoError(t, err)
	return port
}

func certPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// loopClient returns a client whose dialer maps the given names to
// 127.0.0.1 and allows loopback, as tests must opt in to.
func loopClient(t *testing.T, extraPEM []byte, names ...string) *Client {
	t.Helper()
	hosts := map[string][]netip.Addr{}
	for _, n := range names {
		hosts[n] = addrs("127.0.0.1")
	}
	c, err := NewClient(TransportConfig{
		Dialer:          &Dialer{Hosts: hosts, Policy: AddrPolicy{UnsafeAllowLoopback: true}},
		ExtraRootCAsPEM: extraPEM,
	})
	require.NoError(t, err)
	t.Cleanup(c.tr.CloseIdleConnections)
	return c
}

func TestSend_LoopbackHTTP(t *testing.T) {
	var s seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r)
		w.Header().Set("X-Reply", "1")
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	port := portOf(t, srv.URL)
	c := loopClient(t, nil, "api.test")
	rules := mustRules("api.test:" + port)

	resp, d, err := c.Send(context.Background(), rules, &abi.HTTPRequest{
		Method:  "POST",
		URL:     "http://API.test:" + port + "/v1/x?q=1#frag",
		Headers: map[string][]string{"Authorization": {"Bearer s3cret"}, "host": {"api.test:" + port}},
		Body:    []byte("payload"),
	}, Limits{})
	require.NoError(t, err)
	require.True(t, d.Allowed())
	require.Equal(t, 200, resp.Status)
	require.Equal(t, "hello", string(resp.Body))
	require.Equal(t, "1", resp.Header.Get("X-Reply"))
	require.Equal(t, []Hop{{Method: "POST", URL: "http://api.test:" + port + "/v1/x?q=1", Decision: d, Original: true, Sent: true, RequestBytes: 7, Status: 200}}, resp.Hops)

	got := s.all()
	require.Len(t, got, 1)
	require.Equal(t, "api.test:"+port, got[0].Host)
	require.Equal(t, "/v1/x?q=1", got[0].RequestURI)
	require.Equal(t, "Bearer s3cret", got[0].Header.Get("Authorization"))
	// Security: DisableCompression keeps sizes honest.
	require.Empty(t, got[0].Header.Get("Accept-Encoding"))
	require.Equal(t, "payload", s.body[0])

	a := resp.ABI()
	require.Equal(t, &abi.HTTPResponse{Status: 200, Headers: resp.Header, Body: []byte("hello")}, a)
}

func TestSend_LoopbackDeniedByDefault(t *testing.T) {
	var s seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.add(r) }))
	defer srv.Close()
	port := portOf(t, srv.URL)
	c, err := NewClient(TransportConfig{Dialer: &Dialer{Hosts: map[string][]netip.Addr{"api.test": addrs("127.0.0.1")}}})
	require.NoError(t, err)

	resp, d, err := c.Send(context.Background(), mustRules("api.test:"+port), &abi.HTTPRequest{Method: "GET", URL: "http://api.test:" + port + "/"}, Limits{})
	var de *DeniedError
	require.True(t, errors.As(err, &de), "%v", err)
	require.Equal(t, d, de.Decision)
	require.Equal(t, CodeAddressDenied, d.Code)
	require.Equal(t, "host api.test:"+port+" resolved to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)", d.Reason)
	require.Empty(t, s.all())
	// The refused hop is reported, as not sent, with the dialer's decision.
	require.Equal(t, &Response{Hops: []Hop{{Method: "GET", URL: "http://api.test:" + port + "/", Decision: d, Original: true}}}, resp)
}

func TestSend_DecideDeniedWithoutIO(t *testing.T) {
	c := loopClient(t, nil)
	resp, d, err := c.Send(context.Background(), mustRules("api.test:443"), &abi.HTTPRequest{Method: "GET", URL: "https://evil.test/"}, Limits{})
	require.EqualError(t, err, "egress denied: host evil.test:443 is not declared in the connector manifest")
	require.Equal(t, CodeHostNotDeclared, d.Code)
	require.Equal(t, &Response{Hops: []Hop{{Method: "GET", URL: "https://evil.test/", Decision: d}}}, resp)

	_, _, err = c.Send(context.Background(), mustRules("api.test:443"), nil, Limits{})
	require.EqualError(t, err, "egress: nil request")
	_, _, err = c.Send(context.Background(), mustRules("api.test:443"), &abi.HTTPRequest{Method: "GET", URL: "https://api.test/"}, Limits{Timeout: -1})
	require.EqualError(t, err, "egress: negative value in Limits")
}

func tlsServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestSend_TLS(t *testing.T) {
	var s seen
	srv := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r)
		io.WriteString(w, r.Proto)
	}))
	port := portOf(t, srv.URL)
	// httptest's certificate is valid for example.com.
	rules := mustRules("example.com:"+port, "api.test:"+port)
	req := &abi.HTTPRequest{Method: "GET", URL: "https://example.com:" + port + "/"}

	t.Run("verified with the operator CA", func(t *testing.T) {
		c := loopClient(t, certPEM(srv), "example.com")
		resp, _, err := c.Send(context.Background(), rules, req, Limits{})
		require.NoError(t, err)
		require.Equal(t, "HTTP/2.0", string(resp.Body)) // h2 over TLS
		got := s.all()
		require.Equal(t, "example.com", got[len(got)-1].TLS.ServerName)
	})
	t.Run("unknown CA is refused", func(t *testing.T) {
		c := loopClient(t, nil, "example.com")
		resp, d, err := c.Send(context.Background(), rules, req, Limits{})
		var ue x509.UnknownAuthorityError
		require.ErrorAs(t, err, &ue)
		require.True(t, d.Allowed(), "policy allowed it; TLS refused it")
		require.Len(t, resp.Hops, 1)
		require.False(t, resp.Hops[0].Sent, "nothing is sent to an unverified server")
	})
	t.Run("server name follows the vetted URL host", func(t *testing.T) {
		c := loopClient(t, certPEM(srv), "api.test")
		_, _, err := c.Send(context.Background(), rules, &abi.HTTPRequest{Method: "GET", URL: "https://api.test:" + port + "/"}, Limits{})
		var he x509.HostnameError
		require.ErrorAs(t, err, &he)
		require.Contains(t, err.Error(), "api.test")
	})
}

func TestSend_IgnoresProxyEnvironment(t *testing.T) {
	proxy, proxied := listen(t)
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:"+proxy)
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:"+proxy)
	t.Setenv("ALL_PROXY", "http://127.0.0.1:"+proxy)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := portOf(t, srv.URL)
	c := loopClient(t, nil, "api.test")
	resp, _, err := c.Send(context.Background(), mustRules("api.test:"+port), &abi.HTTPRequest{Method: "GET", URL: "http://api.test:" + port + "/"}, Limits{})
	require.NoError(t, err)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, int32(0), proxied.Load())
}

func redirectServer(t *testing.T, tls bool, s *seen, routes map[string]func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r)
		if f, ok := routes[r.URL.Path]; ok {
			f(w, r)
			return
		}
		io.WriteString(w, "final")
	})
	if tls {
		return tlsServer(t, h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func redirectTo(status int, loc string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc)
		w.WriteHeader(status)
	}
}

func TestSend_Redirects(t *testing.T) {
	var s seen
	routes := map[string]func(http.ResponseWriter, *http.Request){}
	srv := redirectServer(t, false, &s, routes)
	port := portOf(t, srv.URL)
	routes["/undeclared"] = redirectTo(302, "http://evil.test:"+port+"/x")
	routes["/same"] = redirectTo(307, "/final")
	routes["/other"] = redirectTo(302, "http://other.test:"+port+"/final")
	routes["/loop"] = redirectTo(302, "/loop")
	routes["/see-other"] = redirectTo(303, "/final")
	routes["/metadata"] = redirectTo(302, "http://169.254.169.254/latest/meta-data/")
	c := loopClient(t, nil, "api.test", "other.test", "evil.test")
	rules := mustRules("api.test:"+port, "other.test:"+port)
	auth := map[string][]string{"Authorization": {"Bearer s3cret"}}
	req := func(method, path string) *abi.HTTPRequest {
		return &abi.HTTPRequest{Method: method, URL: "http://api.test:" + port + path, Headers: auth, Body: []byte("b")}
	}

	t.Run("not followed by default", func(t *testing.T) {
		resp, d, err := c.Send(context.Background(), rules, req("GET", "/undeclared"), Limits{})
		require.NoError(t, err)
		require.True(t, d.Allowed())
		require.Equal(t, 302, resp.Status)
		require.Equal(t, "http://evil.test:"+port+"/x", resp.Header.Get("Location"))
		require.Len(t, resp.Hops, 1)
	})
	t.Run("hop to undeclared host refused", func(t *testing.T) {
		n := len(s.all())
		resp, d, err := c.Send(context.Background(), rules, req("GET", "/undeclared"), Limits{FollowRedirects: 5})
		var de *DeniedError
		require.ErrorAs(t, err, &de)
		require.Equal(t, CodeHostNotDeclared, d.Code)
		require.Equal(t, "redirect: host evil.test:"+port+" is not declared in the connector manifest", d.Reason)
		require.Equal(t, 302, resp.Status, "the 3xx comes back with the error")
		require.Len(t, resp.Hops, 2)
		require.Equal(t, 302, resp.Hops[0].Status)
		require.True(t, resp.Hops[0].Sent)
		require.EqualValues(t, 1, resp.Hops[0].RequestBytes)
		require.Equal(t, 0, resp.Hops[1].Status)
		require.False(t, resp.Hops[1].Sent)
		require.Equal(t, "http://evil.test:"+port+"/x", resp.Hops[1].URL)
		require.Equal(t, d, resp.Hops[1].Decision)
		require.Len(t, s.all(), n+1, "evil.test was never contacted")
	})
	t.Run("hop to metadata literal refused", func(t *testing.T) {
		_, d, err := c.Send(context.Background(), rules, req("GET", "/metadata"), Limits{FollowRedirects: 5})
		require.Error(t, err)
		require.Equal(t, "redirect: host 169.254.169.254:80 is an IP literal that is not declared in the connector manifest; use a declared host name", d.Reason)
	})
	t.Run("same origin keeps headers and body on 307", func(t *testing.T) {
		n := len(s.all())
		resp, d, err := c.Send(context.Background(), rules, req("POST", "/same"), Limits{FollowRedirects: 1})
		require.NoError(t, err)
		require.Equal(t, "http://api.test:"+port+"/final", d.URL)
		require.Equal(t, "final", string(resp.Body))
		require.Len(t, resp.Hops, 2)
		require.True(t, resp.Hops[1].Original)
		got := s.all()[n:]
		require.Len(t, got, 2)
		require.Equal(t, "POST", got[1].Method)
		require.Equal(t, "Bearer s3cret", got[1].Header.Get("Authorization"))
		require.Equal(t, "b", s.body[n+1])
	})
	t.Run("303 after POST becomes GET without body", func(t *testing.T) {
		n := len(s.all())
		_, _, err := c.Send(context.Background(), rules, req("POST", "/see-other"), Limits{FollowRedirects: 1})
		require.NoError(t, err)
		got := s.all()[n:]
		require.Equal(t, "GET", got[1].Method)
		require.Equal(t, "", s.body[n+1])
	})
	t.Run("other declared host gets no headers", func(t *testing.T) {
		n := len(s.all())
		resp, _, err := c.Send(context.Background(), rules, req("GET", "/other"), Limits{FollowRedirects: 1})
		require.NoError(t, err)
		require.False(t, resp.Hops[1].Original)
		got := s.all()[n:]
		require.Equal(t, "other.test:"+port, got[1].Host)
		// Security: the credential never follows a redirect to another host.
		require.Empty(t, got[1].Header.Get("Authorization"))
	})
	t.Run("limit returns the last 3xx", func(t *testing.T) {
		n := len(s.all())
		resp, _, err := c.Send(context.Background(), rules, req("GET", "/loop"), Limits{FollowRedirects: 2})
		require.NoError(t, err)
		require.Equal(t, 302, resp.Status)
		require.Len(t, resp.Hops, 3)
		require.Len(t, s.all(), n+3)
	})
}

func TestSend_RedirectDowngradeRefused(t *testing.T) {
	var s seen
	plain := redirectServer(t, false, &s, nil)
	pport := portOf(t, plain.URL)
	routes := map[string]func(http.ResponseWriter, *http.Request){}
	secure := redirectServer(t, true, &s, routes)
	sport := portOf(t, secure.URL)
	routes["/down"] = redirectTo(302, "http://example.com:"+pport+"/")
	c := loopClient(t, certPEM(secure), "example.com")
	rules := mustRules("example.com:"+sport, "example.com:"+pport)

	resp, d, err := c.Send(context.Background(), rules, &abi.HTTPRequest{Method: "GET", URL: "https://example.com:" + sport + "/down"}, Limits{FollowRedirects: 3})
	require.Error(t, err)
	require.Equal(t, 302, resp.Status)
	require.Equal(t, CodeRedirectDowngrade, d.Code)
	require.Equal(t, "redirect from https to plaintext http at example.com:"+pport+" is refused", d.Reason)
}

func TestSend_Limits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked11":
			w.Write([]byte("0123456789"))
			w.(http.Flusher).Flush() // no Content-Length: the reader must count
			w.Write([]byte("x"))
		case "/exact":
			w.Write([]byte("0123456789"))
		case "/announced":
			w.Header().Set("Content-Length", "1000000")
			w.Write(make([]byte, 1000000))
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	port := portOf(t, srv.URL)
	c := loopClient(t, nil, "api.test")
	rules := mustRules("api.test:" + port)
	get := func(path string) *abi.HTTPRequest {
		return &abi.HTTPRequest{Method: "GET", URL: "http://api.test:" + port + path}
	}
	lim := Limits{MaxResponseBody: 10, MaxRequestBody: 4}

	resp, _, err := c.Send(context.Background(), rules, get("/exact"), lim)
	require.NoError(t, err)
	require.Equal(t, "0123456789", string(resp.Body))

	for _, p := range []string{"/chunked11", "/announced"} {
		resp, d, err := c.Send(context.Background(), rules, get(p), lim)
		require.True(t, d.Allowed())
		var tl *ResponseTooLargeError
		require.ErrorAs(t, err, &tl)
		require.EqualError(t, err, "response exceeds 10 bytes")
		// The request went out: the hop says so, and no body comes back.
		require.Equal(t, &Response{Hops: []Hop{{Method: "GET", URL: "http://api.test:" + port + p, Decision: d, Original: true, Sent: true, Status: 200}}}, resp)
	}

	r := get("/exact")
	r.Method, r.Body = "POST", []byte("12345")
	_, d, err := c.Send(context.Background(), rules, r, lim)
	var de *DeniedError
	require.ErrorAs(t, err, &de)
	require.Equal(t, CodeRequestTooLarge, d.Code)
	require.Equal(t, "request body to api.test:"+port+" is 5 bytes, over the limit of 4", d.Reason)

	start := time.Now()
	resp, _, err = c.Send(context.Background(), rules, get("/slow"), Limits{Timeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 3*time.Second)
	require.Equal(t, "egress: GET api.test:"+port+": context deadline exceeded", err.Error())
	require.Len(t, resp.Hops, 1)
	require.True(t, resp.Hops[0].Sent, "a request that got no answer in time was still sent")
}

func TestSend_ConnectFailedIsNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := portOf(t, "http://"+ln.Addr().String())
	require.NoError(t, ln.Close()) // nothing listens there any more
	c := loopClient(t, nil, "api.test")
	resp, d, err := c.Send(context.Background(), mustRules("api.test:"+port), &abi.HTTPRequest{Method: "GET", URL: "http://api.test:" + port + "/"}, Limits{})
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.True(t, d.Allowed())
	require.Equal(t, &Response{Hops: []Hop{{Method: "GET", URL: "http://api.test:" + port + "/", Decision: d, Original: true}}}, resp)
}

func TestNewTransport(t *testing.T) {
	tr, err := NewTransport(TransportConfig{})
	require.NoError(t, err)
	require.Nil(t, tr.Proxy)
	require.Equal(t, uint16(tls.VersionTLS12), tr.TLSClientConfig.MinVersion)
	require.False(t, tr.TLSClientConfig.InsecureSkipVerify)
	require.Empty(t, tr.TLSClientConfig.ServerName)
	require.True(t, tr.DisableCompression)
	require.False(t, tr.Protocols.UnencryptedHTTP2())
	require.Equal(t, int64(DefaultMaxResponseHeaderBytes), tr.MaxResponseHeaderBytes)

	_, err = NewTransport(TransportConfig{ExtraRootCAsPEM: []byte("not pem")})
	require.EqualError(t, err, "egress: ExtraRootCAsPEM holds no PEM certificate")
	_, err = NewTransport(TransportConfig{ResponseHeaderTimeout: -1})
	require.EqualError(t, err, "egress: negative timeout or limit in TransportConfig")
}
