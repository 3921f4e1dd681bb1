package supervisor

import (
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/worker"
)

// narrow applies an action's [limits] to the operator's: each limit is the
// smaller of the two, so an action can tighten a limit and never loosen one.
// The operator's unset limits are [worker.DefaultLimits] first, so an
// action cannot widen past the defaults either.
func narrow(op worker.Limits, a manifest.Limits) worker.Limits {
	out := op.WithDefaults()
	out.DeadlineMS = minSet(out.DeadlineMS, a.Deadline.Milliseconds())
	out.MemoryBytes = minSet(out.MemoryBytes, a.MemoryMiB<<20)
	out.HostCalls = int(minSet(int64(out.HostCalls), a.HostCalls))
	return out
}

// minSet is min over the values that are set (> 0).
func minSet(a, b int64) int64 {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// limitsFor returns the limits of one action's invocations.
func (s *Supervisor) limitsFor(a *manifest.Action) worker.Limits {
	return narrow(s.cfg.Limits, a.Limits)
}
