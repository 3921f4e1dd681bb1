package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCLI_MCP_Errors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"mcp_http_not_loopback", []string{"mcp", "--http", "0.0.0.0:8808"}, exitUsage},
		{"mcp_http_bad_address", []string{"mcp", "--http", "8808"}, exitUsage},
		{"mcp_args", []string{"mcp", "add-note"}, exitUsage},
		{"mcp_bad_isolation", []string{"mcp", "--isolation", "loose"}, exitUsage},
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

// TestCLI_MCP_StdoutIsProtocolOnly speaks MCP to `aileron mcp` on stdio:
// every line on stdout is a JSON-RPC message, and closing stdin ends the
// server with status 0.
func TestCLI_MCP_StdoutIsProtocolOnly(t *testing.T) {
	home := t.TempDir()
	t.Setenv("AILERON_HOME", home)
	t.Setenv("AILERON_WORKER", "/bin/true") // no call runs here
	require.NoError(t, os.MkdirAll(filepath.Join(home, "actions"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "actions", "broken.toml"), []byte("[action]\n"), 0o600))

	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"mcp"}, stdinR, stdoutW, &stderr)
		stdoutW.Close()
	}()
	send := func(msg string) {
		_, err := io.WriteString(stdinW, msg+"\n")
		require.NoError(t, err)
	}
	lines := bufio.NewScanner(stdoutR)
	next := func() map[string]any {
		require.True(t, lines.Scan(), "stdout closed; stderr: %s", stderr.String())
		var m map[string]any
		require.NoError(t, json.Unmarshal(lines.Bytes(), &m), "not JSON on stdout: %q", lines.Text())
		require.Equal(t, "2.0", m["jsonrpc"])
		return m
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	init := next()
	require.EqualValues(t, 1, init["id"])
	require.Equal(t, map[string]any{"tools": map[string]any{"listChanged": true}}, init["result"].(map[string]any)["capabilities"])
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	list := next()
	require.EqualValues(t, 2, list["id"])
	require.Equal(t, []any{}, list["result"].(map[string]any)["tools"])
	stdinW.Close()
	select {
	case c := <-code:
		require.Equal(t, exitOK, c, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("aileron mcp did not exit when stdin closed")
	}
	require.False(t, lines.Scan(), "unexpected output after the last response: %q", lines.Text())
	// The skipped action is reported on stderr, not stdout.
	require.Contains(t, stderr.String(), "action skipped")
}
