package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
)

// Result is the structured content of a successful call.
type Result struct {
	// RunID identifies the run in the audit log.
	RunID  string `json:"run_id"`
	Action string `json:"action"`
	// Output is the last step's output.
	Output json.RawMessage `json:"output"`
	// Steps are every step's outcome, in order.
	Steps []StepResult `json:"steps"`
}

// StepResult is one step's outcome. Connector logs are not included: they
// go to the server's log.
type StepResult struct {
	ID         string          `json:"id"`
	Connector  string          `json:"connector"`
	Intent     string          `json:"intent"`
	Output     json.RawMessage `json:"output,omitempty"`
	DurationMS float64         `json:"duration_ms"`
}

// handler runs action a for each call of tool name. By the time it runs
// the SDK has validated the arguments against the tool's input schema.
func (s *Server) handler(name string, a *manifest.Action) mcp.ToolHandlerFor[map[string]any, any] {
	return func(ctx context.Context, req *mcp.CallToolRequest, args map[string]any) (*mcp.CallToolResult, any, error) {
		start := time.Now()
		log := s.log.With(logTool, name, logAction, a.Name)
		plan, err := s.cfg.Runner.Prepare(a, args)
		if err != nil {
			log.Info("call refused", logOutcome, "refused", logError, err)
			return nil, nil, fmt.Errorf("cannot run: %w", err)
		}
		if tok := req.Params.GetProgressToken(); tok != nil {
			plan.OnStep = func(stepID string, i, n int) {
				st := a.Steps[i]
				// Best effort: a client that went away cancels ctx too.
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: tok,
					Progress:      float64(i),
					Total:         float64(n),
					Message:       fmt.Sprintf("step %d of %d: %s (%s %s)", i+1, n, stepID, st.Connector, st.Intent),
				})
			}
		}
		res, err := s.cfg.Runner.RunPlan(ctx, plan)
		if err != nil {
			var se *supervisor.StepError
			switch {
			case errors.As(err, &se):
				log.Info("call failed", logOutcome, "step_failed", logError, err, logDuration, time.Since(start))
				if se.Log != "" {
					log.Debug("connector log", "connector", se.Connector, "log", se.Log)
				}
				return nil, nil, fmt.Errorf("action %s failed: %w", a.Name, err)
			case errors.Is(err, supervisor.ErrCancelled) || ctx.Err() != nil:
				log.Info("call cancelled", logOutcome, "cancelled", logDuration, time.Since(start))
				return nil, nil, fmt.Errorf("action %s: %w", a.Name, supervisor.ErrCancelled)
			default:
				log.Error("call failed", logOutcome, "error", logError, err, logDuration, time.Since(start))
				return nil, nil, fmt.Errorf("action %s could not run: %w", a.Name, err)
			}
		}
		out := Result{RunID: res.RunID, Action: res.Action, Output: res.Output, Steps: make([]StepResult, len(res.Steps))}
		for i, st := range res.Steps {
			out.Steps[i] = StepResult{ID: st.ID, Connector: st.Connector, Intent: st.Intent, Output: st.Output, DurationMS: st.DurationMS}
			if st.Log != "" {
				log.Debug("connector log", logRunID, res.RunID, "step", st.ID, "log", st.Log)
			}
		}
		log.Info("call done", logRunID, res.RunID, logOutcome, "ok", logDuration, time.Since(start))
		return nil, out, nil
	}
}
