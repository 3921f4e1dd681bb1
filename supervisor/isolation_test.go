package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStaleWorkerCgroup(t *testing.T) {
	// A pid that certainly ran and has exited: a reaped child's.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	dead := cmd.ProcessState.Pid()

	tests := []struct {
		name  string
		stale bool
	}{
		{fmt.Sprintf("%d-w3", dead), true},
		{fmt.Sprintf("%d-w3", os.Getpid()), false},  // our own workers
		{fmt.Sprintf("%d-w3", os.Getppid()), false}, // a live supervisor
		{fmt.Sprintf("%d-x3", dead), false},         // not our naming
		{fmt.Sprintf("%d-wx", dead), false},
		{"tenant-a", false},
		{"0-w1", false},
		{"-1-w1", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.stale, staleWorkerCgroup(tc.name), tc.name)
	}
}
