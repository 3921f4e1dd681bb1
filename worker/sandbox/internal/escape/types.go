package escape

import (
	"fmt"
	"syscall"
)

// Targets are what the attacks aim at.
type Targets struct {
	// TCPAddr is a loopback "host:port" the test listens on; the connect
	// attack dials it. The listener must see no connection.
	TCPAddr string
	// ReadPaths are files that must not be readable, e.g. /etc/passwd,
	// /etc/shadow and a vault file.
	ReadPaths []string
	// WritePath is a file, in a directory that looks writable (0777), that
	// must not be creatable.
	WritePath string
	// MountTarget is an existing directory the mount attack mounts a tmpfs
	// on. Empty means the directory of WritePath.
	MountTarget string
	// SupervisorPID is the supervisor's pid as the host sees it; the
	// ptrace, process_vm_readv, /proc/<pid>/mem and kill attacks aim at it.
	SupervisorPID int
	// SkipExec leaves out the execve and execveat attacks, which replace
	// the process when they succeed; for control runs without a sandbox.
	SkipExec bool
}

// Result is the outcome of one attack.
type Result struct {
	// Name says what was tried, e.g. "socket(AF_INET)" or "open /etc/shadow".
	Name string
	// Errno is the error the attack got; 0 means it succeeded.
	Errno syscall.Errno
	// Detail is the full error text, or what the attack achieved.
	Detail string
	// Skipped is true when the attack could not be tried at all.
	Skipped bool
}

// String formats the result as one line.
func (r Result) String() string {
	if r.Skipped {
		return fmt.Sprintf("%s: skipped: %s", r.Name, r.Detail)
	}
	if r.Errno == 0 {
		return fmt.Sprintf("%s: SUCCEEDED: %s", r.Name, r.Detail)
	}
	return fmt.Sprintf("%s: denied: %s", r.Name, errnoName(r.Errno))
}

func errnoName(e syscall.Errno) string {
	return fmt.Sprintf("%s, errno %d", e.Error(), int(e))
}
