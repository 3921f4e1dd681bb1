package supervisor

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pool keeps pre-spawned, sandboxed workers that are bound to nothing: no
// connector, no module, no grant (their broker channel's far end is still
// held here). A run takes one and binds it; it serves that one run and is
// killed with it, exactly like a freshly spawned worker. The pool only
// moves spawning and lockdown off the request's critical path.
type pool struct {
	size int
	// spawn starts one sandboxed, unbound worker.
	spawn func() (*workerProc, error)
	log   hclog.Logger
	// done is closed by close: spawns backing off give up at once.
	done chan struct{}

	mu       sync.Mutex
	cond     *sync.Cond
	ready    []*workerProc
	starting int
	closed   bool
	failures int
	wg       sync.WaitGroup
}

func newPool(size int, spawn func() (*workerProc, error), log hclog.Logger) *pool {
	p := &pool{size: size, spawn: spawn, log: log, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	p.refill()
	return p
}

// take returns a ready worker, waiting for one being spawned if none is
// ready yet, or nil when none is on its way (then the caller spawns one
// itself and reports whatever went wrong). A ready worker that died while
// idle is killed (its cgroup and scratch removed) and replaced, never
// returned. A nil pool is a disabled pool.
func (p *pool) take(ctx context.Context) *workerProc {
	if p == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	var w *workerProc
	var dead []*workerProc
	p.mu.Lock()
	for {
		for len(p.ready) == 0 && p.starting > 0 && !p.closed && ctx.Err() == nil {
			p.cond.Wait()
		}
		n := len(p.ready)
		if n == 0 {
			break
		}
		w, p.ready = p.ready[n-1], p.ready[:n-1]
		if !w.client.Exited() {
			break
		}
		// It died idle (killed from outside, OOM at warm-up): a run
		// would only fail to load its module in it. Start another.
		dead, w = append(dead, w), nil
		p.refillLocked()
	}
	p.mu.Unlock()
	for _, d := range dead {
		p.log.Warn("warm pool: a ready worker had exited; replaced it")
		d.kill()
	}
	p.refill()
	return w
}

// refill starts as many spawns as the pool is short of workers.
func (p *pool) refill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refillLocked()
}

// refillLocked is refill with p.mu held.
func (p *pool) refillLocked() {
	for !p.closed && len(p.ready)+p.starting < p.size {
		p.starting++
		p.wg.Add(1)
		go p.spawnOne()
	}
}

func (p *pool) spawnOne() {
	defer p.wg.Done()
	w, err := p.spawn()
	p.mu.Lock()
	p.starting--
	switch {
	case err != nil:
		p.failures++
		n := p.failures
		p.cond.Broadcast() // waiters must not wait for this one
		p.mu.Unlock()
		p.log.Error("warm pool: cannot start a worker", "error", err)
		// Back off so a broken host does not spin; runs still spawn
		// their own workers and report the error. Close does not wait
		// for the back-off.
		select {
		case <-p.done:
		case <-time.After(time.Duration(min(n, 50)) * 100 * time.Millisecond):
			p.refill()
		}
		return
	case p.closed:
		p.mu.Unlock()
		w.kill()
		return
	}
	p.failures = 0
	p.ready = append(p.ready, w)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// waitReady blocks until the pool is full or ctx ends.
func (p *pool) waitReady(ctx context.Context) {
	if p == nil {
		return
	}
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.ready) < p.size && !p.closed && ctx.Err() == nil {
		p.cond.Wait()
	}
}

// close kills every idle worker and waits for spawns in flight.
func (p *pool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if !p.closed {
		close(p.done)
	}
	p.closed = true
	idle := p.ready
	p.ready = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, w := range idle {
		w.kill()
	}
	p.wg.Wait()
}

// WaitPoolReady blocks until finished runs' workers are torn down and the
// warm pool holds its configured number of ready workers (or ctx ends).
// Benchmarks use it to measure a request that finds the supervisor at
// rest; a server has no need to call it. It must not race with new runs.
func (s *Supervisor) WaitPoolReady(ctx context.Context) {
	s.teardown.Wait()
	s.pool.waitReady(ctx)
}

// PoolReady returns how many ready workers the warm pool holds now (0
// without a pool), for a server's metrics.
func (s *Supervisor) PoolReady() int {
	p := s.pool
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready)
}
