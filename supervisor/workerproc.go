package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
	"aileron.dev/aileron/worker/sandbox"
)

// workerProc is one running worker process.
type workerProc struct {
	client    *plugin.Client
	rpc       *worker.Client
	proc      *procRunner
	channelID string
	scratch   string
	cgroup    *sandbox.Cgroup
	configID  string
	// applied and missing are the isolation layers in force and not.
	applied, missing []string
	// brokerEnd is the broker's end of the channel until it is handed to
	// the broker with a grant.
	brokerEnd *os.File

	killOnce sync.Once
	// oom is whether the kernel killed the worker at its cgroup memory
	// limit, read by kill before it removes the cgroup.
	oom bool
	// usage is what the worker's processes used, read just before the
	// kill.
	usage workerUsage
}

// kill ends the process at once and cleans up after it. It is safe to call
// more than once and from any goroutine.
// connectionLost reports whether an RPC to a worker failed because the
// connection did (the worker died or is dying: EOF, rpc.ErrShutdown,
// yamux's "session shutdown", whichever the race delivers first) rather
// than with an error the worker answered.
func connectionLost(err error) bool {
	var answered rpc.ServerError
	return err != nil && !errors.As(err, &answered)
}

func (w *workerProc) kill() {
	w.killOnce.Do(func() {
		w.usage = w.measure()
		if w.cgroup != nil {
			_ = w.cgroup.Kill()
		}
		if w.proc != nil {
			_ = w.proc.Kill(context.Background())
		}
		if w.proc == nil {
			w.client.Kill() // never started: let go-plugin tidy up
		} else {
			// go-plugin's own Kill would first ask the dead process to
			// quit over RPC, and its multiplexer would log the write
			// errors. Its goroutines end by themselves at EOF once the
			// process is gone; wait until it is reaped.
			w.proc.waitExit(2 * time.Second)
		}
		if w.cgroup != nil {
			// One read, and it counts threads and processes that ended
			// before measure ran, which the per-thread sum misses.
			if cpu, ok := w.cgroup.CPUTime(); ok {
				w.usage.cpu = cpu
			}
			w.oom = w.cgroup.OOMKilled()
			_ = w.cgroup.Remove()
		}
		if w.brokerEnd != nil {
			w.brokerEnd.Close()
		}
		_ = os.RemoveAll(w.scratch)
	})
}

// acquireWorker returns a sandboxed worker bound to nothing yet: one from
// the warm pool if there is one ready (or about to be), else a fresh one.
func (s *Supervisor) acquireWorker(ctx context.Context, label string) (*workerProc, error) {
	src := s
	if s.cfg.WorkerSource != nil {
		src = s.cfg.WorkerSource
	}
	w := src.pool.take(ctx)
	if w == nil {
		var err error
		if w, err = src.spawnWorker(ctx, label, false); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		w.kill()
		return nil, ctxErr(ctx)
	}
	// A worker from another supervisor (serve's root pool serves every
	// tenant) has a cgroup sized from that one's limits: size it for this
	// supervisor's, or a tenant allowed 1 GiB would be killed at the
	// root's 448 MiB.
	if want := s.cgroupMemoryBytes(); w.cgroup != nil && w.cgroup.MemoryMax() != want {
		if err := w.cgroup.SetMemoryMax(want); err != nil {
			w.kill()
			return nil, fmt.Errorf("size worker cgroup for %s: %w", label, err)
		}
	}
	return w, nil
}

// bindChannel hands the broker end of w's channel to the broker together
// with grant g and the first step; from then on the broker answers w's
// requests under g.
func (s *Supervisor) bindChannel(b *broker.Client, w *workerProc, g broker.Grant, first broker.Step) error {
	brokerEnd := w.brokerEnd
	w.brokerEnd = nil
	if err := s.openChannel(b, w.channelID, brokerEnd, g, &first); err != nil {
		return fmt.Errorf("open broker channel for %s: %w", g.Connector, err)
	}
	return nil
}

// spawnWorker starts a worker process, places it in its cgroup and has it
// lock itself down (and, for the pool, warm up its engine). It is bound to nothing: its broker channel exists but
// the broker's end stays here until a grant is bound to it, and it has no
// module. label names what it is for in logs and errors.
func (s *Supervisor) spawnWorker(ctx context.Context, label string, warm bool) (_ *workerProc, err error) {
	bin, err := s.workerBin()
	if err != nil {
		return nil, err
	}
	workerEnd, brokerEnd, err := broker.NewChannelPair()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			workerEnd.Close()
			brokerEnd.Close()
		}
	}()
	scratch, err := s.scratch.workerDir()
	if err != nil {
		return nil, err
	}
	cache, err := os.OpenFile(s.store.CompiledDir(), os.O_RDONLY|unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.RemoveAll(scratch)
		return nil, fmt.Errorf("open compiled-module cache: %w", err)
	}
	defer cache.Close()
	ws := s.prepareSpawn()
	w := &workerProc{channelID: newID(), scratch: scratch, cgroup: ws.cgroup, brokerEnd: brokerEnd}
	// The worker creates its namespaces itself and, before it forks into
	// its PID namespace, waits for one byte on syncR: by then the
	// supervisor has placed it in its cgroup (v1 cannot at birth).
	syncR, syncW, err := os.Pipe()
	if err != nil {
		_ = os.RemoveAll(scratch)
		return nil, err
	}
	defer syncR.Close()
	defer syncW.Close()
	started := func(pid int) error {
		if w.cgroup != nil {
			if _, atBirth := w.cgroup.FD(); !atBirth {
				if err := w.cgroup.AddPID(pid); err != nil {
					return fmt.Errorf("place worker for %s in its cgroup: %w", label, err)
				}
			}
		}
		_, err := syncW.Write([]byte{1})
		return err
	}
	spec := procSpec{
		Path: bin.execPath,
		Env: []string{
			worker.EnvScratch + "=" + scratch,
			// One invocation runs at a time and wasm runs on one thread;
			// fewer Go Ps mean fewer threads to create, switch between and
			// lock down (measured: ~10% less CPU per worker, ~20% more runs
			// per second; Cranelift compiles on its own threads).
			"GOMAXPROCS=1",
			sandbox.SyncFDEnv + "=" + strconv.Itoa(worker.SyncFD),
		},
		// At worker.BrokerFD, worker.CacheFD and worker.SyncFD.
		ExtraFiles: []*os.File{workerEnd, cache, syncR},
		Prepare:    applySpawn(ws, scratch),
		Started:    started,
	}
	w.client = newPluginClient(spec, worker.Handshake, worker.PluginMap(nil), scratch, s.cfg.Logger.Named("worker"),
		func(p *procRunner) { w.proc = p })
	w.rpc, err = dispense[*worker.Client](w.client, worker.PluginName)
	if err != nil {
		w.kill()
		return nil, fmt.Errorf("start worker for %s: %w", label, err)
	}
	if err := ctx.Err(); err != nil {
		w.kill()
		return nil, ctxErr(ctx)
	}
	args := s.sandboxArgs()
	if warm {
		args.Warm = true
		args.WarmArtifact, args.WarmConfigID = s.warmArtifact()
	}
	reply, err := w.rpc.Sandbox(args)
	if err != nil {
		w.kill()
		if s.cfg.Isolation.Strict {
			return nil, fmt.Errorf("%w: %s: %v", ErrIsolation, label, err)
		}
		return nil, fmt.Errorf("sandbox worker for %s: %w", label, err)
	}
	w.configID = reply.ConfigID
	if ws.cfg.Namespaces {
		// Security: record the namespaces the worker is in, read from
		// /proc, not those it was asked to make: with UnshareInChild its
		// constructor makes them, and that fails where user namespaces
		// are restricted (AppArmor, unprivileged_userns_clone=0).
		for _, l := range sandbox.Namespaces(w.proc.Pid()).Layers {
			if l.Active {
				reply.Applied = append(reply.Applied, l.Name)
			} else {
				reply.Missing = append(reply.Missing, l.Name+": "+l.Detail)
			}
		}
	}
	w.applied, w.missing, err = s.checkIsolation(ws, reply, label)
	if err != nil {
		w.kill()
		return nil, err
	}
	if warm {
		s.keepWarmArtifact(args, reply)
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
			if connectionLost(r.err) {
				// The worker is gone or going: give its first process a
				// moment to end the way the worker did (its wait status
				// names the signal), then make sure.
				if w.proc != nil {
					w.proc.waitExit(100 * time.Millisecond)
				}
				w.kill() // reads the cgroup's OOM count before removing it
				if w.oom {
					return r.reply, &worker.Failure{Code: abi.CodeMemoryLimit, Message: "memory limit exceeded: the kernel killed the worker at its cgroup limit"}
				}
				return r.reply, &worker.Failure{Code: abi.CodeWorkerDied, Message: "worker process ended without answering" + w.proc.exitDetail()}
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
