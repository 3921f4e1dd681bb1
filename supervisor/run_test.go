package supervisor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIsolationOf: a run's record lists the layers every worker had and
// every layer any worker lacked, sorted and once each, whatever the order
// of the workers.
func TestIsolationOf(t *testing.T) {
	w := func(applied, missing []string) *workerProc { return &workerProc{applied: applied, missing: missing} }
	tests := []struct {
		name            string
		workers         []*workerProc
		layers, missing []string
	}{
		{"none", nil, nil, nil},
		{"one", []*workerProc{w([]string{"seccomp", "landlock"}, nil)}, []string{"landlock", "seccomp"}, nil},
		{"same_layers", []*workerProc{
			w([]string{"seccomp", "landlock"}, nil),
			w([]string{"landlock", "seccomp"}, nil),
		}, []string{"landlock", "seccomp"}, nil},
		{"one_worker_weaker", []*workerProc{
			w([]string{"cgroup", "landlock", "seccomp"}, nil),
			w([]string{"cgroup", "seccomp"}, []string{"landlock"}),
			w([]string{"cgroup", "landlock", "seccomp"}, nil),
		}, []string{"cgroup", "seccomp"}, []string{"landlock"}},
		{"weaker_first", []*workerProc{
			w([]string{"seccomp"}, []string{"landlock", "cgroup"}),
			w([]string{"cgroup", "landlock", "seccomp"}, nil),
		}, []string{"seccomp"}, []string{"cgroup", "landlock"}},
		{"missing_once", []*workerProc{
			w(nil, []string{"landlock"}),
			w(nil, []string{"landlock", "cgroup"}),
		}, []string{}, []string{"cgroup", "landlock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layers, missing := isolationOf(tt.workers)
			if len(tt.layers) == 0 {
				require.Empty(t, layers)
			} else {
				require.Equal(t, tt.layers, layers)
			}
			require.Equal(t, tt.missing, missing)
		})
	}
	// The workers' own lists are not reordered.
	a := []string{"seccomp", "landlock"}
	isolationOf([]*workerProc{w(a, nil)})
	require.Equal(t, []string{"seccomp", "landlock"}, a)
}
