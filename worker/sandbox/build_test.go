//go:build linux && !aileron_escapetest

package sandbox

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProductionBuildHasNoEscapeProbes: the attacks must not be linked into
// a worker built without the aileron_escapetest tag.
func TestProductionBuildHasNoEscapeProbes(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err) // a build property, checked wherever go exists
	}
	out, err := exec.Command(goTool, "list", "-deps", "aileron.dev/aileron/worker/sandbox").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, strings.Fields(string(out)), "aileron.dev/aileron/worker/sandbox/internal/escape")

	out, err = exec.Command(goTool, "list", "-deps", "-tags", "aileron_escapetest", "aileron.dev/aileron/worker/sandbox").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, strings.Fields(string(out)), "aileron.dev/aileron/worker/sandbox/internal/escape")
}
