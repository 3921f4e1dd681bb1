package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
)

// failingWorker returns the test build of the worker (escapeWorker) under
// a name that makes its pre-init constructor fail step (see
// aileron_forced_failure in worker/sandbox/preinit), and the config that
// pins it.
func failingWorker(t *testing.T, step int) (path, config string) {
	t.Helper()
	b, err := os.ReadFile(escapeWorker(t))
	require.NoError(t, err)
	dir, err := os.MkdirTemp(testTmp, "failing-worker-") // children() sees its processes
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	path = filepath.Join(dir, fmt.Sprintf("aileron-worker-failpreinit-%d", step))
	require.NoError(t, os.WriteFile(path, b, 0o755))
	return path, fmt.Sprintf("[isolation]\nworker_sha256 = %q\n", cas.Sum(b))
}

// lastRunRecord returns the audit log's last run record's fields.
func (e *env) lastRunRecord() map[string]any {
	e.t.Helper()
	var last map[string]any
	for _, rec := range e.auditRecords() {
		if rec["kind"] == "run" {
			last = rec
		}
	}
	require.NotNil(e.t, last, "no run record in the audit log")
	return last["fields"].(map[string]any)
}

// TestIsolation_NamespacesRecordedAsTheWorkerGotThem: when the worker's
// constructor cannot create its user namespace (as under an AppArmor user
// namespace restriction), the run record must not claim namespaces the
// worker is not in, and strict mode refuses to run.
func TestIsolation_NamespacesRecordedAsTheWorkerGotThem(t *testing.T) {
	worker, config := failingWorker(t, 10)
	t.Setenv("AILERON_WORKER", worker)
	e := newEnv(t, config)
	m := e.install("hostile", notesKey)
	action := e.action(m, "env", "env", "{}")

	r := e.aileron("", "run", "--isolation", "strict", action)
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "strict isolation: layers unavailable: github://aileron-tests/hostile: ")
	for _, l := range []string{"userns", "netns", "pidns", "ipcns", "utsns", "mountns"} {
		require.Contains(t, r.stderr, l+": shares the supervisor's ")
	}

	r = e.aileron("", "run", "--isolation", "relaxed", action)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "RELAXED ISOLATION")
	fields := e.lastRunRecord()
	layers, missing := fmt.Sprint(fields["layers"]), fmt.Sprint(fields["missing"])
	for _, l := range []string{"userns", "netns", "pidns", "ipcns", "utsns", "mountns"} {
		require.NotContains(t, layers, l)
		require.Contains(t, missing, l+": shares the supervisor's ")
	}
	// Every other layer is still in force: the failed step cost no other.
	for _, l := range []string{"cgroup", "rlimits", "no_new_privs", "not_dumpable", "capabilities", "landlock", "seccomp"} {
		require.True(t, strings.Contains(layers, l), "%s not in %s", l, layers)
	}
	require.Len(t, fields["missing"], 6, missing)
}

// TestIsolation_ProcMountFailureRefused: a worker whose constructor cannot
// mount its /proc cannot apply Landlock safely; it is refused, in relaxed
// mode too, with the reason.
func TestIsolation_ProcMountFailureRefused(t *testing.T) {
	worker, config := failingWorker(t, 1)
	t.Setenv("AILERON_WORKER", worker)
	e := newEnv(t, config)
	m := e.install("hostile", notesKey)
	r := e.aileron("", "run", "--isolation", "relaxed", e.action(m, "env", "env", "{}"))
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "sandbox preinit: make mounts private: operation not permitted")
}
