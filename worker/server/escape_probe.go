//go:build aileron_escapetest

package server

import (
	"encoding/json"

	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker/sandbox"
)

// This file exists only in test builds: production workers cannot run the
// probes (a test in integration/ checks that the production binary has no
// escape symbols).

func init() { escapeHook = runEscapeProbes }

func runEscapeProbes(intent string, input json.RawMessage) ([]byte, bool) {
	var results []sandbox.ProbeResult
	switch intent {
	case "escape_probes":
		var t sandbox.ProbeTargets
		if err := json.Unmarshal(input, &t); err != nil {
			return nil, false
		}
		results = sandbox.EscapeProbes(t)
	case "escape_int80":
		// A correct filter kills the process here (SIGSYS).
		results = []sandbox.ProbeResult{sandbox.EscapeProbeInt80Socket()}
	default:
		return nil, false
	}
	type row struct {
		Name    string `json:"name"`
		Errno   int    `json:"errno"`
		Error   string `json:"error"`
		Detail  string `json:"detail"`
		Skipped bool   `json:"skipped"`
	}
	rows := make([]row, 0, len(results))
	for _, r := range results {
		rows = append(rows, row{Name: r.Name, Errno: int(r.Errno), Error: r.Errno.Error(), Detail: r.Detail, Skipped: r.Skipped})
	}
	out, _ := json.Marshal(rows)
	res, _ := json.Marshal(abi.Result{OK: true, Output: out})
	return res, true
}
