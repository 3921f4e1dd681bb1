package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
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
	// Isolation lists the isolation layers the run's workers had.
	Isolation []string `json:"isolation"`
}

// StepResult is the outcome of one step.
type StepResult struct {
	ID         string          `json:"id"`
	Connector  string          `json:"connector"`
	Intent     string          `json:"intent"`
	Output     json.RawMessage `json:"output,omitempty"`
	DurationMS float64         `json:"duration_ms"`
	// Log is the connector's captured stderr.
	Log string `json:"log,omitempty"`
}

// StepError is a run that failed in a step.
type StepError struct {
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
		ref := req.Name.String() + "@" + req.Version
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
	workers := map[string]*workerProc{}
	started := time.Now()
	defer func() {
		// Security: cut every worker off from the broker before the result
		// leaves; the processes themselves are killed right after, off the
		// caller's critical path (Close waits for that).
		for _, w := range workers {
			_, _ = b.Close(w.channelID)
		}
		s.teardown.Add(1)
		go func() {
			defer s.teardown.Done()
			for _, w := range workers {
				w.kill()
			}
			s.recordRun(b, p, runID, workers, started, err)
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
		g := p.Grants[i]
		fqn := st.Connector.String()
		stepErr := func(code, msg string, log []byte) error {
			return &StepError{Step: st.ID, Connector: fqn, Intent: st.Intent, Code: code, Message: msg, Log: string(log)}
		}
		w := workers[fqn]
		if w == nil {
			w, err = s.bindWorker(ctx, b, p, runID, i)
			if err != nil {
				var f *worker.Failure
				if errors.As(err, &f) {
					return nil, stepErr(f.Code, f.Message, nil)
				}
				return nil, err
			}
			workers[fqn] = w
			res.Isolation = w.applied
		}
		input, err := manifest.Render(st.With, p.Inputs, outputs)
		if err != nil {
			return nil, stepErr("bad_input", err.Error(), nil)
		}
		inb, err := json.Marshal(input)
		if err != nil {
			return nil, stepErr("bad_input", err.Error(), nil)
		}
		inv, err := json.Marshal(abi.Invocation{ABI: abi.Version, ID: runID + "/" + st.ID, Attempt: 1, Intent: st.Intent, Input: inb})
		if err != nil {
			return nil, err
		}
		if err := b.Step(broker.StepArgs{ChannelID: w.channelID, Step: broker.Step{
			StepID: st.ID, Intent: st.Intent, Scopes: g.Scopes, DeadlineMS: deadline.Milliseconds(), Via: s.cfg.Via,
		}}); err != nil {
			return nil, stepErr("denied", err.Error(), nil)
		}
		start := time.Now()
		reply, fail := s.invoke(ctx, w, deadline, inv)
		if fail != nil {
			if fail.Code == abi.CodeCancelled {
				return nil, ErrCancelled
			}
			return nil, stepErr(fail.Code, fail.Message, reply.Stderr)
		}
		var r abi.Result
		if err := json.Unmarshal(reply.Result, &r); err != nil {
			return nil, stepErr(abi.CodeBadResult, err.Error(), reply.Stderr)
		}
		if !r.OK {
			return nil, stepErr(r.Error.Code, r.Error.Message, reply.Stderr)
		}
		outputs[st.ID] = r.Output
		res.Steps = append(res.Steps, StepResult{ID: st.ID, Connector: fqn, Intent: st.Intent, Output: r.Output,
			DurationMS: float64(time.Since(start).Microseconds()) / 1000, Log: string(reply.Stderr)})
		res.Output = r.Output
	}
	return res, nil
}

// recordRun appends the run's audit record: outcome, isolation mode and the
// layers its workers had (or lacked).
func (s *Supervisor) recordRun(b *broker.Client, p *Plan, runID string, workers map[string]*workerProc, started time.Time, err error) {
	rec := broker.RunRecord{RunID: runID, Action: p.Action.Name, Via: s.cfg.Via, Isolation: "relaxed", Code: "ok",
		DurationMS: float64(time.Since(started).Microseconds()) / 1000}
	if s.cfg.Isolation.Strict {
		rec.Isolation = "strict"
	}
	for _, w := range workers {
		rec.Layers, rec.Missing = w.applied, append(rec.Missing, w.missing...)
		rec.PeakRSSKiB = append(rec.PeakRSSKiB, w.peakRSSKiB)
		rec.CPUMS = append(rec.CPUMS, float64(w.cpu.Microseconds())/1000)
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
func (s *Supervisor) bindWorker(ctx context.Context, b *broker.Client, p *Plan, runID string, i int) (*workerProc, error) {
	st := p.Action.Steps[i]
	fqn := st.Connector.String()
	inst := p.Connectors[fqn]
	req := requirement(p.Action, fqn)
	g := p.Grants[i]
	bg := broker.Grant{RunID: runID, Action: p.Action.Name, Connector: fqn, Version: g.Version, Hash: g.Hash,
		Hosts: g.Hosts, CredentialKind: string(g.CredentialKind), Scopes: req.Capabilities}
	w, err := s.startWorker(ctx, b, bg)
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
	lim := s.limitsFor(p.Action)
	reply, err := w.rpc.Load(worker.LoadArgs{Connector: fqn, ArtifactName: filepath.Base(art), ConfigID: w.configID, Capabilities: g.Imports, Limits: lim})
	if err != nil {
		return fail(fmt.Errorf("load %s: %w", fqn, err))
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
