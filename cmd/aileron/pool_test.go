package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCLI_OnlyRunsStartThePool: with a warm pool configured, commands that
// run no action start no worker. The worker here is /bin/true, so every
// worker the pool tries to start fails and the pool logs it: the log line
// shows a pool was started.
func TestCLI_OnlyRunsStartThePool(t *testing.T) {
	tests := []struct {
		name string
		args []string
		pool bool
	}{
		{"action_list", []string{"action", "list"}, false},
		{"action_update", []string{"action", "update", "nope"}, false},
		{"connector_rm", []string{"connector", "rm", "github://acme/x@1.0.0"}, false},
		{"doctor", []string{"doctor"}, false},
		// The control: run does start the pool.
		{"run", []string{"run", "nope"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("AILERON_HOME", home)
			t.Setenv("AILERON_WORKER", "/bin/true")
			require.NoError(t, os.WriteFile(filepath.Join(home, "config.toml"), []byte("[pool]\nsize = 4\n"), 0o600))
			var stdout, stderr bytes.Buffer
			run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			started := strings.Contains(stderr.String(), "warm pool: cannot start a worker")
			require.Equal(t, tt.pool, started, stderr.String())
		})
	}
}
