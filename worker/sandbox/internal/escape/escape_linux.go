//go:build linux

package escape

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// result turns an error into a Result. A non-errno error is reported with
// Errno 0 only when err is nil.
func result(name string, err error) Result {
	if err == nil {
		return Result{Name: name, Detail: "no error"}
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = unix.EIO // an error without an errno still means "did not work"
	}
	return Result{Name: name, Errno: errno, Detail: err.Error()}
}

func rawResult(name string, r1 uintptr, e syscall.Errno) Result {
	if e != 0 {
		return Result{Name: name, Errno: e, Detail: e.Error()}
	}
	return Result{Name: name, Detail: fmt.Sprintf("returned %d", int(r1))}
}

func addr(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// Run runs every attack that does not kill the process when denied, in a
// fixed order, and returns one Result each. Int80Socket is separate because
// a correct filter kills the process.
func Run(t Targets) []Result {
	var out []Result
	add := func(r Result) { out = append(out, r) }

	for _, s := range []struct {
		name           string
		domain, typ, p int
	}{
		{"socket(AF_INET, SOCK_STREAM)", unix.AF_INET, unix.SOCK_STREAM, 0},
		{"socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)", unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP},
		{"socket(AF_INET, SOCK_DGRAM)", unix.AF_INET, unix.SOCK_DGRAM, 0},
		{"socket(AF_INET6, SOCK_STREAM)", unix.AF_INET6, unix.SOCK_STREAM, 0},
		{"socket(AF_UNIX, SOCK_STREAM)", unix.AF_UNIX, unix.SOCK_STREAM, 0},
		{"socket(AF_NETLINK, SOCK_RAW)", unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE},
		{"socket(AF_PACKET, SOCK_RAW)", unix.AF_PACKET, unix.SOCK_RAW, 0},
	} {
		fd, err := unix.Socket(s.domain, s.typ|unix.SOCK_CLOEXEC, s.p)
		if err == nil {
			unix.Close(fd)
		}
		add(result(s.name, err))
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
	}
	add(result("socketpair(AF_UNIX)", err))

	if t.TCPAddr != "" {
		c, err := net.DialTimeout("tcp", t.TCPAddr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		add(result("connect tcp "+t.TCPAddr, err))
	}

	for _, p := range t.ReadPaths {
		f, err := os.Open(p)
		if err == nil {
			f.Close()
		}
		add(result("open "+p, err))
	}
	if t.WritePath != "" {
		f, err := os.OpenFile(t.WritePath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err == nil {
			f.Write([]byte("escaped"))
			f.Close()
		}
		add(result("create "+t.WritePath, err))
	}

	// If exec worked, the process would become /bin/sh and exit 97: the
	// caller then sees no results at all.
	if !t.SkipExec {
		add(result("execve /bin/sh", unix.Exec("/bin/sh", []string{"sh", "-c", "exit 97"}, nil)))
		atFDCWD := unix.AT_FDCWD
		sh, _ := unix.BytePtrFromString("/bin/sh")
		argv := []*byte{sh, nil}
		r1, _, e := unix.RawSyscall6(unix.SYS_EXECVEAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(sh)),
			uintptr(unsafe.Pointer(&argv[0])), 0, 0, 0)
		add(rawResult("execveat /bin/sh", r1, e))
	}

	add(forkAttack())
	add(clone3Attack())

	if t.SupervisorPID > 0 {
		pid := t.SupervisorPID
		err := unix.PtraceAttach(pid)
		if err == nil {
			unix.PtraceDetach(pid)
		}
		add(result(fmt.Sprintf("ptrace(PTRACE_ATTACH, %d)", pid), err))

		buf := make([]byte, 16)
		local := []unix.Iovec{{Base: &buf[0], Len: 16}}
		remote := []unix.RemoteIovec{{Base: 0x400000, Len: 16}}
		_, err = unix.ProcessVMReadv(pid, local, remote, 0)
		add(result(fmt.Sprintf("process_vm_readv(%d)", pid), err))

		f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
		if err == nil {
			f.Close()
		}
		add(result(fmt.Sprintf("open /proc/%d/mem", pid), err))

		// Signal 0 only checks permission; it harms nothing if it works.
		add(result(fmt.Sprintf("kill(%d, 0)", pid), unix.Kill(pid, 0)))
		add(result("kill(-1, 0)", unix.Kill(-1, 0)))
	}

	target := t.MountTarget
	if target == "" && t.WritePath != "" {
		target = filepath.Dir(t.WritePath)
	}
	if target != "" {
		err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=64k")
		if err == nil {
			unix.Unmount(target, unix.MNT_DETACH)
		}
		add(result("mount tmpfs on "+target, err))
	}
	add(unshareAttack("unshare(CLONE_NEWUSER)", unix.CLONE_NEWUSER))
	add(unshareAttack("unshare(CLONE_NEWNET)", unix.CLONE_NEWNET))

	var bpfAttr [128]byte
	r1, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&bpfAttr)), uintptr(len(bpfAttr)))
	if e == 0 {
		unix.Close(int(r1))
	}
	add(rawResult("bpf(BPF_PROG_LOAD)", r1, e))
	r1, _, e = unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&[120]byte{})), 0)
	if e == 0 {
		unix.Close(int(r1))
	}
	add(rawResult("io_uring_setup", r1, e))
	r1, _, e = unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if e == 0 {
		unix.Close(int(r1))
	}
	add(rawResult("userfaultfd", r1, e))
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK}
	attr.Size = uint32(unsafe.Sizeof(attr))
	pfd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(pfd)
	}
	add(result("perf_event_open", err))
	_, err = unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	add(result("keyctl(GET_KEYRING_ID)", err))
	add(result("prctl(PR_SET_DUMPABLE, 1)", unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)))
	c := byte('x')
	_, _, e = unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
	add(rawResult("ioctl(0, TIOCSTI)", 0, e))
	add(result("setuid(0)", unix.Setuid(0)))
	add(result("personality(READ_IMPLIES_EXEC)", func() error {
		_, _, e := unix.Syscall(unix.SYS_PERSONALITY, 0x0400000, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}()))
	return out
}

// forkAttack tries clone(SIGCHLD): a second process. If it works, the child
// exits at once.
func forkAttack() Result {
	r1, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e == 0 && r1 == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0) // the child
	}
	if e == 0 {
		var ws unix.WaitStatus
		unix.Wait4(int(r1), &ws, 0, nil)
	}
	return rawResult("fork (clone without CLONE_THREAD)", r1, e)
}

// clone3Attack calls clone3 with an argument block the kernel would reject
// (EINVAL): a filter must answer ENOSYS before the kernel looks at it.
func clone3Attack() Result {
	var args [88]byte // struct clone_args, flags 0, exit_signal 0 ... plus a bad size
	r1, _, e := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), 1, 0)
	return rawResult("clone3", r1, e)
}

// unshareAttack runs unshare on a dedicated, never reused OS thread.
func unshareAttack(name string, flags int) Result {
	ch := make(chan Result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ch <- result(name, unix.Unshare(flags))
	}()
	return <-ch
}
