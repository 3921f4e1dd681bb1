package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"aileron.dev/aileron/worker"
	"aileron.dev/aileron/worker/sandbox"
)

// Isolation configures the OS isolation of workers. The zero value applies
// every layer and runs (with a loud warning) when one is unavailable.
type Isolation struct {
	// Strict refuses to run a connector when any isolation layer is not
	// in force. Default for `aileron serve`; a flag for the CLI.
	Strict bool
	// UnsafeDisable names layers not to apply ("netns" and the other
	// namespaces go together, "cgroup", "landlock", "seccomp"), for a
	// kernel without them. Strict mode then refuses to run; relaxed mode
	// warns and records the missing layers in the audit log.
	UnsafeDisable []string
	// HostUID and HostGID are the host ids workers run as; zero means
	// sandbox.DefaultHostID for a root supervisor, the supervisor's own
	// ids otherwise.
	HostUID, HostGID uint32
	// CgroupMemoryBytes caps a worker's whole process (guest memory plus
	// wasmtime and the Go runtime); zero means the guest limit + 192 MiB.
	CgroupMemoryBytes int64
	// CgroupPids caps a worker's tasks, threads included; zero means 64.
	CgroupPids int64
}

// disableable maps each layer that can be switched off to what it turns off.
var disableable = map[string]string{
	sandbox.LayerUserNS:   "namespaces",
	sandbox.LayerNetNS:    "namespaces",
	sandbox.LayerPIDNS:    "namespaces",
	sandbox.LayerIPCNS:    "namespaces",
	sandbox.LayerUTSNS:    "namespaces",
	sandbox.LayerMountNS:  "namespaces",
	sandbox.LayerCgroup:   "cgroup",
	sandbox.LayerLandlock: "landlock",
	sandbox.LayerSeccomp:  "seccomp",
}

func (iso Isolation) validate() error {
	for _, l := range iso.UnsafeDisable {
		if _, ok := disableable[l]; !ok {
			return fmt.Errorf("isolation: cannot disable %q: one of %s", l, strings.Join(sortedKeys(disableable), ", "))
		}
	}
	return nil
}

func (iso Isolation) disabled(what string) bool {
	for _, l := range iso.UnsafeDisable {
		if disableable[l] == what {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// workerSpawn is how one worker is isolated at spawn.
type workerSpawn struct {
	cfg    sandbox.SpawnConfig
	cgroup *sandbox.Cgroup
	// missing are layers known to be absent before the worker starts,
	// with the reason.
	missing []string
}

var cgroupSeq atomic.Uint64

// cgroupOverheadBytes is what a worker's cgroup allows beyond the guest's
// linear memory: wasmtime, the Go runtime and the module's machine code.
const cgroupOverheadBytes = 192 << 20

// spawnConfig is how workers are spawned under iso; Doctor probes with it.
// UnshareInChild: the worker makes its namespaces itself, so spawning is a
// vfork whose cost does not grow with the supervisor's size.
func (iso Isolation) spawnConfig() sandbox.SpawnConfig {
	return sandbox.SpawnConfig{Namespaces: !iso.disabled("namespaces"), UnshareInChild: true, HostUID: iso.HostUID, HostGID: iso.HostGID}
}

// prepareSpawn decides the spawn-side layers for one worker: namespaces and
// a cgroup with limits.
func (s *Supervisor) prepareSpawn() workerSpawn {
	iso := s.cfg.Isolation
	ws := workerSpawn{cfg: iso.spawnConfig()}
	if !ws.cfg.Namespaces {
		ws.missing = append(ws.missing, "namespaces: disabled by isolation.unsafe_disable")
	}
	if iso.disabled("cgroup") {
		ws.missing = append(ws.missing, sandbox.LayerCgroup+": disabled by isolation.unsafe_disable")
		return ws
	}
	mem := s.cgroupMemoryBytes()
	pids := iso.CgroupPids
	if pids <= 0 {
		pids = 64
	}
	name := fmt.Sprintf("aileron/%d-w%d", os.Getpid(), cgroupSeq.Add(1))
	cg, err := sandbox.NewCgroup(name, sandbox.CgroupLimits{MemoryBytes: mem, Pids: pids})
	if err != nil {
		ws.missing = append(ws.missing, sandbox.LayerCgroup+": "+err.Error())
		return ws
	}
	ws.cgroup, ws.cfg.Cgroup = cg, cg
	return ws
}

// cgroupMemoryBytes is the memory cap of the cgroup of a worker that runs
// this supervisor's actions: the operator's, or its guest limit (defaults
// filled in; actions only narrow it) plus what the runtime needs.
func (s *Supervisor) cgroupMemoryBytes() int64 {
	if m := s.cfg.Isolation.CgroupMemoryBytes; m > 0 {
		return m
	}
	return s.cfg.Limits.WithDefaults().MemoryBytes + cgroupOverheadBytes
}

// lockdownArgs are the worker-side layers to apply.
func (s *Supervisor) sandboxArgs() worker.SandboxArgs {
	iso := s.cfg.Isolation
	return worker.SandboxArgs{
		Strict:          iso.Strict,
		DisableLandlock: iso.disabled("landlock"),
		DisableSeccomp:  iso.disabled("seccomp"),
	}
}

// checkIsolation merges what the spawn and the worker report and applies
// the mode: strict refuses a worker with any layer missing.
func (s *Supervisor) checkIsolation(ws workerSpawn, r worker.SandboxReply, connector string) ([]string, []string, error) {
	applied := append([]string(nil), r.Applied...)
	missing := append(append([]string(nil), ws.missing...), r.Missing...)
	if ws.cgroup != nil {
		applied = append(applied, fmt.Sprintf("%s:v%d", sandbox.LayerCgroup, ws.cgroup.Version()))
	}
	if len(missing) == 0 {
		return applied, nil, nil
	}
	if s.cfg.Isolation.Strict {
		return applied, missing, fmt.Errorf("%w: %s: %s (run `aileron doctor`; relaxed mode runs without them, with a warning)", ErrIsolation, connector, strings.Join(missing, "; "))
	}
	s.log.Warn("RELAXED ISOLATION: running connector with isolation layers missing", "connector", connector, "missing", strings.Join(missing, "; "))
	return applied, missing, nil
}

// ErrIsolation is returned in strict mode when an isolation layer is not in
// force for a worker.
var ErrIsolation = errors.New("strict isolation: layers unavailable")

// applySpawn wires the isolation of ws into the worker's command.
func applySpawn(ws workerSpawn, scratch string) func(cmd *exec.Cmd, socketDir string) error {
	return func(cmd *exec.Cmd, socketDir string) error {
		// The worker's scratch dir first: it is the socket dir's parent.
		if err := sandbox.PrepareSocketDir(scratch, ws.cfg); err != nil {
			return err
		}
		if err := sandbox.PrepareSocketDir(socketDir, ws.cfg); err != nil {
			return err
		}
		return ws.cfg.Apply(cmd)
	}
}

// sweepCgroups runs removeStaleCgroups once per process.
var sweepCgroups sync.Once

// removeStaleCgroups sweeps worker cgroups ("aileron/<pid>-w<n>") left by
// supervisors that were killed before they could remove them: those whose
// supervisor pid no longer runs.
//
// It cleans up after dead processes of the whole machine, so a process
// runs it once (sweepCgroups), not once per supervisor (serve has one per
// tenant).
func removeStaleCgroups() {
	_ = sandbox.RemoveStale("aileron", staleWorkerCgroup)
}

// staleWorkerCgroup reports whether a group named "<pid>-w<n>" belongs to a
// supervisor that no longer runs. Names of any other shape are left alone.
func staleWorkerCgroup(name string) bool {
	pid, n, ok := strings.Cut(name, "-w")
	if _, err := strconv.Atoi(n); !ok || err != nil {
		return false
	}
	return deadPID(pid)
}

// deadPID reports whether text is another process's pid that this
// process's /proc says runs no longer. A pid reused since, or a /proc that
// cannot be read, counts as alive: what the pid named is left alone. A
// process of another PID namespace counts as dead; for the cgroup sweep
// that is harmless, as a group with a process in it cannot be removed.
func deadPID(text string) bool {
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 0 || pid == os.Getpid() || strconv.Itoa(pid) != text {
		return false
	}
	if _, err := os.Stat("/proc/self"); err != nil {
		return false
	}
	_, err = os.Stat("/proc/" + text)
	return errors.Is(err, fs.ErrNotExist)
}
