package sdk

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

type greetIn struct {
	Name string `json:"name"`
}

func init() {
	Handle("greet", func(c *Call, in greetIn) (any, error) {
		if in.Name == "" {
			return nil, Errorf("invalid_input", "name is required")
		}
		return map[string]string{"hello": in.Name, "id": c.ID}, nil
	})
	Handle("boom", func(c *Call, _ struct{}) (any, error) { panic("kaboom") })
	Handle("plain_error", func(c *Call, _ struct{}) (any, error) { return nil, errors.New("plain") })
	Handle("http", func(c *Call, _ struct{}) (any, error) { return c.HTTP.Get("https://x.example/", nil) })
}

func TestServe(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want abi.Result
	}{
		{"ok", `{"abi":"aileron_v1","id":"r/s","intent":"greet","input":{"name":"ada"}}`,
			abi.Result{OK: true, Output: []byte(`{"hello":"ada","id":"r/s"}`)}},
		{"connector_error", `{"abi":"aileron_v1","intent":"greet","input":{}}`,
			abi.Result{Error: &abi.Error{Code: "invalid_input", Message: "name is required"}}},
		{"unknown_input_field", `{"abi":"aileron_v1","intent":"greet","input":{"nam":"x"}}`,
			abi.Result{Error: &abi.Error{Code: "invalid_input", Message: `json: unknown field "nam"`}}},
		{"unknown_intent", `{"abi":"aileron_v1","intent":"nope"}`,
			abi.Result{Error: &abi.Error{Code: "unknown_intent", Message: `this connector does not provide intent "nope"`}}},
		{"wrong_abi", `{"abi":"aileron_v2","intent":"greet"}`,
			abi.Result{Error: &abi.Error{Code: "unsupported_abi", Message: `connector speaks aileron_v1, host sent "aileron_v2"`}}},
		{"garbage", `{{{`,
			abi.Result{Error: &abi.Error{Code: "invalid_invocation", Message: "decode invocation: invalid character '{' looking for beginning of object key string"}}},
		{"panic", `{"abi":"aileron_v1","intent":"boom"}`,
			abi.Result{Error: &abi.Error{Code: "panic", Message: "kaboom"}}},
		{"plain_error", `{"abi":"aileron_v1","intent":"plain_error"}`,
			abi.Result{Error: &abi.Error{Code: "connector_error", Message: "plain"}}},
		{"no_host_outside_wasip1", `{"abi":"aileron_v1","intent":"http"}`,
			abi.Result{Error: &abi.Error{Code: "not_granted", Message: "aileron host functions exist only in a GOOS=wasip1 build run by the worker"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Serve(strings.NewReader(tt.in))
			if tt.want.OK {
				require.True(t, got.OK)
				require.JSONEq(t, string(tt.want.Output), string(got.Output))
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, []string{"boom", "greet", "http", "plain_error"}, Intents())
}

func TestServe_OversizedInvocation(t *testing.T) {
	got := Serve(strings.NewReader(strings.Repeat(" ", abi.MaxInvocationBytes+1)))
	require.Equal(t, "invalid_invocation", got.Error.Code)
}

func TestWithHeader(t *testing.T) {
	ct := "Content-Type"
	require.Equal(t, map[string]string{ct: "application/json"}, withHeader(nil, ct, "application/json"))
	require.Equal(t, map[string]string{"A": "1", ct: "application/json"}, withHeader(map[string]string{"A": "1"}, ct, "application/json"))
	// The caller's own Content-Type wins, whatever its letter case, and
	// is not doubled.
	require.Equal(t, map[string]string{ct: "application/json; charset=utf-8"},
		withHeader(map[string]string{ct: "application/json; charset=utf-8"}, ct, "application/json"))
	require.Equal(t, map[string]string{"content-type": "text/plain"}, withHeader(map[string]string{"content-type": "text/plain"}, ct, "application/json"))
	in := map[string]string{"A": "1"}
	withHeader(in, ct, "x")
	require.Equal(t, map[string]string{"A": "1"}, in, "the caller's map is not modified")
}
