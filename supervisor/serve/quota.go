package serve

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Names of quotas, for errors and the quota_rejections metric.
const (
	quotaConcurrent = "concurrent_runs"
	quotaRate       = "runs_per_minute"
)

// tenantQuota is one tenant's run quotas. It outlives reloads: a reload
// changes its limits, never its count of runs in flight.
type tenantQuota struct {
	mu      sync.Mutex
	cfg     QuotaConfig
	running int
	runs    *rate.Limiter // nil: no rate limit
}

func newTenantQuota(q QuotaConfig) *tenantQuota {
	t := &tenantQuota{}
	t.set(q)
	return t
}

// set applies new limits.
func (t *tenantQuota) set(q QuotaConfig) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cfg = q
	switch {
	case q.RunsPerMinute <= 0:
		t.runs = nil
	case t.runs == nil:
		t.runs = rate.NewLimiter(rate.Limit(float64(q.RunsPerMinute)/60), q.RunsPerMinute)
	default:
		t.runs.SetLimit(rate.Limit(float64(q.RunsPerMinute) / 60))
		t.runs.SetBurst(q.RunsPerMinute)
	}
}

// quotaError is a refusal: which quota, what to tell the caller, and when
// to retry.
type quotaError struct {
	quota      string
	msg        string
	retryAfter time.Duration
}

func (e *quotaError) Error() string { return e.msg }

// admit takes a slot for one run of tenant name, or says which quota
// refuses it. release must be called once the run ends. The concurrency
// slot is taken first and the rate token last, through take (which may
// still refuse: the server's own admission comes between them), so a run
// refused for concurrency spends no rate token.
func (t *tenantQuota) admit(name string) (release func(), err *quotaError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.cfg.ConcurrentRuns; c > 0 && t.running >= c {
		return nil, &quotaError{quota: quotaConcurrent, retryAfter: time.Second,
			msg: fmt.Sprintf("tenant %s is running its maximum of %d concurrent runs; retry when one finishes", name, c)}
	}
	t.running++
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			t.running--
			t.mu.Unlock()
		})
	}, nil
}

// take spends one run from the rate quota.
func (t *tenantQuota) take(name string, now time.Time) *quotaError {
	t.mu.Lock()
	lim, rpm := t.runs, t.cfg.RunsPerMinute
	t.mu.Unlock()
	if lim == nil {
		return nil
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); r.OK() && d == 0 {
		return nil
	} else {
		r.CancelAt(now)
		return &quotaError{quota: quotaRate, retryAfter: d,
			msg: fmt.Sprintf("tenant %s has used its quota of %d runs per minute; retry in %s", name, rpm, roundUp(d))}
	}
}

// inFlight is the number of the tenant's runs in flight.
func (t *tenantQuota) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running
}

func roundUp(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// admission is the server's cap on runs in flight over all tenants.
type admission struct {
	mu      sync.Mutex
	max     int
	running int
}

// enter takes a slot, or reports false when the server is full.
func (a *admission) enter() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running >= a.max {
		return false
	}
	a.running++
	return true
}

func (a *admission) leave() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running--
}
