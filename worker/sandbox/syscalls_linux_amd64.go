//go:build linux && amd64

package sandbox

import "golang.org/x/sys/unix"

// seccompArch is the only audit architecture the filter lets through; any
// other (i386 via int 0x80 included) kills the process.
const seccompArch = unix.AUDIT_ARCH_X86_64

// cloneNewMask is every namespace flag clone(2) accepts.
const cloneNewMask = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// ioctl requests x/sys/unix does not name on linux/amd64 (asm-generic/ioctls.h).
const (
	ioctlFIONBIO  = 0x5421
	ioctlFIONCLEX = 0x5450
	ioctlFIOCLEX  = 0x5451
)

// seccompPolicy is the worker's syscall policy: one entry per syscall (the
// filter searches them by number). self is the worker's own pid, the only
// process it may signal.
//
// The allowed entries are the syscalls observed (strace -f) while a locked
// down worker served go-plugin RPCs and ran wasmtime (compile, instantiate,
// memory.grow, traps, WASI guests), see
// shared/notes/seccomp-syscalls-observed.txt; entries beyond that list say
// why. The denied entries exist so that the attacks the tests probe fail
// with a clear EPERM instead of a kill, and so that the denylist fallback
// has something to deny.
func seccompPolicy(self uint32) []syscallRule {
	return []syscallRule{
		// --- hot paths: scheduling, I/O on fds the worker already holds
		allow("futex", unix.SYS_FUTEX),
		allow("read", unix.SYS_READ),
		allow("write", unix.SYS_WRITE),
		allow("epoll_pwait", unix.SYS_EPOLL_PWAIT), // Go netpoller
		allow("nanosleep", unix.SYS_NANOSLEEP),
		allow("sched_yield", unix.SYS_SCHED_YIELD),
		allow("mmap", unix.SYS_MMAP),         // Go heap, wasmtime linear memories and code
		allow("mprotect", unix.SYS_MPROTECT), // wasmtime makes compiled code executable; guard pages
		allow("munmap", unix.SYS_MUNMAP),
		allow("madvise", unix.SYS_MADVISE),
		allow("rt_sigreturn", unix.SYS_RT_SIGRETURN), // wasmtime traps are signals
		allow("rt_sigprocmask", unix.SYS_RT_SIGPROCMASK),
		allow("sigaltstack", unix.SYS_SIGALTSTACK),
		allow("rt_sigaction", unix.SYS_RT_SIGACTION),
		allow("getpid", unix.SYS_GETPID),
		allow("gettid", unix.SYS_GETTID),
		allow("clock_gettime", unix.SYS_CLOCK_GETTIME),
		allow("clock_nanosleep", unix.SYS_CLOCK_NANOSLEEP),
		allow("gettimeofday", unix.SYS_GETTIMEOFDAY),
		allow("getrandom", unix.SYS_GETRANDOM),
		allow("epoll_wait", unix.SYS_EPOLL_WAIT),
		allow("epoll_ctl", unix.SYS_EPOLL_CTL),
		allow("epoll_create1", unix.SYS_EPOLL_CREATE1),
		allow("eventfd2", unix.SYS_EVENTFD2), // Go netpoller wakeups
		allow("readv", unix.SYS_READV),
		allow("writev", unix.SYS_WRITEV),
		allow("pread64", unix.SYS_PREAD64),
		allow("pwrite64", unix.SYS_PWRITE64),
		allow("close", unix.SYS_CLOSE),
		allow("lseek", unix.SYS_LSEEK),
		allow("dup", unix.SYS_DUP),
		allow("dup3", unix.SYS_DUP3),
		allow("pipe2", unix.SYS_PIPE2),

		// --- sockets that exist before lockdown: the go-plugin listener and
		// its connections, and the broker fd
		allow("accept4", unix.SYS_ACCEPT4), // the supervisor (and go-plugin's broker) dial the worker's listener
		allow("recvmsg", unix.SYS_RECVMSG),
		allow("sendmsg", unix.SYS_SENDMSG),
		allow("recvfrom", unix.SYS_RECVFROM),
		allow("sendto", unix.SYS_SENDTO),
		allow("shutdown", unix.SYS_SHUTDOWN),
		allow("getsockopt", unix.SYS_GETSOCKOPT),
		allow("setsockopt", unix.SYS_SETSOCKOPT),
		allow("getsockname", unix.SYS_GETSOCKNAME),
		allow("getpeername", unix.SYS_GETPEERNAME),
		deny("socket", unix.SYS_SOCKET, unix.EPERM),         // Security: any new socket, AF_INET/AF_NETLINK/AF_PACKET/AF_UNIX alike (Landlock ABI<10 misses UDP, MPTCP, raw)
		deny("socketpair", unix.SYS_SOCKETPAIR, unix.EPERM), // Security: not needed; keeps "no new sockets" absolute
		deny("connect", unix.SYS_CONNECT, unix.EPERM),       // Security: no socket the worker holds may be pointed somewhere new
		deny("bind", unix.SYS_BIND, unix.EPERM),
		deny("listen", unix.SYS_LISTEN, unix.EPERM),

		// --- files: Landlock decides which paths; these only operate on them
		allow("openat", unix.SYS_OPENAT),
		allow("fstat", unix.SYS_FSTAT),
		allow("newfstatat", unix.SYS_NEWFSTATAT),
		allow("statx", unix.SYS_STATX),
		allow("getdents64", unix.SYS_GETDENTS64),
		allow("readlinkat", unix.SYS_READLINKAT),
		allow("unlinkat", unix.SYS_UNLINKAT), // go-plugin removes its socket file on exit; Landlock refuses, seccomp must not kill
		allow("getcwd", unix.SYS_GETCWD),
		allow("ftruncate", unix.SYS_FTRUNCATE), // sizes wasmtime's memfd images
		allow("fsync", unix.SYS_FSYNC),
		allowIf("fcntl", unix.SYS_FCNTL, unix.EPERM, // Security: F_SETOWN/F_SETSIG would aim SIGIO at another process; leases, notify
			oneOf(1, unix.F_DUPFD, unix.F_GETFD, unix.F_SETFD, unix.F_GETFL, unix.F_SETFL,
				unix.F_DUPFD_CLOEXEC, unix.F_ADD_SEALS, unix.F_GET_SEALS)...),
		allowIf("ioctl", unix.SYS_IOCTL, unix.EPERM, // Security: TIOCSTI terminal injection and every device driver's ioctl surface
			oneOf(1, unix.TCGETS, unix.TIOCGWINSZ, unix.TIOCINQ, ioctlFIONBIO, ioctlFIOCLEX, ioctlFIONCLEX)...),

		// --- memory
		allow("brk", unix.SYS_BRK),
		allow("mremap", unix.SYS_MREMAP),
		allow("memfd_create", unix.SYS_MEMFD_CREATE), // wasmtime copy-on-write memory images; execveat is denied, so no fileless exec
		allow("membarrier", unix.SYS_MEMBARRIER),

		// --- threads and process state
		allowIf("clone", unix.SYS_CLONE, unix.EPERM, // Security: fork (a second process) and new namespaces; only threads
			all(argMasked(0, unix.CLONE_THREAD|cloneNewMask, unix.CLONE_THREAD))),
		deny("clone3", unix.SYS_CLONE3, unix.ENOSYS), // Security: flags live in memory BPF cannot read; ENOSYS makes glibc fall back to clone
		allow("exit", unix.SYS_EXIT),
		allow("exit_group", unix.SYS_EXIT_GROUP),
		allow("set_robust_list", unix.SYS_SET_ROBUST_LIST),
		allow("rseq", unix.SYS_RSEQ),
		allow("set_tid_address", unix.SYS_SET_TID_ADDRESS),
		allow("arch_prctl", unix.SYS_ARCH_PRCTL), // TLS of new threads; per-thread CPU state only
		allow("sched_getaffinity", unix.SYS_SCHED_GETAFFINITY),
		allow("restart_syscall", unix.SYS_RESTART_SYSCALL),
		allow("uname", unix.SYS_UNAME),
		allow("getppid", unix.SYS_GETPPID),
		allow("getuid", unix.SYS_GETUID),
		allow("geteuid", unix.SYS_GETEUID),
		allow("getgid", unix.SYS_GETGID),
		allow("getegid", unix.SYS_GETEGID),
		allow("getrlimit", unix.SYS_GETRLIMIT),
		allowIf("prlimit64", unix.SYS_PRLIMIT64, unix.EPERM, // Security: read own limits only; no raising, no other process
			all(argEq(0, 0), argNull(2)), all(argEq(0, self), argNull(2))),
		allowIf("prctl", unix.SYS_PRCTL, unix.EPERM, // Security: PR_SET_DUMPABLE would re-enable ptrace and core dumps; PR_SET_PTRACER, PR_SET_MM ...
			oneOf(0, unix.PR_SET_NAME, unix.PR_GET_NAME, unix.PR_SET_VMA, unix.PR_GET_DUMPABLE,
				unix.PR_GET_NO_NEW_PRIVS, unix.PR_SET_NO_NEW_PRIVS, unix.PR_GET_SECCOMP,
				unix.PR_CAPBSET_READ, unix.PR_GET_TIMERSLACK, unix.PR_GET_THP_DISABLE)...),

		// --- signals: only to itself
		allowIf("tgkill", unix.SYS_TGKILL, unix.EPERM, // Security: signalling other processes; Go preempts its own threads with it
			all(argEq(0, self))),
		allowIf("kill", unix.SYS_KILL, unix.EPERM, // Security: signalling the supervisor or other workers (pid 0 and -1 too); Go's crash path raises on itself
			all(argEq(0, self))),
		deny("tkill", unix.SYS_TKILL, unix.EPERM),
		deny("rt_sigqueueinfo", unix.SYS_RT_SIGQUEUEINFO, unix.EPERM),
		deny("rt_tgsigqueueinfo", unix.SYS_RT_TGSIGQUEUEINFO, unix.EPERM),
		deny("pidfd_open", unix.SYS_PIDFD_OPEN, unix.EPERM),
		deny("pidfd_send_signal", unix.SYS_PIDFD_SEND_SIGNAL, unix.EPERM),
		deny("pidfd_getfd", unix.SYS_PIDFD_GETFD, unix.EPERM), // Security: stealing another process's fds

		// --- new programs and processes
		deny("execve", unix.SYS_EXECVE, unix.EPERM), // Security: running /bin/sh or a dropped binary
		deny("execveat", unix.SYS_EXECVEAT, unix.EPERM),
		deny("fork", unix.SYS_FORK, unix.EPERM),
		deny("vfork", unix.SYS_VFORK, unix.EPERM),

		// --- other processes' memory
		deny("ptrace", unix.SYS_PTRACE, unix.EPERM), // Security: attaching to the supervisor or another worker
		deny("process_vm_readv", unix.SYS_PROCESS_VM_READV, unix.EPERM),
		deny("process_vm_writev", unix.SYS_PROCESS_VM_WRITEV, unix.EPERM),
		deny("process_madvise", unix.SYS_PROCESS_MADVISE, unix.EPERM),
		deny("process_mrelease", unix.SYS_PROCESS_MRELEASE, unix.EPERM),
		deny("kcmp", unix.SYS_KCMP, unix.EPERM),
		deny("migrate_pages", unix.SYS_MIGRATE_PAGES, unix.EPERM),
		deny("move_pages", unix.SYS_MOVE_PAGES, unix.EPERM),

		// --- mounts and namespaces
		deny("mount", unix.SYS_MOUNT, unix.EPERM), // Security: remounting, bind-mounting host paths into view
		deny("umount2", unix.SYS_UMOUNT2, unix.EPERM),
		deny("pivot_root", unix.SYS_PIVOT_ROOT, unix.EPERM),
		deny("chroot", unix.SYS_CHROOT, unix.EPERM),
		deny("fsopen", unix.SYS_FSOPEN, unix.EPERM), // the new mount API reaches the same code as mount(2)
		deny("fsconfig", unix.SYS_FSCONFIG, unix.EPERM),
		deny("fsmount", unix.SYS_FSMOUNT, unix.EPERM),
		deny("fspick", unix.SYS_FSPICK, unix.EPERM),
		deny("open_tree", unix.SYS_OPEN_TREE, unix.EPERM),
		deny("open_tree_attr", unix.SYS_OPEN_TREE_ATTR, unix.EPERM),
		deny("move_mount", unix.SYS_MOVE_MOUNT, unix.EPERM),
		deny("mount_setattr", unix.SYS_MOUNT_SETATTR, unix.EPERM),
		deny("listmount", unix.SYS_LISTMOUNT, unix.EPERM),
		deny("statmount", unix.SYS_STATMOUNT, unix.EPERM),
		deny("unshare", unix.SYS_UNSHARE, unix.EPERM), // Security: a user namespace would hand back every capability
		deny("setns", unix.SYS_SETNS, unix.EPERM),
		deny("open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, unix.EPERM), // Security: opens files by inode, bypassing paths (the "shocker" escape)
		deny("name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT, unix.EPERM),

		// --- kernel attack surface nothing in the worker needs
		deny("bpf", unix.SYS_BPF, unix.EPERM),
		deny("perf_event_open", unix.SYS_PERF_EVENT_OPEN, unix.EPERM),
		deny("userfaultfd", unix.SYS_USERFAULTFD, unix.EPERM), // Security: stalls kernel copies to win races
		deny("io_uring_setup", unix.SYS_IO_URING_SETUP, unix.EPERM),
		deny("io_uring_enter", unix.SYS_IO_URING_ENTER, unix.EPERM),
		deny("io_uring_register", unix.SYS_IO_URING_REGISTER, unix.EPERM),
		deny("keyctl", unix.SYS_KEYCTL, unix.EPERM), // Security: the kernel keyring is shared with the host user
		deny("add_key", unix.SYS_ADD_KEY, unix.EPERM),
		deny("request_key", unix.SYS_REQUEST_KEY, unix.EPERM),
		deny("seccomp", unix.SYS_SECCOMP, unix.EPERM),
		deny("landlock_create_ruleset", unix.SYS_LANDLOCK_CREATE_RULESET, unix.EPERM),
		deny("landlock_add_rule", unix.SYS_LANDLOCK_ADD_RULE, unix.EPERM),
		deny("landlock_restrict_self", unix.SYS_LANDLOCK_RESTRICT_SELF, unix.EPERM),
		deny("personality", unix.SYS_PERSONALITY, unix.EPERM), // Security: READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE
		deny("modify_ldt", unix.SYS_MODIFY_LDT, unix.EPERM),
		deny("iopl", unix.SYS_IOPL, unix.EPERM),
		deny("ioperm", unix.SYS_IOPERM, unix.EPERM),
		deny("fanotify_init", unix.SYS_FANOTIFY_INIT, unix.EPERM),
		deny("kexec_load", unix.SYS_KEXEC_LOAD, unix.EPERM),
		deny("kexec_file_load", unix.SYS_KEXEC_FILE_LOAD, unix.EPERM),
		deny("init_module", unix.SYS_INIT_MODULE, unix.EPERM),
		deny("finit_module", unix.SYS_FINIT_MODULE, unix.EPERM),
		deny("delete_module", unix.SYS_DELETE_MODULE, unix.EPERM),
		deny("acct", unix.SYS_ACCT, unix.EPERM),
		deny("swapon", unix.SYS_SWAPON, unix.EPERM),
		deny("swapoff", unix.SYS_SWAPOFF, unix.EPERM),
		deny("reboot", unix.SYS_REBOOT, unix.EPERM),
		deny("syslog", unix.SYS_SYSLOG, unix.EPERM),
		deny("quotactl", unix.SYS_QUOTACTL, unix.EPERM),
		deny("uselib", unix.SYS_USELIB, unix.EPERM),
		deny("vhangup", unix.SYS_VHANGUP, unix.EPERM),
		deny("settimeofday", unix.SYS_SETTIMEOFDAY, unix.EPERM),
		deny("clock_settime", unix.SYS_CLOCK_SETTIME, unix.EPERM),
		deny("clock_adjtime", unix.SYS_CLOCK_ADJTIME, unix.EPERM),
		deny("adjtimex", unix.SYS_ADJTIMEX, unix.EPERM),
		deny("sethostname", unix.SYS_SETHOSTNAME, unix.EPERM),
		deny("setdomainname", unix.SYS_SETDOMAINNAME, unix.EPERM),
		deny("mknod", unix.SYS_MKNOD, unix.EPERM),
		deny("mknodat", unix.SYS_MKNODAT, unix.EPERM),

		// --- credentials
		deny("setuid", unix.SYS_SETUID, unix.EPERM),
		deny("setgid", unix.SYS_SETGID, unix.EPERM),
		deny("setreuid", unix.SYS_SETREUID, unix.EPERM),
		deny("setregid", unix.SYS_SETREGID, unix.EPERM),
		deny("setresuid", unix.SYS_SETRESUID, unix.EPERM),
		deny("setresgid", unix.SYS_SETRESGID, unix.EPERM),
		deny("setfsuid", unix.SYS_SETFSUID, unix.EPERM),
		deny("setfsgid", unix.SYS_SETFSGID, unix.EPERM),
		deny("setgroups", unix.SYS_SETGROUPS, unix.EPERM),
		deny("capset", unix.SYS_CAPSET, unix.EPERM),
	}
}
