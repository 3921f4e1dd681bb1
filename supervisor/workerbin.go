package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// workerSHA256 is the sha256 (hex) of the aileron-worker binary built with
// this aileron binary, set by the Makefile with -ldflags -X. Empty in
// development builds (go run, go test), which then verify nothing unless
// config.toml pins a hash.
var workerSHA256 string

// ErrWorkerBinary is returned when the worker binary is not the one this
// supervisor was built (or configured) to run.
var ErrWorkerBinary = errors.New("worker binary does not match the expected sha256")

// workerBinary is the verified worker executable. go-plugin's SecureConfig
// cannot be used with our RunnerFunc (it checks the empty path of go-plugin's
// placeholder command), so the supervisor checks the binary itself: it opens
// it, verifies the open file, and executes that same open file through
// /proc/self/fd, so the bytes checked are the bytes run.
type workerBinary struct {
	f *os.File
	// execPath is what exec.Cmd runs: /proc/self/fd/N of f, or the plain
	// path when nothing is verified.
	execPath string
}

// verifiedWorker is what is remembered about a verified binary, so the
// 40 MB are hashed once per build rather than once per run.
type verifiedWorker struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Size   int64  `json:"size"`
	MtimeN int64  `json:"mtime_ns"`
	CtimeN int64  `json:"ctime_ns"`
	SHA256 string `json:"sha256"`
}

// openWorkerBinary opens path and, when expected is set, checks that its
// content has that sha256. memoPath remembers a verified file by inode,
// size and times (which any write changes) to skip re-hashing.
func openWorkerBinary(path, expected, memoPath string) (*workerBinary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("worker binary: %w", err)
	}
	if expected == "" {
		return &workerBinary{f: f, execPath: path}, nil
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		f.Close()
		return nil, errors.New("worker binary: no stat information")
	}
	cur := verifiedWorker{Path: path, Dev: uint64(sys.Dev), Ino: sys.Ino, Size: st.Size(),
		MtimeN: sys.Mtim.Sec*1e9 + sys.Mtim.Nsec, CtimeN: sys.Ctim.Sec*1e9 + sys.Ctim.Nsec, SHA256: expected}
	var memo verifiedWorker
	if b, err := os.ReadFile(memoPath); err == nil && json.Unmarshal(b, &memo) == nil && memo == cur {
		return execThrough(f)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("worker binary: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != expected {
		f.Close()
		return nil, fmt.Errorf("%w: %s is sha256:%s, this aileron expects sha256:%s (rebuild both with `make build`, or pin another build with isolation.worker_sha256)", ErrWorkerBinary, path, got, expected)
	}
	if b, err := json.Marshal(cur); err == nil {
		_ = os.MkdirAll(filepath.Dir(memoPath), 0o700)
		_ = os.WriteFile(memoPath, b, 0o600)
	}
	return execThrough(f)
}

// execThrough returns f as a /proc/self/fd path for exec. The descriptor
// is moved above the range exec.Cmd rearranges for a child (stdio and
// ExtraFiles), stays close-on-exec (a worker does not inherit a handle on
// its own binary; execve resolves the path before it closes such
// descriptors), and is what the child executes: the file verified above.
func execThrough(f *os.File) (*workerBinary, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 100)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("worker binary: %w", err)
	}
	hi := os.NewFile(uintptr(fd), "aileron-worker")
	return &workerBinary{f: hi, execPath: fmt.Sprintf("/proc/self/fd/%d", fd)}, nil
}

func (w *workerBinary) close() {
	if w != nil && w.f != nil {
		w.f.Close()
	}
}
