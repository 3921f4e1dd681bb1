// Package client talks to an `aileron serve` daemon: it runs installed
// actions and lists them, over the daemon's unix socket or over mutual TLS.
// It also defines the API's wire types, which the server uses too. The run
// document types mirror the supervisor's instead of importing them, so a
// program that only talks to the daemon does not link the runtime;
// TestRunResultWire in package serve keeps the two identical on the wire.
//
// # Addresses
//
//	unix:///run/aileron/aileron.sock   the unix socket (the peer's uid may identify the tenant)
//	https://aileron.internal:8443      mutual TLS (a client certificate is required)
//
// # Use
//
//	c, err := client.New(client.Config{Address: "unix:///run/aileron/aileron.sock", Token: tok})
//	res, err := c.Run(ctx, "add-note", map[string]any{"title": "hello"})
//
// A failed run returns an [*Error]; for a failed step its Step, Connector
// and Intent are set and Error() reads exactly as a local run's step error.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// API paths.
const (
	PathRuns    = "/v1/runs"
	PathActions = "/v1/actions"
	PathHealth  = "/healthz"
	PathReady   = "/readyz"
	PathMetrics = "/metrics"
)

// RunRequest is the body of POST /v1/runs.
type RunRequest struct {
	// Action is the name of an action installed for the caller's tenant.
	Action string `json:"action"`
	// Inputs are the action's inputs by name.
	Inputs map[string]any `json:"inputs,omitempty"`
}

// RunResult is the answer to a successful run; the same document as a
// local `aileron run --json` prints.
type RunResult struct {
	RunID     string          `json:"run_id"`
	Action    string          `json:"action"`
	Steps     []StepResult    `json:"steps"`
	Output    json.RawMessage `json:"output"`
	Isolation []string        `json:"isolation"`
}

// StepResult is one step of a RunResult.
type StepResult struct {
	ID         string          `json:"id"`
	Connector  string          `json:"connector"`
	Intent     string          `json:"intent"`
	Output     json.RawMessage `json:"output,omitempty"`
	DurationMS float64         `json:"duration_ms"`
	// Attempts is how many times the step ran (more than 1 after retries).
	Attempts int    `json:"attempts"`
	Log      string `json:"log,omitempty"`
}

// ActionList is the answer to GET /v1/actions.
type ActionList struct {
	Actions []ActionInfo `json:"actions"`
}

// ActionInfo describes one installed action.
type ActionInfo struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

// Error is every API error: the body of any non-2xx answer.
type Error struct {
	// Status is the HTTP status (filled in by the client).
	Status int `json:"-"`
	// Code is a stable machine code: "unauthenticated", "bad_request",
	// "action_not_found", "quota_exceeded", "overloaded", ... or, when
	// Step is set, the failed step's code.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Step, Connector and Intent name the step that failed, if one did.
	Step      string `json:"step,omitempty"`
	Connector string `json:"connector,omitempty"`
	Intent    string `json:"intent,omitempty"`
	// RunID is the failed run's id in the tenant's audit log, if a run
	// started.
	RunID string `json:"run_id,omitempty"`
	// Log is the connector's captured stderr, if any.
	Log string `json:"log,omitempty"`
}

func (e *Error) Error() string {
	if e.Step != "" {
		// The same words as supervisor.StepError.
		return fmt.Sprintf("step %s (%s %s): %s: %s", e.Step, e.Connector, e.Intent, e.Code, e.Message)
	}
	return e.Message
}

// Config says how to reach a server.
type Config struct {
	// Address is "unix:///path/to/socket" or "https://host:port".
	Address string
	// Token, if set, is sent as a bearer token.
	Token string
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// an https address; required there.
	CertFile, KeyFile string
	// CAFile is the PEM of the CA that signed the server's certificate;
	// empty means the system roots.
	CAFile string
}

// Client calls one server. It is safe for concurrent use.
type Client struct {
	addr  string
	base  string
	token string
	http  *http.Client
}

// New checks cfg and returns a client; it does not connect yet.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", cfg.Address, err)
	}
	if strings.ContainsAny(cfg.Token, "\r\n") {
		return nil, errors.New("token: contains a line break")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: 0}
	c := &Client{addr: cfg.Address, token: cfg.Token, http: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("server address %q: write unix:///absolute/path/to/socket", cfg.Address)
		}
		path := u.Path
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://aileron"
	case "https":
		if u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("server address %q: write https://host:port", cfg.Address)
		}
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, errors.New("an https server needs a client certificate: set its certificate and key files")
		}
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("server CA: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("server CA %s: no PEM certificate in it", cfg.CAFile)
			}
		}
		tr.TLSClientConfig = tc
		c.base = "https://" + u.Host
	default:
		return nil, fmt.Errorf("server address %q: use unix:///path/to/socket or https://host:port", cfg.Address)
	}
	return c, nil
}

// Run runs the installed action name with inputs and returns its result.
// Cancelling ctx cancels the run on the server (its workers are killed).
func (c *Client) Run(ctx context.Context, action string, inputs map[string]any) (*RunResult, error) {
	body, err := json.Marshal(RunRequest{Action: action, Inputs: inputs})
	if err != nil {
		return nil, err
	}
	var res RunResult
	if err := c.do(ctx, http.MethodPost, PathRuns, body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Actions lists the actions installed for the caller's tenant.
func (c *Client) Actions(ctx context.Context) ([]ActionInfo, error) {
	var l ActionList
	if err := c.do(ctx, http.MethodGet, PathActions, nil, &l); err != nil {
		return nil, err
	}
	return l.Actions, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // not the placeholder URL of a unix socket
		}
		return fmt.Errorf("cannot reach the aileron server at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("aileron server at %s: read answer: %w", c.addr, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: fmt.Sprintf("aileron server answered %s", resp.Status)}
		}
		return e
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("aileron server at %s: malformed answer: %w", c.addr, err)
	}
	return nil
}
