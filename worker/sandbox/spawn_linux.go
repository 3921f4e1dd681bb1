//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// MarkInheritedFDsCloseOnExec sets close-on-exec on every fd above stderr.
// Call it once at supervisor start: fds the supervisor inherited, or that a
// library opened without O_CLOEXEC, would otherwise reach every worker. Only
// cmd.ExtraFiles then cross into a worker. (Closing them inside the worker
// instead breaks the Go runtime, which keeps its netpoller and cgroup files
// open.)
func MarkInheritedFDsCloseOnExec() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("close_range(3, ~0, CLOEXEC): %w", err)
	}
	// Kernels before 5.11 lack close_range or its CLOEXEC flag.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err != nil {
			return fmt.Errorf("mark fd %d close-on-exec: %w", fd, err)
		}
	}
	return nil
}

// hostIDs returns the host uid and gid the worker will run as.
func (c SpawnConfig) hostIDs() (uid, gid uint32, err error) {
	if euid := os.Geteuid(); euid != 0 {
		// The kernel lets an unprivileged process map only its own ids.
		uid, gid = uint32(euid), uint32(os.Getegid())
		if (c.HostUID != 0 && c.HostUID != uid) || (c.HostGID != 0 && c.HostGID != gid) {
			return 0, 0, fmt.Errorf("host ids %d:%d, running as %d:%d: %w", c.HostUID, c.HostGID, uid, gid, ErrUnprivilegedMapping)
		}
		return uid, gid, nil
	}
	uid, gid = c.HostUID, c.HostGID
	if uid == 0 {
		uid = DefaultHostID // Security: never map the worker's root to host root
	}
	if gid == 0 {
		gid = DefaultHostID
	}
	return uid, gid, nil
}

// Apply sets cmd.SysProcAttr (replacing any earlier value) so that the worker
// starts as an unprivileged host uid and, with Namespaces, in new user,
// network, PID, IPC, UTS and mount namespaces. cmd.Path must already be
// final: Apply checks that the worker's uid can read and execute it.
func (c SpawnConfig) Apply(cmd *exec.Cmd) error {
	uid, gid, err := c.hostIDs()
	if err != nil {
		return fmt.Errorf("spawn config: %w", err)
	}
	privileged := os.Geteuid() == 0
	if privileged || c.Namespaces {
		if err := checkExecutableBy(cmd.Path, uid, gid); err != nil {
			return fmt.Errorf("spawn config: %w", err)
		}
	}
	attr := &syscall.SysProcAttr{
		// Security: the worker dies with the supervisor instead of living on
		// unsupervised. (Go sets it after the credential change, which would
		// otherwise clear it.)
		Pdeathsig: syscall.SIGKILL,
		// Security: a new session (and process group): no controlling
		// terminal, so no /dev/tty and no TIOCSTI injection into the user's
		// shell, and terminal job-control signals do not reach it.
		Setsid: true,
	}
	if c.Namespaces && c.UnshareInChild {
		// The worker unshares its namespaces itself (see UnshareInChild):
		// start it as the host ids, clearing supplementary groups, and
		// tell its constructor which ids to map to its root.
		attr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
		cmd.Env = append(cmd.Env, PreinitEnv+"=1", UnshareEnv+"=1")
	} else if c.Namespaces {
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID |
			syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNS
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(uid), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(gid), Size: 1}}
		// Security: without a Credential the child keeps host uid 0 (it
		// only looks like "nobody" inside) and can read /etc/shadow. With
		// it, Go setuid/setgids to inside-0, which is host uid/gid.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		// Security: a root supervisor's supplementary groups (e.g. shadow)
		// would otherwise stay with the worker: setgroups is denied in a
		// user namespace whose gid_map was written with setgroups "deny".
		// Allowing it lets Go's setgroups(0) clear them. An unprivileged
		// supervisor must deny it (the kernel says so); its groups are its
		// own user's.
		attr.GidMappingsEnableSetgroups = privileged
	} else if privileged {
		// Security: no namespaces, but still not root: setuid/setgid to the
		// host ids and clear the supplementary groups.
		attr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	}
	if c.UnshareInChild && !c.Namespaces {
		cmd.Env = append(cmd.Env, PreinitEnv+"=1")
	}
	if fd, ok := c.Cgroup.FD(); ok {
		attr.UseCgroupFD = true
		attr.CgroupFD = fd
	}
	cmd.SysProcAttr = attr
	return nil
}

// PrepareSocketDir makes dir (go-plugin's private socket directory, the
// tmpDir a RunnerFunc receives) owned by the worker's host uid with mode
// 0700, so the worker can create its unix socket there and no one else can.
// It also checks that the worker can reach dir through its parents.
func PrepareSocketDir(dir string, c SpawnConfig) error {
	uid, gid, err := c.hostIDs()
	if err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil // the worker runs as us; go-plugin made the dir ours
	}
	// Through a descriptor that did not follow a symlink: whatever
	// replaced dir since it was made, no other file changes owner or mode.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket dir: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
		return fmt.Errorf("socket dir %s: fchown: %w", dir, err)
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("socket dir %s: fchmod: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	if err := checkSearchable(filepath.Dir(abs), uid, gid); err != nil {
		return fmt.Errorf("socket dir %s: %w", dir, err)
	}
	return nil
}

// checkExecutableBy checks with mode bits that uid/gid (with no
// supplementary groups) can search every directory on path and read and
// execute the file. ACLs are not consulted.
func checkExecutableBy(path string, uid, gid uint32) error {
	if path == "" {
		return fmt.Errorf("empty worker path: %w", ErrNotAccessible)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("worker binary: %w", err)
	}
	// A binary executed through an open descriptor (/proc/self/fd/N) is
	// reached through the magic link, not through its directories: only
	// the file's own mode matters. The child may always use its own
	// /proc/self/fd.
	if !strings.HasPrefix(abs, "/proc/self/fd/") {
		for _, p := range []string{abs, real} {
			if err := checkSearchable(filepath.Dir(p), uid, gid); err != nil {
				return fmt.Errorf("worker binary %s: %w", path, err)
			}
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return fmt.Errorf("worker binary %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || !permits(&st, uid, gid, 5) {
		return fmt.Errorf("%s (mode %o, owner %d:%d) for uid %d gid %d: %w",
			real, st.Mode&0o7777, st.Uid, st.Gid, uid, gid, ErrNotAccessible)
	}
	return nil
}

// checkSearchable checks that uid/gid can search dir and all its parents,
// and names the topmost one it cannot.
func checkSearchable(dir string, uid, gid uint32) error {
	var chain []string
	for d := dir; ; d = filepath.Dir(d) {
		chain = append([]string{d}, chain...)
		if d == "/" || d == "." {
			break
		}
	}
	for _, d := range chain {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return err
		}
		if !permits(&st, uid, gid, 1) {
			return fmt.Errorf("directory %s (mode %o, owner %d:%d) is not searchable by uid %d gid %d: %w",
				d, st.Mode&0o7777, st.Uid, st.Gid, uid, gid, ErrNotAccessible)
		}
	}
	return nil
}

// permits reports whether the owner, group or other bits (whichever apply to
// uid/gid) include all of want (4 read, 2 write, 1 execute/search).
func permits(st *unix.Stat_t, uid, gid uint32, want uint32) bool {
	mode := st.Mode & 0o777
	switch {
	case uid == 0:
		return true
	case st.Uid == uid:
		return (mode>>6)&want == want
	case st.Gid == gid:
		return (mode>>3)&want == want
	default:
		return mode&want == want
	}
}
