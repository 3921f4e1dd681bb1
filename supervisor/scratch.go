package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// scratchBases are where a supervisor's scratch root may go, best first:
// TMPDIR when the operator set it, else a memory file system (a user's
// runtime directory, then /dev/shm), else the system's temporary directory.
//
// Memory is preferred because scratch holds each invocation's input and
// result: on tmpfs they never reach a disk, and making and removing a run's
// directories and files costs a fraction of what it costs on ext4 (~0.5 ms
// of CPU per run, docs/PERFORMANCE.md). The files are charged to the memory
// cgroup of the worker that writes them, and RLIMIT_FSIZE caps each.
func scratchBases() []string {
	if os.Getenv("TMPDIR") != "" {
		return []string{os.TempDir()}
	}
	var bases []string
	for _, dir := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if dir != "" && isTmpfs(dir) {
			bases = append(bases, dir)
		}
	}
	return append(bases, os.TempDir())
}

func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// scratchPrefix names a supervisor's scratch root "aileron-<pid>-<random>",
// so that one left by a supervisor that died can be told and removed.
const scratchPrefix = "aileron-"

// newScratchRoot makes this supervisor's scratch root in the first base
// that takes it, 0711: workers run as another uid in their user namespace
// and may traverse it (not list it) to reach their own 0700 directory. It
// removes roots that supervisors which no longer run left in that base.
func newScratchRoot() (string, error) {
	var errs []string
	for _, base := range scratchBases() {
		dir, err := os.MkdirTemp(base, scratchPrefix+strconv.Itoa(os.Getpid())+"-*")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("scratch dir: %w", err)
		}
		removeStaleScratch(base)
		return dir, nil
	}
	return "", fmt.Errorf("scratch dir: %s", strings.Join(errs, "; "))
}

// removeStaleScratch removes the scratch roots in base that this uid's
// supervisors left when they died (killed, crashed): on tmpfs they would
// hold memory until the next boot. A root is stale when its owner is this
// uid and its pid runs no longer; anything else (another user's, a
// symlink, a name of another shape, a live or reused pid) is left alone.
func removeStaleScratch(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), scratchPrefix)
		pid, _, ok2 := strings.Cut(rest, "-")
		if !ok || !ok2 || !e.IsDir() || !deadPID(pid) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		_ = os.RemoveAll(filepath.Join(base, e.Name()))
	}
}

// deadPID reports whether text is another process's pid that runs no
// longer. A pid reused since errs towards "alive": what it named is left.
func deadPID(text string) bool {
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 0 || pid == os.Getpid() || strconv.Itoa(pid) != text {
		return false
	}
	_, err = os.Stat("/proc/" + text)
	return err != nil
}
