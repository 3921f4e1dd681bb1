//go:build linux && amd64

package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// runBPF interprets the classic BPF instructions buildFilter emits on a
// struct seccomp_data, the way the kernel would, and returns the action.
func runBPF(t *testing.T, prog []unix.SockFilter, arch, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if acc == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			if acc >= in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
	}
	t.Fatalf("program fell off its end")
	return 0
}

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

func actionName(a uint32) string {
	switch {
	case a == retAllow:
		return "ALLOW"
	case a == retKill:
		return "KILL_PROCESS"
	case a&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO:
		return "ERRNO(" + unix.ErrnoName(unix.Errno(a&unix.SECCOMP_RET_DATA)) + ")"
	}
	return fmt.Sprintf("%#x", a)
}

const testSelf = 4242

// Thread flags as the Go runtime (runtime/os_linux.go cloneFlags) and glibc's
// pthread_create (clone fallback after clone3's ENOSYS) pass them.
const (
	goCloneFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_SYSVSEM | unix.CLONE_THREAD
	glibcCloneFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID |
		unix.CLONE_CHILD_CLEARTID
)

func TestSeccompPolicyDecisions(t *testing.T) {
	allowlist, err := buildFilter(seccompArch, seccompPolicy(testSelf), SeccompAllowlist)
	require.NoError(t, err)
	denylist, err := buildFilter(seccompArch, seccompPolicy(testSelf), SeccompDenylist)
	require.NoError(t, err)

	tests := []struct {
		name            string
		arch            uint32
		nr              uint32
		args            [6]uint64
		allow, denyMode uint32 // expected action in allowlist and denylist mode
	}{
		{"read", seccompArch, unix.SYS_READ, [6]uint64{}, retAllow, retAllow},
		{"futex", seccompArch, unix.SYS_FUTEX, [6]uint64{}, retAllow, retAllow},
		// Security: i386 int 0x80 socketcall(SYS_SOCKET) must die, not fall through to allow.
		{"i386 socketcall", unix.AUDIT_ARCH_I386, 102, [6]uint64{1}, retKill, retKill},
		{"i386 read", unix.AUDIT_ARCH_I386, 3, [6]uint64{}, retKill, retKill},
		// Security: the x32 table reuses the numbers with bit 30 set.
		{"x32 socket", seccompArch, x32SyscallBit | unix.SYS_SOCKET, [6]uint64{unix.AF_INET}, retKill, retKill},
		{"x32 read", seccompArch, x32SyscallBit | unix.SYS_READ, [6]uint64{}, retKill, retKill},
		{"socket AF_INET", seccompArch, unix.SYS_SOCKET, [6]uint64{unix.AF_INET, unix.SOCK_STREAM}, retEPERM, retEPERM},
		{"socket AF_UNIX", seccompArch, unix.SYS_SOCKET, [6]uint64{unix.AF_UNIX, unix.SOCK_STREAM}, retEPERM, retEPERM},
		{"socketpair", seccompArch, unix.SYS_SOCKETPAIR, [6]uint64{unix.AF_UNIX}, retEPERM, retEPERM},
		{"connect", seccompArch, unix.SYS_CONNECT, [6]uint64{3}, retEPERM, retEPERM},
		{"accept4 on the listener", seccompArch, unix.SYS_ACCEPT4, [6]uint64{3}, retAllow, retAllow},
		{"clone Go thread", seccompArch, unix.SYS_CLONE, [6]uint64{goCloneFlags}, retAllow, retAllow},
		{"clone glibc thread", seccompArch, unix.SYS_CLONE, [6]uint64{glibcCloneFlags}, retAllow, retAllow},
		{"clone fork", seccompArch, unix.SYS_CLONE, [6]uint64{uint64(unix.SIGCHLD)}, retEPERM, retEPERM},
		{"clone vfork-style", seccompArch, unix.SYS_CLONE, [6]uint64{unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)}, retEPERM, retEPERM},
		{"clone thread into new netns", seccompArch, unix.SYS_CLONE, [6]uint64{goCloneFlags | unix.CLONE_NEWNET}, retEPERM, retEPERM},
		{"clone thread into new userns", seccompArch, unix.SYS_CLONE, [6]uint64{goCloneFlags | unix.CLONE_NEWUSER}, retEPERM, retEPERM},
		// The kernel only reads the low 32 bits of clone's flags.
		{"clone thread, junk in high bits", seccompArch, unix.SYS_CLONE, [6]uint64{1<<40 | goCloneFlags}, retAllow, retAllow},
		{"clone3", seccompArch, unix.SYS_CLONE3, [6]uint64{}, retNOSYS, retNOSYS},
		{"fork", seccompArch, unix.SYS_FORK, [6]uint64{}, retEPERM, retEPERM},
		{"execve", seccompArch, unix.SYS_EXECVE, [6]uint64{}, retEPERM, retEPERM},
		{"execveat", seccompArch, unix.SYS_EXECVEAT, [6]uint64{}, retEPERM, retEPERM},
		{"ptrace", seccompArch, unix.SYS_PTRACE, [6]uint64{unix.PTRACE_ATTACH, 1}, retEPERM, retEPERM},
		{"mount", seccompArch, unix.SYS_MOUNT, [6]uint64{}, retEPERM, retEPERM},
		{"fsopen", seccompArch, unix.SYS_FSOPEN, [6]uint64{}, retEPERM, retEPERM},
		{"unshare", seccompArch, unix.SYS_UNSHARE, [6]uint64{unix.CLONE_NEWUSER}, retEPERM, retEPERM},
		{"io_uring_setup", seccompArch, unix.SYS_IO_URING_SETUP, [6]uint64{}, retEPERM, retEPERM},
		{"bpf", seccompArch, unix.SYS_BPF, [6]uint64{}, retEPERM, retEPERM},
		{"kill self", seccompArch, unix.SYS_KILL, [6]uint64{testSelf, uint64(unix.SIGABRT)}, retAllow, retAllow},
		{"kill supervisor", seccompArch, unix.SYS_KILL, [6]uint64{1000, 0}, retEPERM, retEPERM},
		{"kill process group", seccompArch, unix.SYS_KILL, [6]uint64{0, 9}, retEPERM, retEPERM},
		{"kill everyone", seccompArch, unix.SYS_KILL, [6]uint64{0xffffffff, 9}, retEPERM, retEPERM},
		{"tgkill own thread", seccompArch, unix.SYS_TGKILL, [6]uint64{testSelf, 7, uint64(unix.SIGURG)}, retAllow, retAllow},
		{"tgkill other process", seccompArch, unix.SYS_TGKILL, [6]uint64{1000, 1000, 9}, retEPERM, retEPERM},
		{"prlimit64 read own", seccompArch, unix.SYS_PRLIMIT64, [6]uint64{0, unix.RLIMIT_NOFILE, 0, 0xc000}, retAllow, retAllow},
		{"prlimit64 set own", seccompArch, unix.SYS_PRLIMIT64, [6]uint64{0, unix.RLIMIT_NOFILE, 0xc000, 0}, retEPERM, retEPERM},
		{"prlimit64 new_rlim above 4 GiB", seccompArch, unix.SYS_PRLIMIT64, [6]uint64{0, unix.RLIMIT_NOFILE, 1 << 32, 0}, retEPERM, retEPERM},
		{"prlimit64 other process", seccompArch, unix.SYS_PRLIMIT64, [6]uint64{1000, unix.RLIMIT_NOFILE, 0, 0xc000}, retEPERM, retEPERM},
		{"ioctl TCGETS", seccompArch, unix.SYS_IOCTL, [6]uint64{2, unix.TCGETS}, retAllow, retAllow},
		{"ioctl TIOCSTI", seccompArch, unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSTI}, retEPERM, retEPERM},
		{"prctl PR_SET_VMA", seccompArch, unix.SYS_PRCTL, [6]uint64{unix.PR_SET_VMA}, retAllow, retAllow},
		{"prctl PR_SET_DUMPABLE", seccompArch, unix.SYS_PRCTL, [6]uint64{unix.PR_SET_DUMPABLE, 1}, retEPERM, retEPERM},
		{"fcntl F_SETFL", seccompArch, unix.SYS_FCNTL, [6]uint64{3, unix.F_SETFL}, retAllow, retAllow},
		{"fcntl F_SETOWN", seccompArch, unix.SYS_FCNTL, [6]uint64{3, unix.F_SETOWN, 1}, retEPERM, retEPERM},
		// Unlisted: killed under the allowlist, allowed under the denylist.
		{"wait4", seccompArch, unix.SYS_WAIT4, [6]uint64{}, retKill, retAllow},
		{"open (legacy)", seccompArch, unix.SYS_OPEN, [6]uint64{}, retKill, retAllow},
		{"syscall 1000", seccompArch, 1000, [6]uint64{}, retKill, retAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runBPF(t, allowlist, tt.arch, tt.nr, tt.args)
			require.Equal(t, actionName(tt.allow), actionName(got), "allowlist")
			got = runBPF(t, denylist, tt.arch, tt.nr, tt.args)
			require.Equal(t, actionName(tt.denyMode), actionName(got), "denylist")
		})
	}
}

// TestSeccompPolicyCoversObserved checks the policy against the syscalls
// seen while a worker ran wasmtime under a filter (testdata copy of
// shared/notes/seccomp-syscalls-observed.txt). Every one must be allowed
// unless it is on the list below, with the reason.
func TestSeccompPolicyCoversObserved(t *testing.T) {
	b, err := os.ReadFile("testdata/seccomp-syscalls-observed.txt")
	require.NoError(t, err)
	deliberatelyDenied := map[string]string{
		"connect": "no socket may be pointed anywhere new; the broker fd is connected before lockdown",
		"bind":    "the go-plugin listener is bound before lockdown",
		"listen":  "the go-plugin listener listens before lockdown",
	}
	byName := map[string]syscallRule{}
	for _, r := range seccompPolicy(testSelf) {
		byName[r.name] = r
	}
	for _, name := range strings.Fields(string(b)) {
		r, ok := byName[name]
		if why, denied := deliberatelyDenied[name]; denied {
			require.True(t, ok && r.kind == ruleDeny, "%s should be denied (%s)", name, why)
			continue
		}
		require.True(t, ok, "observed syscall %s is not in the policy: the worker would be killed", name)
		require.Contains(t, []ruleKind{ruleAllow, ruleAllowIf}, r.kind, "observed syscall %s is denied", name)
	}
}

func TestBuildFilter_Errors(t *testing.T) {
	tests := []struct {
		name  string
		rules []syscallRule
		mode  SeccompMode
		want  string
	}{
		{"duplicate", []syscallRule{allow("read", 0), deny("read again", 0, unix.EPERM)}, SeccompAllowlist,
			"BUG(sandbox): syscall 0 listed twice (read, read again)"},
		{"duplicate in denylist mode, where allow rules make no leaf", []syscallRule{allow("read", 0), deny("read again", 0, unix.EPERM)}, SeccompDenylist,
			"BUG(sandbox): syscall 0 listed twice (read, read again)"},
		{"off is not a filter", nil, SeccompOff, "BUG(sandbox): buildFilter(off)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildFilter(seccompArch, tt.rules, tt.mode)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestSeccompPolicyNamesMatchNumbers(t *testing.T) {
	// Catch a copy-paste slip such as allow("readv", unix.SYS_READ), using
	// the kernel's own header where the machine has it.
	const header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
	b, err := os.ReadFile(header)
	if err != nil {
		t.Skipf("no kernel header to cross-check against: %v", err) // a convenience check, not a layer
	}
	nrs := map[string]uint32{}
	for _, line := range strings.Split(string(b), "\n") {
		var name string
		var nr uint32
		if _, err := fmt.Sscanf(line, "#define __NR_%s %d", &name, &nr); err == nil {
			nrs[name] = nr
		}
	}
	seen := map[string]bool{}
	checked := 0
	for _, r := range seccompPolicy(testSelf) {
		require.False(t, seen[r.name], "%s twice", r.name)
		seen[r.name] = true
		if nr, ok := nrs[r.name]; ok {
			require.Equal(t, nr, r.nr, "%s", r.name)
			checked++
		}
	}
	require.Greater(t, checked, 100)
}

// TestBuildFilter_MatchesRules runs the filter for every syscall number up
// to well past the table, with arguments that satisfy and that miss each
// conditional rule's alternatives, and compares its action with what the
// rule table says, read directly. The filter's search tree must decide
// exactly as the table does.
func TestBuildFilter_MatchesRules(t *testing.T) {
	rules := seccompPolicy(testSelf)
	byNR := map[uint32]syscallRule{}
	var argSets [][6]uint64
	argSets = append(argSets, [6]uint64{}, [6]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)})
	for _, r := range rules {
		byNR[r.nr] = r
		for _, alt := range r.alts {
			var a [6]uint64
			for _, c := range alt {
				shift := uint(0)
				if c.high {
					shift = 32
				}
				a[c.arg] |= uint64(c.value) << shift
			}
			argSets = append(argSets, a)
			for i := range a {
				miss := a
				miss[i] ^= 1 << 3
				argSets = append(argSets, miss)
			}
		}
	}
	want := func(mode SeccompMode, nr uint32, args [6]uint64) uint32 {
		r, ok := byNR[nr]
		switch {
		case !ok && mode == SeccompAllowlist:
			return retKill
		case !ok, r.kind == ruleAllow:
			return retAllow
		case r.kind == ruleDeny:
			return retErrno(r.errno)
		}
		for _, alt := range r.alts {
			match := true
			for _, c := range alt {
				word := uint32(args[c.arg])
				if c.high {
					word = uint32(args[c.arg] >> 32)
				}
				match = match && word&c.mask == c.value
			}
			if match {
				return retAllow
			}
		}
		return retErrno(r.errno)
	}
	for _, mode := range []SeccompMode{SeccompAllowlist, SeccompDenylist} {
		prog, err := buildFilter(seccompArch, rules, mode)
		require.NoError(t, err)
		checked := 0
		for nr := uint32(0); nr < 1200; nr++ {
			for _, args := range argSets {
				if _, listed := byNR[nr]; !listed && args != argSets[0] {
					continue // arguments matter only to listed syscalls
				}
				got := runBPF(t, prog, seccompArch, nr, args)
				if exp := want(mode, nr, args); got != exp {
					t.Fatalf("mode %v, syscall %d, args %x: filter says %s, table says %s", mode, nr, args, actionName(got), actionName(exp))
				}
				checked++
			}
		}
		require.Greater(t, checked, 1200)
	}
}
