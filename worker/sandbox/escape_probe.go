//go:build aileron_escapetest

package sandbox

import "aileron.dev/aileron/worker/sandbox/internal/escape"

// This file exists only in builds with the aileron_escapetest tag: the
// integration tests build such a worker to attack the sandbox from inside.
// Production builds do not contain the attacks.

// ProbeTargets are what [EscapeProbes] aims at; see the field docs.
type ProbeTargets = escape.Targets

// ProbeResult is the outcome of one attack; Errno 0 means it worked.
type ProbeResult = escape.Result

// EscapeProbes runs, inside a locked-down worker, every attack that does
// not kill the process when denied: sockets of every family (directly and by
// dialing t.TCPAddr), opening t.ReadPaths, creating t.WritePath, execve,
// execveat, fork, clone3, ptrace / process_vm_readv / /proc/<pid>/mem / kill
// of t.SupervisorPID, mount, unshare, bpf, io_uring, userfaultfd,
// perf_event_open, keyctl, prctl(PR_SET_DUMPABLE), TIOCSTI, setuid and
// personality. Each result carries the errno the attack got.
func EscapeProbes(t ProbeTargets) []ProbeResult { return escape.Run(t) }

// EscapeProbeInt80Socket tries socket(AF_INET) through the i386 `int $0x80`
// socketcall entry. Under the worker's seccomp filter the process dies with
// SIGSYS and this never returns: call it last, after reporting the other
// results, and look for the signal in the wait status.
func EscapeProbeInt80Socket() ProbeResult { return escape.Int80Socket() }
