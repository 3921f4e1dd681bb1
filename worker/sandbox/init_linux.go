//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// rlimitTable lists the limits Init sets, soft and hard (a lowered hard limit
// cannot be raised again without CAP_SYS_RESOURCE in the initial user
// namespace). RLIMIT_AS is deliberately absent: wasmtime reserves ~4 GiB of
// address space per linear memory and the Go runtime dies ("fatal error:
// runtime: out of memory", no error returned) under any useful RLIMIT_AS;
// memory is bounded by the cgroup and wasmtime's store limiter instead.
// RLIMIT_NPROC is absent too: it counts every thread of the host uid, which
// all workers share; seccomp already forbids fork and the cgroup has pids.max.
var rlimitTable = []struct {
	name     string
	resource int
	value    func(InitConfig) uint64
}{
	{"core", unix.RLIMIT_CORE, func(InitConfig) uint64 { return 0 }}, // Security: a core file would hold guest data and host memory
	{"nofile", unix.RLIMIT_NOFILE, func(c InitConfig) uint64 { return orDefault(c.MaxOpenFiles, 64) }},
	{"fsize", unix.RLIMIT_FSIZE, func(c InitConfig) uint64 { return orDefault(c.MaxFileSize, 1<<20) }},
	{"memlock", unix.RLIMIT_MEMLOCK, func(InitConfig) uint64 { return 0 }},   // nothing in the worker locks memory
	{"msgqueue", unix.RLIMIT_MSGQUEUE, func(InitConfig) uint64 { return 0 }}, // no POSIX message queues
}

func orDefault(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

// Init hardens the worker process before it serves anything. Call it first
// thing in the worker's main, before plugin.Serve; it is irreversible. It:
//
//   - when the worker is PID 1 of its own user and PID namespaces, makes all
//     mounts private and mounts a fresh /proc (go-landlock's thread walk
//     needs a /proc of this PID namespace, and the host's processes vanish
//     from view);
//   - sets the rlimits in rlimitTable;
//   - clears the dumpable flag (no ptrace, no /proc/<pid>/mem, no core);
//   - sets no_new_privs on every thread;
//   - drops every capability (bounding, ambient, permitted, effective,
//     inheritable) on every thread. Inside its user namespace the worker is
//     root with a full set; nothing after Init needs one.
//
// It then reads back every thread's state from /proc. The steps do not
// depend on each other: a failed one does not stop the others, and the
// error joins every failure, each a [*LayerError] naming its layer where
// it has one. [Lockdown]'s report then shows per layer what took.
func Init(c InitConfig) error {
	var errs []error
	fail := func(layer string, err error) {
		errs = append(errs, &LayerError{Layer: layer, Err: err})
	}
	if err := remountProc(); err != nil {
		errs = append(errs, err)
	}
	for _, r := range rlimitTable {
		v := r.value(c)
		var cur unix.Rlimit
		if err := unix.Getrlimit(r.resource, &cur); err != nil {
			fail(LayerRlimits, fmt.Errorf("getrlimit %s: %w", r.name, err))
			continue
		}
		v = min(v, cur.Max) // never try to raise a hard limit
		if err := unix.Setrlimit(r.resource, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			fail(LayerRlimits, fmt.Errorf("setrlimit %s=%d: %w", r.name, v, err))
		}
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fail(LayerNotDumpable, fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err))
	}
	// With PreInitDone the threads inherited no_new_privs and an empty
	// capability state from the single-threaded constructor; checkThreads
	// below verifies that on every thread either way.
	haveSetpcap := c.PreInitDone && inChildUserNS() // root in its own user namespace: the bounding set was dropped
	if !c.PreInitDone {
		if err := allThreadsPrctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
			fail(LayerNoNewPrivs, err)
		}
		var err error
		if haveSetpcap, err = dropCapabilities(); err != nil {
			fail(LayerCapabilities, err)
		}
	}
	if err := checkThreads(func(s threadStatus) error {
		var errs []error
		if s["NoNewPrivs"] != "1" {
			errs = append(errs, &LayerError{Layer: LayerNoNewPrivs, Err: fmt.Errorf("NoNewPrivs %q", s["NoNewPrivs"])})
		}
		switch {
		case strings.Trim(s["CapEff"]+s["CapPrm"]+s["CapInh"]+s["CapAmb"], "0") != "":
			errs = append(errs, &LayerError{Layer: LayerCapabilities, Err: fmt.Errorf("capabilities left: CapEff %s CapPrm %s CapInh %s CapAmb %s", s["CapEff"], s["CapPrm"], s["CapInh"], s["CapAmb"])})
		case haveSetpcap && strings.Trim(s["CapBnd"], "0") != "":
			// Without CAP_SETPCAP (a worker setuid'd to the host uid
			// without a user namespace) the bounding set cannot be
			// dropped; with nothing permitted, no_new_privs and no exec
			// it grants nothing.
			errs = append(errs, &LayerError{Layer: LayerCapabilities, Err: fmt.Errorf("bounding set left: %s", s["CapBnd"])})
		}
		return errors.Join(errs...)
	}); err != nil {
		// A check that could not run proves nothing about any thread.
		var le *LayerError
		if !errors.As(err, &le) {
			err = &LayerError{Layer: LayerCapabilities, Err: err}
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox init: %w", errors.Join(errs...))
	}
	return nil
}

// remountProc mounts a fresh /proc when this process is PID 1 of a PID
// namespace inside a user namespace the supervisor made (SpawnConfig with
// Namespaces creates the mount namespace with them). Outside a user
// namespace, PID 1 is a real init or a container's, whose mounts are not ours
// to touch.
//
// It does nothing when /proc already is this namespace's: the worker's
// constructor (package preinit) mounted it, and has dropped the
// capabilities a second mount would need.
func remountProc() error {
	if os.Getpid() != 1 || !inChildUserNS() || procIsOurs() {
		return nil
	}
	// Security: private first, so nothing we mount propagates anywhere.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	// subset=pid (Linux 5.8) leaves out /proc/sys, /proc/kcore and the other
	// system-wide files; only the worker's own pid directories remain.
	if err := unix.Mount("proc", "/proc", "proc", flags, "subset=pid"); err != nil {
		if err := unix.Mount("proc", "/proc", "proc", flags, ""); err != nil {
			return fmt.Errorf("mount proc: %w", err)
		}
	}
	return nil
}

// inChildUserNS reports whether the process is in a user namespace other
// than the initial one, whose uid_map is the identity over all ids.
func inChildUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// procIsOurs reports whether /proc belongs to this process's PID namespace.
func procIsOurs() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// allThreadsPrctl runs prctl on every thread of the process (libpsx).
func allThreadsPrctl(option, arg2, arg3 uintptr) error {
	if !procIsOurs() {
		return ErrForeignProc // libpsx would walk the wrong /proc/<pid>/task
	}
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, option, arg2, arg3, 0, 0, 0); e != 0 {
		return fmt.Errorf("prctl(%d): %w", option, e)
	}
	return nil
}

// dropCapabilities empties every capability set of every thread.
// Capabilities are per thread, hence libpsx.
// It reports whether the bounding set could be dropped too (that needs
// CAP_SETPCAP).
func dropCapabilities() (haveSetpcap bool, err error) {
	if !procIsOurs() {
		return false, ErrForeignProc // libpsx would walk the wrong /proc/<pid>/task forever
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Errorf("capget: %w", err)
	}
	haveSetpcap = data[0].Effective&(1<<unix.CAP_SETPCAP) != 0
	if err := allThreadsPrctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil {
		return false, err
	}
	if haveSetpcap {
		// Drop upwards until the kernel says the capability does not exist;
		// /proc/sys/kernel/cap_last_cap is gone under proc's subset=pid.
		for cp := uintptr(0); cp < 64; cp++ {
			err := allThreadsPrctl(unix.PR_CAPBSET_DROP, cp, 0)
			if errors.Is(err, unix.EINVAL) {
				break
			}
			if err != nil {
				return false, err
			}
		}
	}
	hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data = [2]unix.CapUserData{}
	if _, _, e := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return false, fmt.Errorf("capset: %w", e)
	}
	return haveSetpcap, nil
}

// threadStatus is /proc/<pid>/task/<tid>/status as key -> value.
type threadStatus map[string]string

// checkThreads calls check with the status of every thread and returns the
// first error, naming the thread. A thread that ended meanwhile is skipped;
// not being able to read the calling thread's status is an error, so the
// check cannot pass having checked nothing.
func checkThreads(check func(threadStatus) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The caller's tid as this /proc numbers it ("<pid>/task/<tid>"),
	// which is not gettid()'s where /proc is another PID namespace's.
	link, err := os.Readlink("/proc/thread-self")
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	self, err := strconv.Atoi(link[strings.LastIndexByte(link, '/')+1:])
	if err != nil {
		return fmt.Errorf("list threads: /proc/thread-self is %q", link)
	}
	tids, err := Threads(0)
	if err != nil || len(tids) == 0 {
		return fmt.Errorf("list threads: %v", err)
	}
	sawSelf := false
	for _, tid := range tids {
		b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/status")
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			continue // the thread exited
		}
		if err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		sawSelf = sawSelf || tid == self
		s := threadStatus{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			s[k] = strings.TrimSpace(v)
		}
		if err := check(s); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	if !sawSelf {
		return fmt.Errorf("list threads: thread %d, the caller, is not among %v", self, tids)
	}
	return nil
}
