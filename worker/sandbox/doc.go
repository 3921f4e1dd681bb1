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
// file descriptor reaches a worker by accident. For every worker:
//
//	cfg := sandbox.SpawnConfig{Namespaces: true}
//	if err := sandbox.PrepareSocketDir(socketDir, cfg); err != nil { ... }
//	if err := cfg.Apply(cmd); err != nil { ... } // sets cmd.SysProcAttr
//	cg, err := sandbox.NewCgroup("aileron/worker-"+id, sandbox.CgroupLimits{MemoryBytes: 256 << 20, Pids: 64})
//	if fd, ok := cg.FD(); ok { cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd }
//	cmd.Start()
//	if _, ok := cg.FD(); !ok { cg.AddPID(cmd.Process.Pid) } // cgroup v1: right after the handshake
//	...
//	cg.Kill(); cg.Remove()
//
// # Worker: locking itself down
//
// The worker calls [Init] first thing in main, before plugin.Serve, and
// [Lockdown] once the go-plugin listener and the broker fd exist but before
// any untrusted module is compiled, loaded or run:
//
//	func main() {
//		if err := sandbox.Init(sandbox.InitConfig{}); err != nil { exit(err) }
//		plugin.Serve(...)          // the first RPC calls sandbox.Lockdown
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
// checks. Layer names come from one table (see [LayerUserNS] and friends).
//
// # Platforms
//
// Everything that touches the kernel lives in *_linux.go files. On other
// systems the functions return [ErrUnsupported] and [Probe] reports every
// layer as unavailable. The seccomp policy is written for linux/amd64; other
// Linux architectures get [ErrUnsupported] from the seccomp layer.
package sandbox
