// Package supervisor runs actions. It is trusted and holds no secret bytes:
// it plans an action's steps, checks every grant before any worker starts,
// starts the broker and one worker process per connector per run through
// go-plugin, wires each worker to the broker over a channel of its own, and
// makes sure every child is gone when a run ends.
//
// # Running an action
//
//	sup, err := supervisor.New(supervisor.Config{Home: home, WorkerPath: bin})
//	defer sup.Close()
//	res, err := sup.Run(ctx, action, map[string]any{"channel": "#eng"})
//
// Cancelling ctx stops the run: the supervisor kills the run's workers
// (SIGKILL to each worker's process group) and returns.
package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sync/singleflight"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/worker"
	"aileron.dev/aileron/worker/sandbox"
)

// Config configures a Supervisor. Zero values are safe defaults.
type Config struct {
	// Home is $AILERON_HOME: store, vault, audit log, installed actions.
	Home string
	// StoreDir is the content-addressed store; default Home/store. Tenants
	// of one server share it: it is keyed by hash, so sharing is safe.
	StoreDir string
	// WorkerSource, if set, is the supervisor whose warm pool and worker
	// settings this one's workers come from (a server's tenants share one
	// pool; workers are bound to nothing until a run binds them, and each
	// serves one run).
	WorkerSource *Supervisor
	// WorkerPath is the aileron-worker binary.
	WorkerPath string
	// WorkerSHA256 is the hex sha256 WorkerPath must have; empty means the
	// hash this aileron binary was built with (make build embeds it), and
	// no check in a development build without one.
	WorkerSHA256 string
	// BrokerPath and BrokerArgs start the broker; default: this
	// executable with the argument "broker".
	BrokerPath string
	BrokerArgs []string
	// BrokerEnv is added to the broker's otherwise empty environment
	// (vault key location or passphrase).
	BrokerEnv []string
	// Broker is the broker's egress and vault configuration; Home is
	// filled in from Config.Home.
	Broker broker.Config
	// Limits bound each invocation; zero fields mean the worker defaults.
	Limits worker.Limits
	// KillGrace is how long past an invocation's deadline the supervisor
	// waits for the worker's own deadline error before it kills the
	// worker (default 100ms).
	KillGrace time.Duration
	// Isolation configures the workers' OS isolation.
	Isolation Isolation
	// PoolSize is the number of pre-spawned, sandboxed, unbound workers
	// kept ready; 0 disables the warm pool.
	PoolSize int
	// Via says how runs are started ("cli", "mcp", "serve"), for audit.
	Via string
	// Logger receives the supervisor's, the broker's and the workers'
	// logs. Default: a null logger.
	Logger hclog.Logger
}

// Supervisor runs actions. It is safe for concurrent use.
type Supervisor struct {
	cfg     Config
	log     hclog.Logger
	store   *cas.Store
	scratch *scratchRoot

	workerOnce sync.Once
	worker     *workerBinary
	workerErr  error

	pool *pool
	// compiles coalesces concurrent compiles of one module.
	compiles singleflight.Group
	// warmConfigID is the engine configuration the pool's workers last
	// reported: the key, with worker.WarmModule's hash, of the cached
	// compiled warm module they load instead of compiling it.
	warmConfigID atomic.Pointer[string]
	// teardown tracks runs' workers being killed after their result was
	// returned; Close waits for it.
	teardown sync.WaitGroup

	mu     sync.Mutex
	broker *brokerConn
	closed bool
}

// brokerConn is one broker process: its go-plugin client, its control
// client and the socket that passes channel descriptors to that same
// process. They are replaced together when the broker restarts, so a
// descriptor never goes to a broker other than the one its Open call
// reaches.
type brokerConn struct {
	plugin *plugin.Client
	proc   *procRunner
	client *broker.Client
	pass   *os.File
	// passMu makes sending a descriptor and the Open call that binds it
	// one critical section, so the broker pairs each descriptor with the
	// right grant.
	passMu sync.Mutex
}

// stop shuts the broker down and closes its pass socket.
func (c *brokerConn) stop() {
	stopBroker(c.plugin, c.client, c.proc)
	c.pass.Close()
}

// New validates cfg and opens the store. The broker starts on first use.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Home == "" {
		return nil, errors.New("supervisor: Home is not set")
	}
	if cfg.WorkerPath == "" {
		return nil, errors.New("supervisor: WorkerPath is not set")
	}
	if _, err := exec.LookPath(cfg.WorkerPath); err != nil {
		return nil, fmt.Errorf("worker binary: %w", err)
	}
	if cfg.BrokerPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable for the broker: %w", err)
		}
		cfg.BrokerPath, cfg.BrokerArgs = exe, []string{"broker"}
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 100 * time.Millisecond
	}
	if cfg.Via == "" {
		cfg.Via = "cli"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := cfg.Isolation.validate(); err != nil {
		return nil, err
	}
	cfg.Broker.Home = cfg.Home
	if cfg.Broker.AuditPath == "" {
		cfg.Broker.AuditPath = AuditPath(cfg.Home)
	}
	// Security: only the descriptors meant for a child reach it; anything
	// this process inherited or opened without O_CLOEXEC stays here.
	if err := sandbox.MarkInheritedFDsCloseOnExec(); err != nil {
		return nil, fmt.Errorf("mark inherited descriptors close-on-exec: %w", err)
	}
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return nil, fmt.Errorf("aileron home: %w", err)
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = StoreDir(cfg.Home)
	}
	store, err := cas.Open(cfg.StoreDir)
	if err != nil {
		return nil, err
	}

	scratch, err := newScratchRoot()
	if err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, log: cfg.Logger.Named("supervisor"), store: store, scratch: scratch}
	if !cfg.Isolation.disabled("cgroup") {
		sweepCgroups.Do(removeStaleCgroups)
	}
	if cfg.PoolSize > 0 {
		s.pool = newPool(cfg.PoolSize, func() (*workerProc, error) {
			return s.spawnWorker(context.Background(), "the warm pool", true)
		}, s.log)
	}
	return s, nil
}

// Store returns the content-addressed store.
func (s *Supervisor) Store() *cas.Store { return s.store }

// Close kills idle pool workers, waits until every finished run's workers
// are gone, stops the broker and removes scratch space. Runs in progress
// fail.
func (s *Supervisor) Close() error {
	s.pool.close()
	s.teardown.Wait()
	s.mu.Lock()
	s.closed = true
	bc := s.broker
	s.broker = nil
	s.mu.Unlock()
	if bc != nil {
		bc.stop()
	}
	s.worker.close()
	return s.scratch.Close()
}

// workerBin opens and verifies the worker binary, once: commands that start
// no worker never read it.
func (s *Supervisor) workerBin() (*workerBinary, error) {
	s.workerOnce.Do(func() {
		expected := s.cfg.WorkerSHA256
		if expected == "" {
			expected = workerSHA256
		}
		s.worker, s.workerErr = openWorkerBinary(s.cfg.WorkerPath, strings.TrimPrefix(expected, "sha256:"), filepath.Join(s.cfg.Home, "cache", "worker-verified.json"))
	})
	return s.worker, s.workerErr
}

// Broker returns the control client of the broker, starting it first if
// needed.
func (s *Supervisor) Broker() (*broker.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("supervisor is closed")
	}
	if s.broker != nil && !s.broker.plugin.Exited() {
		return s.broker.client, nil
	}
	if s.broker != nil {
		// Runs still holding the old client fail: their descriptors and
		// Open calls have nowhere to go (see openChannel).
		s.broker.stop()
		s.broker = nil
	}
	supEnd, brokerEnd, err := broker.NewPassPair()
	if err != nil {
		return nil, err
	}
	// Made through the held scratch root, like a worker's: go-plugin
	// makes its socket directory in it by path.
	sockDir, err := s.scratch.brokerDir()
	if err != nil {
		brokerEnd.Close()
		supEnd.Close()
		return nil, fmt.Errorf("start broker: %w", err)
	}
	spec := procSpec{Path: s.cfg.BrokerPath, Args: s.cfg.BrokerArgs, Env: s.cfg.BrokerEnv, ExtraFiles: []*os.File{brokerEnd}}
	var proc *procRunner
	client := newPluginClient(spec, broker.Handshake, broker.PluginMap(nil), sockDir, s.cfg.Logger.Named("broker"),
		func(p *procRunner) { proc = p })
	bc, err := dispense[*broker.Client](client, broker.PluginName)
	if err != nil {
		brokerEnd.Close()
		supEnd.Close()
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if err := bc.Configure(s.cfg.Broker); err != nil {
		client.Kill()
		supEnd.Close()
		return nil, fmt.Errorf("configure broker: %w", err)
	}
	s.broker = &brokerConn{plugin: client, proc: proc, client: bc, pass: supEnd}
	return bc, nil
}

// stopBroker asks the broker to shut down (it closes its audit log and
// exits), waits for it, and kills it only if it does not exit in time.
// go-plugin's own Kill is not used: its graceful path writes to the
// connection after the broker has gone, and its multiplexer logs that.
func stopBroker(c *plugin.Client, b *broker.Client, proc *procRunner) {
	if b == nil || proc == nil {
		c.Kill()
		return
	}
	done := make(chan struct{})
	go func() {
		_ = b.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	if !proc.waitExit(2 * time.Second) {
		_ = proc.Kill(context.Background())
		proc.waitExit(time.Second)
	}
}

// ErrBrokerRestarted is returned when a run's broker was replaced (it had
// exited) while the run was binding a worker to it.
var ErrBrokerRestarted = errors.New("the broker restarted during the run")

// openChannel hands brokerEnd (closed here, whatever happens) to the broker
// b controls and binds it to g. Sending the descriptor and the Open call are
// one critical section, so the broker pairs each descriptor with the right
// grant.
func (s *Supervisor) openChannel(b *broker.Client, id string, brokerEnd *os.File, g broker.Grant, first *broker.Step) error {
	s.mu.Lock()
	c := s.broker
	s.mu.Unlock()
	// Security: the pass socket must lead to the process b controls. After
	// a restart it leads to a new broker, which would hold a descriptor no
	// Open of this run can bind (or, were ids reused, the wrong one).
	if c == nil || c.client != b {
		brokerEnd.Close()
		return ErrBrokerRestarted
	}
	c.passMu.Lock()
	defer c.passMu.Unlock()
	err := broker.SendChannel(c.pass, id, brokerEnd)
	brokerEnd.Close()
	if err != nil {
		return fmt.Errorf("pass channel to broker: %w", err)
	}
	return b.Open(broker.OpenArgs{ChannelID: id, Grant: g, Step: first})
}

// dispense starts a go-plugin client and returns its typed RPC client.
func dispense[T any](c *plugin.Client, name string) (T, error) {
	var zero T
	rpcClient, err := c.Client()
	if err != nil {
		c.Kill()
		return zero, err
	}
	raw, err := rpcClient.Dispense(name)
	if err != nil {
		c.Kill()
		return zero, err
	}
	t, ok := raw.(T)
	if !ok {
		c.Kill()
		return zero, fmt.Errorf("BUG(aileron): plugin %s dispensed %T", name, raw)
	}
	return t, nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ctxErr maps a finished context to the error a person should see.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ErrCancelled
	}
	return ctx.Err()
}

// ErrCancelled is returned when the caller cancelled the run.
var ErrCancelled = errors.New("run cancelled")
