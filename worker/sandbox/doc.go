// Package sandbox confines a worker process at the operating-system level:
// namespaces, cgroups, rlimits, no_new_privs, capabilities, Landlock and a
// seccomp-bpf allowlist. The WASM layer (wasmtime limits, epoch deadlines,
// linked imports) lives in worker/host; this package is what stands between
// an escaped guest and the host kernel.
//
// The package has two halves. The supervisor uses the spawn half when it
// starts a worker; the worker uses the lockdown half on itself.
//
// # Supervisor: spawning a worker
//
// Call [MarkInheritedFDsCloseOnExec] once at supervisor start, so that no
// file descriptor reaches a worker by accident (only cmd.ExtraFiles do).
// Start workers through go-plugin's RunnerFunc with your own exec.Cmd
// (ClientConfig.Cmd cannot be combined with RunnerFunc, and go-plugin's own
// runner is internal). supervisor/workerproc.go does this:
//
//	cg, err := sandbox.NewCgroup(name, sandbox.CgroupLimits{MemoryBytes: mem, Pids: 64})
//	spawn := sandbox.SpawnConfig{Namespaces: true, UnshareInChild: true, Cgroup: cg}
//	syncR, syncW, _ := os.Pipe()
//	RunnerFunc: func(l hclog.Logger, spec *exec.Cmd, socketDir string) (runner.Runner, error) {
//		if err := sandbox.PrepareSocketDir(socketDir, spawn); err != nil { ... }
//		cmd := exec.Command(workerPath)
//		cmd.Env = append(spec.Env, ourEnv..., sandbox.SyncFDEnv+"=5")
//		cmd.ExtraFiles = []*os.File{brokerEnd, cacheDir, syncR} // fds 3, 4, 5
//		if err := spawn.Apply(cmd); err != nil { ... } // SysProcAttr, pre-init env
//		// start cmd; with cgroup v1 ([Cgroup.FD] not ok) call
//		// cg.AddPID(cmd.Process.Pid); then write one byte to syncW
//	}
//
// With UnshareInChild the worker starts as the unprivileged host uid and its
// C constructor (package worker/sandbox/preinit, which the worker binary
// imports) makes the namespaces, waits for the byte on the sync pipe (so it
// is in its cgroup before any Go code runs), and forks into its PID
// namespace. That can fail where user namespaces are restricted, so once the
// worker answered, [Namespaces] (with the started process's pid) says which
// namespaces it really is in; that, not the SpawnConfig, goes into the run's
// record. When the run ends, call [Cgroup.Kill], reap the worker, check
// [Cgroup.OOMKilled] for the error message, and [Cgroup.Remove].
//
// With RunnerFunc, go-plugin's SecureConfig checks the spec's empty Path;
// verify the worker binary's checksum in the runner instead.
//
// # Worker: locking itself down
//
// The worker calls [Init] first thing in main, before plugin.Serve, and
// [Lockdown] once the go-plugin listener and the broker fd exist but before
// any untrusted module is compiled, loaded or run, i.e. at the start of the
// first RPC (worker/server does this):
//
//	func main() {
//		done, preErr := preinit.Done() // what the constructor did
//		initErr := errors.Join(preErr, sandbox.Init(sandbox.InitConfig{PreInitDone: done, MaxFileSize: max}))
//		// a failed step costs no other layer; keep initErr for the reply
//		plugin.Serve(...)
//	}
//
//	func (w *Worker) Sandbox(args SandboxArgs) (SandboxReply, error) {
//		rep, err := sandbox.Lockdown(sandbox.LockdownConfig{ReadOnlyPaths: []string{cacheDir}, ReadWritePaths: []string{scratch}})
//		if err != nil { return ..., err } // the supervisor kills a worker half locked down
//		missing := rep.Missing(sandbox.InProcessLayers()) // with reasons from sandbox.LayerErrors(initErr)
//		...
//	}
//
// [Lockdown] applies Landlock and then, last, a seccomp filter on every
// thread. Both are irreversible. It returns a [Report] naming the layers that
// are in force, read back from the kernel, for the run's audit record.
//
// # Which layers are available
//
// [ProbeWith] starts a throw-away child of the worker binary the way a
// worker is started, has it run [Init] and [Lockdown], and reports what
// actually took effect. This is what `aileron doctor` prints;
// [Report.Missing] is what strict mode checks. Layer names come from one
// table (see [LayerNames]).
//
// # Platforms
//
// Everything that touches the kernel lives in *_linux.go files. On other
// systems the functions return [ErrUnsupported] and [ProbeWith] reports every
// layer as unavailable. The seccomp policy is written for linux/amd64; other
// Linux architectures get [ErrUnsupported] from the seccomp layer.
//
// # Testing the sandbox from inside
//
// Built with the aileron_escapetest tag, the package also has EscapeProbes
// and EscapeProbeInt80Socket: attacks a locked-down worker runs against
// itself in integration tests. Production builds do not contain them.
package sandbox
