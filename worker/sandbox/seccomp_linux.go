//go:build linux

package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file turns the syscall policy table (syscalls_linux_<arch>.go) into a
// classic BPF program and loads it. The program is built by hand rather than
// with a library so that the architecture check can never fall through to an
// allow default: a denylist that jumps to "allow" on an arch mismatch lets an
// i386 `int 0x80` socketcall(AF_INET) create a socket (shown on this project's
// test machine with elastic/go-seccomp-bpf).

// ruleKind says what a policy table entry does.
type ruleKind int

const (
	// ruleAllow allows the syscall. In denylist mode such entries are
	// dropped, since everything unlisted is allowed there anyway.
	ruleAllow ruleKind = iota
	// ruleDeny fails the syscall with the entry's errno, in both modes.
	ruleDeny
	// ruleAllowIf allows the syscall when every check of at least one
	// alternative holds and fails it with the entry's errno otherwise, in
	// both modes.
	ruleAllowIf
)

// syscallRule is one line of the policy table.
type syscallRule struct {
	name  string
	nr    uint32
	kind  ruleKind
	errno unix.Errno   // ruleDeny, and ruleAllowIf when no alternative matches
	alts  [][]argCheck // ruleAllowIf: alternatives, each a conjunction
}

// argCheck tests one 32-bit half of a syscall argument:
// (word & mask) == value.
type argCheck struct {
	arg   int  // argument index, 0..5
	high  bool // test the upper 32 bits instead of the lower
	mask  uint32
	value uint32
}

// allow, deny and allowIf build table entries; see ruleKind.
func allow(name string, nr uintptr) syscallRule {
	return syscallRule{name: name, nr: uint32(nr), kind: ruleAllow}
}

func deny(name string, nr uintptr, errno unix.Errno) syscallRule {
	return syscallRule{name: name, nr: uint32(nr), kind: ruleDeny, errno: errno}
}

func allowIf(name string, nr uintptr, errno unix.Errno, alts ...[]argCheck) syscallRule {
	return syscallRule{name: name, nr: uint32(nr), kind: ruleAllowIf, errno: errno, alts: alts}
}

// argEq is true when the argument's lower 32 bits equal v. Use it for
// arguments the kernel declares as int, unsigned int or pid_t: the kernel
// ignores the upper half of those, so the filter must too.
func argEq(arg int, v uint32) argCheck { return argCheck{arg: arg, mask: ^uint32(0), value: v} }

// argMasked is true when (lower 32 bits & mask) == v.
func argMasked(arg int, mask, v uint32) argCheck { return argCheck{arg: arg, mask: mask, value: v} }

// argNull is true when the full 64-bit argument is zero (a NULL pointer).
func argNull(arg int) []argCheck {
	return []argCheck{{arg: arg, mask: ^uint32(0)}, {arg: arg, high: true, mask: ^uint32(0)}}
}

// all makes one alternative out of checks.
func all(checks ...any) []argCheck {
	var out []argCheck
	for _, c := range checks {
		switch c := c.(type) {
		case argCheck:
			out = append(out, c)
		case []argCheck:
			out = append(out, c...)
		default:
			panic(fmt.Sprintf("BUG(sandbox): all(%T)", c))
		}
	}
	return out
}

// oneOf makes one alternative per value: the argument equals one of vals.
func oneOf(arg int, vals ...uint32) [][]argCheck {
	alts := make([][]argCheck, len(vals))
	for i, v := range vals {
		alts[i] = []argCheck{argEq(arg, v)}
	}
	return alts
}

// Offsets into struct seccomp_data.
const (
	seccompDataNR   = 0
	seccompDataArch = 4
	seccompDataArgs = 16
)

// x32SyscallBit marks x32 ABI syscall numbers on x86_64.
const x32SyscallBit = 0x40000000

func retErrno(e unix.Errno) uint32 {
	return unix.SECCOMP_RET_ERRNO | (uint32(e) & unix.SECCOMP_RET_DATA)
}

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// buildFilter compiles rules into a seccomp BPF program for the given audit
// architecture. It is a pure function so tests can run the program in a BPF
// interpreter without loading it.
func buildFilter(arch uint32, rules []syscallRule, mode SeccompMode) ([]unix.SockFilter, error) {
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		and  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		kill = unix.SECCOMP_RET_KILL_PROCESS
	)
	var def uint32
	switch mode {
	case SeccompAllowlist:
		def = kill
	case SeccompDenylist:
		def = unix.SECCOMP_RET_ALLOW
	default:
		return nil, fmt.Errorf("BUG(sandbox): buildFilter(%v)", mode)
	}

	prog := []unix.SockFilter{
		stmt(ldW, seccompDataArch),
		jump(jeq, arch, 1, 0),
		stmt(ret, kill), // Security: i386 `int 0x80` (socketcall, ...) and any other foreign ABI; never the default action
		stmt(ldW, seccompDataNR),
		jump(jge, x32SyscallBit, 0, 1),
		stmt(ret, kill), // Security: x32 syscalls are a second syscall table with the same numbers
	}
	seen := map[uint32]string{}
	for _, r := range rules {
		if prev, dup := seen[r.nr]; dup {
			return nil, fmt.Errorf("BUG(sandbox): syscall %d listed twice (%s, %s)", r.nr, prev, r.name)
		}
		seen[r.nr] = r.name
		var block []unix.SockFilter
		switch r.kind {
		case ruleAllow:
			if mode == SeccompDenylist {
				continue
			}
			block = []unix.SockFilter{stmt(ret, unix.SECCOMP_RET_ALLOW)}
		case ruleDeny:
			block = []unix.SockFilter{stmt(ret, retErrno(r.errno))}
		case ruleAllowIf:
			for _, alt := range r.alts {
				var body []unix.SockFilter
				for _, c := range alt {
					off := uint32(seccompDataArgs + 8*c.arg)
					if c.high {
						off += 4 // little endian: the upper half follows
					}
					body = append(body, stmt(ldW, off))
					if c.mask != ^uint32(0) {
						body = append(body, stmt(and, c.mask))
					}
					// The false branch is patched below to skip to the next alternative.
					body = append(body, jump(jeq, c.value, 0, 0))
				}
				body = append(body, stmt(ret, unix.SECCOMP_RET_ALLOW))
				for i := range body {
					if body[i].Code == jeq {
						skip := len(body) - i - 1
						if skip > 255 {
							return nil, fmt.Errorf("BUG(sandbox): %s: alternative too long", r.name)
						}
						body[i].Jf = uint8(skip)
					}
				}
				block = append(block, body...)
			}
			block = append(block, stmt(ret, retErrno(r.errno)))
			// The syscall number was overwritten by the argument loads; the
			// block always returns, so nothing after it needs it.
		default:
			return nil, fmt.Errorf("BUG(sandbox): rule %s has kind %d", r.name, r.kind)
		}
		if len(block) > 255 {
			return nil, fmt.Errorf("BUG(sandbox): rule %s too long", r.name)
		}
		prog = append(prog, jump(jeq, r.nr, 0, uint8(len(block))))
		prog = append(prog, block...)
	}
	prog = append(prog, stmt(ret, def))
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("BUG(sandbox): seccomp program has %d instructions", len(prog))
	}
	return prog, nil
}

// loadSeccomp builds the policy for this process and loads it on every
// thread. It returns a description for the report.
func loadSeccomp(mode SeccompMode) (string, error) {
	if seccompArch == 0 {
		return "", fmt.Errorf("seccomp policy for %s: %w", runtime.GOARCH, ErrUnsupported)
	}
	rules := seccompPolicy(uint32(unix.Getpid()))
	prog, err := buildFilter(seccompArch, rules, mode)
	if err != nil {
		return "", err
	}

	// no_new_privs and the filter must be set by the same thread, and TSYNC
	// then copies the filter (and no_new_privs) to every other thread
	// atomically: either all threads are filtered or the call fails.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return "", fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r1, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return "", fmt.Errorf("seccomp(SET_MODE_FILTER, TSYNC): %w", errno)
	}
	if r1 != 0 {
		return "", fmt.Errorf("seccomp: thread %d could not be synchronized", r1)
	}

	counts := map[ruleKind]int{}
	for _, r := range rules {
		counts[r.kind]++
	}
	if mode == SeccompDenylist {
		return fmt.Sprintf("denylist, all threads (TSYNC), %d denied, %d conditional, everything else allowed; foreign arch and x32 killed",
			counts[ruleDeny], counts[ruleAllowIf]), nil
	}
	return fmt.Sprintf("allowlist, all threads (TSYNC), %d allowed, %d conditional, %d denied with an errno, anything else kills the process; foreign arch and x32 killed",
		counts[ruleAllow], counts[ruleAllowIf], counts[ruleDeny]), nil
}
