package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name.golden after replacing the temp
// home with a placeholder.
func golden(t *testing.T, name, home, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, home, "$HOME")
	got = regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAllString(got, "sha256:$$HASH")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/... -update to create it")
	require.Equal(t, string(want), got)
}

func TestCLI_Errors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"run_no_args", []string{"run"}, exitUsage},
		{"run_bad_input", []string{"run", "x", "--input", "novalue"}, exitUsage},
		{"run_bad_isolation", []string{"run", "x", "--isolation", "loose"}, exitUsage},
		{"unknown_flag", []string{"run", "x", "--frobnicate"}, exitUsage},
		{"install_no_package", []string{"connector", "install", "/nonexistent/pkg"}, exitFailure},
		{"vault_set_secret_on_argv", []string{"vault", "set", "name", "secret-value"}, exitUsage},
		{"vault_set_no_binding", []string{"vault", "set", "name", "--kind", "api_key"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("AILERON_HOME", home)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			require.Equal(t, tt.code, code, stderr.String())
			golden(t, tt.name, home, stdout.String()+stderr.String())
		})
	}
}

func TestCLI_InstallWithoutTerminalNeedsYes(t *testing.T) {
	home := t.TempDir()
	t.Setenv("AILERON_HOME", home)
	dir := t.TempDir()
	// A minimal package: a module that imports nothing, and its manifest.
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "connector.wasm"), wasm, 0o644))
	sum := "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.toml"), []byte(`[connector]
name = "github://acme/empty"
version = "1.0.0"
provenance_hash = "`+sum+`"
[provides]
intents = ["noop"]
`), 0o644))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"connector", "install", dir}, strings.NewReader(""), &stdout, &stderr)
	require.Equal(t, exitUsage, code)
	golden(t, "install_no_tty", home, strings.ReplaceAll(stderr.String(), dir, "$PKG"))
	idx, _ := os.ReadDir(filepath.Join(home, "store", "index"))
	blobs, _ := os.ReadDir(filepath.Join(home, "store", "blobs", "sha256"))
	require.Empty(t, append(idx, blobs...), "nothing may be written without consent")
}
