package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/worker/sandbox"
)

// TestSandboxReply_PerThreadFailures: Lockdown looks at the calling thread
// only, so a layer Init found missing on another thread must be reported
// missing even when the calling thread has it.
func TestSandboxReply_PerThreadFailures(t *testing.T) {
	all := func(seccomp bool) sandbox.Report {
		var r sandbox.Report
		for _, name := range sandbox.InProcessLayers() {
			r.Layers = append(r.Layers, sandbox.Layer{Name: name, Active: name != sandbox.LayerSeccomp || seccomp, Detail: "ok"})
		}
		return r
	}
	capsLeft := fmt.Errorf("sandbox init: %w", errors.Join(fmt.Errorf("thread 7: %w",
		errors.Join(&sandbox.LayerError{Layer: sandbox.LayerCapabilities, Err: errors.New("capabilities left: CapEff 1")},
			&sandbox.LayerError{Layer: sandbox.LayerNoNewPrivs, Err: errors.New(`NoNewPrivs "0"`)}))))

	reply := sandboxReply(all(true), nil)
	require.Empty(t, reply.Missing)
	require.Contains(t, reply.Applied, sandbox.LayerCapabilities)

	reply = sandboxReply(all(true), capsLeft)
	require.NotContains(t, reply.Applied, sandbox.LayerCapabilities)
	require.Equal(t, []string{"capabilities: not in force on every thread (init: capabilities left: CapEff 1)"}, reply.Missing)
	require.Contains(t, reply.Applied, sandbox.LayerNoNewPrivs, "seccomp TSYNC set no_new_privs on every thread since")

	reply = sandboxReply(all(false), capsLeft)
	require.NotContains(t, reply.Applied, sandbox.LayerNoNewPrivs)
	require.Contains(t, reply.Missing, `no_new_privs: not in force on every thread (init: NoNewPrivs "0")`)

	// A thread check that could not run is a capabilities failure (Init
	// wraps it so).
	unchecked := &sandbox.LayerError{Layer: sandbox.LayerCapabilities, Err: errors.New("list threads: thread 1, the caller, is not among [2 3]")}
	reply = sandboxReply(all(true), unchecked)
	require.Equal(t, []string{"capabilities: not in force on every thread (init: list threads: thread 1, the caller, is not among [2 3])"}, reply.Missing)
}
