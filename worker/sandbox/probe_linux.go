//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// probeChildEnv, set to "1", makes any binary that imports this package act
// as Probe's throw-away child: its init function runs Init and Lockdown,
// prints what it saw as JSON and exits before main. The variable only ever
// makes a process lock itself down and exit.
const probeChildEnv = "AILERON_SANDBOX_PROBE_CHILD"

// probeLockdownEnv carries the child's LockdownConfig as JSON.
const probeLockdownEnv = "AILERON_SANDBOX_PROBE_LOCKDOWN"

// probeInitEnv carries the child's InitConfig as JSON.
const probeInitEnv = "AILERON_SANDBOX_PROBE_INIT"

func init() {
	if os.Getenv(probeChildEnv) == "1" {
		runProbeChild()
	}
}

// nsKinds maps /proc/self/ns entries to layer names.
var nsKinds = []struct{ ns, layer string }{
	{"user", LayerUserNS},
	{"net", LayerNetNS},
	{"pid", LayerPIDNS},
	{"ipc", LayerIPCNS},
	{"uts", LayerUTSNS},
	{"mnt", LayerMountNS},
}

// probeChildResult is what the probe child reports on stdout.
type probeChildResult struct {
	NS          map[string]string // ns kind -> "net:[4026531840]"
	UIDMap      string
	Interfaces  []string
	InitErr     string
	LockdownErr string
	Report      Report
}

func runProbeChild() {
	var res probeChildResult
	res.NS = map[string]string{}
	for _, k := range nsKinds {
		res.NS[k.ns], _ = os.Readlink("/proc/self/ns/" + k.ns)
	}
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
		res.UIDMap = strings.Join(strings.Fields(string(b)), " ")
	}
	if b, err := os.ReadFile("/proc/self/net/dev"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[2:] {
			if name, _, ok := strings.Cut(line, ":"); ok {
				res.Interfaces = append(res.Interfaces, strings.TrimSpace(name))
			}
		}
	}
	lc := LockdownConfig{Landlock: LandlockBestEffort}
	if s := os.Getenv(probeLockdownEnv); s != "" {
		_ = json.Unmarshal([]byte(s), &lc)
	}
	var ic InitConfig
	if s := os.Getenv(probeInitEnv); s != "" {
		_ = json.Unmarshal([]byte(s), &ic)
	}
	ic.PreInitDone = false // what Init itself sees, as before preinit existed
	if err := Init(ic); err != nil {
		res.InitErr = err.Error()
	} else if rep, err := Lockdown(lc); err != nil {
		res.Report, res.LockdownErr = rep, err.Error()
	} else {
		res.Report = rep
	}
	b, _ := json.Marshal(res)
	os.Stdout.Write(append(b, '\n'))
	os.Exit(0)
}

// ProbeWith is [Probe] with a chosen child binary, spawn and lockdown
// configuration; tests use it.
func ProbeWith(c ProbeConfig) Report {
	var r Report
	spawn := SpawnConfig{Namespaces: true}
	if c.Spawn != nil {
		spawn = *c.Spawn
	}
	lockdown := LockdownConfig{Landlock: LandlockBestEffort}
	if c.Lockdown != nil {
		lockdown = *c.Lockdown
	}
	var ic InitConfig
	if c.Init != nil {
		ic = *c.Init
	}
	exe := c.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			exe = "/proc/self/exe"
		}
	}

	ok, detail := probeCgroup()
	r.set(LayerCgroup, ok, detail)

	child, nsErr := runProbe(exe, spawn, lockdown, ic)
	if nsErr != nil && spawn.Namespaces {
		// Without namespaces the in-process layers can still be tried.
		noNS := spawn
		noNS.Namespaces = false
		child, _ = runProbe(exe, noNS, lockdown, ic)
	}
	for _, l := range nsLayers(spawn, nsErr, child).Layers {
		r.set(l.Name, l.Active, l.Detail)
	}

	if child == nil {
		r.addStatic(fmt.Sprintf("probe child did not run (%v)", nsErr))
		return r
	}
	for _, l := range child.Report.Layers {
		r.set(l.Name, l.Active, l.Detail)
	}
	for _, name := range InProcessLayers() {
		if _, ok := r.Layer(name); ok {
			continue
		}
		why := child.LockdownErr
		if child.InitErr != "" {
			why = "init: " + child.InitErr
		}
		r.set(name, false, why)
	}
	return r
}

// nsLayers compares the probe child's namespaces with this process's.
func nsLayers(spawn SpawnConfig, nsErr error, child *probeChildResult) Report {
	var r Report
	if !spawn.Namespaces || nsErr != nil {
		why := "off: spawn config has no namespaces"
		if spawn.Namespaces {
			why = nsErr.Error()
		}
		for _, k := range nsKinds {
			r.set(k.layer, false, why)
		}
		return r
	}
	r = compareNamespaces(child.NS)
	for _, l := range r.Layers {
		switch {
		case !l.Active:
		case l.Name == LayerUserNS:
			r.set(l.Name, true, "uid_map "+child.UIDMap)
		case l.Name == LayerNetNS:
			r.set(l.Name, true, "interfaces: "+strings.Join(child.Interfaces, " "))
		}
	}
	return r
}

// Namespaces reports which of the six namespace layers the process pid's
// children are in, compared with this process's own namespaces: each one
// that differs is active. It reads /proc/<pid>/ns, and for the PID
// namespace pid_for_children, so that it holds both for a process cloned
// into its namespaces and for one that unshared them and forks its worker
// proper (SpawnConfig.UnshareInChild). A namespace it cannot read counts as
// missing. The supervisor calls it once the worker answered, so that a run's
// record lists the namespaces the worker is in, not those it asked for.
func Namespaces(pid int) Report {
	theirs := map[string]string{}
	var errs []string
	for _, k := range nsKinds {
		name := k.ns
		if name == "pid" {
			name = "pid_for_children"
		}
		v, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
		if err != nil {
			errs = append(errs, err.Error())
		}
		theirs[k.ns] = v
	}
	r := compareNamespaces(theirs)
	if len(errs) > 0 {
		for _, l := range r.Layers {
			if !l.Active {
				r.set(l.Name, false, l.Detail+" ("+strings.Join(errs, "; ")+")")
			}
		}
	}
	return r
}

// compareNamespaces sets each namespace layer active when theirs (ns kind
// -> "net:[4026531840]") names another namespace than this process's.
func compareNamespaces(theirs map[string]string) Report {
	var r Report
	for _, k := range nsKinds {
		ours, _ := os.Readlink("/proc/self/ns/" + k.ns)
		switch t := theirs[k.ns]; {
		case t == "":
			r.set(k.layer, false, "namespace unknown")
		case t == ours:
			r.set(k.layer, false, "shares the supervisor's "+ours)
		default:
			r.set(k.layer, true, t)
		}
	}
	return r
}

// runProbe starts exe as a probe child under spawn and decodes its report.
func runProbe(exe string, spawn SpawnConfig, lockdown LockdownConfig, init InitConfig) (*probeChildResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lc, _ := json.Marshal(lockdown)
	ic, _ := json.Marshal(init)
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = []string{probeChildEnv + "=1", probeLockdownEnv + "=" + string(lc), probeInitEnv + "=" + string(ic)}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := spawn.Apply(cmd); err != nil {
		return nil, err
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("probe child %s: %w (stderr: %.200s)", exe, err, stderr.String())
	}
	var res probeChildResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("probe child %s: bad report: %w (stdout: %.200q)", exe, err, stdout.String())
	}
	return &res, nil
}

// addStatic fills the in-process layers from what the kernel advertises,
// when no child could try them.
func (r *Report) addStatic(why string) {
	abi := landlockABI()
	r.set(LayerLandlock, abi > 0, fmt.Sprintf("ABI %d advertised, not tried: %s", abi, why))
	b, _ := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	avail := strings.Fields(string(b))
	ok := seccompArch != 0 && strings.Contains(string(b), "kill_process") && strings.Contains(string(b), "errno")
	r.set(LayerSeccomp, ok, fmt.Sprintf("actions %v advertised, not tried: %s", avail, why))
	for _, name := range InProcessLayers() {
		if _, ok := r.Layer(name); !ok {
			r.set(name, false, "not tried: "+why)
		}
	}
}
