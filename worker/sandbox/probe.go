package sandbox

// ProbeConfig configures [ProbeWith]. The zero value probes the way a worker
// would be started by default.
type ProbeConfig struct {
	// Executable is the binary started as the throw-away child. It must
	// import this package (its init function recognises the probe) and be
	// executable by the worker's host uid. Empty means os.Executable(),
	// which is right for the aileron binary.
	Executable string

	// Spawn is how the child is started. Its zero value means
	// SpawnConfig{Namespaces: true}, the strict default.
	Spawn *SpawnConfig

	// Lockdown is what the child applies after Init. Its zero value
	// means Landlock best effort (so that the report says which ABI the
	// kernel has rather than failing) and the seccomp allowlist.
	Lockdown *LockdownConfig

	// Init is what the child passes to Init, so the report shows the
	// limits real workers get. Its zero value means InitConfig{}.
	Init *InitConfig
}

// Probe reports which isolation layers this host can put in force, for
// `aileron doctor` and strict mode. It starts the current executable as a
// throw-away child the way a worker is started, lets it run [Init] and
// [Lockdown], and reads back what took effect; it also creates and removes a
// throw-away cgroup. It never changes the calling process.
func Probe() Report { return ProbeWith(ProbeConfig{}) }
