package sdk

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"aileron.dev/aileron/sdk/abi"
)

// Request is an outgoing HTTP request. URL must be absolute and its host:port
// must be declared in the manifest's [capabilities.network] hosts.
type Request struct {
	Method  string
	URL     string
	Headers map[string]string
	Body    []byte
}

// Response is what the broker returned. Redirects are not followed.
type Response struct {
	Status  int
	Headers map[string][]string
	Body    []byte
}

// Header returns the first value of the named header (case-insensitive).
func (r *Response) Header(name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// JSON decodes the body into a generic value.
func (r *Response) JSON() (any, error) {
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return nil, fmt.Errorf("decode response body (status %d): %w", r.Status, err)
	}
	return v, nil
}

// Decode decodes the body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode response body (status %d): %w", r.Status, err)
	}
	return nil
}

// Client sends HTTP requests through the host's http_send import. Its zero
// value is ready to use.
type Client struct {
	// Send, when set, is called instead of the host import. Unit tests of
	// a connector set it (see package sdk/sdktest) to run handlers
	// natively against a fake service; a connector leaves it nil. It
	// grants nothing: in the worker the host still decides every request.
	Send func(Request) (*Response, error)
}

// Do sends req and returns the response. A refused or failed request returns
// an *abi.Error whose Code says why ("denied", "unavailable", "limit", ...).
func (c *Client) Do(req Request) (*Response, error) {
	if req.Method == "" {
		req.Method = "GET"
	}
	if c != nil && c.Send != nil {
		return c.Send(req)
	}
	hr := abi.HTTPRequest{Method: req.Method, URL: req.URL, Body: req.Body}
	if len(req.Headers) > 0 {
		hr.Headers = make(map[string][]string, len(req.Headers))
		for k, v := range req.Headers {
			hr.Headers[k] = []string{v}
		}
	}
	payload, err := json.Marshal(hr)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	res, err := httpSend(payload)
	if err != nil {
		return nil, err
	}
	var hresp abi.HTTPResponse
	if err := json.Unmarshal(res, &hresp); err != nil {
		return nil, fmt.Errorf("decode host response: %w", err)
	}
	return &Response{Status: hresp.Status, Headers: hresp.Headers, Body: hresp.Body}, nil
}

// Get sends a GET request with the given headers.
func (c *Client) Get(url string, headers map[string]string) (*Response, error) {
	return c.Do(Request{Method: "GET", URL: url, Headers: headers})
}

// PostJSON sends body encoded as JSON with Content-Type application/json,
// unless headers set a Content-Type of their own (in any letter case).
func (c *Client) PostJSON(url string, headers map[string]string, body any) (*Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return c.Do(Request{Method: "POST", URL: url, Headers: withHeader(headers, "Content-Type", "application/json"), Body: b})
}

// PostForm sends form as application/x-www-form-urlencoded, unless headers
// set a Content-Type of their own.
func (c *Client) PostForm(url string, headers map[string]string, form url.Values) (*Response, error) {
	return c.Do(Request{Method: "POST", URL: url, Headers: withHeader(headers, "Content-Type", "application/x-www-form-urlencoded"), Body: []byte(form.Encode())})
}

// withHeader returns a copy of h with k set to v, unless h already has k
// (header names are case-insensitive).
func withHeader(h map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(h)+1)
	for hk, hv := range h {
		if strings.EqualFold(hk, k) {
			k = "" // the caller's value wins
		}
		out[hk] = hv
	}
	if k != "" {
		out[k] = v
	}
	return out
}
