package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
)

// RunResult is the outcome of a successful action run.
type RunResult struct {
	RunID  string       `json:"run_id"`
	Action string       `json:"action"`
	Steps  []StepResult `json:"steps"`
	// Output is the last step's output.
	Output json.RawMessage `json:"output"`
	// Isolation lists the isolation layers every one of the run's
	// workers had (a layer one worker lacked is not listed), sorted.
	Isolation []string `json:"isolation"`
}

// StepResult is the outcome of one step.
type StepResult struct {
	ID         string          `json:"id"`
	Connector  string          `json:"connector"`
	Intent     string          `json:"intent"`
	Output     json.RawMessage `json:"output,omitempty"`
	DurationMS float64         `json:"duration_ms"`
	// Attempts is how many times the step ran (more than 1 after retries).
	Attempts int `json:"attempts"`
	// Log is the connector's captured stderr.
	Log string `json:"log,omitempty"`
}

// StepError is a run that failed in a step.
type StepError struct {
	// RunID identifies the run in the audit log.
	RunID     string
	Step      string
	Connector string
	Intent    string
	// Code is the connector's error code or one of the abi.Code* values.
	Code    string
	Message string
	// Log is the connector's captured stderr, if any.
	Log string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %s (%s %s): %s: %s", e.Step, e.Connector, e.Intent, e.Code, e.Message)
}

// ErrNotInstalled is returned (wrapped) when an action needs a connector
// version that is not in the store.
var ErrNotInstalled = errors.New("connector is not installed")

// Plan is a checked action, ready to run: every connector is installed and
// pinned, every step's grant computed. Nothing has started yet.
type Plan struct {
	Action     *manifest.Action
	Inputs     map[string]any
	Connectors map[string]*cas.Installed
	Grants     []manifest.Grant
	// OnStep, if set, is called before each step starts with the step's
	// ID, its index and the number of steps, for progress reports. It
	// runs on the run's goroutine and should not block.
	OnStep func(stepID string, index, total int)
}

// Prepare checks everything a run needs before any process starts: inputs,
// installed and pinned connectors, each step's grant.
func (s *Supervisor) Prepare(a *manifest.Action, given map[string]any) (*Plan, error) {
	inputs, err := manifest.CoerceInputs(a.Inputs, given)
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", a.Name, err)
	}
	p := &Plan{Action: a, Inputs: inputs, Connectors: map[string]*cas.Installed{}}
	manifests := map[string]*manifest.Manifest{}
	for _, req := range a.Requires {
		ref := req.Ref().String()
		inst, err := s.store.Connector(ref)
		if errors.Is(err, cas.ErrNotFound) {
			return nil, fmt.Errorf("action %s needs %s: %w: run `aileron connector install %s`", a.Name, ref, ErrNotInstalled, ref)
		}
		if err != nil {
			return nil, fmt.Errorf("action %s: load %s: %w", a.Name, ref, err)
		}
		p.Connectors[req.Name.String()] = inst
		manifests[req.Name.String()] = inst.Manifest
	}
	if err := manifest.CheckAction(a, manifests); err != nil {
		return nil, err
	}
	for i, st := range a.Steps {
		g, err := manifest.StepGrant(a, i, manifests[st.Connector.String()])
		if err != nil {
			return nil, err
		}
		p.Grants = append(p.Grants, g)
	}
	return p, nil
}

// Run prepares and runs action a with the given inputs.
func (s *Supervisor) Run(ctx context.Context, a *manifest.Action, given map[string]any) (*RunResult, error) {
	p, err := s.Prepare(a, given)
	if err != nil {
		return nil, err
	}
	return s.RunPlan(ctx, p)
}

// RunPlan runs a prepared plan: steps in order, one worker per connector,
// every worker killed and every channel closed before it returns.
func (s *Supervisor) RunPlan(ctx context.Context, p *Plan) (_ *RunResult, err error) {
	b, err := s.Broker()
	if err != nil {
		return nil, err
	}
	runID := newID()
	res := &RunResult{RunID: runID, Action: p.Action.Name}
	rw := &runWorkers{live: map[string]*workerProc{}}
	started := time.Now()
	defer func() {
		// Security: cut every worker off from the broker before the result
		// leaves; the processes themselves are killed right after, off the
		// caller's critical path (Close waits for that).
		for _, w := range rw.live {
			_, _ = b.Close(w.channelID)
		}
		s.teardown.Add(1)
		go func() {
			defer s.teardown.Done()
			for _, w := range rw.used {
				w.kill()
			}
			s.recordRun(b, p, runID, rw.used, started, err)
		}()
	}()
	outputs := map[string]json.RawMessage{}
	lim := s.limitsFor(p.Action)
	deadline := time.Duration(lim.DeadlineMS) * time.Millisecond
	for i, st := range p.Action.Steps {
		if err := ctx.Err(); err != nil {
			return nil, ctxErr(ctx)
		}
		if p.OnStep != nil {
			p.OnStep(st.ID, i, len(p.Action.Steps))
		}
		sr, err := s.runStep(ctx, b, p, runID, i, rw, outputs, deadline)
		if err != nil {
			return nil, err
		}
		outputs[st.ID] = sr.Output
		res.Steps = append(res.Steps, sr)
		res.Output = sr.Output
	}
	res.Isolation, _ = isolationOf(rw.used)
	return res, nil
}

// runWorkers are the workers of one run.
type runWorkers struct {
	// live is the worker serving each connector now.
	live map[string]*workerProc
	// used is every worker the run bound, in the order the steps bound
	// them; a worker replaced after it died stays here, so the audit
	// record accounts for it.
	used []*workerProc
}

// isolationOf returns the isolation layers every worker had and those any
// worker lacked, each sorted. The record of a run states the weakest
// isolation any of its steps ran under: a layer one worker lacked is not
// in layers, however many others had it.
func isolationOf(ws []*workerProc) (layers, missing []string) {
	for i, w := range ws {
		applied := slices.Clone(w.applied)
		slices.Sort(applied)
		applied = slices.Compact(applied)
		if i == 0 {
			layers = applied
		} else {
			layers = slices.DeleteFunc(layers, func(l string) bool { return !slices.Contains(applied, l) })
		}
		missing = append(missing, w.missing...)
	}
	slices.Sort(missing)
	return layers, slices.Compact(missing)
}

// retryableCodes are the failures after which a step with retries is run
// again: the connector could not reach its service, was rate limited, or
// its worker died. A connector that overran its deadline is not retried.
var retryableCodes = map[string]bool{
	"unavailable":      true,
	"ratelimited":      true,
	abi.CodeWorkerDied: true,
}

// runStep runs step i, and runs it again (same invocation id, next attempt
// number, a fresh worker if the old one died) after a transient failure,
// up to the step's retries.
func (s *Supervisor) runStep(ctx context.Context, b *broker.Client, p *Plan, runID string, i int, rw *runWorkers, outputs map[string]json.RawMessage, deadline time.Duration) (StepResult, error) {
	st := p.Action.Steps[i]
	g := p.Grants[i]
	fqn := st.Connector.String()
	stepErr := func(code, msg string, log []byte) error {
		return &StepError{RunID: runID, Step: st.ID, Connector: fqn, Intent: st.Intent, Code: code, Message: msg, Log: string(log)}
	}
	input, err := manifest.Render(st.With, p.Inputs, outputs)
	if err != nil {
		return StepResult{}, stepErr("bad_input", err.Error(), nil)
	}
	inb, err := json.Marshal(input)
	if err != nil {
		return StepResult{}, stepErr("bad_input", err.Error(), nil)
	}
	step := broker.Step{StepID: st.ID, Intent: st.Intent, Scopes: g.Scopes, DeadlineMS: deadline.Milliseconds(), Via: s.cfg.Via}
	for attempt := 1; ; attempt++ {
		w := rw.live[fqn]
		bound := w == nil
		if bound {
			w, err = s.bindWorker(ctx, b, p, runID, i, step)
			if err != nil {
				var f *worker.Failure
				if errors.As(err, &f) {
					return StepResult{}, stepErr(f.Code, f.Message, nil)
				}
				return StepResult{}, err
			}
			rw.live[fqn] = w
			rw.used = append(rw.used, w)
		}
		inv, err := json.Marshal(abi.Invocation{ABI: abi.Version, ID: runID + "/" + st.ID, Attempt: attempt, Intent: st.Intent, Input: inb})
		if err != nil {
			return StepResult{}, err
		}
		// A worker bound just now got the step with its grant.
		if !bound {
			if err := b.Step(broker.StepArgs{ChannelID: w.channelID, Step: step}); err != nil {
				return StepResult{}, stepErr("denied", err.Error(), nil)
			}
		}
		start := time.Now()
		reply, fail := s.invoke(ctx, w, deadline, inv)
		if reply.StderrTruncated {
			reply.Stderr = append(reply.Stderr, "\n[aileron: log truncated at the stderr_bytes limit]\n"...)
		}
		var code, msg string
		switch {
		case fail != nil && fail.Code == abi.CodeCancelled:
			return StepResult{}, ErrCancelled
		case fail != nil:
			code, msg = fail.Code, fail.Message
		default:
			var r abi.Result
			if err := json.Unmarshal(reply.Result, &r); err != nil {
				return StepResult{}, stepErr(abi.CodeBadResult, err.Error(), reply.Stderr)
			}
			if r.OK {
				return StepResult{ID: st.ID, Connector: fqn, Intent: st.Intent, Output: r.Output, Attempts: attempt,
					DurationMS: float64(time.Since(start).Microseconds()) / 1000, Log: string(reply.Stderr)}, nil
			}
			code, msg = r.Error.Code, r.Error.Message
		}
		if attempt > st.Retries || !retryableCodes[code] {
			return StepResult{}, stepErr(code, msg, reply.Stderr)
		}
		if code == abi.CodeWorkerDied {
			// A fresh worker for the next attempt; this one is gone.
			_, _ = b.Close(w.channelID)
			w.kill()
			delete(rw.live, fqn)
		}
		s.log.Warn("retrying step after a transient failure", "step", st.ID, "connector", fqn, "attempt", attempt+1, "code", code, "reason", msg)
		select {
		case <-ctx.Done():
			return StepResult{}, ctxErr(ctx)
		case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
		}
	}
}

// recordRun appends the run's audit record: outcome, isolation mode, the
// layers all its workers had and those any lacked (see [isolationOf]), and
// each worker's usage in the order the steps bound them.
func (s *Supervisor) recordRun(b *broker.Client, p *Plan, runID string, workers []*workerProc, started time.Time, err error) {
	rec := broker.RunRecord{RunID: runID, Action: p.Action.Name, Via: s.cfg.Via, Isolation: "relaxed", Code: "ok",
		DurationMS: float64(time.Since(started).Microseconds()) / 1000}
	if s.cfg.Isolation.Strict {
		rec.Isolation = "strict"
	}
	rec.Layers, rec.Missing = isolationOf(workers)
	for _, w := range workers {
		rec.PeakRSSKiB = append(rec.PeakRSSKiB, w.usage.peakRSSKiB)
		rec.PeakMemoryKiB = append(rec.PeakMemoryKiB, w.usage.cgroupPeakKiB)
		rec.CPUMS = append(rec.CPUMS, float64(w.usage.cpu.Microseconds())/1000)
	}
	if err != nil {
		rec.Code, rec.Message = "error", err.Error()
		var se *StepError
		if errors.As(err, &se) {
			rec.Code = se.Code
		} else if errors.Is(err, ErrIsolation) {
			rec.Code = "isolation_unavailable"
		} else if errors.Is(err, ErrCancelled) {
			rec.Code = abi.CodeCancelled
		}
	}
	if rerr := b.RecordRun(rec); rerr != nil {
		s.log.Error("audit: record run", "run", runID, "error", rerr)
	}
}

// bindWorker starts the worker for step i's connector and loads its module.
func (s *Supervisor) bindWorker(ctx context.Context, b *broker.Client, p *Plan, runID string, i int, first broker.Step) (*workerProc, error) {
	st := p.Action.Steps[i]
	fqn := st.Connector.String()
	inst := p.Connectors[fqn]
	req := requirement(p.Action, fqn)
	g := p.Grants[i]
	bg := broker.Grant{RunID: runID, Action: p.Action.Name, Connector: fqn, Version: g.Version, Hash: g.Hash,
		Hosts: g.Hosts, CredentialKind: string(g.CredentialKind), Scopes: req.Capabilities}
	w, err := s.acquireWorker(ctx, fqn)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*workerProc, error) {
		w.kill()
		_, _ = b.Close(w.channelID)
		return nil, err
	}
	art, err := s.compiled(w, inst)
	if err != nil {
		return fail(fmt.Errorf("compile %s: %w", fqn, err))
	}
	// Binding the broker channel and loading the module are independent
	// round trips to two processes: do them at the same time.
	opened := make(chan error, 1)
	go func() { opened <- s.bindChannel(b, w, bg, first) }()
	lim := s.limitsFor(p.Action)
	reply, loadErr := w.rpc.Load(worker.LoadArgs{Connector: fqn, ArtifactName: filepath.Base(art), ConfigID: w.configID, Capabilities: g.Imports, Limits: lim})
	if err := <-opened; err != nil {
		return fail(err)
	}
	if loadErr != nil {
		return fail(fmt.Errorf("load %s: %w", fqn, loadErr))
	}
	if reply.Failure != nil {
		return fail(reply.Failure)
	}
	return w, nil
}

func requirement(a *manifest.Action, fqn string) *manifest.Requirement {
	for i := range a.Requires {
		if a.Requires[i].Name.String() == fqn {
			return &a.Requires[i]
		}
	}
	return &manifest.Requirement{}
}
