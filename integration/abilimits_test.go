package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRun_DocumentsNearTheABILimits moves a ~2 MiB result and then a ~2 MiB
// invocation through the real supervisor and worker: the ABI allows 4 MiB
// each way, so neither may be cut short by the worker's own file limits.
func TestRun_DocumentsNearTheABILimits(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	const n = 2 << 20
	action := e.actionSteps("large",
		step{m: m, intent: "big", with: `{ n = 2097152 }`},
		step{m: m, intent: "echo", with: `{ s = "${{ steps.s1.output }}" }`},
	)
	r := e.aileron("", "run", action)
	require.Equal(t, 0, r.code, r.stderr)
	var out string
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), "%.200s", r.stdout)
	require.Len(t, out, n)
	require.Equal(t, strings.Repeat("b", n), out)
}

// TestRun_ResultOverTheABILimit: a result over 4 MiB is reported as too
// large, not cut short into a bad result.
func TestRun_ResultOverTheABILimit(t *testing.T) {
	e := newEnv(t, "")
	m := e.install("hostile", notesKey)
	r := e.aileron("", "run", e.action(m, "huge", "big", `{ n = 4500000 }`))
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "output_too_large")
}
