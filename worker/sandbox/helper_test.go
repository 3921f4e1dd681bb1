//go:build linux

package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Changes this package makes are irreversible (seccomp, Landlock, rlimits,
// capabilities), so tests make them in a child: the test binary re-executes
// itself with helperEnv naming a function from helpers, like go-plugin's
// TestHelperProcess. The child prints JSON on stdout; the test decodes it.

const (
	helperEnv    = "AILERON_SANDBOX_TEST_HELPER"
	helperArgEnv = "AILERON_SANDBOX_TEST_ARG"
)

// helpers are the child-side functions, by name. Each returns the exit code.
var helpers = map[string]func(arg string) int{}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(3)
		}
		os.Exit(h(os.Getenv(helperArgEnv)))
	}
	code := m.Run()
	if helperBin.dir != "" {
		os.RemoveAll(helperBin.dir)
	}
	os.Exit(code)
}

// skipOrFail skips with a reason, or fails under AILERON_STRICT_TESTS=1
// (set in CI), where every layer must be tested for real.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("AILERON_STRICT_TESTS") == "1" {
		t.Fatalf("AILERON_STRICT_TESTS=1, not skipping: "+format, args...)
	}
	t.Skipf(format, args...)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (uid %d): maps the worker to an unprivileged host uid", os.Geteuid())
	}
}

func requireSeccompArch(t testing.TB) {
	t.Helper()
	if seccompArch == 0 {
		skipOrFail(t, "no seccomp policy for GOARCH=%s", runtime.GOARCH)
	}
}

func requireLandlock(t testing.TB, abi int) {
	t.Helper()
	if v := landlockABI(); v < abi {
		skipOrFail(t, "needs Landlock ABI >= %d, kernel has %d", abi, v)
	}
}

var nsCheck struct {
	once sync.Once
	err  error
}

// requireNamespaces skips unless a child can be started with SpawnConfig's
// namespaces on this kernel.
func requireNamespaces(t testing.TB) {
	t.Helper()
	requireRoot(t)
	nsCheck.once.Do(func() {
		_, err := runHelper(t, "exit0", &SpawnConfig{Namespaces: true}, "")
		nsCheck.err = err
	})
	if nsCheck.err != nil {
		skipOrFail(t, "cannot start a child in new user/net/pid/ipc/uts/mount namespaces: %v", nsCheck.err)
	}
}

var helperBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// helperBinary returns a copy of the test binary that the worker's host uid
// can execute: go test builds into a 0700 directory only root can enter.
func helperBinary(t testing.TB) string {
	t.Helper()
	helperBin.once.Do(func() {
		src, err := os.Executable()
		if err != nil {
			helperBin.err = err
			return
		}
		dir, err := os.MkdirTemp("", "aileron-sandbox-test-")
		if err != nil {
			helperBin.err = err
			return
		}
		helperBin.dir = dir
		if err := os.Chmod(dir, 0o755); err != nil {
			helperBin.err = err
			return
		}
		in, err := os.Open(src)
		if err != nil {
			helperBin.err = err
			return
		}
		defer in.Close()
		dst := filepath.Join(dir, "sandbox.test")
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		if err != nil {
			helperBin.err = err
			return
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			helperBin.err = err
			return
		}
		helperBin.err = out.Close()
		helperBin.path = dst
	})
	if helperBin.err != nil {
		t.Fatalf("copy test binary: %v", helperBin.err)
	}
	return helperBin.path
}

// helperResult is what a child left behind.
type helperResult struct {
	Stdout, Stderr string
	State          *os.ProcessState
}

// Signaled returns the signal that killed the child, or 0.
func (r helperResult) Signaled() syscall.Signal {
	if r.State == nil {
		return 0
	}
	if ws, ok := r.State.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// helperCmd builds the command that runs helper name in a child, started
// with spawn when it is not nil.
func helperCmd(t testing.TB, name string, spawn *SpawnConfig, arg string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(helperBinary(t))
	cmd.Env = []string{helperEnv + "=" + name, helperArgEnv + "=" + arg}
	if spawn != nil {
		if err := spawn.Apply(cmd); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	return cmd
}

// runHelper runs helper name to completion (30 s at most). err is non-nil
// when the child did not exit 0.
func runHelper(t testing.TB, name string, spawn *SpawnConfig, arg string) (helperResult, error) {
	t.Helper()
	cmd := helperCmd(t, name, spawn, arg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return helperResult{}, err
	}
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	res := helperResult{Stdout: stdout.String(), Stderr: stderr.String(), State: cmd.ProcessState}
	if err != nil {
		err = fmt.Errorf("helper %s: %w\nstderr:\n%s", name, err, tail(res.Stderr, 4000))
	}
	return res, err
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// emit writes v as one JSON line on stdout (child side).
func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(b, '\n'))
}

// decodeLines decodes every JSON line of s into a new T.
func decodeLines[T any](t testing.TB, s string) []T {
	t.Helper()
	var out []T
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

// fail prints err on stderr and returns exit code 1 (child side).
func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "helper: "+format+"\n", args...)
	return 1
}

func init() {
	helpers["exit0"] = func(string) int { return 0 }
}
