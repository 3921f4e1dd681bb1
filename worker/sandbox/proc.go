package sandbox

import (
	"os"
	"strconv"
)

// Threads lists the thread IDs of process pid (0: this process) from
// /proc/PID/task. It reads that one directory and nothing below it: a
// glob such as /proc/PID/task/*/status lists every thread's directory too,
// which costs the kernel ~50 inodes per thread and was a tenth of a
// worker's CPU time (docs/PERFORMANCE.md).
func Threads(pid int) ([]int, error) {
	dir := "/proc/self/task"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/task"
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
