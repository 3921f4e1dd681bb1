package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/examples/kit"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/worker"
)

// escapeBuild is the worker built with the test-only escape probes, once
// per test binary (a cgo link takes seconds).
var escapeBuild struct {
	once sync.Once
	path string
	err  error
}

// escapeWorker returns the worker with the test-only escape probes compiled
// in, in a directory the worker's unprivileged uid can reach. Tests must
// not modify it.
func escapeWorker(t *testing.T) string {
	t.Helper()
	escapeBuild.once.Do(func() {
		dir := filepath.Join(testTmp, "escape-worker")
		if escapeBuild.err = os.Mkdir(dir, 0o755); escapeBuild.err != nil {
			return
		}
		escapeBuild.path = filepath.Join(dir, "aileron-worker")
		escapeBuild.err = kit.BuildWorker(context.Background(), escapeBuild.path, "aileron_escapetest")
	})
	require.NoError(t, escapeBuild.err)
	return escapeBuild.path
}

// probeConnector packs a connector whose intents the escape-test worker
// answers itself; its module is a trivial command that never runs.
func probeConnector(t *testing.T, e *env) *manifest.Manifest {
	t.Helper()
	dir := t.TempDir()
	wasm, err := wasmtime.Wat2Wasm(`(module (memory (export "memory") 1) (func (export "_start") unreachable))`)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "probe.wasm"), wasm, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.toml"), []byte(`[connector]
name = "github://aileron-tests/escape"
version = "0.0.1"
provenance_hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
[provides]
intents = ["escape_probes", "escape_int80"]
`), 0o600))
	m, err := cas.Pack(filepath.Join(dir, "manifest.toml"), filepath.Join(dir, "probe.wasm"), filepath.Join(dir, "pkg"))
	require.NoError(t, err)
	e.ok("", "connector", "install", "--yes", filepath.Join(dir, "pkg"))
	return m
}

// TestIsolation_EscapeProbes runs a real worker, started by the real
// supervisor and locked down as in production, that tries to break out
// after sandboxing. Every attempt must fail.
func TestIsolation_EscapeProbes(t *testing.T) { escapeProbes(t, "") }

// TestPool_EscapeProbes: a worker from the warm pool is exactly as locked
// down as a fresh one.
func TestPool_EscapeProbes(t *testing.T) { escapeProbes(t, "[pool]\nsize = 2\n") }

func escapeProbes(t *testing.T, config string) {
	worker := escapeWorker(t)
	wb, err := os.ReadFile(worker)
	require.NoError(t, err)
	// The supervisor runs only the worker build it expects: pin this one.
	config += fmt.Sprintf("\n[isolation]\nworker_sha256 = %q\n", cas.Sum(wb))
	e := newEnv(t, config)
	m := probeConnector(t, e)

	// A loopback listener the worker must not reach.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	// A directory that looks writable to anyone.
	open, err := os.MkdirTemp("", "aileron-escape-target-")
	require.NoError(t, err)
	defer os.RemoveAll(open)
	require.NoError(t, os.Chmod(open, 0o777))

	// The vault key exists once a broker has started.
	e.ok("", "vault", "list")
	vaultKey := filepath.Join(e.home, "vault", "identity")
	require.FileExists(t, vaultKey)

	with := fmt.Sprintf(`{ TCPAddr = %q, ReadPaths = ["/etc/passwd", "/etc/shadow", %q], WritePath = %q, SupervisorPID = "${{ inputs.pid }}" }`,
		ln.Addr().String(), vaultKey, filepath.Join(open, "escaped"))
	action := e.action(m, "escape", "escape_probes", with)
	src, err := os.ReadFile(action)
	require.NoError(t, err)
	src = bytes.Replace(src, []byte("[[requires.connectors]]"), []byte("[inputs.pid]\ntype = \"integer\"\nrequired = true\n\n[[requires.connectors]]"), 1)
	require.NoError(t, os.WriteFile(action, src, 0o600))

	// `exec` keeps the shell's pid, so $$ is the supervisor's pid.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `exec "$0" run "$1" --input pid=$$`, filepath.Join(binDir, "aileron"), action)
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home, "AILERON_WORKER="+worker)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())

	var rows []struct {
		Name    string `json:"name"`
		Errno   int    `json:"errno"`
		Error   string `json:"error"`
		Detail  string `json:"detail"`
		Skipped bool   `json:"skipped"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rows), stdout.String())
	for _, r := range rows {
		t.Logf("%-50s %s", r.Name, r.Error)
		require.False(t, r.Skipped, "%s was not tried: %s", r.Name, r.Detail)
		require.NotZero(t, r.Errno, "ESCAPE: %s succeeded: %s", r.Name, r.Detail)
	}
	for _, want := range []string{"socket(AF_INET,", "connect tcp", "open /etc/passwd", "create ", "execve ", "fork", "ptrace(PTRACE_ATTACH,", "mount ", "unshare(", "kill("} {
		found := false
		for _, r := range rows {
			found = found || strings.HasPrefix(r.Name, want)
		}
		require.True(t, found, "probe %q was not run", want)
	}
	var sawShadow, sawVault, sawMem, sawKill, sawFork bool
	for _, r := range rows {
		sawShadow = sawShadow || r.Name == "open /etc/shadow"
		sawVault = sawVault || r.Name == "open "+vaultKey
		sawMem = sawMem || strings.HasSuffix(r.Name, "/mem")
		sawKill = sawKill || strings.HasPrefix(r.Name, "kill(")
		sawFork = sawFork || strings.Contains(r.Name, "fork")
	}
	require.True(t, sawShadow && sawVault && sawMem && sawKill && sawFork, "missing probes in %+v", rows)
	require.Zero(t, accepted.Load(), "the worker reached a loopback listener")
	require.NoFileExists(t, filepath.Join(open, "escaped"))

	// The i386 int 0x80 entry point is killed by seccomp (SIGSYS): the
	// worker dies, the run fails cleanly, the supervisor survives.
	cmd = exec.Command(filepath.Join(binDir, "aileron"), "run", e.action(m, "escape-int80", "escape_int80", "{}"))
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home, "AILERON_WORKER="+worker)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, string(out))
	require.Contains(t, string(out), "worker_died")
	require.Contains(t, string(out), "bad system call")
}

// TestIsolation_ProductionWorkerHasNoProbes checks the binary CI and users
// run: the escape probes exist only in test builds.
func TestIsolation_ProductionWorkerHasNoProbes(t *testing.T) {
	out, err := exec.Command("go", "tool", "nm", filepath.Join(binDir, "aileron-worker")).Output()
	require.NoError(t, err)
	require.NotContains(t, string(out), "runEscapeProbes")
	require.NotContains(t, string(out), "sandbox/internal/escape")
	// Nor the pre-init constructor's forced-failure hook.
	b, err := os.ReadFile(filepath.Join(binDir, "aileron-worker"))
	require.NoError(t, err)
	require.NotContains(t, string(b), "-failpreinit-")
}

func TestIsolation_RecordedPerRun(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	e.ok("", "run", "--isolation", "strict", e.action(m, "env", "env", "{}"))
	var run map[string]any
	for _, r := range e.auditRecords() {
		if r["kind"] == "run" {
			run = r
		}
	}
	require.NotNil(t, run, "no run record in the audit log")
	require.Equal(t, "ok", run["code"])
	fields := run["fields"].(map[string]any)
	require.Equal(t, "strict", fields["isolation"])
	layers := fmt.Sprint(fields["layers"])
	for _, l := range []string{"userns", "netns", "pidns", "mountns", "cgroup", "landlock", "seccomp", "capabilities", "rlimits"} {
		require.Contains(t, layers, l)
	}
	require.Nil(t, fields["missing"])
}

func TestIsolation_StrictRefusesAMissingLayer(t *testing.T) {
	e := newEnv(t, "[isolation]\nunsafe_disable = [\"landlock\"]\n")
	m := e.install("hostile", notesKey)
	action := e.action(m, "env", "env", "{}")

	r := e.aileron("", "run", "--isolation", "strict", action)
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "strict isolation: layers unavailable: github://aileron-tests/hostile: landlock: off by configuration")

	// Relaxed mode runs, warns loudly, and the audit record says what was
	// missing.
	r = e.aileron("", "run", "--isolation", "relaxed", action)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "config.toml disables isolation layers: [landlock]")
	require.Contains(t, r.stderr, "RELAXED ISOLATION")
	var last map[string]any
	for _, rec := range e.auditRecords() {
		if rec["kind"] == "run" {
			last = rec
		}
	}
	require.NotNil(t, last)
	require.Equal(t, "relaxed", last["fields"].(map[string]any)["isolation"])
	require.Contains(t, fmt.Sprint(last["fields"].(map[string]any)["missing"]), "landlock")

	// doctor names the disabled layer and exits 1.
	r = e.aileron("", "doctor")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, "landlock      UNAVAILABLE  disabled by isolation.unsafe_disable in config.toml")
	// It reports the limits real workers get (the file size bounds the
	// scratch stdin/stdout files: the ABI's 4 MiB plus a margin).
	require.Contains(t, r.stdout, fmt.Sprintf("fsize=%d ", worker.MaxScratchFileBytes))
}

// TestIsolation_TamperedWorkerRefused: the supervisor verifies the worker
// binary it executes against the hash it was built with.
func TestIsolation_TamperedWorkerRefused(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	dir, err := os.MkdirTemp(testTmp, "tampered-") // children() sees its processes
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Chmod(dir, 0o755))
	b, err := os.ReadFile(filepath.Join(binDir, "aileron-worker"))
	require.NoError(t, err)
	tampered := filepath.Join(dir, "aileron-worker")
	require.NoError(t, os.WriteFile(tampered, append(b, 0), 0o755))

	cmd := exec.Command(filepath.Join(binDir, "aileron"), "run", e.action(m, "env", "env", "{}"))
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home, "AILERON_WORKER="+tampered)
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "worker binary does not match the expected sha256: "+tampered+" is sha256:")
}

// TestIsolation_WorkerProcessesInTheirCgroup: both processes of a worker
// (the first one, which made the namespaces, and the worker proper, PID 1
// of its namespace) are in the worker's memory and pids cgroup, and the
// worker proper is in its own namespaces.
func TestIsolation_WorkerProcessesInTheirCgroup(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	cmd := exec.Command(filepath.Join(binDir, "aileron"), "run", e.action(m, "sleep", "sleep", "{}"))
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home)
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	var workers []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		workers = nil
		for _, c := range children() {
			if strings.Contains(c, "aileron-worker") {
				workers = append(workers, c)
			}
		}
		if len(workers) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Len(t, workers, 2, "want the worker's two processes: %v", workers)
	self, err := os.Readlink("/proc/self/ns/net")
	require.NoError(t, err)
	inOwnNS := 0
	for _, w := range workers {
		var pid int
		_, err := fmt.Sscanf(w, "pid %d:", &pid)
		require.NoError(t, err)
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		require.NoError(t, err)
		for _, ctl := range []string{"memory", "pids"} {
			require.Regexp(t, `(?m)^\d+:`+ctl+`:/aileron/`, string(cg), "pid %d is not in its %s cgroup:\n%s", pid, ctl, cg)
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ns != self {
			inOwnNS++
		}
	}
	require.Equal(t, 2, inOwnNS, "both worker processes must be out of the host network namespace")
}
