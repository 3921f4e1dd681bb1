//go:build linux

package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroup is a control group made for one worker by [NewCgroup]. It lives in
// a cgroup v2 hierarchy when one has the memory and pids controllers, and in
// the cgroup v1 memory and pids hierarchies otherwise.
//
// The supervisor owns it: it places the worker in it (at birth through
// [SpawnConfig].Cgroup with v2, with [Cgroup.AddPID] after the handshake with
// v1), kills what is left with [Cgroup.Kill] when the run ends, and removes
// it with [Cgroup.Remove].
type Cgroup struct {
	name string
	// v2 is the group's directory in the cgroup2 hierarchy; "" with v1.
	v2 string
	// v1 are the group's directories in the v1 memory and pids
	// hierarchies; nil with v2.
	v1 []string
	// memDir is the directory holding the memory controller's files.
	memDir string
	// fd is an open directory fd on v2 for CLONE_INTO_CGROUP; -1 otherwise.
	fd int
	// memoryBytes is the memory limit last written; 0 if none was.
	memoryBytes int64
}

// Name returns the name the group was created with.
func (c *Cgroup) Name() string { return c.name }

// Version returns 2 for a cgroup v2 group and 1 for a v1 group.
func (c *Cgroup) Version() int {
	if c.v2 != "" {
		return 2
	}
	return 1
}

// cgroupMounts are the cgroup hierarchies visible in this mount namespace.
type cgroupMounts struct {
	v2 string            // mount point of the cgroup2 hierarchy, "" if none
	v1 map[string]string // v1 controller name -> mount point
}

// parseCgroupMounts reads /proc/self/mountinfo format (proc(5)) and returns
// the cgroup mount points. The first mount of each kind wins.
func parseCgroupMounts(r io.Reader) (cgroupMounts, error) {
	m := cgroupMounts{v1: map[string]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		mountPoint := unescapeMountinfo(f[4])
		switch g[0] {
		case "cgroup2":
			if m.v2 == "" {
				m.v2 = mountPoint
			}
		case "cgroup":
			for _, opt := range strings.Split(g[2], ",") {
				if opt == "memory" || opt == "pids" {
					if _, dup := m.v1[opt]; !dup {
						m.v1[opt] = mountPoint
					}
				}
			}
		}
	}
	return m, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func findCgroupMounts() (cgroupMounts, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return cgroupMounts{}, err
	}
	defer f.Close()
	return parseCgroupMounts(f)
}

// v2Controllers returns the controllers a cgroup2 directory offers.
func v2Controllers(dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// v2Usable reports whether the cgroup2 hierarchy can limit memory and pids.
func (m cgroupMounts) v2Usable() bool {
	if m.v2 == "" {
		return false
	}
	c := v2Controllers(m.v2)
	return slices.Contains(c, "memory") && slices.Contains(c, "pids")
}

// v1Usable reports whether the v1 memory and pids hierarchies are mounted.
func (m cgroupMounts) v1Usable() bool {
	return m.v1["memory"] != "" && m.v1["pids"] != ""
}

// checkCgroupName refuses names that could climb out of the hierarchy.
func checkCgroupName(name string) error {
	if name == "" || filepath.IsAbs(name) || filepath.Clean(name) != name || name == "." ||
		slices.Contains(strings.Split(name, "/"), "..") {
		return fmt.Errorf("cgroup name %q: must be a clean relative path", name)
	}
	return nil
}

// NewCgroup creates the cgroup name (a relative path such as
// "aileron/worker-42", parents created as needed) and writes the limits.
// name is relative to the root of each hierarchy as mounted in this mount
// namespace; on a systemd host give a path inside the supervisor's delegated
// subtree.
//
// cgroup v2 is used when its root offers the memory and pids controllers;
// the controllers are then enabled in cgroup.subtree_control of every
// ancestor, which fails (EBUSY) on an ancestor that has processes of its own.
// Otherwise the v1 memory and pids hierarchies are used. Nothing is left
// behind on error.
func NewCgroup(name string, l CgroupLimits) (*Cgroup, error) {
	if err := checkCgroupName(name); err != nil {
		return nil, err
	}
	if l.MemoryBytes < 0 || l.Pids < 0 {
		return nil, fmt.Errorf("cgroup %s: negative limit %+v", name, l)
	}
	m, err := findCgroupMounts()
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	switch {
	case m.v2Usable():
		return newCgroupV2(m.v2, name, l)
	case m.v1Usable():
		return newCgroupV1(m.v1["memory"], m.v1["pids"], name, l)
	}
	return nil, fmt.Errorf("cgroup %s: %w (cgroup2 at %q offers %v; v1 memory at %q, pids at %q)",
		name, ErrCgroupUnavailable, m.v2, v2Controllers(m.v2), m.v1["memory"], m.v1["pids"])
}

func newCgroupV2(root, name string, l CgroupLimits) (_ *Cgroup, err error) {
	dir := filepath.Join(root, name)
	created, err := mkdirAll(root, name)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			removeDirs(created)
		}
	}()
	// Enable the controllers from the root down to the leaf's parent.
	parts := strings.Split(name, "/")
	for i := range parts {
		parent := filepath.Join(append([]string{root}, parts[:i]...)...)
		if err := enableV2Controllers(parent, "memory", "pids"); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	if l.MemoryBytes > 0 {
		if err := writeCgroupFile(dir, "memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
		// Security: without this, a worker over its limit swaps instead of dying.
		if err := writeCgroupFile(dir, "memory.swap.max", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	if l.Pids > 0 {
		if err := writeCgroupFile(dir, "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: open: %w", name, err)
	}
	return &Cgroup{name: name, v2: dir, memDir: dir, fd: fd, memoryBytes: l.MemoryBytes}, nil
}

func enableV2Controllers(dir string, ctrls ...string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range ctrls {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeCgroupFile(dir, "cgroup.subtree_control", strings.Join(add, " "))
}

func newCgroupV1(memRoot, pidsRoot, name string, l CgroupLimits) (_ *Cgroup, err error) {
	var created []string
	defer func() {
		if err != nil {
			removeDirs(created)
		}
	}()
	for _, root := range []string{memRoot, pidsRoot} {
		c, err := mkdirAll(root, name)
		created = append(created, c...)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	memDir, pidsDir := filepath.Join(memRoot, name), filepath.Join(pidsRoot, name)
	if l.MemoryBytes > 0 {
		v := strconv.FormatInt(l.MemoryBytes, 10)
		if err := writeCgroupFile(memDir, "memory.limit_in_bytes", v); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
		// Security: memory+swap, so a worker over its limit cannot swap
		// instead of dying. Absent when swap accounting is off (then there
		// is nothing to swap to through this group either).
		if err := writeCgroupFile(memDir, "memory.memsw.limit_in_bytes", v); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	if l.Pids > 0 {
		if err := writeCgroupFile(pidsDir, "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	return &Cgroup{name: name, v1: []string{memDir, pidsDir}, memDir: memDir, fd: -1, memoryBytes: l.MemoryBytes}, nil
}

// mkdirAll creates root/name and returns the directories it created,
// deepest first.
func mkdirAll(root, name string) ([]string, error) {
	var created []string
	dir := root
	for _, p := range strings.Split(name, "/") {
		dir = filepath.Join(dir, p)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			created = append([]string{dir}, created...)
			continue
		}
		if !errors.Is(err, os.ErrExist) {
			removeDirs(created)
			return nil, err
		}
	}
	return created, nil
}

func removeDirs(dirs []string) {
	for _, d := range dirs {
		_ = unix.Rmdir(d)
	}
}

// writeCgroupFile writes value to an existing control file in one write(2),
// as cgroupfs requires. A missing file is an os.ErrNotExist error (never
// created: the kernel makes the files).
func writeCgroupFile(dir, file, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

func (c *Cgroup) dirs() []string {
	if c.v2 != "" {
		return []string{c.v2}
	}
	return c.v1
}

// FD returns a directory fd for cmd.SysProcAttr.CgroupFD (with UseCgroupFD),
// which starts the worker inside the group. ok is false for cgroup v1, where
// there is no such thing; use [Cgroup.AddPID].
func (c *Cgroup) FD() (fd int, ok bool) {
	if c == nil || c.fd < 0 {
		return -1, false
	}
	return c.fd, true
}

// AddPID moves the process pid, with all its threads, into the group. With
// cgroup v1, call it right after the go-plugin handshake and before the first
// RPC: no untrusted code runs before that. Memory charged before the move
// stays with the old group.
func (c *Cgroup) AddPID(pid int) error {
	for _, d := range c.dirs() {
		if err := writeCgroupFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup %s: add pid %d: %w", c.name, pid, err)
		}
	}
	return nil
}

// PIDs returns the processes in the group.
func (c *Cgroup) PIDs() ([]int, error) {
	seen := map[int]bool{}
	var pids []int
	for _, d := range c.dirs() {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", c.name, err)
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err == nil && !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// Kill sends SIGKILL to every process in the group and waits (up to a
// second) until the group is empty. Zombies the caller has not reaped yet do
// not count. The caller still reaps its own child.
func (c *Cgroup) Kill() error {
	if c.v2 != "" {
		err := writeCgroupFile(c.v2, "cgroup.kill", "1")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cgroup %s: %w", c.name, err)
		}
	}
	deadline := time.Now().Add(time.Second)
	for {
		pids, err := c.PIDs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %d processes still alive after SIGKILL", c.name, len(pids))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Remove removes the group's directories (not the parents NewCgroup created,
// which other workers may share). It retries for up to a second while the
// kernel finishes tearing down exited tasks; call [Cgroup.Kill] first.
func (c *Cgroup) Remove() error {
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
	deadline := time.Now().Add(time.Second)
	for _, d := range c.dirs() {
		for {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("cgroup %s: remove %s: %w", c.name, d, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// MemoryMax returns the memory limit [NewCgroup] or [Cgroup.SetMemoryMax]
// last wrote, 0 if none.
func (c *Cgroup) MemoryMax() int64 { return c.memoryBytes }

// SetMemoryMax changes the group's memory limit (v2 memory.max; v1
// memory.limit_in_bytes and, with swap accounting, memory.memsw), for a
// worker made ahead of time (the warm pool) and bound to a run whose limits
// differ. Lowering it below what the group uses makes the kernel reclaim
// memory and, if it cannot, fail (v1, EBUSY) or OOM-kill (v2).
func (c *Cgroup) SetMemoryMax(bytes int64) error {
	if bytes <= 0 {
		return fmt.Errorf("cgroup %s: memory limit %d: must be positive", c.name, bytes)
	}
	v := strconv.FormatInt(bytes, 10)
	files := []string{"memory.max"}
	if c.v2 == "" {
		// v1 refuses memory+swap below memory: lower memory first when
		// shrinking, raise memory+swap first when growing.
		files = []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
		if c.memoryBytes > 0 && bytes > c.memoryBytes {
			slices.Reverse(files)
		}
	}
	for _, f := range files {
		err := writeCgroupFile(c.memDir, f, v)
		if err != nil && !(f == "memory.memsw.limit_in_bytes" && errors.Is(err, os.ErrNotExist)) {
			return fmt.Errorf("cgroup %s: %w", c.name, err)
		}
	}
	c.memoryBytes = bytes
	return nil
}

// OOMKilled reports whether the kernel OOM-killed a process of the group
// because of its memory limit (v2 memory.events oom_kill, v1
// memory.oom_control oom_kill; on v1 kernels older than 4.13, which lack that
// counter, memory.failcnt > 0 is used: the limit was hit).
func (c *Cgroup) OOMKilled() bool {
	file := "memory.oom_control"
	if c.v2 != "" {
		file = "memory.events"
	}
	if n, ok := readCgroupCounter(filepath.Join(c.memDir, file), "oom_kill"); ok {
		return n > 0
	}
	b, err := os.ReadFile(filepath.Join(c.memDir, "memory.failcnt"))
	if err != nil {
		return false
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n > 0
}

// PeakMemory returns the group's peak memory use in bytes (v2 memory.peak,
// v1 memory.max_usage_in_bytes), 0 if the kernel does not say.
func (c *Cgroup) PeakMemory() int64 {
	file := "memory.max_usage_in_bytes"
	if c.v2 != "" {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(c.memDir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// CPUTime returns the CPU time used by every process that was ever in the
// group, exited ones included (v2 cpu.stat usage_usec, kept by the kernel
// without the cpu controller). ok is false on v1, where the group has no CPU
// accounting of its own.
func (c *Cgroup) CPUTime() (d time.Duration, ok bool) {
	if c.v2 == "" {
		return 0, false
	}
	us, ok := readCgroupCounter(filepath.Join(c.v2, "cpu.stat"), "usage_usec")
	return time.Duration(us) * time.Microsecond, ok
}

// readCgroupCounter reads "key value" lines and returns key's value.
func readCgroupCounter(path, key string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// probeCgroup reports which cgroup flavor NewCgroup would use, by creating
// and removing a throw-away group.
func probeCgroup() (bool, string) {
	m, err := findCgroupMounts()
	if err != nil {
		return false, err.Error()
	}
	name := fmt.Sprintf("aileron-probe-%d", os.Getpid())
	cg, err := NewCgroup(name, CgroupLimits{})
	if err != nil {
		return false, err.Error()
	}
	defer cg.Remove()
	if cg.Version() == 2 {
		return true, fmt.Sprintf("v2 at %s: memory, pids; workers are born in their group", m.v2)
	}
	return true, fmt.Sprintf("v1 memory at %s, pids at %s; workers are moved in as they start, before any worker code runs (cgroup2 offers %v)",
		m.v1["memory"], m.v1["pids"], v2Controllers(m.v2))
}

// RemoveStale removes the empty groups directly under parent (e.g.
// "aileron") in every hierarchy for which stale reports true, given the
// group's base name. A supervisor killed with SIGKILL cannot remove its
// workers' groups; the next one sweeps them. Groups with processes are
// never removed (rmdir refuses them anyway).
func RemoveStale(parent string, stale func(name string) bool) error {
	if err := checkCgroupName(parent); err != nil {
		return err
	}
	m, err := findCgroupMounts()
	if err != nil {
		return err
	}
	var roots []string
	if m.v2Usable() {
		roots = append(roots, m.v2)
	}
	for _, ctl := range []string{"memory", "pids"} {
		if m.v1[ctl] != "" {
			roots = append(roots, m.v1[ctl])
		}
	}
	for _, root := range roots {
		dir := filepath.Join(root, parent)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() && stale(e.Name()) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return nil
}
