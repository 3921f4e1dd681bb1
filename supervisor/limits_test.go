package supervisor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/worker"
)

func TestNarrow(t *testing.T) {
	tests := []struct {
		name   string
		op     worker.Limits
		action manifest.Limits
		want   worker.Limits
	}{
		{"defaults", worker.Limits{}, manifest.Limits{}, worker.DefaultLimits},
		{"action_tightens", worker.Limits{DeadlineMS: 30000, MemoryBytes: 256 << 20, HostCalls: 1000},
			manifest.Limits{Deadline: 5 * time.Second, MemoryMiB: 64, HostCalls: 10},
			with(func(l *worker.Limits) { l.DeadlineMS, l.MemoryBytes, l.HostCalls = 5000, 64<<20, 10 })},
		{"action_cannot_widen", worker.Limits{DeadlineMS: 1000, MemoryBytes: 32 << 20, HostCalls: 5},
			manifest.Limits{Deadline: time.Hour, MemoryMiB: 4096, HostCalls: 100000},
			with(func(l *worker.Limits) { l.DeadlineMS, l.MemoryBytes, l.HostCalls = 1000, 32<<20, 5 })},
		// Security: the operator's unset limits are the defaults, not
		// "no limit" for the action to fill in.
		{"action_cannot_widen_defaults", worker.Limits{},
			manifest.Limits{Deadline: time.Hour, MemoryMiB: 65536, HostCalls: 1000000},
			worker.DefaultLimits},
		{"operator_may_widen_defaults", worker.Limits{MemoryBytes: 1 << 30, HostCalls: 5000},
			manifest.Limits{MemoryMiB: 65536, HostCalls: 1000000},
			with(func(l *worker.Limits) { l.MemoryBytes, l.HostCalls = 1<<30, 5000 })},
		{"action_narrows_defaults", worker.Limits{}, manifest.Limits{MemoryMiB: 16},
			with(func(l *worker.Limits) { l.MemoryBytes = 16 << 20 })},
		{"stdout_capped_at_abi", worker.Limits{StdoutBytes: 1 << 30}, manifest.Limits{},
			worker.DefaultLimits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, narrow(tt.op, tt.action))
		})
	}
}

// with returns the default limits changed by f.
func with(f func(*worker.Limits)) worker.Limits {
	l := worker.DefaultLimits
	f(&l)
	return l
}

// TestCgroupMemoryBytes: a worker's cgroup is sized from the limits of the
// supervisor that runs the action (a serve tenant's, not the root pool's).
func TestCgroupMemoryBytes(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want int64
	}{
		{"defaults", Config{}, 256<<20 + 192<<20},
		{"tenant_limit", Config{Limits: worker.Limits{MemoryBytes: 1 << 30}}, 1<<30 + 192<<20},
		{"operator_cap", Config{Limits: worker.Limits{MemoryBytes: 1 << 30}, Isolation: Isolation{CgroupMemoryBytes: 2 << 30}}, 2 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, (&Supervisor{cfg: tt.cfg}).cgroupMemoryBytes())
		})
	}
}
