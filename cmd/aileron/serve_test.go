package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCLI_ServeErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
	}{
		{"serve_no_config", []string{"serve"}, "", exitUsage},
		{"serve_args", []string{"serve", "extra"}, "", exitUsage},
		{"serve_missing_config", []string{"serve", "--config", "/nonexistent/serve.toml"}, "", exitFailure},
		{"serve_short_token", []string{"serve", "hash-token"}, "short\n", exitUsage},
		{"run_server_isolation", []string{"run", "--server", "unix:///s", "--isolation", "strict", "x"}, "", exitUsage},
		{"run_server_file", []string{"run", "--server", "unix:///s", "./x.toml"}, "", exitUsage},
		{"run_server_bad_address", []string{"run", "--server", "http://h:1", "x"}, "", exitUsage},
		{"run_server_unreachable", []string{"run", "--server", "unix:///nonexistent/aileron.sock", "x"}, "", exitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("AILERON_HOME", home)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			require.Equal(t, tt.code, code, stderr.String())
			golden(t, tt.name, home, stdout.String()+stderr.String())
		})
	}
}

func TestCLI_ServeHashToken(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "hash-token"}, strings.NewReader("abcdefghijklmnopqrstuvwxyz\n"), &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	// sha256 of the token without its newline.
	require.Equal(t, "sha256:71c480df93d6ae2f1efad1447c66c9525e316218cf51fc8d9ed832f2daf18b73\n", stdout.String())
}
