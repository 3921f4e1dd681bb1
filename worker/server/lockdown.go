package server

import (
	"fmt"
	"strings"

	"aileron.dev/aileron/worker"
	"aileron.dev/aileron/worker/sandbox"
)

// lockdown applies Landlock and then seccomp to this process, after the
// go-plugin listener and the broker channel exist and before anything
// untrusted is compiled, loaded or run. Landlock leaves read-only access to
// the compiled-module cache and read-write access to the scratch directory.
func lockdown(a worker.SandboxArgs, scratch string, initErr error) (worker.SandboxReply, error) {
	cfg := sandbox.LockdownConfig{
		ReadOnlyPaths:  []string{worker.CacheDir},
		ReadWritePaths: []string{scratch},
		Landlock:       sandbox.LandlockBestEffort,
		Seccomp:        sandbox.SeccompAllowlist,
	}
	if a.Strict {
		cfg.Landlock = sandbox.LandlockRequired
	}
	if a.DisableLandlock {
		cfg.Landlock = sandbox.LandlockOff
	}
	if a.DisableSeccomp {
		cfg.Seccomp = sandbox.SeccompOff
	}
	rep, err := sandbox.Lockdown(cfg)
	var reply worker.SandboxReply
	if err != nil {
		// sandbox.Lockdown's errors start with "lockdown: " already.
		if initErr != nil {
			return reply, fmt.Errorf("%w (after init: %s)", err, oneLine(initErr.Error()))
		}
		return reply, err
	}
	reply.Applied = rep.Active()
	byLayer, other := sandbox.LayerErrors(initErr)
	for _, l := range rep.Missing(sandbox.InProcessLayers()) {
		detail := l.Detail
		why := byLayer[l.Name]
		if len(why) == 0 && l.Name != sandbox.LayerLandlock && l.Name != sandbox.LayerSeccomp {
			why = other
		}
		if len(why) > 0 {
			detail += " (init: " + oneLine(strings.Join(why, "; ")) + ")"
		}
		reply.Missing = append(reply.Missing, l.Name+": "+detail)
	}
	return reply, nil
}

// oneLine keeps a joined error on one line for a layer's detail.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
