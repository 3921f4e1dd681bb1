//go:build !linux

package sandbox

import (
	"fmt"
	"os/exec"
	"runtime"
	"time"
)

var errGOOS = fmt.Errorf("%w: GOOS=%s", ErrUnsupported, runtime.GOOS)

// MarkInheritedFDsCloseOnExec returns ErrUnsupported outside Linux.
func MarkInheritedFDsCloseOnExec() error { return errGOOS }

// Apply returns ErrUnsupported outside Linux.
func (c SpawnConfig) Apply(cmd *exec.Cmd) error { return errGOOS }

// PrepareSocketDir returns ErrUnsupported outside Linux.
func PrepareSocketDir(dir string, c SpawnConfig) error { return errGOOS }

// Cgroup is a control group made for one worker by NewCgroup; outside
// Linux there are none.
type Cgroup struct{}

// Name returns "".
func (c *Cgroup) Name() string { return "" }

// Version returns 0: no cgroups outside Linux.
func (c *Cgroup) Version() int { return 0 }

// NewCgroup returns ErrUnsupported outside Linux.
func NewCgroup(name string, l CgroupLimits) (*Cgroup, error) { return nil, errGOOS }

// FD reports no fd outside Linux.
func (c *Cgroup) FD() (int, bool) { return -1, false }

// AddPID returns ErrUnsupported outside Linux.
func (c *Cgroup) AddPID(pid int) error { return errGOOS }

// PIDs returns ErrUnsupported outside Linux.
func (c *Cgroup) PIDs() ([]int, error) { return nil, errGOOS }

// Kill returns ErrUnsupported outside Linux.
func (c *Cgroup) Kill() error { return errGOOS }

// Remove returns ErrUnsupported outside Linux.
func (c *Cgroup) Remove() error { return errGOOS }

// MemoryMax returns 0 outside Linux.
func (c *Cgroup) MemoryMax() int64 { return 0 }

// SetMemoryMax returns ErrUnsupported outside Linux.
func (c *Cgroup) SetMemoryMax(int64) error { return errGOOS }

// OOMKilled is always false outside Linux.
func (c *Cgroup) OOMKilled() bool { return false }

// Init returns ErrUnsupported outside Linux.
func Init(c InitConfig) error { return errGOOS }

// Lockdown returns ErrUnsupported outside Linux: nothing can be enforced.
func Lockdown(c LockdownConfig) (Report, error) {
	if err := c.validate(); err != nil {
		return Report{}, err
	}
	return unsupportedReport(), errGOOS
}

// Namespaces reports every namespace layer unavailable outside Linux.
func Namespaces(pid int) Report {
	var r Report
	for _, name := range LayerNames()[:6] {
		r.set(name, false, errGOOS.Error())
	}
	return r
}

// ProbeWith reports every layer unavailable outside Linux.
func ProbeWith(c ProbeConfig) Report { return unsupportedReport() }

func unsupportedReport() Report {
	var r Report
	for _, name := range LayerNames() {
		r.set(name, false, errGOOS.Error())
	}
	return r
}

// PeakMemory reports nothing outside Linux.
func (c *Cgroup) PeakMemory() int64 { return 0 }

// CPUTime reports nothing outside Linux.
func (c *Cgroup) CPUTime() (time.Duration, bool) { return 0, false }

// RemoveStale does nothing outside Linux.
func RemoveStale(string, func(string) bool) error { return nil }
