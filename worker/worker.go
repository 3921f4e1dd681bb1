// Package worker is the contract between the supervisor and a worker
// process: the go-plugin handshake, the RPC interface and its arguments.
//
// A worker is a short-lived process that runs one connector for one action
// run. The supervisor starts it through go-plugin, then calls, in order:
//
//  1. [Worker.Sandbox] once: the worker locks itself down (Landlock,
//     seccomp) before it touches anything untrusted;
//  2. [Worker.Load] once: map the compiled module and bind it to its grant;
//  3. [Worker.Invoke] once per step of the run that uses the connector;
//
// and then kills the process. Nothing survives in worker memory.
//
// This package holds only the contract, so the supervisor can speak it
// without linking wasmtime; the implementation is worker/server (which
// imports this package for the types, a deliberate exception to "children
// never import their parent", see docs/RATIONALE.md).
package worker

import (
	"net/rpc"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"aileron.dev/aileron/sdk/abi"
)

// Handshake is the go-plugin handshake of the worker binary. The cookie is
// not a security measure (go-plugin says so); it stops a person from running
// the worker binary by hand by mistake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "AILERON_WORKER",
	MagicCookieValue: "9b6a1c0e-worker-v1",
}

// PluginName is the name the worker's RPC service is dispensed under.
const PluginName = "worker"

// EnvScratch names the private directory the worker may write: the
// standard streams of each invocation live there. The supervisor sets it;
// the worker's environment is otherwise empty but for GOMAXPROCS and the
// sandbox's pre-init variables.
const EnvScratch = "AILERON_WORKER_SCRATCH"

// BrokerFD is the descriptor the broker channel arrives on (ExtraFiles[0]).
const BrokerFD = 3

// CacheFD is a directory descriptor of the compiled-module cache
// (ExtraFiles[1]). The worker opens artifacts as /proc/self/fd/4/NAME: the
// cache's parent directories (a private $AILERON_HOME) need not be
// reachable by the worker's unprivileged uid, and Landlock grants read-only
// access to this one directory.
const CacheFD = 4

// CacheDir is the path through which the worker reaches the cache.
const CacheDir = "/proc/self/fd/4"

// SyncFD is the read end of a pipe (ExtraFiles[2]) on which the worker's
// pre-init constructor waits for one byte: the supervisor writes it once the
// worker is in its cgroup (sandbox.SyncFDEnv names it).
const SyncFD = 5

// MaxScratchFileBytes is the worker's RLIMIT_FSIZE. The largest files it
// writes are an invocation's stdin and the guest's stdout in the scratch
// directory, up to the ABI's limits; the margin lets the runner see a
// result one byte over its limit and report output_too_large instead of a
// result cut short.
const MaxScratchFileBytes = max(abi.MaxInvocationBytes, abi.MaxResultBytes) + 64<<10

// WarmModule is the tiny WASI command a pooled worker runs once, before it
// is bound, so that its first real invocation does not pay for wasmtime's
// cold code paths: it reads its stdin and writes a result, through the same
// imports a connector uses, and reaches nothing. worker/host keeps its
// text. The supervisor caches its compiled form like a connector's, under
// its hash, so that pooled workers load it instead of compiling it.
const WarmModule = "" +
	"\x00\x61\x73\x6d\x01\x00\x00\x00\x01\x0c\x02\x60\x04\x7f\x7f\x7f" +
	"\x7f\x01\x7f\x60\x00\x00\x02\x44\x02\x16\x77\x61\x73\x69\x5f\x73" +
	"\x6e\x61\x70\x73\x68\x6f\x74\x5f\x70\x72\x65\x76\x69\x65\x77\x31" +
	"\x07\x66\x64\x5f\x72\x65\x61\x64\x00\x00\x16\x77\x61\x73\x69\x5f" +
	"\x73\x6e\x61\x70\x73\x68\x6f\x74\x5f\x70\x72\x65\x76\x69\x65\x77" +
	"\x31\x08\x66\x64\x5f\x77\x72\x69\x74\x65\x00\x00\x03\x02\x01\x01" +
	"\x05\x03\x01\x00\x01\x07\x13\x02\x06\x6d\x65\x6d\x6f\x72\x79\x02" +
	"\x00\x06\x5f\x73\x74\x61\x72\x74\x00\x02\x0a\x39\x01\x37\x00\x41" +
	"\x00\x41\x80\x10\x36\x02\x00\x41\x04\x41\x80\x02\x36\x02\x00\x41" +
	"\x00\x41\x00\x41\x01\x41\x08\x10\x00\x1a\x41\x00\x41\x80\x08\x36" +
	"\x02\x00\x41\x04\x41\x17\x36\x02\x00\x41\x01\x41\x00\x41\x01\x41" +
	"\x08\x10\x01\x1a\x0b\x0b\x1e\x01\x00\x41\x80\x08\x0b\x17\x7b\x22" +
	"\x6f\x6b\x22\x3a\x74\x72\x75\x65\x2c\x22\x6f\x75\x74\x70\x75\x74" +
	"\x22\x3a\x7b\x7d\x7d\x00\x15\x04\x6e\x61\x6d\x65\x01\x0e\x02\x00" +
	"\x04\x72\x65\x61\x64\x01\x05\x77\x72\x69\x74\x65"

// SandboxArgs says how the worker must lock itself down. The zero value
// applies every layer.
type SandboxArgs struct {
	// Strict makes an unavailable Landlock an error instead of a missing
	// layer in the reply.
	Strict bool
	// DisableLandlock and DisableSeccomp skip a layer (the operator's
	// isolation.unsafe_disable); the reply then lists it as missing.
	DisableLandlock bool
	DisableSeccomp  bool
	// Warm asks the worker, once locked down, to create its engine and
	// run WarmModule.
	Warm bool
	// WarmArtifact names, in the compiled-module cache (CacheFD), the
	// verified compiled form of WarmModule for the engine configuration
	// WarmConfigID; empty if the supervisor has none yet. The worker
	// compiles WarmModule itself when there is none or when WarmConfigID
	// is not its own.
	WarmArtifact string
	WarmConfigID string
}

// SandboxReply reports what was applied.
type SandboxReply struct {
	// ConfigID identifies the worker's wasmtime version and engine
	// configuration: compiled artifacts are cached under it.
	ConfigID string
	// Applied names each active in-process layer, e.g. "landlock".
	Applied []string
	// Missing names each in-process layer that is not in force, with the
	// reason ("seccomp: off by configuration").
	Missing []string
	// WarmArtifact is WarmModule compiled for ConfigID, when the worker
	// had to compile it, for the supervisor to cache.
	WarmArtifact []byte
}

// CompileArgs asks the worker to compile a module.
type CompileArgs struct {
	// Wasm is the module, already checked against its hash.
	Wasm []byte
}

// CompileReply carries the serialized machine code.
type CompileReply struct {
	Artifact []byte
	// ConfigID identifies the engine configuration that produced it.
	ConfigID string
}

// Limits bound each invocation; zero fields mean [DefaultLimits].
type Limits struct {
	// DeadlineMS is the wall-clock time one invocation may take.
	DeadlineMS int64
	// MemoryBytes bounds the guest's linear memory.
	MemoryBytes int64
	// TableElements bounds each table.
	TableElements int64
	// StdoutBytes bounds the result document; never more than
	// abi.MaxResultBytes.
	StdoutBytes int64
	// StderrBytes bounds the captured log; the rest is dropped.
	StderrBytes int64
	// HostCalls bounds the number of aileron_v1 calls per invocation.
	HostCalls int
}

// DefaultLimits are the limits of an invocation where the operator sets
// none. An action's [limits] only narrow them (and the operator's).
var DefaultLimits = Limits{
	DeadlineMS:    30_000,
	MemoryBytes:   256 << 20,
	TableElements: 100_000,
	StdoutBytes:   abi.MaxResultBytes,
	StderrBytes:   64 << 10,
	HostCalls:     1000,
}

// WithDefaults returns l with each unset (zero or negative) field taken from
// [DefaultLimits], and StdoutBytes cut to abi.MaxResultBytes.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	set := func(dst *int64, v int64) {
		if v > 0 {
			*dst = v
		}
	}
	set(&d.DeadlineMS, l.DeadlineMS)
	set(&d.MemoryBytes, l.MemoryBytes)
	set(&d.TableElements, l.TableElements)
	set(&d.StdoutBytes, min(l.StdoutBytes, abi.MaxResultBytes))
	set(&d.StderrBytes, l.StderrBytes)
	if l.HostCalls > 0 {
		d.HostCalls = l.HostCalls
	}
	return d
}

// Deadline returns DeadlineMS as a duration.
func (l Limits) Deadline() time.Duration { return time.Duration(l.DeadlineMS) * time.Millisecond }

// LoadArgs binds the worker to one connector.
type LoadArgs struct {
	// Connector is the connector's FQN, for logs and errors.
	Connector string
	// ArtifactName is the compiled module's file name in the cache
	// directory (CacheDir); the supervisor verified its hash before
	// sending it.
	ArtifactName string
	// ConfigID must equal the worker's engine configuration.
	ConfigID string
	// Capabilities are the runtime import capability IDs granted.
	Capabilities []string
	// Limits bound each invocation.
	Limits Limits
}

// InvokeArgs runs one invocation.
type InvokeArgs struct {
	// Invocation is a JSON abi.Invocation.
	Invocation []byte
}

// Failure is an invocation that produced no result, or a module the worker
// would not bind; Code is one of the abi.Code* values. worker/host returns
// it as its error.
type Failure struct {
	Code    string
	Message string
}

func (f *Failure) Error() string { return f.Message }

// InvokeReply is the outcome of one invocation.
type InvokeReply struct {
	// Result is the connector's JSON abi.Result when Failure is nil.
	Result []byte
	// Failure is set when the invocation produced no result.
	Failure *Failure
	// Stderr is the captured connector log (size-limited).
	Stderr          []byte
	StderrTruncated bool
	HostCalls       int
	DurationNS      int64
}

// Worker is the RPC interface a worker serves.
type Worker interface {
	Sandbox(SandboxArgs) (SandboxReply, error)
	Compile(CompileArgs) (CompileReply, error)
	Load(LoadArgs) (LoadReply, error)
	Invoke(InvokeArgs) (InvokeReply, error)
}

// LoadReply reports a module the worker refused to bind.
type LoadReply struct {
	// Failure is set when the module cannot run under its grant, e.g. an
	// undeclared import (abi.CodeUndeclaredImport).
	Failure *Failure
}

// Plugin is the go-plugin glue for [Worker] over net/rpc.
type Plugin struct {
	// Impl is set on the worker side only.
	Impl Worker
}

// Server implements plugin.Plugin.
func (p *Plugin) Server(*plugin.MuxBroker) (any, error) { return &rpcServer{impl: p.Impl}, nil }

// Client implements plugin.Plugin.
func (p *Plugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) {
	return &Client{c: c}, nil
}

// PluginMap is the plugin set both sides use.
func PluginMap(impl Worker) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &Plugin{Impl: impl}}
}

// Serve runs impl as a go-plugin worker until the supervisor kills it.
func Serve(impl Worker, log hclog.Logger) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginMap(impl),
		// Without one go-plugin logs at trace level: a debug line per
		// worker that the supervisor parses only to drop.
		Logger: log,
	})
}

// Client is the supervisor's side of the RPC interface.
type Client struct{ c *rpc.Client }

var _ Worker = (*Client)(nil)

// Sandbox implements Worker.
func (c *Client) Sandbox(a SandboxArgs) (SandboxReply, error) {
	var r SandboxReply
	err := c.c.Call("Plugin.Sandbox", a, &r)
	return r, err
}

// Compile implements Worker.
func (c *Client) Compile(a CompileArgs) (CompileReply, error) {
	var r CompileReply
	err := c.c.Call("Plugin.Compile", a, &r)
	return r, err
}

// Load implements Worker.
func (c *Client) Load(a LoadArgs) (LoadReply, error) {
	var r LoadReply
	err := c.c.Call("Plugin.Load", a, &r)
	return r, err
}

// Invoke implements Worker.
func (c *Client) Invoke(a InvokeArgs) (InvokeReply, error) {
	var r InvokeReply
	err := c.c.Call("Plugin.Invoke", a, &r)
	return r, err
}

type rpcServer struct{ impl Worker }

func (s *rpcServer) Sandbox(a SandboxArgs, r *SandboxReply) (err error) {
	*r, err = s.impl.Sandbox(a)
	return err
}

func (s *rpcServer) Compile(a CompileArgs, r *CompileReply) (err error) {
	*r, err = s.impl.Compile(a)
	return err
}

func (s *rpcServer) Load(a LoadArgs, r *LoadReply) (err error) {
	*r, err = s.impl.Load(a)
	return err
}

func (s *rpcServer) Invoke(a InvokeArgs, r *InvokeReply) (err error) {
	*r, err = s.impl.Invoke(a)
	return err
}
