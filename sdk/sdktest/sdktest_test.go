package sdktest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk"
	"aileron.dev/aileron/sdk/abi"
)

// echo answers with the Authorization header it received, in the body and
// a header, like a careless service.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/abort" {
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("X-Echo", r.Header.Get("Authorization"))
	_, _ = w.Write([]byte("auth=" + r.Header.Get("Authorization")))
})

func TestHost_AttachesAndRedacts(t *testing.T) {
	h := &Host{Service: echo, Hosts: []string{"api.example.com:443"}, Credential: "s3cret-value-123"}
	resp, err := h.Call("r/s", 1).HTTP.Get("https://api.example.com/x", map[string]string{"Authorization": sdk.Bearer()})
	require.NoError(t, err)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, "auth=Bearer [REDACTED]", string(resp.Body))
	require.Equal(t, "Bearer [REDACTED]", resp.Header("X-Echo"))
	require.Equal(t, "Bearer {{aileron.credential}}", h.Sent()[0].Headers["Authorization"])
}

func TestHost_Errors(t *testing.T) {
	tests := []struct {
		name string
		cred string
		req  sdk.Request
		want string
	}{
		{name: "undeclared_host", req: sdk.Request{URL: "https://evil.example.com/"}, want: "host_not_declared: host evil.example.com:443 is not declared in the manifest"},
		{name: "undeclared_port", req: sdk.Request{URL: "http://api.example.com/"}, want: "host_not_declared: host api.example.com:80 is not declared in the manifest"},
		{name: "relative_url", req: sdk.Request{URL: "/x"}, want: `invalid: bad URL "/x"`},
		{name: "placeholder_in_body", req: sdk.Request{Method: "POST", URL: "https://api.example.com/", Body: []byte("{{aileron.credential}}")}, want: "placeholder_misplaced: credential placeholder outside a header value: the broker substitutes it only in headers"},
		{name: "placeholder_in_url", req: sdk.Request{URL: "https://api.example.com/?k={{aileron.credential}}"}, want: "placeholder_misplaced: credential placeholder outside a header value: the broker substitutes it only in headers"},
		// As the broker: the signature placeholder too.
		{name: "signature_placeholder_in_body", req: sdk.Request{Method: "POST", URL: "https://api.example.com/", Body: []byte(abi.SignaturePlaceholder)}, want: "placeholder_misplaced: credential placeholder outside a header value: the broker substitutes it only in headers"},
		{name: "no_credential", cred: "-", req: sdk.Request{URL: "https://api.example.com/", Headers: map[string]string{"X-Key": sdk.Credential()}}, want: "no_credential: the request carries the credential placeholder but the test host has no credential"},
		{name: "response_lost", req: sdk.Request{URL: "https://api.example.com/abort"}, want: "unavailable: connection reset before the response arrived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Host{Service: echo, Hosts: []string{"api.example.com:443"}, Credential: "s3cret-value-123"}
			if tt.cred == "-" {
				h.Credential = ""
			}
			_, err := h.Call("r/s", 1).HTTP.Do(tt.req)
			require.EqualError(t, err, tt.want)
		})
	}
}
