package supervisor

import (
	"fmt"
	"time"

	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/worker"
	"aileron.dev/aileron/worker/sandbox"
)

// DoctorReport says which isolation layers a worker gets on this host.
type DoctorReport struct {
	// Mode is "strict" or "relaxed".
	Mode string `json:"mode"`
	// Layers are the OS layers, probed by starting the worker binary the
	// way the supervisor does and letting it lock itself down.
	Layers []sandbox.Layer `json:"layers"`
	// Disabled are the layers config.toml turns off (isolation.unsafe_disable).
	Disabled []string `json:"disabled,omitempty"`
	// WASM describes the WebAssembly layer's limits.
	WASM []sandbox.Layer `json:"wasm"`
}

// Missing returns the layers that are not in force, disabled ones included.
func (r DoctorReport) Missing() []sandbox.Layer {
	var out []sandbox.Layer
	for _, l := range r.Layers {
		if !l.Active {
			out = append(out, l)
		}
	}
	return out
}

// Doctor probes the isolation layers available to workers on this host.
func (s *Supervisor) Doctor() DoctorReport {
	iso := s.cfg.Isolation
	spawn := iso.spawnConfig() // the way real workers start
	lock := sandbox.LockdownConfig{Landlock: sandbox.LandlockBestEffort}
	if iso.disabled("landlock") {
		lock.Landlock = sandbox.LandlockOff
	}
	if iso.disabled("seccomp") {
		lock.Seccomp = sandbox.SeccompOff
	}
	rep := sandbox.ProbeWith(sandbox.ProbeConfig{Executable: s.cfg.WorkerPath, Spawn: &spawn, Lockdown: &lock,
		Init: &sandbox.InitConfig{MaxFileSize: worker.MaxScratchFileBytes}})
	layers := make([]sandbox.Layer, 0, len(sandbox.LayerNames()))
	for _, name := range sandbox.LayerNames() {
		l, ok := rep.Layer(name)
		if !ok {
			l = sandbox.Layer{Name: name, Detail: "not examined"}
		}
		for _, d := range iso.UnsafeDisable {
			if disableable[d] == disableable[name] && disableable[name] != "" {
				l.Active, l.Detail = false, "disabled by isolation.unsafe_disable in config.toml"
			}
		}
		layers = append(layers, l)
	}
	mode := "relaxed"
	if iso.Strict {
		mode = "strict"
	}
	return DoctorReport{Mode: mode, Layers: layers, Disabled: iso.UnsafeDisable, WASM: wasmLayers(narrow(s.cfg.Limits, manifest.Limits{}), s.cfg.KillGrace)}
}

// wasmLayers describes the WebAssembly layer under limits l (defaults
// filled in); killGrace is how long the supervisor waits past a deadline.
func wasmLayers(l worker.Limits, killGrace time.Duration) []sandbox.Layer {
	return []sandbox.Layer{
		{Name: "memory", Active: true, Detail: fmt.Sprintf("linear memory limit %d MiB (store limiter)", l.MemoryBytes>>20)},
		{Name: "deadline", Active: true, Detail: fmt.Sprintf("%s per invocation (epoch interruption; the worker is killed %s later)", l.Deadline(), killGrace)},
		{Name: "host_calls", Active: true, Detail: fmt.Sprintf("%d aileron_v1 calls per invocation", l.HostCalls)},
		{Name: "imports", Active: true, Detail: "only the imports the manifest grants are linked; checked before instantiation"},
		{Name: "fresh_store", Active: true, Detail: "every invocation runs in a new store: nothing survives between steps"},
	}
}
