//go:build linux

package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseCgroupMounts(t *testing.T) {
	tests := []struct {
		file string
		want cgroupMounts
	}{
		{"testdata/mountinfo-hybrid.txt", cgroupMounts{v2: "/sys/fs/cgroup/unified",
			v1: map[string]string{"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}}},
		{"testdata/mountinfo-unified.txt", cgroupMounts{v2: "/sys/fs/cgroup", v1: map[string]string{}}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			f, err := os.Open(tt.file)
			require.NoError(t, err)
			defer f.Close()
			got, err := parseCgroupMounts(f)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, "/mnt/with space", unescapeMountinfo(`/mnt/with\040space`))
}

func TestNewCgroup_Errors(t *testing.T) {
	tests := []struct {
		name string
		l    CgroupLimits
		want string
	}{
		// Security: a name must not climb out of the hierarchy.
		{"../escape", CgroupLimits{}, `cgroup name "../escape": must be a clean relative path`},
		{"a/../../b", CgroupLimits{}, `cgroup name "a/../../b": must be a clean relative path`},
		{"/abs", CgroupLimits{}, `cgroup name "/abs": must be a clean relative path`},
		{"", CgroupLimits{}, `cgroup name "": must be a clean relative path`},
		{"ok", CgroupLimits{MemoryBytes: -1}, "cgroup ok: negative limit {MemoryBytes:-1 Pids:0}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCgroup(tt.name, tt.l)
			require.EqualError(t, err, tt.want)
		})
	}
}

// TestNewCgroupV2Files runs the cgroup v2 code on a directory that looks
// like a cgroup2 hierarchy, since this kind of host only has hugetlb on v2.
func TestNewCgroupV2Files(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) { require.NoError(t, os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)) }
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		require.NoError(t, err)
		return string(b)
	}
	write("cgroup.controllers", "cpu memory pids")
	write("cgroup.subtree_control", "cpu")
	// The kernel gives every new group its files; a plain directory does not.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "aileron/w1"), 0o755))
	for _, f := range []string{"aileron/cgroup.subtree_control", "aileron/w1/memory.max",
		"aileron/w1/memory.swap.max", "aileron/w1/pids.max"} {
		write(f, "")
	}
	require.True(t, cgroupMounts{v2: root}.v2Usable())

	cg, err := newCgroupV2(root, "aileron/w1", CgroupLimits{MemoryBytes: 64 << 20, Pids: 32})
	require.NoError(t, err)
	defer cg.Remove()
	require.Equal(t, 2, cg.Version())
	fd, ok := cg.FD()
	require.True(t, ok)
	require.GreaterOrEqual(t, fd, 0)
	require.Equal(t, "+memory +pids", read("cgroup.subtree_control"))
	require.Equal(t, "+memory +pids", read("aileron/cgroup.subtree_control"))
	require.Equal(t, "67108864", read("aileron/w1/memory.max"))
	require.Equal(t, "0", read("aileron/w1/memory.swap.max"))
	require.Equal(t, "32", read("aileron/w1/pids.max"))

	require.NoError(t, cg.SetMemoryMax(1<<30))
	require.Equal(t, "1073741824", read("aileron/w1/memory.max"))
	require.EqualValues(t, 1<<30, cg.MemoryMax())
	require.EqualError(t, cg.SetMemoryMax(0), "cgroup aileron/w1: memory limit 0: must be positive")

	write("aileron/w1/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
	require.True(t, cg.OOMKilled())

	_, ok = cg.CPUTime()
	require.False(t, ok, "no cpu.stat yet")
	write("aileron/w1/cpu.stat", "usage_usec 12345\nuser_usec 10000\nsystem_usec 2345\n")
	cpu, ok := cg.CPUTime()
	require.True(t, ok)
	require.Equal(t, 12345*time.Microsecond, cpu)
}

func init() {
	helpers["memhog"] = func(arg string) int {
		mib, _ := strconv.Atoi(arg)
		// Wait until the supervisor has placed us in the cgroup.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fail("stdin: %v", err)
		}
		var keep [][]byte
		for i := range mib {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i)
			}
			keep = append(keep, b)
		}
		runtime.KeepAlive(keep)
		fmt.Println("survived")
		return 0
	}
	helpers["threadhog"] = func(arg string) int {
		n, _ := strconv.Atoi(arg)
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fail("stdin: %v", err)
		}
		block := make(chan struct{})
		for range n {
			go func() {
				runtime.LockOSThread()
				<-block
			}()
		}
		time.Sleep(500 * time.Millisecond)
		fmt.Println("survived")
		return 0
	}
}

func newTestCgroup(t *testing.T, l CgroupLimits) *Cgroup {
	t.Helper()
	requireRoot(t)
	cg, err := NewCgroup(fmt.Sprintf("aileron-test/%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid()), l)
	if errors.Is(err, ErrCgroupUnavailable) {
		skipOrFail(t, "%v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		cg.Kill()
		cg.Remove()
		for _, d := range cg.dirs() {
			os.Remove(filepath.Dir(d)) // "aileron-test", if no other test uses it
		}
	})
	return cg
}

// runInCgroup starts helper in cg the way the supervisor does (born in it
// with v2, moved right after start with v1), releases it and waits.
func runInCgroup(t *testing.T, cg *Cgroup, helper, arg string) helperResult {
	t.Helper()
	spawn := SpawnConfig{Namespaces: true, Cgroup: cg}
	cmd := helperCmd(t, helper, &spawn, arg)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	if _, ok := cg.FD(); !ok {
		require.NoError(t, cg.AddPID(cmd.Process.Pid))
	}
	pids, err := cg.PIDs()
	require.NoError(t, err)
	require.Contains(t, pids, cmd.Process.Pid)
	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	cmd.Wait()
	return helperResult{Stdout: stdout.String(), Stderr: stderr.String(), State: cmd.ProcessState}
}

func TestCgroupMemoryLimitKills(t *testing.T) {
	requireNamespaces(t)
	cg := newTestCgroup(t, CgroupLimits{MemoryBytes: 64 << 20, Pids: 64})
	dirs := cg.dirs()
	res := runInCgroup(t, cg, "memhog", "256")
	require.NotContains(t, res.Stdout, "survived")
	require.Equal(t, syscall.SIGKILL, res.Signaled(), "stderr: %s", tail(res.Stderr, 1000))
	require.True(t, cg.OOMKilled(), "the kill must be attributable to the memory limit")

	require.NoError(t, cg.Kill())
	require.NoError(t, cg.Remove())
	for _, d := range dirs {
		require.NoDirExists(t, d)
	}
}

func TestCgroupUnderLimitSurvives(t *testing.T) {
	requireNamespaces(t)
	cg := newTestCgroup(t, CgroupLimits{MemoryBytes: 256 << 20, Pids: 64})
	defer cg.Remove()
	res := runInCgroup(t, cg, "memhog", "32")
	require.Contains(t, res.Stdout, "survived", "stderr: %s", tail(res.Stderr, 1000))
	require.False(t, cg.OOMKilled())
}

func TestCgroupPidsLimit(t *testing.T) {
	requireNamespaces(t)
	cg := newTestCgroup(t, CgroupLimits{MemoryBytes: 256 << 20, Pids: 16})
	defer cg.Remove()
	res := runInCgroup(t, cg, "threadhog", "64")
	require.NotContains(t, res.Stdout, "survived")
	// Pure Go says "failed to create new OS thread", cgo "pthread_create
	// failed: Resource temporarily unavailable".
	require.True(t, strings.Contains(res.Stderr, "failed to create new OS thread") ||
		strings.Contains(res.Stderr, "pthread_create failed: Resource temporarily unavailable"),
		"stderr: %s", tail(res.Stderr, 300))
}

func TestCgroupKillAndRemove(t *testing.T) {
	requireNamespaces(t)
	cg := newTestCgroup(t, CgroupLimits{Pids: 64})
	dirs := cg.dirs()
	spawn := SpawnConfig{Namespaces: true, Cgroup: cg}
	cmd := helperCmd(t, "memhog", &spawn, "1") // blocks reading stdin
	_, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	if _, ok := cg.FD(); !ok {
		require.NoError(t, cg.AddPID(cmd.Process.Pid))
	}
	require.NoError(t, cg.Kill())
	cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.Equal(t, syscall.SIGKILL, ws.Signal())
	require.NoError(t, cg.Remove())
	for _, d := range dirs {
		require.NoDirExists(t, d)
	}
}

// TestCgroupSetMemoryMax grows and shrinks a real group's memory limit, in
// the order v1 needs (memory+swap never below memory).
func TestCgroupSetMemoryMax(t *testing.T) {
	cg := newTestCgroup(t, CgroupLimits{MemoryBytes: 448 << 20, Pids: 64})
	file := "memory.max"
	if cg.Version() == 1 {
		file = "memory.limit_in_bytes"
	}
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(cg.memDir, f))
		require.NoError(t, err)
		return strings.TrimSpace(string(b))
	}
	for _, v := range []int64{1<<30 + 192<<20, 64 << 20, 2 << 30} {
		require.NoError(t, cg.SetMemoryMax(v))
		require.Equal(t, strconv.FormatInt(v, 10), read(file))
		if _, err := os.Stat(filepath.Join(cg.memDir, "memory.memsw.limit_in_bytes")); err == nil {
			require.Equal(t, strconv.FormatInt(v, 10), read("memory.memsw.limit_in_bytes"))
		}
		require.Equal(t, v, cg.MemoryMax())
	}
}
