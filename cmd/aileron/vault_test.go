package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/supervisor/serve"
)

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name, kind, username, raw string
		want                      broker.SecretInput
		err                       string
	}{
		{"api_key", "api_key", "", "sk-1", broker.SecretInput{Value: "sk-1"}, ""},
		{"signing_key", "signing_key", "", "whsec", broker.SecretInput{Value: "whsec"}, ""},
		{"basic", "basic", "ann", "pw", broker.SecretInput{Username: "ann", Password: "pw"}, ""},
		{"basic_no_user", "basic", "", "pw", broker.SecretInput{}, "basic needs --username; the password comes from stdin"},
		{"oauth2", "oauth2", "", `{"access_token":"a","refresh_token":"r","expiry":"2030-01-02T03:04:05Z","token_url":"https://t/x","client_id":"c","client_secret":"s"}`,
			broker.SecretInput{AccessToken: "a", RefreshToken: "r", ExpiryUnix: 1893553445, TokenURL: "https://t/x", ClientID: "c", ClientSecret: "s"}, ""},
		{"oauth2_no_expiry", "oauth2", "", `{"access_token":"a"}`, broker.SecretInput{AccessToken: "a"}, ""},
		{"oauth2_unknown_field", "oauth2", "", `{"acess_token":"a"}`, broker.SecretInput{},
			`oauth2 secret must be JSON with access_token, refresh_token, expiry, token_url, client_id, client_secret: json: unknown field "acess_token"`},
		// The error says where, never which character of the secret.
		{"oauth2_not_json", "oauth2", "", "tok3n-Q", broker.SecretInput{},
			"oauth2 secret must be JSON with access_token, refresh_token, expiry, token_url, client_id, client_secret: invalid JSON at byte 2"},
		{"empty", "api_key", "", "", broker.SecretInput{}, "empty secret: write it to stdin or type it at the prompt"},
		{"bad_kind", "token", "", "x", broker.SecretInput{}, `--kind "token": must be oauth2, api_key, basic or signing_key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSecret(tt.kind, tt.username, []byte(tt.raw))
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				require.ErrorAs(t, err, new(usageError))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestCLI_SecretsAreNotTruncated: input over a secret's limit is refused,
// not cut to the limit and stored or hashed.
func TestCLI_SecretsAreNotTruncated(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		output string
	}{
		// The server's limit: a longer token could be hashed but never
		// presented.
		{"token_at_limit", []string{"serve", "hash-token"}, strings.Repeat("t", serve.MaxTokenBytes), exitOK, "sha256:"},
		{"token_over_limit", []string{"serve", "hash-token"}, strings.Repeat("t", serve.MaxTokenBytes) + "\n", exitUsage,
			fmt.Sprintf("aileron: read token: input is longer than %d bytes\n", serve.MaxTokenBytes)},
		{"secret_over_limit", []string{"vault", "set", "k", "--kind", "api_key", "--connector", "github://acme/x"}, strings.Repeat("s", 64<<10+1), exitUsage,
			"aileron: read secret: input is longer than 65536 bytes\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AILERON_HOME", t.TempDir())
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			require.Equal(t, tt.code, code, stderr.String())
			if tt.code == exitOK {
				require.True(t, strings.HasPrefix(stdout.String(), tt.output), stdout.String())
			} else {
				require.Equal(t, tt.output, stdout.String()+stderr.String())
			}
		})
	}
}
