//go:build linux && cgo

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/worker/sandbox/internal/escape"
)

// This test runs the path production uses: a go-plugin (net/rpc, AutoMTLS)
// worker started through a RunnerFunc with PrepareSocketDir and Apply,
// Init before plugin.Serve, Lockdown in the first RPC, then RPCs that run
// wasmtime and the escape attacks under the seccomp allowlist, and a clean
// shutdown.

var testHandshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "AILERON_SANDBOX_TEST",
	MagicCookieValue: "not-a-security-measure",
}

// workerRPC is the worker side of the test plugin.
type workerRPC struct {
	cacheDir string
	once     sync.Once
	report   Report
	err      error
}

// LockdownArgs are the arguments of the Lockdown RPC.
type LockdownArgs struct{ Config LockdownConfig }

func (w *workerRPC) Lockdown(args LockdownArgs, reply *Report) error {
	w.once.Do(func() { w.report, w.err = Lockdown(args.Config) })
	*reply = w.report
	if w.err != nil {
		return errors.New(w.err.Error()) // error values do not cross gob
	}
	return nil
}

func (w *workerRPC) Wasm(_ struct{}, reply *[]string) error {
	done, err := runWasmSuite(w.cacheDir)
	*reply = done
	if err != nil {
		return errors.New(err.Error())
	}
	return nil
}

func (w *workerRPC) Escape(t escape.Targets, reply *[]escape.Result) error {
	*reply = escape.Run(t)
	return nil
}

func (w *workerRPC) Ping(s string, reply *string) error {
	*reply = "pong " + s
	return nil
}

// workerPlugin adapts workerRPC to go-plugin's net/rpc plugin interface.
type workerPlugin struct{ cacheDir string }

func (p *workerPlugin) Server(*plugin.MuxBroker) (any, error) {
	return &workerRPC{cacheDir: p.cacheDir}, nil
}

func (p *workerPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) { return c, nil }

func init() {
	helpers["plugin"] = func(arg string) int {
		if err := prepareWasmCache(arg); err != nil {
			return fail("cache: %v", err)
		}
		if err := Init(InitConfig{}); err != nil {
			return fail("Init: %v", err)
		}
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: testHandshake,
			Plugins:         plugin.PluginSet{"worker": &workerPlugin{cacheDir: arg}},
			Logger:          hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn, JSONFormat: true}),
		})
		return 0
	}
}

// sandboxRunner is the ~40-line runner.Runner a supervisor needs to start a
// worker with its own exec.Cmd: go-plugin's cmd runner is internal, and
// ClientConfig.Cmd cannot be combined with RunnerFunc.
type sandboxRunner struct {
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	waitOnce       sync.Once
	waitErr        error
}

func newSandboxRunner(spec *exec.Cmd, socketDir, path string, spawn SpawnConfig, extraEnv ...string) (*sandboxRunner, error) {
	if err := PrepareSocketDir(socketDir, spawn); err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	// go-plugin's spec carries the handshake, AutoMTLS certificate and
	// socket dir in Env; nothing of the supervisor's environment.
	cmd.Env = append(append([]string{}, extraEnv...), spec.Env...)
	cmd.Stdin = nil // /dev/null, not the supervisor's stdin
	if err := spawn.Apply(cmd); err != nil {
		return nil, err
	}
	r := &sandboxRunner{cmd: cmd}
	var err error
	if r.stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if r.stderr, err = cmd.StderrPipe(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *sandboxRunner) Start(context.Context) error { return r.cmd.Start() }
func (r *sandboxRunner) Wait(context.Context) error {
	r.waitOnce.Do(func() { r.waitErr = r.cmd.Wait() })
	return r.waitErr
}
func (r *sandboxRunner) Kill(context.Context) error {
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}
func (r *sandboxRunner) Stdout() io.ReadCloser                            { return r.stdout }
func (r *sandboxRunner) Stderr() io.ReadCloser                            { return r.stderr }
func (r *sandboxRunner) Name() string                                     { return r.cmd.Path }
func (r *sandboxRunner) ID() string                                       { return strconv.Itoa(r.cmd.Process.Pid) }
func (r *sandboxRunner) Diagnose(context.Context) string                  { return "" }
func (r *sandboxRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *sandboxRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

var _ runner.Runner = (*sandboxRunner)(nil)

func TestGoPluginWorkerUnderLockdown(t *testing.T) {
	requireNamespaces(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)

	for _, mode := range []SeccompMode{SeccompAllowlist, SeccompDenylist} {
		t.Run(mode.String(), func(t *testing.T) {
			cache := cacheDir(t)
			spawn := SpawnConfig{Namespaces: true}
			var sr *sandboxRunner
			client := plugin.NewClient(&plugin.ClientConfig{
				HandshakeConfig:  testHandshake,
				Plugins:          plugin.PluginSet{"worker": &workerPlugin{}},
				AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC},
				SkipHostEnv:      true,
				AutoMTLS:         true,
				Logger:           hclog.NewNullLogger(),
				RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, socketDir string) (runner.Runner, error) {
					var err error
					sr, err = newSandboxRunner(spec, socketDir, helperBinary(t), spawn,
						helperEnv+"=plugin", helperArgEnv+"="+cache)
					return sr, err
				},
			})
			defer client.Kill()
			rpcClient, err := client.Client()
			require.NoError(t, err)
			raw, err := rpcClient.Dispense("worker")
			require.NoError(t, err)
			c := raw.(*rpc.Client)

			var pong string
			require.NoError(t, c.Call("Plugin.Ping", "before", &pong))
			require.Equal(t, "pong before", pong)

			var rep Report
			require.NoError(t, c.Call("Plugin.Lockdown", LockdownArgs{Config: LockdownConfig{
				ReadOnlyPaths: []string{cache}, Seccomp: mode}}, &rep))
			require.Empty(t, rep.Missing([]string{LayerLandlock, LayerSeccomp, LayerNoNewPrivs, LayerCapabilities}))
			t.Logf("lockdown in first RPC:\n%s", rep)

			require.NoError(t, c.Call("Plugin.Ping", "after", &pong))
			var steps []string
			require.NoError(t, c.Call("Plugin.Wasm", struct{}{}, &steps))
			require.Equal(t, wantWasmSteps, steps)

			l := listenLoopback(t)
			targets := escapeTargets(t, l)
			var results []escape.Result
			require.NoError(t, c.Call("Plugin.Escape", targets, &results))
			want := wantDenied(targets)
			require.Len(t, results, len(want))
			for _, r := range results {
				require.Contains(t, want[r.Name], r.Errno, "%s", r)
			}
			require.Zero(t, l.accepted.Load())

			// Many RPCs in parallel: more goroutines, threads and
			// yamux streams after lockdown.
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for i := range 64 {
				wg.Go(func() {
					var s string
					if err := c.Call("Plugin.Ping", fmt.Sprint(i), &s); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}

			// A graceful shutdown must not trip the filter either.
			client.Kill()
			done := make(chan error, 1)
			go func() { done <- sr.Wait(context.Background()) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("worker did not exit")
			}
			ws := sr.cmd.ProcessState.Sys().(syscall.WaitStatus)
			require.False(t, ws.Signaled() && ws.Signal() == syscall.SIGSYS, "worker killed by seccomp: %v", sr.cmd.ProcessState)
		})
	}
}
