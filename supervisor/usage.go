package supervisor

import (
	"os"
	"strconv"
	"strings"
	"time"

	"aileron.dev/aileron/worker/sandbox"
)

// workerUsage is what one worker's processes used over their life.
type workerUsage struct {
	// peakRSSKiB is the largest VmHWM of the worker's processes: its
	// resident set, shared file pages (binary, compiled module) included.
	peakRSSKiB int64
	// cgroupPeakKiB is the memory charged to the worker's cgroup at its
	// peak (0 without a cgroup): its own anonymous memory, mostly.
	cgroupPeakKiB int64
	// cpu is the CPU time of all its processes' threads.
	cpu time.Duration
}

// measure reads the usage of w's processes while they still exist: the
// processes in its cgroup, or its first process and that one's children.
// With a cgroup v2 group the CPU time is read from the group once they are
// gone (see kill).
func (w *workerProc) measure() workerUsage {
	var u workerUsage
	var pids []int
	if w.cgroup != nil {
		pids, _ = w.cgroup.PIDs()
		u.cgroupPeakKiB = w.cgroup.PeakMemory() >> 10
	}
	if len(pids) == 0 && w.proc != nil {
		if pid := w.proc.Pid(); pid > 0 {
			pids = append([]int{pid}, childrenOf(pid)...)
		}
	}
	perThread := w.cgroup == nil || w.cgroup.Version() != 2
	for _, pid := range pids {
		u.peakRSSKiB = max(u.peakRSSKiB, vmHWM(pid))
		if perThread {
			u.cpu += cpuOf(pid)
		}
	}
	return u
}

// vmHWM returns a process's peak resident set in KiB, 0 if unknown.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuOf sums the on-CPU time of a process's threads (schedstat, in ns: finer
// than the clock ticks of /proc/PID/stat).
func cpuOf(pid int) time.Duration {
	tids, _ := sandbox.Threads(pid)
	var total time.Duration
	for _, tid := range tids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(n)
		}
	}
	return total
}

// childrenOf lists a process's children.
func childrenOf(pid int) []int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
