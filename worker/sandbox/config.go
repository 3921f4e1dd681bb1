package sandbox

import (
	"errors"
	"fmt"
)

var (
	// ErrUnsupported is returned by every function that touches the kernel
	// on a GOOS (or, for seccomp, a GOARCH) this package has no
	// implementation for.
	ErrUnsupported = errors.New("sandbox: unsupported on this platform")

	// ErrNotAccessible is returned by [SpawnConfig.Apply] when the worker
	// binary, or a directory on its path, cannot be read and executed by
	// the unprivileged host uid the worker will run as, and by
	// [PrepareSocketDir] when the worker could not reach the socket dir.
	ErrNotAccessible = errors.New("not accessible to the worker's host uid")

	// ErrUnprivilegedMapping is returned by [SpawnConfig.Apply] when a
	// supervisor that is not root asks for a HostUID/HostGID other than its
	// own: the kernel only lets an unprivileged process map its own ids.
	ErrUnprivilegedMapping = errors.New("an unprivileged supervisor can only map its own uid and gid")

	// ErrForeignProc is returned by [Lockdown] when /proc belongs to another
	// PID namespace (the worker is PID 1 but [Init] did not mount a fresh
	// /proc). go-landlock's thread walk would spin forever on the wrong
	// /proc/1/task, so Lockdown refuses instead.
	ErrForeignProc = errors.New("/proc belongs to another pid namespace; call sandbox.Init first")

	// ErrLandlockUnavailable is returned by [Lockdown] under
	// [LandlockRequired] when the kernel's Landlock ABI is missing or older
	// than [MinLandlockABI].
	ErrLandlockUnavailable = errors.New("landlock unavailable")

	// ErrCgroupUnavailable is returned by [NewCgroup] when neither a cgroup
	// v2 hierarchy with the memory and pids controllers nor writable cgroup
	// v1 memory and pids hierarchies exist.
	ErrCgroupUnavailable = errors.New("no usable cgroup hierarchy with memory and pids controllers")
)

// LayerError is the failure to put one isolation layer in force.
type LayerError struct {
	// Layer is one of the Layer* names.
	Layer string
	// Err is why the layer is not in force.
	Err error
}

func (e *LayerError) Error() string { return e.Layer + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *LayerError) Unwrap() error { return e.Err }

// LayerErrors splits err into the messages of the [*LayerError]s it holds,
// by layer, and the messages of the errors that name no layer. It looks
// through errors.Join and through wrappers of a join or a LayerError (such
// as Init's "sandbox init: " prefix).
func LayerErrors(err error) (byLayer map[string][]string, other []string) {
	byLayer = map[string][]string{}
	var walk func(error)
	walk = func(err error) {
		type joined interface{ Unwrap() []error }
		switch x := err.(type) {
		case nil:
			return
		case *LayerError:
			byLayer[x.Layer] = append(byLayer[x.Layer], x.Err.Error())
			return
		case joined:
			for _, e := range x.Unwrap() {
				walk(e)
			}
			return
		}
		switch u := errors.Unwrap(err).(type) {
		case *LayerError, joined:
			walk(u)
			return
		}
		other = append(other, err.Error())
	}
	walk(err)
	return byLayer, other
}

// DefaultHostID is the host uid and gid a root supervisor maps the worker's
// root to when SpawnConfig leaves HostUID/HostGID zero: the conventional
// "nobody". A dedicated, otherwise unused id (for example from a subuid range
// reserved for aileron) is better, because every process running as nobody
// shares it; set HostUID/HostGID for that.
const DefaultHostID = 65534

// MinLandlockABI is the oldest Landlock ABI that [LandlockRequired] accepts:
// ABI 6 is the first with filesystem, TCP and IPC-scope restrictions.
const MinLandlockABI = 6

// SpawnConfig says how the supervisor starts a worker process. The zero
// value starts a worker without namespaces; a root supervisor still drops it
// to [DefaultHostID].
type SpawnConfig struct {
	// Namespaces puts the worker in new user, network, PID, IPC, UTS and
	// mount namespaces, with its root mapped to HostUID/HostGID.
	Namespaces bool

	// HostUID and HostGID are the unprivileged host ids the worker runs as
	// (its uid 0 inside the user namespace maps to them). Zero means
	// [DefaultHostID] for a root supervisor, and the supervisor's own ids
	// for an unprivileged one (the only ids it may map). Mapping to host
	// root is never done.
	HostUID, HostGID uint32

	// UnshareInChild creates the namespaces in the worker instead of at
	// clone: the supervisor starts the worker as the unprivileged host
	// uid with a plain vfork (whose cost does not grow with the
	// supervisor's size, unlike the full fork CLONE_NEWUSER forces), and
	// the worker's single-threaded C constructor (package
	// worker/sandbox/preinit) unshares the user namespace mapping itself
	// to root, then the network, IPC, UTS, mount and PID namespaces, and
	// forks once so the worker proper is PID 1 of its namespace; the
	// first process only waits for it. Apply sets the environment the
	// constructor reads ([PreinitEnv]); the binary must import preinit.
	UnshareInChild bool

	// Cgroup, if set, is the cgroup the worker is started in. With cgroup
	// v2 Apply places the worker there at birth (clone3
	// CLONE_INTO_CGROUP); with cgroup v1 the caller must call
	// [Cgroup.AddPID] right after the handshake.
	Cgroup *Cgroup
}

// CgroupLimits are the limits [NewCgroup] writes. Zero fields leave the
// corresponding limit unset (inherited from the parent group).
type CgroupLimits struct {
	// MemoryBytes caps the worker's memory (v2 memory.max and
	// memory.swap.max=0; v1 memory.limit_in_bytes and, when swap accounting
	// exists, memory.memsw.limit_in_bytes). A worker that exceeds it is
	// OOM-killed; [Cgroup.OOMKilled] then reports true.
	MemoryBytes int64

	// Pids caps the number of tasks, threads included. Go and wasmtime
	// start a dozen or so threads; keep it at 32 or more.
	Pids int64
}

// InitConfig configures [Init]. The zero value is the recommended setting.
type InitConfig struct {
	// MaxOpenFiles is RLIMIT_NOFILE. Zero means 64, which leaves room for
	// the Go runtime, go-plugin's listener and connections, the broker fd
	// and wasmtime.
	MaxOpenFiles uint64

	// MaxFileSize is RLIMIT_FSIZE in bytes. Zero means 1 MiB. Landlock
	// confines file writes to the scratch directory; this bounds each
	// file written there or handed open.
	MaxFileSize uint64

	// PreInitDone says the worker's single-threaded C constructor
	// (package worker/sandbox/preinit) already mounted /proc, set
	// no_new_privs and dropped every capability before the Go runtime
	// started its threads, which inherited that state. Init then only
	// verifies it on every thread instead of broadcasting it with libpsx.
	PreInitDone bool
}

// LandlockMode says how [Lockdown] treats Landlock. The zero value is
// [LandlockRequired].
type LandlockMode int

const (
	// LandlockRequired fails Lockdown when the kernel's Landlock ABI is
	// older than MinLandlockABI.
	LandlockRequired LandlockMode = iota
	// LandlockBestEffort enforces what the kernel supports, possibly
	// nothing, and reports what it enforced.
	LandlockBestEffort
	// LandlockOff skips Landlock. For tests and diagnosis only.
	LandlockOff
)

// String returns the mode's name as it appears in reports.
func (m LandlockMode) String() string {
	switch m {
	case LandlockRequired:
		return "required"
	case LandlockBestEffort:
		return "best effort"
	case LandlockOff:
		return "off"
	}
	return fmt.Sprintf("LandlockMode(%d)", int(m))
}

// SeccompMode says which seccomp policy [Lockdown] loads. The zero value is
// [SeccompAllowlist].
type SeccompMode int

const (
	// SeccompAllowlist allows the syscalls in the policy table, fails the
	// explicitly denied ones with EPERM (ENOSYS for clone3) and kills the
	// process on anything else.
	SeccompAllowlist SeccompMode = iota
	// SeccompDenylist allows everything except the explicitly denied
	// syscalls and the conditional rules (sockets, clone, ...). It still
	// kills on a foreign architecture or x32. A fallback for when the
	// allowlist turns out too brittle on some host; it is weaker.
	SeccompDenylist
	// SeccompOff loads no filter. For tests and diagnosis only.
	SeccompOff
)

// String returns the mode's name as it appears in reports.
func (m SeccompMode) String() string {
	switch m {
	case SeccompAllowlist:
		return "allowlist"
	case SeccompDenylist:
		return "denylist"
	case SeccompOff:
		return "off"
	}
	return fmt.Sprintf("SeccompMode(%d)", int(m))
}

// LockdownConfig configures [Lockdown]. The zero value is the strictest
// setting: Landlock required with no readable path, seccomp allowlist.
type LockdownConfig struct {
	// ReadOnlyPaths are the only files and directories the worker can
	// open after Lockdown, read-only (no execute right). Typically the
	// compiled-module cache directory. Each path must exist.
	ReadOnlyPaths []string

	// ReadWritePaths are directories the worker may still create, read,
	// write, truncate and remove regular files in after Lockdown (no
	// execute right, no directories, no listing): its private
	// scratch directory, where each invocation's stdin, stdout and stderr
	// live. Each path must exist.
	ReadWritePaths []string

	// Landlock is how Landlock is applied; see [LandlockMode].
	Landlock LandlockMode

	// Seccomp is which seccomp policy is loaded; see [SeccompMode].
	Seccomp SeccompMode
}

func (c LockdownConfig) validate() error {
	if c.Landlock < LandlockRequired || c.Landlock > LandlockOff {
		return fmt.Errorf("lockdown config: unknown %v", c.Landlock)
	}
	if c.Seccomp < SeccompAllowlist || c.Seccomp > SeccompOff {
		return fmt.Errorf("lockdown config: unknown %v", c.Seccomp)
	}
	return nil
}

// Environment variables the worker's pre-init constructor reads (package
// worker/sandbox/preinit). They can only make the process give up things.
const (
	// PreinitEnv ("1") asks the constructor to set no_new_privs and drop
	// every capability before the Go runtime starts (and, as PID 1 of a
	// child namespace, to mount a fresh /proc first).
	PreinitEnv = "AILERON_SANDBOX_PREINIT"
	// UnshareEnv ("1") asks it to create the worker's namespaces itself;
	// see SpawnConfig.UnshareInChild.
	UnshareEnv = "AILERON_SANDBOX_UNSHARE"
	// SyncFDEnv names a descriptor to read one byte from before the
	// constructor forks into the PID namespace: the supervisor writes it
	// once it has placed the process in its cgroup (cgroup v1 cannot place
	// a process at birth), so the worker proper starts inside it.
	SyncFDEnv = "AILERON_SANDBOX_SYNC_FD"
)
