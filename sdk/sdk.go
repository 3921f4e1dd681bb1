// Package sdk is the Go SDK for Aileron connectors. A connector built with it
// is an ordinary Go program compiled with stock Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -o connector.wasm .
//
// The SDK hides the ABI described in docs/ABI.md: it reads the invocation
// from stdin, dispatches it to the handler registered for its intent, writes
// the result to stdout, and sends HTTP, log records and audit events through
// the aileron_v1 host functions. It imports only the standard library.
//
// # Writing a connector
//
//	type postInput struct {
//		Channel string `json:"channel"`
//		Text    string `json:"text"`
//	}
//
//	func main() {
//		sdk.Handle("post_message", func(c *sdk.Call, in postInput) (any, error) {
//			resp, err := c.HTTP.PostJSON("https://slack.com/api/chat.postMessage",
//				map[string]string{"Authorization": sdk.Bearer()}, in)
//			if err != nil {
//				return nil, err
//			}
//			return resp.JSON()
//		})
//		sdk.Main()
//	}
//
// # Credentials
//
// A connector never sees a credential. It writes [abi.CredentialPlaceholder]
// (or uses [Bearer]) where the credential belongs in a request header; the
// broker replaces it host-side on requests to declared hosts.
//
// # Testing
//
// Outside a wasip1 build there is no host, but handlers still run: package
// sdk/sdktest provides a stand-in host (set as [Client.Send]) that sends
// requests to a fake service the way the broker would. docs/CONNECTORS.md
// is the guide.
package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"aileron.dev/aileron/sdk/abi"
)

// Call is what a handler gets besides its input: the invocation's identity
// and the host services.
type Call struct {
	// ID identifies this step of this action run; it is the same on a
	// retry of the step. Use it to derive idempotency keys.
	ID string
	// Attempt counts retries of the step, starting at 1.
	Attempt int
	// Intent is the intent being invoked.
	Intent string
	// HTTP sends requests through the broker.
	HTTP *Client
	// Log writes structured log records.
	Log *Logger
}

// Audit appends an event to the run's audit log, e.g. "message_posted" with
// the id the service returned. Never put secret material in fields.
func (c *Call) Audit(event string, fields map[string]any) error {
	return auditEmit(abi.AuditEvent{Event: event, Fields: fields})
}

type handler func(c *Call, input json.RawMessage) (any, error)

var handlers = map[string]handler{}

// Handle registers fn for intent. In is decoded from the invocation's input
// with unknown fields rejected; the returned value is encoded as the output.
// Register every intent the manifest's [provides] intents lists.
func Handle[In any](intent string, fn func(c *Call, in In) (any, error)) {
	if _, dup := handlers[intent]; dup {
		panic("sdk: intent registered twice: " + intent)
	}
	handlers[intent] = func(c *Call, raw json.RawMessage) (any, error) {
		var in In
		if len(raw) > 0 && string(raw) != "null" {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return nil, &abi.Error{Code: "invalid_input", Message: err.Error()}
			}
		}
		return fn(c, in)
	}
}

// Intents lists the registered intents, sorted. Tests use it to check that
// the manifest and the code agree.
func Intents() []string {
	out := make([]string, 0, len(handlers))
	for k := range handlers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Main runs one invocation: stdin to handler to stdout. Call it at the end
// of main. It always exits with status 0 after writing a result; the result
// itself says whether the invocation succeeded.
func Main() {
	res := Serve(os.Stdin)
	out, err := json.Marshal(res)
	if err != nil {
		out, _ = json.Marshal(abi.Result{Error: &abi.Error{Code: "internal", Message: "encode result: " + err.Error()}})
	}
	os.Stdout.Write(out)
	os.Exit(0)
}

// Serve decodes one invocation from r, runs its handler and returns the
// result. Main uses it; tests can call it directly.
func Serve(r io.Reader) abi.Result {
	data, err := io.ReadAll(io.LimitReader(r, abi.MaxInvocationBytes+1))
	if err != nil {
		return failure("invalid_invocation", "read stdin: "+err.Error())
	}
	if len(data) > abi.MaxInvocationBytes {
		return failure("invalid_invocation", "invocation exceeds the ABI size limit")
	}
	var inv abi.Invocation
	if err := json.Unmarshal(data, &inv); err != nil {
		return failure("invalid_invocation", "decode invocation: "+err.Error())
	}
	if inv.ABI != abi.Version {
		return failure("unsupported_abi", fmt.Sprintf("connector speaks %s, host sent %q", abi.Version, inv.ABI))
	}
	h, ok := handlers[inv.Intent]
	if !ok {
		return failure("unknown_intent", fmt.Sprintf("this connector does not provide intent %q", inv.Intent))
	}
	call := &Call{ID: inv.ID, Attempt: inv.Attempt, Intent: inv.Intent, HTTP: &Client{}, Log: &Logger{}}
	out, err := runHandler(h, call, inv.Input)
	if err != nil {
		var ae *abi.Error
		if errors.As(err, &ae) {
			return abi.Result{Error: ae}
		}
		return failure(abi.CodeConnectorError, err.Error())
	}
	b, err := json.Marshal(out)
	if err != nil {
		return failure("internal", "encode output: "+err.Error())
	}
	return abi.Result{OK: true, Output: b}
}

func runHandler(h handler, c *Call, in json.RawMessage) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &abi.Error{Code: "panic", Message: fmt.Sprint(r)}
		}
	}()
	return h(c, in)
}

func failure(code, msg string) abi.Result {
	return abi.Result{Error: &abi.Error{Code: code, Message: msg}}
}

// Errorf returns an error that the connector's result reports with the given
// code, e.g. Errorf("not_found", "channel %s does not exist", name).
func Errorf(code, format string, args ...any) error {
	return &abi.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Bearer returns "Bearer " followed by the credential placeholder, for an
// Authorization header.
func Bearer() string { return "Bearer " + abi.CredentialPlaceholder }

// Credential returns the placeholder the broker replaces with the credential.
func Credential() string { return abi.CredentialPlaceholder }

// Signature returns the placeholder the broker replaces with the request's
// signature, for a connector whose credential kind is signing_key, e.g.
// "X-Signature: v1=" + sdk.Signature(). The broker also sets the
// X-Aileron-Timestamp header the signature covers (docs/ABI.md section 5).
func Signature() string { return abi.SignaturePlaceholder }
