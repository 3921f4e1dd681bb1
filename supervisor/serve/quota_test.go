package serve

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTenantQuota_Concurrent(t *testing.T) {
	q := newTenantQuota(QuotaConfig{ConcurrentRuns: 2})
	r1, err := q.admit("a")
	require.Nil(t, err)
	r2, err := q.admit("a")
	require.Nil(t, err)
	_, err = q.admit("a")
	require.Equal(t, &quotaError{quota: quotaConcurrent, retryAfter: time.Second, msg: "tenant a is running its maximum of 2 concurrent runs; retry when one finishes"}, err)
	r1()
	r1() // twice is once
	require.Equal(t, 1, q.inFlight())
	r3, err := q.admit("a")
	require.Nil(t, err)
	// A reload lowers the quota: runs in flight stay counted.
	q.set(QuotaConfig{ConcurrentRuns: 1})
	_, err = q.admit("a")
	require.NotNil(t, err)
	r2()
	r3()
	require.Equal(t, 0, q.inFlight())
	r, err := q.admit("a")
	require.Nil(t, err)
	r()
}

func TestTenantQuota_Rate(t *testing.T) {
	q := newTenantQuota(QuotaConfig{RunsPerMinute: 2})
	t0 := time.Unix(1000, 0)
	require.Nil(t, q.take("a", t0))
	require.Nil(t, q.take("a", t0), "a burst up to a minute's worth")
	err := q.take("a", t0)
	require.Equal(t, &quotaError{quota: quotaRate, retryAfter: 30 * time.Second, msg: "tenant a has used its quota of 2 runs per minute; retry in 30s"}, err)
	require.NotNil(t, q.take("a", t0.Add(29*time.Second)), "a refusal spends nothing, and half a minute is one run")
	require.Nil(t, q.take("a", t0.Add(30*time.Second)))

	// A reload to no limit; then back to a limit.
	q.set(QuotaConfig{})
	for i := 0; i < 100; i++ {
		require.Nil(t, q.take("a", t0))
	}
	q.set(QuotaConfig{RunsPerMinute: 60})
	require.Nil(t, q.take("a", t0.Add(time.Hour)))
}

func TestAdmission(t *testing.T) {
	a := admission{max: 1}
	require.True(t, a.enter())
	require.False(t, a.enter())
	a.leave()
	require.True(t, a.enter())
}
