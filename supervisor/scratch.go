package supervisor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// scratchPrefix names scratch roots; scratchMinFree is the free space a
// memory file system needs to be chosen (a run's files reach ~8 MiB, and
// container runtimes often give /dev/shm only 64 MiB).
const (
	scratchPrefix  = "aileron-scratch-"
	scratchMinFree = 256 << 20
)

// scratchRoot is a supervisor's scratch space: the 0711 directory under
// which each worker gets a 0700 directory for its invocation streams and
// its go-plugin socket. It is held open and locked (flock) for the
// supervisor's life: the lock tells a sweeping supervisor it is in use, and
// worker directories are made through the open directory, so a root that
// was removed and replaced by someone else's is never written into.
type scratchRoot struct {
	path string
	dir  *os.File // O_DIRECTORY, LOCK_EX held
	root *os.Root
}

// scratchBase returns where the scratch root goes: TMPDIR when the operator
// set it, else /dev/shm when it is a memory file system with room, else the
// system's temporary directory. The base must be safe to make a directory
// in: owned by us and writable by no one else, or root's and sticky.
//
// Memory is preferred because scratch holds each invocation's input and
// result: there they are not written to a disk, and making and removing a
// run's directories and files costs a fraction of what it costs on ext4
// (~0.5 ms of CPU per run, docs/PERFORMANCE.md). The files are charged to
// the memory cgroup of the worker that writes them, and RLIMIT_FSIZE caps
// each.
func scratchBase() (string, error) {
	base := os.TempDir()
	if os.Getenv("TMPDIR") == "" && isTmpfs("/dev/shm", scratchMinFree) && safeBase("/dev/shm") == nil {
		base = "/dev/shm"
	}
	if err := safeBase(base); err != nil {
		return "", fmt.Errorf("scratch dir: %w (set TMPDIR to a directory of your own)", err)
	}
	return base, nil
}

// isTmpfs reports whether dir is on a memory file system with at least
// minFree bytes available.
func isTmpfs(dir string, minFree uint64) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC && st.Bavail*uint64(st.Bsize) >= minFree
}

// safeBase checks that no one but us (and root) can rename or remove what
// we make in dir: it is ours and not writable by others, or it is root's
// and sticky, like /tmp and /dev/shm.
func safeBase(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	switch {
	case !ok || !info.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case int(st.Uid) == os.Geteuid() && info.Mode().Perm()&0o022 == 0:
		if os.Geteuid() == 0 && info.Mode().Perm()&0o001 == 0 {
			// Workers run as another uid and must pass through it.
			return fmt.Errorf("%s (mode %v) cannot be searched by the workers' uid: make it 0711", dir, info.Mode())
		}
		return nil
	case st.Uid == 0 && info.Mode()&os.ModeSticky != 0:
		return nil
	}
	return fmt.Errorf("%s (mode %v, owner %d) lets others replace what is made in it", dir, info.Mode(), st.Uid)
}

// newScratchRoot makes and locks this supervisor's scratch root, after
// removing the roots that supervisors which no longer run left in the base.
func newScratchRoot() (*scratchRoot, error) {
	base, err := scratchBase()
	if err != nil {
		return nil, err
	}
	// Once per base and process: it cleans up after dead processes of
	// the whole machine, and serve makes a supervisor per tenant.
	if _, swept := sweptScratch.LoadOrStore(base, true); !swept {
		removeStaleScratch(base)
	}
	// A sweeping supervisor may remove the directory between its creation
	// and our lock: then make another.
	for range 3 {
		path, err := os.MkdirTemp(base, scratchPrefix+"*")
		if err != nil {
			return nil, fmt.Errorf("scratch dir: %w", err)
		}
		dir, err := lockDir(path, false)
		if errors.Is(err, errGone) || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			_ = os.RemoveAll(path)
			return nil, fmt.Errorf("scratch dir: %w", err)
		}
		r := &scratchRoot{path: path, dir: dir}
		if err := dir.Chmod(0o711); err != nil {
			r.Close()
			return nil, fmt.Errorf("scratch dir: %w", err)
		}
		if r.root, err = os.OpenRoot(path); err != nil || r.check() != nil {
			r.Close()
			return nil, fmt.Errorf("scratch dir %s: %v", path, errors.Join(err, r.check()))
		}
		return r, nil
	}
	return nil, fmt.Errorf("scratch dir: removed as it was made, three times, in %s", base)
}

// sweptScratch holds the bases this process swept.
var sweptScratch sync.Map

// errGone is returned by lockDir when path no longer names the directory
// that was opened.
var errGone = errors.New("directory removed or replaced")

// lockDir opens the directory path without following a symlink and takes
// its lock (LOCK_EX; with try, without waiting: unix.EWOULDBLOCK if another
// process holds it). It returns errGone if path names another directory
// once locked.
func lockDir(path string, try bool) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	dir := os.NewFile(uintptr(fd), path)
	how := unix.LOCK_EX
	if try {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(fd, how); err != nil {
		dir.Close()
		return nil, err
	}
	if !sameDir(dir, path) {
		dir.Close()
		return nil, errGone
	}
	return dir, nil
}

// sameDir reports whether path (not followed) is the directory dir has open.
func sameDir(dir *os.File, path string) bool {
	a, err1 := dir.Stat()
	b, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// check fails when the root's path no longer names the directory the
// supervisor holds (removed by a tmpfs cleaner, say, and perhaps re-made by
// someone else): nothing must be made there then.
func (r *scratchRoot) check() error {
	if !sameDir(r.dir, r.path) {
		return fmt.Errorf("scratch dir %s was removed or replaced while in use", r.path)
	}
	return nil
}

// workerDir makes a 0700 directory for one worker in the root and returns
// its path.
func (r *scratchRoot) workerDir() (string, error) { return r.mkdir("w-") }

// brokerDir makes a 0700 directory for a broker's go-plugin socket
// directory in the root and returns its path.
func (r *scratchRoot) brokerDir() (string, error) { return r.mkdir("b-") }

func (r *scratchRoot) mkdir(prefix string) (string, error) {
	if err := r.check(); err != nil {
		return "", err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	// Through the open root: if the path was replaced meanwhile, this
	// fails in the removed directory instead of writing into the new one.
	if err := r.root.Mkdir(name, 0o700); err != nil {
		return "", fmt.Errorf("scratch dir: %w", err)
	}
	return filepath.Join(r.path, name), nil
}

// Close removes the root, if it is still ours, and lets go of it.
func (r *scratchRoot) Close() error {
	var err error
	if r.check() == nil {
		err = os.RemoveAll(r.path)
	}
	if r.root != nil {
		r.root.Close()
	}
	r.dir.Close()
	return err
}

// removeStaleScratch removes the scratch roots in base that this user's
// supervisors left when they died (killed, crashed): on tmpfs they would
// hold memory until the next boot. A root is stale when no process holds
// its lock, which works across PID namespaces and whatever pids were
// reused; another user's root, a symlink or a name of another shape is
// left alone.
func removeStaleScratch(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), scratchPrefix) || !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		path := filepath.Join(base, e.Name())
		dir, err := lockDir(path, true)
		if err != nil {
			continue // in use, gone, or not ours to open
		}
		_ = os.RemoveAll(path)
		dir.Close()
	}
}
