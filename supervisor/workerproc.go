package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
)

// workerProc is one running worker process.
type workerProc struct {
	client    *plugin.Client
	rpc       *worker.Client
	proc      *procRunner
	channelID string
	scratch   string
	isolation worker.SandboxReply

	killOnce sync.Once
}

// kill ends the process at once and cleans up after it. It is safe to call
// more than once and from any goroutine.
func (w *workerProc) kill() {
	w.killOnce.Do(func() {
		if w.proc != nil {
			_ = w.proc.Kill(context.Background())
		}
		w.client.Kill()
		_ = os.RemoveAll(w.scratch)
	})
}

// startWorker spawns a sandboxed worker whose broker channel is bound to g.
// The worker is not bound to a module yet.
func (s *Supervisor) startWorker(ctx context.Context, b *broker.Client, g broker.Grant) (_ *workerProc, err error) {
	workerEnd, brokerEnd, err := broker.NewChannelPair()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			workerEnd.Close()
		}
	}()
	id := newID()
	if err := s.openChannel(b, id, brokerEnd, g); err != nil {
		return nil, fmt.Errorf("open broker channel for %s: %w", g.Connector, err)
	}
	defer func() {
		if err != nil {
			_, _ = b.Close(id)
		}
	}()
	scratch, err := os.MkdirTemp(s.scratch, "w-")
	if err != nil {
		return nil, err
	}
	w := &workerProc{channelID: id, scratch: scratch}
	spec := procSpec{
		Path:       s.cfg.WorkerPath,
		Env:        []string{worker.EnvScratch + "=" + scratch, worker.EnvBrokerFD + "=" + strconv.Itoa(worker.BrokerFD)},
		ExtraFiles: []*os.File{workerEnd},
	}
	rf := runnerFunc(spec)
	w.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: worker.Handshake,
		Plugins:         worker.PluginMap(nil),
		RunnerFunc: func(l hclog.Logger, cmd *exec.Cmd, dir string) (runner.Runner, error) {
			r, err := rf(l, cmd, dir)
			if err == nil {
				w.proc = r.(*procRunner)
			}
			return r, err
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC},
		SkipHostEnv:      true,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: scratch},
		StartTimeout:     10 * time.Second,
		Logger:           quietKills(s.cfg.Logger.Named("worker").With("connector", g.Connector)),
	})
	w.rpc, err = dispense[*worker.Client](w.client, worker.PluginName)
	if err != nil {
		_ = os.RemoveAll(scratch)
		return nil, fmt.Errorf("start worker for %s: %w", g.Connector, err)
	}
	if err := ctx.Err(); err != nil {
		w.kill()
		return nil, ctxErr(ctx)
	}
	w.isolation, err = w.rpc.Sandbox(worker.SandboxArgs{ReadOnlyPaths: []string{s.store.Root()}, Strict: s.cfg.Strict})
	if err != nil {
		w.kill()
		return nil, fmt.Errorf("sandbox worker for %s: %w", g.Connector, err)
	}
	if len(w.isolation.Missing) > 0 {
		s.log.Warn("RELAXED ISOLATION: running connector with isolation layers missing", "connector", g.Connector, "missing", strings.Join(w.isolation.Missing, "; "))
	}
	return w, nil
}

// invoke runs one invocation on w with the supervisor's own deadline on
// top of the worker's: if the worker does not answer within the deadline
// plus KillGrace, it is killed and the step fails with deadline_exceeded.
func (s *Supervisor) invoke(ctx context.Context, w *workerProc, deadline time.Duration, inv []byte) (worker.InvokeReply, *worker.Failure) {
	type result struct {
		reply worker.InvokeReply
		err   error
	}
	done := make(chan result, 1)
	go func() {
		r, err := w.rpc.Invoke(worker.InvokeArgs{Invocation: inv})
		done <- result{r, err}
	}()
	timer := time.NewTimer(deadline + s.cfg.KillGrace)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			if w.client.Exited() || errors.Is(r.err, rpc.ErrShutdown) || errors.Is(r.err, io.ErrUnexpectedEOF) || errors.Is(r.err, io.EOF) {
				return r.reply, &worker.Failure{Code: abi.CodeWorkerDied, Message: "worker process ended without answering: " + r.err.Error()}
			}
			return r.reply, &worker.Failure{Code: abi.CodeInternal, Message: r.err.Error()}
		}
		return r.reply, r.reply.Failure
	case <-ctx.Done():
		w.kill()
		return worker.InvokeReply{}, &worker.Failure{Code: abi.CodeCancelled, Message: "run cancelled; worker killed"}
	case <-timer.C:
		w.kill()
		return worker.InvokeReply{}, &worker.Failure{Code: abi.CodeDeadline, Message: fmt.Sprintf("deadline exceeded: the connector did not answer within %s; worker killed", deadline)}
	}
}
