package egress

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOriginClient(t *testing.T) {
	var s seen
	srv := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "https://elsewhere.example.com/", http.StatusFound)
			return
		}
		io.WriteString(w, "token")
	}))
	port := portOf(t, srv.URL)
	c := loopClient(t, certPEM(srv), "example.com", "elsewhere.example.com")
	hc, err := c.OriginClient("https://example.com:"+port+"/token", 0)
	require.NoError(t, err)

	resp, err := hc.Post("https://example.com:"+port+"/token", "application/x-www-form-urlencoded", strings.NewReader("a=b"))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "token", string(b))

	// A 3xx comes back; nothing is sent to the Location.
	resp, err = hc.Get("https://example.com:" + port + "/redirect")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Len(t, s.all(), 2)

	denied := func(t *testing.T, r *http.Request, code, reason string) {
		t.Helper()
		_, err := hc.Do(r)
		var de *DeniedError
		require.True(t, errors.As(err, &de), "%v", err)
		require.Equal(t, code, de.Decision.Code)
		require.Equal(t, reason, de.Decision.Reason)
	}
	other, _ := http.NewRequest("GET", "https://elsewhere.example.com:"+port+"/", nil)
	denied(t, other, CodeHostNotDeclared, "host elsewhere.example.com:"+port+" is not declared in the connector manifest")
	vhost, _ := http.NewRequest("GET", "https://example.com:"+port+"/", nil)
	vhost.Host = "elsewhere.example.com"
	denied(t, vhost, CodeHostHeaderMismatch, "Host header does not match the URL host example.com:"+port)
	require.Len(t, s.all(), 2)
}

func TestOriginClient_Errors(t *testing.T) {
	c := loopClient(t, nil)
	tests := []struct {
		base, want string
	}{
		{"http://auth.example.com/token", "egress denied: endpoint auth.example.com:80 must use https"},
		{"https://user:pw@auth.example.com/token", "egress denied: URL must not contain userinfo (user:password@)"},
		{"ftp://auth.example.com/", `egress denied: scheme "ftp" is not allowed; use https`},
		{"/token", "egress denied: URL is not absolute (want https://host/...)"},
	}
	for _, tt := range tests {
		_, err := c.OriginClient(tt.base, 0)
		require.EqualError(t, err, tt.want, tt.base)
	}
}
