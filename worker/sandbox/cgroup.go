package sandbox

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
