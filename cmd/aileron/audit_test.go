package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/broker/audit"
)

func writeAuditLog(t *testing.T, path string, n int) {
	t.Helper()
	l, err := audit.Open(path)
	require.NoError(t, err)
	defer l.Close()
	for i := 1; i <= n; i++ {
		require.NoError(t, l.Append(audit.Record{Kind: audit.KindEgress, Time: time.Unix(int64(1700000000+i), 0), Decision: "allow",
			Connector: "github://acme/x", Intent: "go", Method: "GET", Host: "api.example.com", Port: 443, Path: "/v1", Status: 200}))
	}
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCLI_Audit(t *testing.T) {
	home := t.TempDir()
	t.Setenv("AILERON_HOME", home)
	path := filepath.Join(home, "audit.jsonl")

	code, _, stderr := runCLI(t, "audit", "verify")
	require.Equal(t, exitFailure, code)
	require.Equal(t, "aileron: audit log "+path+" does not exist: nothing has been audited yet, or use --file\n", stderr)

	writeAuditLog(t, path, 5)
	code, stdout, stderr := runCLI(t, "audit", "verify")
	require.Equal(t, exitOK, code, stderr)
	f, err := os.Open(path)
	require.NoError(t, err)
	last, err := audit.Tail(f, 1)
	f.Close()
	require.NoError(t, err)
	require.Equal(t, path+": 5 records verify\nhead: record 5, hash "+last[0].Hash+"\n", stdout)

	code, stdout, _ = runCLI(t, "audit", "tail", "-n", "2", "--json")
	require.Equal(t, exitOK, code)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 2)
	var r audit.Record
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &r))
	require.EqualValues(t, 5, r.Seq)

	code, stdout, _ = runCLI(t, "audit", "tail", "-n", "1")
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, "SEQ")
	require.Contains(t, stdout, "GET api.example.com/v1")

	// One byte changed in record 3: verify names it, tail shows nothing.
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	i := bytes.Index(b, []byte(`"seq":3`))
	j := i + bytes.Index(b[i:], []byte(`"status":200`))
	b[j+len(`"status":2`)] = '1' // 200 -> 210
	other := filepath.Join(t.TempDir(), "copy.jsonl")
	require.NoError(t, os.WriteFile(other, b, 0o600))
	code, _, stderr = runCLI(t, "audit", "verify", "--file", other)
	require.Equal(t, exitFailure, code)
	require.Equal(t, "aileron: audit log "+other+" does not verify: line 3 (record 3): hash mismatch: the record was modified\n", stderr)
	code, stdout, _ = runCLI(t, "audit", "tail", "--file", other)
	require.Equal(t, exitFailure, code)
	require.Empty(t, stdout)

	code, _, _ = runCLI(t, "audit", "tail", "-n", "0")
	require.Equal(t, exitUsage, code)
}
