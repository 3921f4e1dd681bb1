package client

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNew_Errors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no_scheme", Config{Address: "/run/a.sock"}, `server address "/run/a.sock": use unix:///path/to/socket or https://host:port`},
		{"http", Config{Address: "http://h:1"}, `server address "http://h:1": use unix:///path/to/socket or https://host:port`},
		{"relative_unix", Config{Address: "unix://run/a.sock"}, `server address "unix://run/a.sock": write unix:///absolute/path/to/socket`},
		{"https_path", Config{Address: "https://h:1/v1"}, `server address "https://h:1/v1": write https://host:port`},
		{"https_no_cert", Config{Address: "https://h:1"}, "an https server needs a client certificate: set its certificate and key files"},
		{"https_bad_cert", Config{Address: "https://h:1", CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.pem"}, "client certificate: open /nonexistent.pem: no such file or directory"},
		{"token_newline", Config{Address: "unix:///s", Token: "a\nb"}, "token: contains a line break"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.EqualError(t, err, tt.want)
		})
	}
	_, err := New(Config{Address: "unix:///run/aileron/aileron.sock"})
	require.NoError(t, err)
}

func TestError(t *testing.T) {
	require.Equal(t, "step s1 (github://x/y go): deadline_exceeded: too slow",
		(&Error{Code: "deadline_exceeded", Message: "too slow", Step: "s1", Connector: "github://x/y", Intent: "go"}).Error())
	require.Equal(t, "tenant a is over quota", (&Error{Code: "quota_exceeded", Message: "tenant a is over quota"}).Error())
}
