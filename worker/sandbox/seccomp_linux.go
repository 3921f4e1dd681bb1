//go:build linux

package sandbox

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
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
	byNR := slices.SortedFunc(slices.Values(rules), func(a, b syscallRule) int { return cmp.Compare(a.nr, b.nr) })
	for i := 1; i < len(byNR); i++ {
		if byNR[i].nr == byNR[i-1].nr {
			return nil, fmt.Errorf("BUG(sandbox): syscall %d listed twice (%s, %s)", byNR[i].nr, byNR[i-1].name, byNR[i].name)
		}
	}
	leaves := make([]filterLeaf, 0, len(rules))
	for _, r := range byNR {
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
		leaves = append(leaves, filterLeaf{r.nr, block})
	}
	prog = searchTree(prog, leaves, def)
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("BUG(sandbox): seccomp program has %d instructions", len(prog))
	}
	return prog, nil
}

// filterLeaf is one syscall's block: it runs with the syscall number in
// the accumulator and always returns.
type filterLeaf struct {
	nr    uint32
	block []unix.SockFilter
}

// searchTree appends to out a search for the leaf of the syscall number in
// the accumulator, by binary search over leaves (sorted by number), falling
// back to def. Every path ends in a return.
//
// Why not a chain of comparisons: at every filter load the kernel emulates
// the filter for every syscall number, under a spinlock, to cache those it
// always allows; through a chain of ~170 rules that was ~0.2 ms of each
// worker's start, and a denied syscall walked the whole chain at every
// call. Through the tree it is ~10 comparisons.
func searchTree(out []unix.SockFilter, leaves []filterLeaf, def uint32) []unix.SockFilter {
	const (
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		ja  = unix.BPF_JMP | unix.BPF_JA
		ret = unix.BPF_RET | unix.BPF_K
	)
	if len(leaves) <= 4 {
		for _, l := range leaves {
			out = append(out, jump(jeq, l.nr, 0, uint8(len(l.block))))
			out = append(out, l.block...)
		}
		return append(out, stmt(ret, def))
	}
	mid := len(leaves) / 2
	// nr >= leaves[mid].nr: through the unconditional jump (whose 32-bit
	// offset has no 255 limit) over the left subtree; else into it.
	out = append(out, jump(jge, leaves[mid].nr, 0, 1), stmt(ja, 0))
	over := len(out) - 1
	out = searchTree(out, leaves[:mid], def)
	out[over].K = uint32(len(out) - over - 1)
	return searchTree(out, leaves[mid:], def)
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
