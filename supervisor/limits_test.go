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
		{"defaults", worker.Limits{}, manifest.Limits{}, worker.Limits{DeadlineMS: 30000}},
		{"action_tightens", worker.Limits{DeadlineMS: 30000, MemoryBytes: 256 << 20, HostCalls: 1000},
			manifest.Limits{Deadline: 5 * time.Second, MemoryMiB: 64, HostCalls: 10},
			worker.Limits{DeadlineMS: 5000, MemoryBytes: 64 << 20, HostCalls: 10}},
		{"action_cannot_widen", worker.Limits{DeadlineMS: 1000, MemoryBytes: 32 << 20, HostCalls: 5},
			manifest.Limits{Deadline: time.Hour, MemoryMiB: 4096, HostCalls: 100000},
			worker.Limits{DeadlineMS: 1000, MemoryBytes: 32 << 20, HostCalls: 5}},
		{"action_sets_what_operator_left_default", worker.Limits{}, manifest.Limits{MemoryMiB: 16},
			worker.Limits{DeadlineMS: 30000, MemoryBytes: 16 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, narrow(tt.op, tt.action))
		})
	}
}
