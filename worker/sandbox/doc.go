// Package sandbox confines a worker process at the operating-system level:
// namespaces, cgroups, rlimits, no_new_privs, capabilities, Landlock and a
// seccomp-bpf allowlist. The WASM layer (wasmtime limits, fuel, linked
// imports) lives in worker/host; this package is what stands between an
// escaped guest and the host kernel.
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
// runner is internal):
//
//	spawn := sandbox.SpawnConfig{Namespaces: true, Cgroup: cg}
//	RunnerFunc: func(l hclog.Logger, spec *exec.Cmd, socketDir string) (runner.Runner, error) {
//		if err := sandbox.PrepareSocketDir(socketDir, spawn); err != nil { ... }
//		cmd := exec.Command(workerPath, "worker")
//		cmd.Env = append(ourEnv, spec.Env...)   // handshake, AutoMTLS cert, socket dir
//		cmd.Stdin = nil                          // not the supervisor's stdin
//		cmd.ExtraFiles = []*os.File{brokerEnd}   // fd 3
//		if err := spawn.Apply(cmd); err != nil { ... } // sets cmd.SysProcAttr
//		return newRunner(cmd)                    // Start/Wait/Kill/Stdout/Stderr/...
//	}
//
// with cg from [NewCgroup]. With cgroup v2 ([Cgroup.FD] ok) the worker is
// born in its group; with v1 call [Cgroup.AddPID] right after the handshake
// (client.Client()) and before the first RPC. When the run ends, call
// [Cgroup.Kill], reap the worker, check [Cgroup.OOMKilled] for the error
// message, and [Cgroup.Remove].
//
// With RunnerFunc, go-plugin's SecureConfig checks the spec's empty Path;
// verify the worker binary's checksum in the runner instead.
//
// # Worker: locking itself down
//
// The worker calls [Init] first thing in main, before plugin.Serve, and
// [Lockdown] once the go-plugin listener and the broker fd exist but before
// any untrusted module is compiled, loaded or run, i.e. at the start of the
// first RPC:
//
//	func main() {
//		if err := sandbox.Init(sandbox.InitConfig{}); err != nil { exit(err) }
//		plugin.Serve(...)
//	}
//
//	func (w *Worker) Run(args RunArgs, reply *RunReply) error {
//		w.once.Do(func() { w.layers, w.lockErr = sandbox.Lockdown(sandbox.LockdownConfig{ReadOnlyPaths: []string{cacheDir}}) })
//		if w.lockErr != nil { os.Exit(...) } // never run untrusted code half locked down
//		...
//	}
//
// [Lockdown] applies Landlock and then, last, a seccomp filter on every
// thread. Both are irreversible. It returns a [Report] naming the layers that
// are in force, for the run's audit record.
//
// # Which layers are available
//
// [Probe] starts a throw-away child the way a worker would be started, has
// it run [Init] and [Lockdown], and reports what actually took effect. This
// is what `aileron doctor` prints; [Report.Missing] is what strict mode
// checks. Layer names come from one table (see [LayerNames]).
//
// # Platforms
//
// Everything that touches the kernel lives in *_linux.go files. On other
// systems the functions return [ErrUnsupported] and [Probe] reports every
// layer as unavailable. The seccomp policy is written for linux/amd64; other
// Linux architectures get [ErrUnsupported] from the seccomp layer.
//
// # Testing the sandbox from inside
//
// Built with the aileron_escapetest tag, the package also has EscapeProbes
// and EscapeProbeInt80Socket: attacks a locked-down worker runs against
// itself in integration tests. Production builds do not contain them.
package sandbox
