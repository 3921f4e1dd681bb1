// Package server implements the worker side of the [worker.Worker]
// contract: it runs one connector module with worker/host, reaches the
// broker only through the channel the supervisor handed it, and locks the
// process down with worker/sandbox before it loads anything untrusted.
//
// It imports its parent package for the contract types: the parent must stay
// free of cgo so the supervisor can speak the contract without linking
// wasmtime (docs/RATIONALE.md, "Why is the worker implementation a
// subpackage?").
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"

	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
	"aileron.dev/aileron/worker/host"
	"aileron.dev/aileron/worker/sandbox"
	"aileron.dev/aileron/worker/sandbox/preinit"
)

// Errors returned to the supervisor for calls out of order.
var (
	// ErrNotSandboxed is returned by Load before Sandbox succeeded.
	ErrNotSandboxed = errors.New("worker is not sandboxed yet: call Sandbox first")
	// ErrNotLoaded is returned by Invoke before Load succeeded.
	ErrNotLoaded = errors.New("no module loaded: call Load first")
	// ErrAlreadyLoaded is returned by a second Load: a worker serves one
	// connector for one run.
	ErrAlreadyLoaded = errors.New("worker already bound to a connector")
)

// Server is one worker process's implementation of [worker.Worker].
type Server struct {
	log     hclog.Logger
	scratch string
	broker  *brokerServices
	initErr error

	mu        sync.Mutex
	engine    *wasmtime.Engine
	sandboxed bool
	connector string
	module    *wasmtime.Module
	runner    *host.Runner
}

var _ worker.Worker = (*Server)(nil)

// Main is the worker binary's main: it serves the contract over go-plugin
// and returns the exit status.
func Main() int {
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "worker",
		Level:      hclog.Info,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	if os.Getenv(worker.Handshake.MagicCookieKey) != worker.Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "aileron-worker is started by aileron; it is not meant to be run by hand")
		return 2
	}
	// Still trusted code: mount a fresh /proc if we are pid 1 of our own
	// namespace, set rlimits, drop capabilities, no_new_privs. Init runs
	// even when a step of the constructor failed, and applies every layer
	// it can: a failure is reported by Sandbox (the layers show as
	// missing, with the reason), not hidden, and costs no other layer.
	done, preErr := preinit.Done()
	initErr := errors.Join(preErr, sandbox.Init(sandbox.InitConfig{PreInitDone: done, MaxFileSize: worker.MaxScratchFileBytes}))
	if initErr != nil {
		log.Warn("sandbox init failed", "error", initErr)
	}
	s, err := New(log)
	if err != nil {
		log.Error("worker start failed", "error", err)
		return 1
	}
	s.initErr = initErr
	worker.Serve(s, log)
	return 0
}

// New prepares a server from the environment the supervisor set.
func New(log hclog.Logger) (*Server, error) {
	scratch := os.Getenv(worker.EnvScratch)
	if scratch == "" {
		return nil, fmt.Errorf("%s is not set", worker.EnvScratch)
	}
	// The channel is wrapped now, while this is still trusted code that
	// sets up every descriptor.
	conn, err := net.FileConn(os.NewFile(worker.BrokerFD, "broker-channel"))
	if err != nil {
		return nil, fmt.Errorf("broker channel: %w", err)
	}
	return &Server{log: log, scratch: scratch, broker: &brokerServices{conn: conn, log: log}}, nil
}

// Sandbox implements worker.Worker.
func (s *Server) Sandbox(a worker.SandboxArgs) (worker.SandboxReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reply, err := lockdown(a, s.scratch, s.initErr)
	reply.ConfigID = host.ConfigID()
	if err != nil {
		return reply, err
	}
	s.sandboxed = true
	if a.Warm {
		var path string
		if a.WarmArtifact != "" && a.WarmConfigID == host.ConfigID() {
			if path, err = artifactPath(a.WarmArtifact); err != nil {
				return reply, err
			}
		}
		if reply.WarmArtifact, err = host.Warm(s.engineLocked(), s.scratch, path); err != nil {
			s.log.Warn("warm-up failed", "error", err)
		} else if reply.WarmArtifact != nil {
			// Once per supervisor when all is well: more says the
			// cached artifact cannot be used.
			s.log.Info("warm-up compiled the built-in module", "cached_artifact", a.WarmArtifact)
		}
	}
	return reply, nil
}

// artifactPath returns where the worker opens the compiled artifact name
// in the cache: under the directory the supervisor handed it, never
// anywhere else.
func artifactPath(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("bad artifact name %q", name)
	}
	return worker.CacheDir + "/" + name, nil
}

// Compile implements worker.Worker. Compiling is processing untrusted input,
// so it happens here, in a sandboxed worker, not in the supervisor.
func (s *Server) Compile(a worker.CompileArgs) (worker.CompileReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sandboxed {
		return worker.CompileReply{}, ErrNotSandboxed
	}
	art, err := host.Compile(s.engineLocked(), a.Wasm)
	if err != nil {
		return worker.CompileReply{}, err
	}
	return worker.CompileReply{Artifact: art, ConfigID: host.ConfigID()}, nil
}

func (s *Server) engineLocked() *wasmtime.Engine {
	if s.engine == nil {
		s.engine = host.NewEngine()
	}
	return s.engine
}

// Load implements worker.Worker.
func (s *Server) Load(a worker.LoadArgs) (worker.LoadReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sandboxed {
		return worker.LoadReply{}, ErrNotSandboxed
	}
	if s.runner != nil {
		return worker.LoadReply{}, ErrAlreadyLoaded
	}
	if a.ConfigID != host.ConfigID() {
		return worker.LoadReply{}, fmt.Errorf("compiled module was built for %q, this worker runs %q", a.ConfigID, host.ConfigID())
	}
	path, err := artifactPath(a.ArtifactName)
	if err != nil {
		return worker.LoadReply{}, err
	}
	m, err := host.Load(s.engineLocked(), path)
	if err != nil {
		return worker.LoadReply{}, err
	}
	s.broker.log = s.log.With("connector", a.Connector)
	r, err := host.NewRunner(s.engine, m, a.Capabilities, a.Limits, s.broker, s.scratch)
	if err != nil {
		m.Close()
		var f *worker.Failure
		if errors.As(err, &f) {
			return worker.LoadReply{Failure: f}, nil
		}
		return worker.LoadReply{}, err
	}
	s.connector, s.module, s.runner = a.Connector, m, r
	return worker.LoadReply{}, nil
}

// Invoke implements worker.Worker.
func (s *Server) Invoke(a worker.InvokeArgs) (worker.InvokeReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runner == nil {
		return worker.InvokeReply{}, ErrNotLoaded
	}
	if escapeHook != nil {
		var inv abi.Invocation
		if json.Unmarshal(a.Invocation, &inv) == nil {
			if res, ok := escapeHook(inv.Intent, inv.Input); ok {
				return worker.InvokeReply{Result: res}, nil
			}
		}
	}
	out, err := s.runner.Invoke(context.Background(), a.Invocation)
	var reply worker.InvokeReply
	if out != nil {
		reply.Stderr, reply.StderrTruncated = out.Stderr, out.StderrTruncated
		reply.HostCalls, reply.DurationNS = out.HostCalls, out.Duration.Nanoseconds()
	}
	if err != nil {
		var f *worker.Failure
		if errors.As(err, &f) {
			reply.Failure = f
			return reply, nil
		}
		return reply, err
	}
	reply.Result, err = json.Marshal(out.Result)
	return reply, err
}

// brokerServices implements host.Services over the broker channel.
type brokerServices struct {
	mu     sync.Mutex
	conn   net.Conn
	log    hclog.Logger
	broken error
}

func (b *brokerServices) roundTrip(ctx context.Context, req *channel.Request) (*channel.Response, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.broken != nil {
		return nil, b.broken
	}
	c := b.conn
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	// A channel that failed mid-exchange (a timeout, a torn frame) is out
	// of step with the broker: the next read could return the previous
	// answer. Close it and fail every later call instead.
	fail := func(err error) (*channel.Response, error) {
		b.broken = fmt.Errorf("broker channel closed after an earlier failure: %w", err)
		_ = c.Close()
		return nil, err
	}
	if err := channel.WriteFrame(c, req); err != nil {
		return fail(fmt.Errorf("send to broker: %w", err))
	}
	var resp channel.Response
	if err := channel.ReadFrame(c, &resp); err != nil {
		return fail(fmt.Errorf("receive from broker: %w", err))
	}
	return &resp, nil
}

// HTTP implements host.Services.
func (b *brokerServices) HTTP(ctx context.Context, req *abi.HTTPRequest) (*abi.HTTPResponse, error) {
	resp, err := b.roundTrip(ctx, &channel.Request{Op: channel.OpHTTP, HTTP: req})
	if err != nil {
		code := abi.ErrnoUnavailable
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &host.CallError{Errno: code, Err: abi.Error{Code: abi.CodeDeadline, Message: "deadline exceeded while waiting for the broker"}}
		}
		return nil, &host.CallError{Errno: code, Err: abi.Error{Code: code.String(), Message: err.Error()}}
	}
	if resp.Errno != abi.ErrnoOK || resp.HTTP == nil {
		e := abi.Error{Code: resp.Errno.String(), Message: "broker refused the request"}
		if resp.Error != nil {
			e = *resp.Error
		}
		errno := resp.Errno
		if errno == abi.ErrnoOK {
			errno = abi.ErrnoInternal
		}
		return nil, &host.CallError{Errno: errno, Err: e}
	}
	return resp.HTTP, nil
}

// Audit implements host.Services.
func (b *brokerServices) Audit(ctx context.Context, ev *abi.AuditEvent) error {
	resp, err := b.roundTrip(ctx, &channel.Request{Op: channel.OpAudit, Audit: ev})
	if err != nil {
		return err
	}
	if resp.Errno != abi.ErrnoOK {
		if resp.Error != nil {
			return resp.Error
		}
		return errors.New(resp.Errno.String())
	}
	return nil
}

// Log implements host.Services: connector records go to the worker's JSON
// stderr, which go-plugin relays into the supervisor's log.
func (b *brokerServices) Log(rec abi.LogRecord) {
	args := make([]any, 0, 2+2*len(rec.Fields))
	args = append(args, "source", "connector")
	for k, v := range rec.Fields {
		args = append(args, "connector."+k, v)
	}
	switch rec.Level {
	case "debug":
		b.log.Debug(rec.Msg, args...)
	case "warn":
		b.log.Warn(rec.Msg, args...)
	case "error":
		b.log.Error(rec.Msg, args...)
	default:
		b.log.Info(rec.Msg, args...)
	}
}
