package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/examples/kit"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
)

func TestRun_NotesExample(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("notes", notesKey)
	action := filepath.Join(e.home, "add-note.toml")
	require.NoError(t, kit.PinAction(filepath.Join(kit.RepoRoot(), "examples/actions/add-note.toml"), action, m))
	e.ok("", "action", "add", action)

	out := e.ok("", "run", "add-note", "--input", "title=hello", "--input", "body=world")
	var list struct {
		Count int `json:"count"`
		Notes []struct {
			Title, Body string
		} `json:"notes"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list), out)
	require.Equal(t, 1, list.Count)
	require.Equal(t, "hello", list.Notes[0].Title)

	// The service got the real key on both requests, attached by the broker.
	seen := e.notes.Seen()
	require.Len(t, seen, 2)
	for _, s := range seen {
		require.Equal(t, notesKey, s.Header.Get("X-Api-Key"))
	}
}

func TestRun_CredentialAttachedOnlyByBroker(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	out := e.ok("", "run", e.action(m, "inspect", "inspect", `{ url = "https://echo.example.com/headers" }`))
	var got struct {
		SentHeaders     map[string]string   `json:"sent_headers"`
		Status          int                 `json:"status"`
		Body            string              `json:"body"`
		ResponseHeaders map[string][]string `json:"response_headers"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)

	// The connector's own view of its request holds only the placeholder.
	require.Equal(t, "{{aileron.credential}}", got.SentHeaders["X-Api-Key"])
	require.Equal(t, "Bearer {{aileron.credential}}", got.SentHeaders["Authorization"])
	// The service received the real key...
	seen := e.echo.Seen()
	require.Len(t, seen, 1)
	require.Equal(t, notesKey, seen[0].Get("X-Api-Key"))
	require.Equal(t, "Bearer "+notesKey, seen[0].Get("Authorization"))
	// ...and echoed it back, but the broker redacted it before the
	// connector could read it, in the body and in the headers.
	require.Equal(t, 200, got.Status)
	require.NotContains(t, out, notesKey)
	require.Contains(t, got.Body, "[REDACTED]")
	require.Equal(t, []string{"[REDACTED]"}, got.ResponseHeaders["X-Echo-Api-Key"])
}

func TestRun_UndeclaredHostDenied(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	r := e.aileron("", "run", e.action(m, "dial", "fetch", `{ url = "https://evil.example.com/steal" }`))
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "denied")
	require.Contains(t, r.stderr, "evil.example.com:443")
	require.Contains(t, r.stderr, "github://aileron-tests/hostile")
	require.Empty(t, e.echo.Seen())

	// The decision is in the audit log, with the connector and host.
	var found bool
	for _, rec := range e.auditRecords() {
		if rec["decision"] == "deny" && rec["host"] == "evil.example.com" {
			found = true
			require.EqualValues(t, 443, rec["port"])
			require.Equal(t, "host_not_declared", rec["code"])
			require.Equal(t, "github://aileron-tests/hostile", rec["connector"])
			require.Equal(t, "fetch", rec["intent"])
			require.Equal(t, "cli", rec["via"])
		}
	}
	require.True(t, found, "no audit record of the denial")
}

func TestRun_Hostile_Errors(t *testing.T) {
	tests := []struct {
		name     string
		intent   string
		config   string
		contains []string
		maxTime  time.Duration
	}{
		{name: "spins_forever", intent: "spin", config: "[limits]\ndeadline = \"1s\"\n", contains: []string{"deadline_exceeded", "deadline exceeded"}, maxTime: 20 * time.Second},
		{name: "sleeps_forever", intent: "sleep", config: "[limits]\ndeadline = \"1s\"\n", contains: []string{"deadline_exceeded", "worker killed"}, maxTime: 20 * time.Second},
		{name: "garbage_stdout", intent: "garbage_stdout", contains: []string{"bad_result", "not a result document"}},
		{name: "exits_nonzero", intent: "exit_code", contains: []string{"exit", "status 3", "giving up"}},
		{name: "allocates_without_bound", intent: "alloc_bomb", config: "[limits]\nmemory_bytes = 67108864\n", contains: []string{"memory_limit_exceeded", "memory limit 64 MiB exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.config)
			m := e.install("hostile", notesKey)
			start := time.Now()
			r := e.aileron("", "run", e.action(m, strings.ReplaceAll(tt.name, "_", "-"), tt.intent, "{}"))
			require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			t.Logf("%s: %s in %s", tt.name, r.stderr, time.Since(start))
			for _, c := range tt.contains {
				require.Contains(t, r.stderr, c)
			}
			if tt.maxTime > 0 {
				require.Less(t, time.Since(start), tt.maxTime)
			}
			require.NotContains(t, r.stdout+r.stderr, notesKey)
		})
	}
}

func TestRun_EmptyEnvironmentAndArgs(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	out := e.ok("", "run", e.action(m, "env", "env", "{}"))
	require.JSONEq(t, `{"environ":[],"args":[]}`, out)
}

func TestRun_Trap(t *testing.T) {
	e := newEnv(t, "")
	dir := t.TempDir()
	wasm, err := wasmtime.Wat2Wasm(`(module (memory (export "memory") 1) (func (export "_start") unreachable))`)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "trap.wasm"), wasm, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.toml"), []byte(`[connector]
name = "github://aileron-tests/trap"
version = "0.0.1"
provenance_hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
[provides]
intents = ["boom"]
`), 0o600))
	m, err := cas.Pack(filepath.Join(dir, "manifest.toml"), filepath.Join(dir, "trap.wasm"), filepath.Join(dir, "pkg"))
	require.NoError(t, err)
	e.ok("", "connector", "install", "--yes", filepath.Join(dir, "pkg"))
	r := e.aileron("", "run", e.action(m, "trap", "boom", "{}"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "step only (github://aileron-tests/trap boom): trap: connector trapped (unreachable)")
}

func TestRun_BadInvocations(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)

	r := e.aileron("", "run", "no-such-action")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `"no-such-action": action not found`)

	// A second action pinned to a connector that is not installed.
	notes := packages["notes"]
	r = e.aileron("", "run", e.action(notes, "needs-notes", "list_notes", "{}"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "github://aileron-examples/notes@0.1.0: connector is not installed: run `aileron connector install github://aileron-examples/notes@0.1.0`")

	r = e.aileron("", "run")
	require.Equal(t, 2, r.code)
	r = e.aileron("", "run", e.action(m, "inputs", "env", "{}"), "--input", "nope")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `--input "nope": write name=value`)

	// Nothing else was affected: the connector still runs.
	e.ok("", "run", e.action(m, "env-after", "env", "{}"))
}

func TestRun_CtrlCKillsEverything(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	cmd := exec.Command(filepath.Join(binDir, "aileron"), "run", e.action(m, "sleep", "sleep", "{}"))
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait until the worker is up, then interrupt the supervisor.
	waitWorker(t, done)
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "%v", err)
		require.Equal(t, 130, ee.ExitCode(), stderr.String())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("aileron did not exit after SIGINT")
	}
	assertNoChildren(t)
}

func TestRun_SupervisorKilledTakesWorkersWithIt(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "aileron"), "run", e.action(m, "sleep", "sleep", "{}"))
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home)
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitWorker(t, done)
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no cleanup code runs
	<-done
	assertNoChildren(t)
}

// waitWorker waits until a worker of ours runs. It fails at once if ended
// (the run that should start it) reports first, with the run's error,
// instead of waiting out the timeout.
func waitWorker(t *testing.T, ended <-chan error) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for !hasWorker() {
		select {
		case err := <-ended:
			t.Fatalf("the run ended before its worker started: %v", err)
		case <-timeout:
			t.Fatalf("worker never started: %v", children())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func hasWorker() bool {
	for _, c := range children() {
		if strings.Contains(c, "aileron-worker") {
			return true
		}
	}
	return false
}

func TestInstall_FileReadingConnectorRefused(t *testing.T) {
	e := newEnv(t, "")
	dir := t.TempDir()
	wasm := filepath.Join(dir, "fileread.wasm")
	require.NoError(t, kit.BuildConnector(context.Background(), "./integration/testdata/connectors/fileread", wasm))
	_, err := cas.Pack(filepath.Join(kit.RepoRoot(), "integration/testdata/connectors/fileread/manifest.toml"), wasm, filepath.Join(dir, "pkg"))
	require.ErrorContains(t, err, "import wasi_snapshot_preview1.path_open is not granted")

	// Bypass the install check (as a tampered store would) and the worker
	// still refuses to instantiate the module, naming the import.
	m, mb, wb := unsafePackage(t, filepath.Join(kit.RepoRoot(), "integration/testdata/connectors/fileread/manifest.toml"), wasm)
	store, err := cas.Open(filepath.Join(e.home, "store"))
	require.NoError(t, err)
	_, err = store.Put(&cas.Package{ManifestBytes: mb, Wasm: wb, Manifest: m, Source: "test"})
	require.NoError(t, err)
	r := e.aileron("", "run", e.action(m, "fileread", "read_file", "{}"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "undeclared_import")
	require.Contains(t, r.stderr, "wasi_snapshot_preview1.path_open")
}

// unsafePackage packs without the import check, as only a test may.
func unsafePackage(t *testing.T, manifestPath, wasmPath string) (*manifest.Manifest, []byte, []byte) {
	t.Helper()
	mb, err := os.ReadFile(manifestPath)
	require.NoError(t, err)
	wb, err := os.ReadFile(wasmPath)
	require.NoError(t, err)
	m, err := manifest.ParseManifest(manifestPath, mb)
	require.NoError(t, err)
	m.Connector.ProvenanceHash = string(cas.Sum(wb))
	mb = m.Encode()
	m, err = manifest.ParseManifest(manifestPath, mb)
	require.NoError(t, err)
	return m, mb, wb
}

// TestRun_ActionLimitsNarrow: an action's [limits] tighten the operator's
// defaults for its steps (they can never loosen them: see supervisor's
// TestNarrow).
func TestRun_ActionLimitsNarrow(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	withLimits := func(name, intent, limits string) string {
		path := e.action(m, name, intent, "{}")
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(b, []byte("\n[limits]\n"+limits+"\n")...), 0o600))
		return path
	}
	r := e.aileron("", "run", withLimits("spin", "spin", `deadline = "700ms"`))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "deadline exceeded: the invocation ran longer than 700ms")

	r = e.aileron("", "run", withLimits("bomb", "alloc_bomb", "memory_mib = 32"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "memory limit 32 MiB exceeded")
}

// TestRun_RecordAccountsForEveryWorker: a run with two connectors (one of
// them used twice) records each worker once, in step order, and states the
// isolation layers once, the same in the result and in the audit record.
func TestRun_RecordAccountsForEveryWorker(t *testing.T) {
	e := newEnv(t, "")
	hostile := e.install("hostile", notesKey)
	noop := e.install("noop", "")
	action := e.actionSteps("two", step{hostile, "env", "{}"}, step{noop, "noop", "{}"}, step{hostile, "env", "{}"})
	out := e.ok("", "run", "--json", action)
	var res struct {
		Steps     []json.RawMessage `json:"steps"`
		Isolation []string          `json:"isolation"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Len(t, res.Steps, 3)
	require.Contains(t, res.Isolation, "seccomp")
	require.True(t, slices.IsSorted(res.Isolation), "%v", res.Isolation)
	require.Len(t, slices.Compact(slices.Clone(res.Isolation)), len(res.Isolation), "layer listed twice: %v", res.Isolation)

	var run map[string]any
	for _, r := range e.auditRecords() {
		if r["kind"] == "run" {
			run = r
		}
	}
	require.NotNil(t, run, "no run record in the audit log")
	f := run["fields"].(map[string]any)
	var layers []string
	for _, l := range f["layers"].([]any) {
		layers = append(layers, l.(string))
	}
	require.Equal(t, res.Isolation, layers)
	require.Nil(t, f["missing"])
	for _, k := range []string{"worker_peak_rss_kib", "worker_cpu_ms"} {
		require.Len(t, f[k], 2, "%s: one entry per worker", k)
		for _, v := range f[k].([]any) {
			require.Greater(t, v.(float64), 0.0, "%s: %v", k, f[k])
		}
	}
}

// TestRun_LogFloodCapped: a connector that writes ~10 MB to stderr still
// runs to completion; its captured log stops at the operator's limit and
// says so.
func TestRun_LogFloodCapped(t *testing.T) {
	e := newEnv(t, "[limits]\nstderr_bytes = 4096\n")
	m := e.install("hostile", notesKey)
	out := e.ok("", "run", "--json", e.action(m, "flood", "flood_log", "{}"))
	var res supervisor.RunResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.JSONEq(t, `"done"`, string(res.Output))
	log := res.Steps[0].Log
	require.True(t, strings.HasPrefix(log, strings.Repeat("x", 1000)+"\n"), "%.100q", log)
	require.True(t, strings.HasSuffix(log, "\n[aileron: log truncated at the stderr_bytes limit]\n"), "%q", log[max(0, len(log)-200):])
	require.Len(t, log, 4096+len("\n[aileron: log truncated at the stderr_bytes limit]\n"))
}
