//go:build linux

package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"aileron.dev/aileron/worker/sandbox/internal/escape"
)

// escapeArg configures the "escape" helper.
type escapeArg struct {
	Targets  escape.Targets
	Lockdown LockdownConfig
	Sandbox  bool // run Init and Lockdown; false is the control run
	Int80    bool // finish with the i386 int 0x80 socket attack
}

// escapeLine is one line of the helper's output.
type escapeLine struct {
	Report *Report         `json:",omitempty"`
	Result *escape.Result  `json:",omitempty"`
	Err    string          `json:",omitempty"`
	Extra  json.RawMessage `json:",omitempty"`
}

func init() {
	helpers["escape"] = func(arg string) int {
		var a escapeArg
		if err := json.Unmarshal([]byte(arg), &a); err != nil {
			return fail("arg: %v", err)
		}
		if a.Sandbox {
			if err := Init(InitConfig{}); err != nil {
				return fail("Init: %v", err)
			}
			rep, err := Lockdown(a.Lockdown)
			if err != nil {
				return fail("Lockdown: %v", err)
			}
			emit(escapeLine{Report: &rep})
		}
		for _, r := range escape.Run(a.Targets) {
			emit(escapeLine{Result: &r})
		}
		if a.Int80 {
			r := escape.Int80Socket() // a working filter kills us here
			emit(escapeLine{Result: &r})
		}
		return 0
	}
}

// loopbackListener listens on 127.0.0.1 and counts the connections it
// accepts.
type loopbackListener struct {
	net.Listener
	accepted atomic.Int32
}

func listenLoopback(t *testing.T) *loopbackListener {
	t.Helper()
	// tcp4 explicitly: MPTCP listeners accept plain TCP too, but be plain.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ll := &loopbackListener{Listener: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ll.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return ll
}

// escapeTargets creates the files the attacks aim at. DAC would let the
// worker's uid read the vault file and write into the writable dir; only
// the sandbox stands in the way.
func escapeTargets(t *testing.T, l net.Listener) escape.Targets {
	t.Helper()
	dir, err := os.MkdirTemp("", "aileron-escape-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	vault := filepath.Join(dir, "vault.age")
	require.NoError(t, os.WriteFile(vault, []byte("AGE-SECRET-KEY-1TEST"), 0o644))
	writable := filepath.Join(dir, "writable")
	require.NoError(t, os.Mkdir(writable, 0o777))
	require.NoError(t, os.Chmod(writable, 0o777))
	return escape.Targets{
		TCPAddr:       l.Addr().String(),
		ReadPaths:     []string{"/etc/passwd", "/etc/shadow", vault},
		WritePath:     filepath.Join(writable, "dropped"),
		SupervisorPID: os.Getpid(),
	}
}

// wantDenied maps each attack (by name prefix) to the errnos that count as
// denied, and says which layer is expected to answer.
func wantDenied(targets escape.Targets) map[string][]syscall.Errno {
	eperm := []syscall.Errno{unix.EPERM}   // seccomp
	eacces := []syscall.Errno{unix.EACCES} // Landlock
	pid := targets.SupervisorPID
	return map[string][]syscall.Errno{
		"socket(AF_INET, SOCK_STREAM)":                eperm,
		"socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)": eperm,
		"socket(AF_INET, SOCK_DGRAM)":                 eperm,
		"socket(AF_INET6, SOCK_STREAM)":               eperm,
		"socket(AF_UNIX, SOCK_STREAM)":                eperm,
		"socket(AF_NETLINK, SOCK_RAW)":                eperm,
		"socket(AF_PACKET, SOCK_RAW)":                 eperm,
		"socketpair(AF_UNIX)":                         eperm,
		"connect tcp " + targets.TCPAddr:              eperm,
		"open /etc/passwd":                            eacces,
		"open /etc/shadow":                            eacces,
		"open " + targets.ReadPaths[2]:                eacces,
		"create " + targets.WritePath:                 eacces,
		"execve /bin/sh":                              eperm,
		"execveat /bin/sh":                            eperm,
		"fork (clone without CLONE_THREAD)":           eperm,
		"clone3":                                      {unix.ENOSYS},
		fmt.Sprintf("ptrace(PTRACE_ATTACH, %d)", pid): eperm,
		fmt.Sprintf("process_vm_readv(%d)", pid):      eperm,
		// Landlock denies /proc; in a PID namespace the pid may not exist.
		fmt.Sprintf("open /proc/%d/mem", pid):               {unix.EACCES, unix.ENOENT},
		fmt.Sprintf("kill(%d, 0)", pid):                     eperm,
		"kill(-1, 0)":                                       eperm,
		"mount tmpfs on " + filepath.Dir(targets.WritePath): eperm,
		"unshare(CLONE_NEWUSER)":                            eperm,
		"unshare(CLONE_NEWNET)":                             eperm,
		"bpf(BPF_PROG_LOAD)":                                eperm,
		"io_uring_setup":                                    eperm,
		"userfaultfd":                                       eperm,
		"perf_event_open":                                   eperm,
		"keyctl(GET_KEYRING_ID)":                            eperm,
		"prctl(PR_SET_DUMPABLE, 1)":                         eperm,
		"ioctl(0, TIOCSTI)":                                 eperm,
		"setuid(0)":                                         eperm,
		"personality(READ_IMPLIES_EXEC)":                    eperm,
	}
}

func TestLockdownDeniesEscapes(t *testing.T) {
	requireRoot(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)

	tests := []struct {
		name     string
		spawn    SpawnConfig
		lockdown LockdownConfig
	}{
		{"namespaces, allowlist", SpawnConfig{Namespaces: true}, LockdownConfig{}},
		{"namespaces, denylist fallback", SpawnConfig{Namespaces: true}, LockdownConfig{Seccomp: SeccompDenylist}},
		// Landlock and seccomp must hold on their own, e.g. where user
		// namespaces are disabled.
		{"no namespaces, allowlist", SpawnConfig{}, LockdownConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.spawn.Namespaces {
				requireNamespaces(t)
			}
			l := listenLoopback(t)
			targets := escapeTargets(t, l)
			arg, _ := json.Marshal(escapeArg{Targets: targets, Lockdown: tt.lockdown, Sandbox: true, Int80: true})
			res, err := runHelper(t, "escape", &tt.spawn, string(arg))

			// Security: the last attack, i386 int 0x80 socketcall, must kill.
			require.Error(t, err)
			require.Equal(t, syscall.SIGSYS, res.Signaled(), "want death by SIGSYS; stderr:\n%s", tail(res.Stderr, 2000))

			lines := decodeLines[escapeLine](t, res.Stdout)
			require.NotEmpty(t, lines)
			require.NotNil(t, lines[0].Report, "first line is the lockdown report")
			rep := *lines[0].Report
			t.Logf("lockdown report:\n%s", rep)
			require.Empty(t, rep.Missing([]string{LayerLandlock, LayerSeccomp, LayerNoNewPrivs, LayerNotDumpable, LayerCapabilities, LayerRlimits}))

			want := wantDenied(targets)
			got := map[string]escape.Result{}
			for _, l := range lines[1:] {
				require.NotNil(t, l.Result)
				got[l.Result.Name] = *l.Result
				t.Log(l.Result)
			}
			require.NotContains(t, got, "int80 socketcall(AF_INET)", "the int 0x80 attack returned instead of killing")
			var names []string
			for name := range want {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				r, ok := got[name]
				require.True(t, ok, "attack %q did not run", name)
				require.Contains(t, want[name], r.Errno, "%s", r)
			}
			require.Len(t, got, len(want), "an attack without expectation")
			require.Zero(t, l.accepted.Load(), "the loopback listener saw a connection from the worker")
		})
	}
}

// TestEscapeProbesWorkUnsandboxed is the control for TestLockdownDeniesEscapes:
// without Init and Lockdown the same attacks get through, so a denial above
// is the sandbox's doing and not a broken probe.
func TestEscapeProbesWorkUnsandboxed(t *testing.T) {
	requireRoot(t)
	l := listenLoopback(t)
	targets := escapeTargets(t, l)
	targets.SkipExec = true
	arg, _ := json.Marshal(escapeArg{Targets: targets, Int80: runtime.GOARCH == "amd64"})
	// No namespaces: the child runs as DefaultHostID on the host.
	res, err := runHelper(t, "escape", &SpawnConfig{}, string(arg))
	require.NoError(t, err)
	got := map[string]escape.Result{}
	for _, l := range decodeLines[escapeLine](t, res.Stdout) {
		got[l.Result.Name] = *l.Result
	}
	for _, name := range []string{
		"socket(AF_INET, SOCK_STREAM)",
		"socket(AF_UNIX, SOCK_STREAM)",
		"socketpair(AF_UNIX)",
		"connect tcp " + targets.TCPAddr,
		"open /etc/passwd",
		"open " + targets.ReadPaths[2],
		"create " + targets.WritePath,
		"fork (clone without CLONE_THREAD)",
	} {
		require.Zero(t, got[name].Errno, "control: %s", got[name])
	}
	if runtime.GOARCH == "amd64" {
		require.Zero(t, got["int80 socketcall(AF_INET)"].Errno, "control: %s", got["int80 socketcall(AF_INET)"])
	}
	// DAC alone already stops these for an unprivileged uid.
	require.Equal(t, unix.EACCES, got["open /etc/shadow"].Errno)
	require.EqualValues(t, 1, l.accepted.Load())
}

func init() {
	helpers["whoami"] = func(arg string) int {
		var out struct {
			UIDMap, GIDMap, Status string
			Open                   map[string]string
		}
		b, _ := os.ReadFile("/proc/self/uid_map")
		out.UIDMap = strings.Join(strings.Fields(string(b)), " ")
		b, _ = os.ReadFile("/proc/self/gid_map")
		out.GIDMap = strings.Join(strings.Fields(string(b)), " ")
		b, _ = os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") || strings.HasPrefix(line, "Groups:") {
				out.Status += strings.Join(strings.Fields(line), " ") + "\n"
			}
		}
		out.Open = map[string]string{}
		for _, p := range strings.Split(arg, ",") {
			if f, err := os.Open(p); err != nil {
				out.Open[p] = err.Error()
			} else {
				f.Close()
				out.Open[p] = "readable"
			}
		}
		emit(out)
		return 0
	}
}

// TestApplyWorkerCannotReadShadow checks the credential pitfall from the
// isolation notes: mapped to nobody but still host root. With Apply the
// worker is really the host's unprivileged uid, with no supplementary
// groups, and /etc/shadow stays closed even before Landlock.
func TestApplyWorkerCannotReadShadow(t *testing.T) {
	requireNamespaces(t)
	// Give the supervisor a supplementary group that can read a file, the
	// way group "shadow" reads /etc/gshadow, and check it does not leak.
	dir, err := os.MkdirTemp("", "aileron-groups-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	groupFile := filepath.Join(dir, "group-readable")
	const secretGID = 4242
	require.NoError(t, os.WriteFile(groupFile, []byte("secret"), 0o640))
	require.NoError(t, os.Chown(groupFile, 0, secretGID))
	orig, err := syscall.Getgroups()
	require.NoError(t, err)
	require.NoError(t, syscall.Setgroups([]int{secretGID}))
	t.Cleanup(func() { syscall.Setgroups(orig) })

	for _, spawn := range []SpawnConfig{{Namespaces: true}, {}} {
		res, err := runHelper(t, "whoami", &spawn, "/etc/shadow,"+groupFile)
		require.NoError(t, err)
		var out struct {
			UIDMap, GIDMap, Status string
			Open                   map[string]string
		}
		require.NoError(t, json.Unmarshal([]byte(res.Stdout), &out))
		if spawn.Namespaces {
			require.Equal(t, fmt.Sprintf("0 %d 1", DefaultHostID), out.UIDMap)
			require.Equal(t, fmt.Sprintf("0 %d 1", DefaultHostID), out.GIDMap)
		} else {
			require.Contains(t, out.Status, fmt.Sprintf("Uid: %d %d %d %d", DefaultHostID, DefaultHostID, DefaultHostID, DefaultHostID))
		}
		require.Contains(t, out.Status, "Groups:\n", "supplementary groups must be empty")
		require.Equal(t, "open /etc/shadow: permission denied", out.Open["/etc/shadow"])
		require.Equal(t, "open "+groupFile+": permission denied", out.Open[groupFile])
	}
}

func init() {
	helpers["threads"] = func(arg string) int {
		if err := Init(InitConfig{}); err != nil {
			return fail("Init: %v", err)
		}
		// Park goroutines on their own OS threads so there are many
		// threads at lockdown time.
		var ready, release sync.WaitGroup
		stop := make(chan struct{})
		park := func() {
			ready.Add(1)
			release.Add(1)
			go func() {
				defer release.Done()
				runtime.LockOSThread()
				ready.Done()
				<-stop
			}()
		}
		for range 8 {
			park()
		}
		ready.Wait()
		rep, err := Lockdown(LockdownConfig{ReadOnlyPaths: []string{"/proc"}})
		if err != nil {
			return fail("Lockdown: %v", err)
		}
		park() // a thread born after lockdown inherits the filter
		park()
		ready.Wait()
		var out struct {
			Report  Report
			Threads map[string]string // tid -> "Seccomp:2 NoNewPrivs:1"
		}
		out.Report, out.Threads = rep, map[string]string{}
		err = checkThreads(func(s threadStatus) error {
			out.Threads[s["Pid"]] = fmt.Sprintf("Seccomp:%s NoNewPrivs:%s Seccomp_filters:%s", s["Seccomp"], s["NoNewPrivs"], s["Seccomp_filters"])
			return nil
		})
		if err != nil {
			return fail("read threads: %v", err)
		}
		close(stop)
		emit(out)
		return 0
	}
}

func TestLockdownReachesAllThreads(t *testing.T) {
	requireNamespaces(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)
	res, err := runHelper(t, "threads", &SpawnConfig{Namespaces: true}, "")
	require.NoError(t, err)
	var out struct {
		Report  Report
		Threads map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &out))
	require.GreaterOrEqual(t, len(out.Threads), 11, "8+2 parked threads and main: %v", out.Threads)
	for tid, s := range out.Threads {
		require.Equal(t, "Seccomp:2 NoNewPrivs:1 Seccomp_filters:1", s, "thread %s", tid)
	}
}

func init() {
	helpers["goworks"] = func(arg string) int {
		// Made before lockdown, like the broker fd.
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail("socketpair: %v", err)
		}
		if err := Init(InitConfig{}); err != nil {
			return fail("Init: %v", err)
		}
		if _, err := Lockdown(LockdownConfig{}); err != nil {
			return fail("Lockdown: %v", err)
		}
		steps := []struct {
			name string
			f    func() error
		}{
			{"goroutines", func() error {
				var wg sync.WaitGroup
				var n atomic.Int64
				for i := range 200 {
					wg.Go(func() { n.Add(int64(i)) })
				}
				wg.Wait()
				if n.Load() != 199*200/2 {
					return fmt.Errorf("sum %d", n.Load())
				}
				return nil
			}},
			{"timers", func() error {
				start := time.Now()
				<-time.After(20 * time.Millisecond)
				tk := time.NewTicker(time.Millisecond)
				for range 5 {
					<-tk.C
				}
				tk.Stop()
				time.Sleep(5 * time.Millisecond)
				if time.Since(start) < 25*time.Millisecond {
					return fmt.Errorf("timers too fast")
				}
				return nil
			}},
			{"socketpair made before lockdown", func() error {
				a, err := net.FileConn(os.NewFile(uintptr(pair[0]), "a"))
				if err != nil {
					return err
				}
				b, err := net.FileConn(os.NewFile(uintptr(pair[1]), "b"))
				if err != nil {
					return err
				}
				defer a.Close()
				defer b.Close()
				go a.Write([]byte("ping"))
				b.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4)
				if _, err := b.Read(buf); err != nil || string(buf) != "ping" {
					return fmt.Errorf("read %q: %v", buf, err)
				}
				return nil
			}},
			{"allocation and GC", func() error {
				var keep [][]byte
				for range 64 {
					b := make([]byte, 1<<20)
					for i := 0; i < len(b); i += 4096 {
						b[i] = 1
					}
					keep = append(keep, b)
				}
				runtime.GC()
				runtime.KeepAlive(keep)
				keep = nil
				runtime.GC()
				return nil
			}},
			{"panic and recover", func() (err error) {
				defer func() {
					if recover() == nil {
						err = fmt.Errorf("no panic")
					}
				}()
				var m map[string]int
				//lint:ignore SA5000 the panic is the point
				m["x"] = 1
				return nil
			}},
			{"nil pointer fault recovered", func() (err error) {
				defer func() {
					if recover() == nil {
						err = fmt.Errorf("no panic")
					}
				}()
				var p *int
				return fmt.Errorf("%d", *p)
			}},
		}
		for _, s := range steps {
			if err := s.f(); err != nil {
				return fail("%s: %v", s.name, err)
			}
			emit(s.name)
		}
		return 0
	}
}

func TestGoRuntimeWorksAfterLockdown(t *testing.T) {
	requireNamespaces(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)
	res, err := runHelper(t, "goworks", &SpawnConfig{Namespaces: true}, "")
	require.NoError(t, err)
	require.Equal(t, []string{"goroutines", "timers", "socketpair made before lockdown", "allocation and GC",
		"panic and recover", "nil pointer fault recovered"}, decodeLines[string](t, res.Stdout))
}

func TestLockdown_Errors(t *testing.T) {
	tests := []struct {
		name string
		cfg  LockdownConfig
		want string
	}{
		{"unknown landlock mode", LockdownConfig{Landlock: 7}, "lockdown config: unknown LandlockMode(7)"},
		{"unknown seccomp mode", LockdownConfig{Seccomp: -1}, "lockdown config: unknown SeccompMode(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Validation happens before anything is applied, so this is
			// safe in the test process itself.
			_, err := Lockdown(tt.cfg)
			require.EqualError(t, err, tt.want)
		})
	}
}
