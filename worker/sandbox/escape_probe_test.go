//go:build linux && aileron_escapetest

package sandbox

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func init() {
	helpers["escape-exported"] = func(string) int {
		if err := Init(InitConfig{}); err != nil {
			return fail("Init: %v", err)
		}
		if _, err := Lockdown(LockdownConfig{}); err != nil {
			return fail("Lockdown: %v", err)
		}
		emit(EscapeProbes(ProbeTargets{}))
		emit(EscapeProbeInt80Socket()) // never printed: SIGSYS
		return 0
	}
}

// Run with -tags aileron_escapetest: the exported probes are the attacks the
// untagged tests run through internal/escape, as a worker built for the
// integration tests would run them.
func TestEscapeProbesExported(t *testing.T) {
	requireNamespaces(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)
	res, err := runHelper(t, "escape-exported", &SpawnConfig{Namespaces: true}, "")
	require.Error(t, err)
	require.Equal(t, "bad system call", res.Signaled().String())
	var results []ProbeResult
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &results))
	require.NotEmpty(t, results)
	for _, r := range results {
		require.NotZero(t, r.Errno, "%s", r)
	}
}
