package sandbox

import (
	"fmt"
	"slices"
	"strings"
)

// Layer names. These are the words `aileron doctor` prints, the words strict
// mode is configured with, and the words a run's audit record lists.
const (
	LayerUserNS       = "userns"
	LayerNetNS        = "netns"
	LayerPIDNS        = "pidns"
	LayerIPCNS        = "ipcns"
	LayerUTSNS        = "utsns"
	LayerMountNS      = "mountns"
	LayerCgroup       = "cgroup"
	LayerRlimits      = "rlimits"
	LayerNoNewPrivs   = "no_new_privs"
	LayerNotDumpable  = "not_dumpable"
	LayerCapabilities = "capabilities"
	LayerLandlock     = "landlock"
	LayerSeccomp      = "seccomp"
)

// layerSpec describes one isolation layer.
type layerSpec struct {
	name  string
	stops string // what the layer is there to stop, for doctor and docs
}

// layerTable is the one list of isolation layers, in the order they are
// applied. Probe reports them in this order, Missing checks against it, and
// docs/SECURITY.md describes them in it.
var layerTable = []layerSpec{
	{LayerUserNS, "worker root maps to an unprivileged host uid; host files keep their owners"},
	{LayerNetNS, "no network interface but a down loopback: no route anywhere"},
	{LayerPIDNS, "host processes are invisible and cannot be named in kill/ptrace"},
	{LayerIPCNS, "no access to host SysV IPC and POSIX message queues"},
	{LayerUTSNS, "hostname changes stay inside the worker"},
	{LayerMountNS, "a private mount table with a /proc that shows only the worker"},
	{LayerCgroup, "memory and pids limits for the whole worker process"},
	{LayerRlimits, "no core dumps, few fds, small files"},
	{LayerNoNewPrivs, "exec cannot gain privileges (setuid bits, file capabilities)"},
	{LayerNotDumpable, "no ptrace or /proc/<pid>/mem access from same-uid processes, no core"},
	{LayerCapabilities, "no capabilities, not even inside the worker's user namespace"},
	{LayerLandlock, "no filesystem access beyond the read-only paths; no TCP bind/connect; scoped signals and abstract sockets"},
	{LayerSeccomp, "syscall allowlist: no sockets, exec, fork, ptrace, mount, namespaces, bpf, io_uring ..."},
}

// LayerNames returns every layer name in the order the layers are applied.
func LayerNames() []string {
	names := make([]string, len(layerTable))
	for i, l := range layerTable {
		names[i] = l.name
	}
	return names
}

// InProcessLayers returns, in order, the layers a worker applies to itself
// ([Init] and [Lockdown]), after the namespaces and the cgroup that its
// spawn provides.
func InProcessLayers() []string {
	return LayerNames()[slices.IndexFunc(layerTable, func(l layerSpec) bool { return l.name == LayerRlimits }):]
}

// LayerDescription returns what the named layer is there to stop, or "" for
// an unknown name.
func LayerDescription(name string) string {
	for _, l := range layerTable {
		if l.name == name {
			return l.stops
		}
	}
	return ""
}

// Report lists isolation layers and whether each is in force. [Probe] fills
// one for the host, [Lockdown] one for the layers it applied.
type Report struct {
	// Layers in the order of the layer table. A layer that was not
	// examined is absent.
	Layers []Layer
}

// Layer is one isolation layer's state.
type Layer struct {
	// Name is one of the Layer* constants.
	Name string
	// Active is true when the layer is in force (Lockdown) or can be put in
	// force on this host (Probe). The zero value is "not active".
	Active bool
	// Detail says why a layer is unavailable, or its version or mode when
	// it is active, e.g. "ABI 7, best effort" or "allowlist, 98 rules".
	Detail string
}

// String formats the layer as one line for doctor output and logs.
func (l Layer) String() string {
	state := "MISSING"
	if l.Active {
		state = "active"
	}
	if l.Detail == "" {
		return fmt.Sprintf("%-13s %s", l.Name, state)
	}
	return fmt.Sprintf("%-13s %-7s %s", l.Name, state, l.Detail)
}

// Layer returns the named layer and whether the report has it.
func (r Report) Layer(name string) (Layer, bool) {
	for _, l := range r.Layers {
		if l.Name == name {
			return l, true
		}
	}
	return Layer{}, false
}

// Active returns the names of the active layers, for an audit record.
func (r Report) Active() []string {
	var names []string
	for _, l := range r.Layers {
		if l.Active {
			names = append(names, l.Name)
		}
	}
	return names
}

// Missing returns, in the order of required, each required layer that is not
// active. A layer the report does not mention counts as missing, with a
// Detail saying so; so does a name that is not a layer at all, so that a
// typo in a strict-mode configuration fails closed.
func (r Report) Missing(required []string) []Layer {
	var missing []Layer
	for _, name := range required {
		l, ok := r.Layer(name)
		switch {
		case LayerDescription(name) == "":
			missing = append(missing, Layer{Name: name, Detail: "unknown layer name"})
		case !ok:
			missing = append(missing, Layer{Name: name, Detail: "not examined"})
		case !l.Active:
			missing = append(missing, l)
		}
	}
	return missing
}

// String formats the report as doctor prints it, one layer per line.
func (r Report) String() string {
	var b strings.Builder
	for _, l := range r.Layers {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// set records a layer, replacing an earlier entry of the same name, and keeps
// the layers in table order.
func (r *Report) set(name string, active bool, detail string) {
	l := Layer{Name: name, Active: active, Detail: detail}
	if i := slices.IndexFunc(r.Layers, func(x Layer) bool { return x.Name == name }); i >= 0 {
		r.Layers[i] = l
		return
	}
	r.Layers = append(r.Layers, l)
	order := func(n string) int {
		return slices.IndexFunc(layerTable, func(t layerSpec) bool { return t.name == n })
	}
	slices.SortStableFunc(r.Layers, func(a, b Layer) int { return order(a.Name) - order(b.Name) })
}
