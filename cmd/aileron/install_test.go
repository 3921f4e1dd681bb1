package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"github.com/stretchr/testify/require"
)

// TestCLI_InstallErrors covers the errors of the install, trust and store
// commands, each with its exit code, before any network access.
func TestCLI_InstallErrors(t *testing.T) {
	pub, _, err := minisign.GenerateKey(nil)
	require.NoError(t, err)
	key := pub.String()
	tests := []struct {
		name   string
		config string
		args   []string
		code   int
	}{
		{"install_traversal_name", "", []string{"connector", "install", "--yes", "github://acme/../etc@1.0.0"}, exitUsage},
		{"install_traversal_version", "", []string{"connector", "install", "--yes", "github://acme/x@1.0.0/../../y"}, exitUsage},
		{"install_no_version", "", []string{"connector", "install", "github://acme/x"}, exitUsage},
		{"install_unknown_scheme", "", []string{"connector", "install", "https://example.com/x@1.0.0"}, exitUsage},
		{"install_http_source", "[sources]\ngithub = \"http://127.0.0.1:1\"\n", []string{"connector", "install", "--yes", "github://acme/x@1.0.0"}, exitFailure},
		{"install_bad_source_timeout", "[sources]\ntimeout = \"soon\"\n", []string{"connector", "install", "--yes", "github://acme/x@1.0.0"}, exitFailure},
		{"trust_add_bad_authority", "", []string{"trust", "add", "github://acme/repo", key}, exitUsage},
		{"trust_add_bad_key", "", []string{"trust", "add", "github://acme", "RWnot-a-key"}, exitUsage},
		{"trust_add_one_arg", "", []string{"trust", "add", "github://acme"}, exitUsage},
		{"trust_rm_unknown", "", []string{"trust", "rm", "github://acme"}, exitFailure},
		{"inspect_not_installed", "", []string{"connector", "inspect", "github://acme/x"}, exitFailure},
		{"check_nothing_installed", "", []string{"connector", "check"}, exitOK},
		{"store_verify_empty", "", []string{"store", "verify"}, exitOK},
		{"store_gc_empty", "", []string{"store", "gc"}, exitOK},
		{"action_add_missing_file", "", []string{"action", "add", "/nonexistent/action.toml"}, exitFailure},
		{"action_update_not_installed", "", []string{"action", "update", "nope"}, exitFailure},
		{"keygen_no_tty", "", []string{"connector", "keygen", "--private", "k", "--public", "k.pub"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("AILERON_HOME", home)
			t.Setenv("AILERON_WORKER", "/bin/true")
			t.Setenv("AILERON_SIGN_PASSWORD", "")
			if tt.config != "" {
				require.NoError(t, os.WriteFile(filepath.Join(home, "config.toml"), []byte(tt.config), 0o600))
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			require.Equal(t, tt.code, code, stderr.String())
			golden(t, tt.name, home, strings.ReplaceAll(stdout.String()+stderr.String(), key, "$KEY"))
		})
	}
}

// TestCLI_TrustAddListRemove pins a key from a minisign.pub file.
func TestCLI_TrustAddListRemove(t *testing.T) {
	home := t.TempDir()
	t.Setenv("AILERON_HOME", home)
	pub, _, err := minisign.GenerateKey(nil)
	require.NoError(t, err)
	text, _ := pub.MarshalText()
	keyFile := filepath.Join(t.TempDir(), "minisign.pub")
	require.NoError(t, os.WriteFile(keyFile, text, 0o644))
	cli := func(args ...string) (string, int) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		return stdout.String() + stderr.String(), code
	}
	out, code := cli("trust", "add", "gitlab://team/sub", keyFile)
	require.Equal(t, exitOK, code, out)
	out, code = cli("trust", "list", "--json")
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, `"authority": "gitlab://team/sub"`)
	require.Contains(t, out, pub.String())
	out, code = cli("trust", "rm", "gitlab://team/sub")
	require.Equal(t, exitOK, code, out)
	require.Equal(t, "unpinned the key of gitlab://team/sub\n", out)
}

// TestCLI_InspectNewestInstalled: inspect FQN without a version shows the
// newest installed version by semver, not by string order.
func TestCLI_InspectNewestInstalled(t *testing.T) {
	home := t.TempDir()
	t.Setenv("AILERON_HOME", home)
	cli := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		require.Equal(t, exitOK, code, stderr.String())
		return stdout.String()
	}
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	sum := "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"
	for _, v := range []string{"1.10.0", "1.9.0"} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "connector.wasm"), wasm, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.toml"), []byte(`[connector]
name = "github://acme/empty"
version = "`+v+`"
provenance_hash = "`+sum+`"
[provides]
intents = ["noop"]
`), 0o644))
		cli("connector", "install", "--yes", dir)
	}
	require.Contains(t, cli("connector", "inspect", "--json", "github://acme/empty"), `"version": "1.10.0"`)
}
