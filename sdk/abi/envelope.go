package abi

import "encoding/json"

// Invocation is the JSON document a connector reads from stdin.
type Invocation struct {
	// ABI is always [Version].
	ABI string `json:"abi"`
	// ID identifies this step of this action run. It is stable across
	// retries of the same step, so connectors can derive idempotency keys
	// from it; it is different for every step and every run.
	ID string `json:"id"`
	// Attempt counts retries of the step, starting at 1.
	Attempt int `json:"attempt"`
	// Intent names the operation, one of the manifest's [provides] intents.
	Intent string `json:"intent"`
	// Input is the step's `with` table after template substitution.
	Input json.RawMessage `json:"input"`
}

// Result is the JSON document a connector writes to stdout. Exactly one of
// Output (with OK true) or Error (with OK false) is meaningful.
type Result struct {
	OK     bool            `json:"ok"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error is a structured error: from a connector in [Result], or from the
// host as the pending result of a failed host call.
type Error struct {
	// Code is a short, stable, machine-readable name, e.g. "denied".
	Code string `json:"code"`
	// Message is for people; it never contains secret bytes.
	Message string `json:"message"`
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// HTTPRequest is the JSON payload of http_send.
type HTTPRequest struct {
	// Method is an HTTP method token, e.g. "GET".
	Method string `json:"method"`
	// URL is absolute: scheme https or http, a host, no userinfo.
	URL string `json:"url"`
	// Headers may contain [CredentialPlaceholder] in values.
	Headers map[string][]string `json:"headers,omitempty"`
	// Body is base64 in JSON.
	Body []byte `json:"body,omitempty"`
}

// HTTPResponse is the pending result of a successful http_send. Redirects
// are not followed: a 3xx arrives here like any other status.
type HTTPResponse struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers,omitempty"`
	// Body is base64 in JSON. Secret bytes are redacted by the broker.
	Body []byte `json:"body,omitempty"`
}

// LogRecord is the payload of log.
type LogRecord struct {
	// Level is one of "debug", "info", "warn", "error".
	Level  string         `json:"level"`
	Msg    string         `json:"msg"`
	Fields map[string]any `json:"fields,omitempty"`
}

// AuditEvent is the payload of audit_emit.
type AuditEvent struct {
	// Event is a short name chosen by the connector, e.g. "message_posted".
	Event  string         `json:"event"`
	Fields map[string]any `json:"fields,omitempty"`
}
