package server

import (
	"fmt"
	"slices"
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
	return sandboxReply(rep, initErr), nil
}

// sandboxReply reports the layers Lockdown found in force and those it
// did not, each with its reason, and the init errors behind them.
//
// Security: Lockdown observes the calling thread only; Init checked every
// thread. A capability left on another thread (or a check that could not
// run) demotes the capabilities layer to missing however the calling
// thread looks, and so does a no_new_privs failure unless seccomp's TSYNC
// has since set it on every thread.
func sandboxReply(rep sandbox.Report, initErr error) worker.SandboxReply {
	var reply worker.SandboxReply
	byLayer, other := sandbox.LayerErrors(initErr)
	seccomp, _ := rep.Layer(sandbox.LayerSeccomp)
	perThread := []string{sandbox.LayerCapabilities}
	if !seccomp.Active {
		perThread = append(perThread, sandbox.LayerNoNewPrivs)
	}
	for _, name := range rep.Active() {
		if why := byLayer[name]; len(why) > 0 && slices.Contains(perThread, name) {
			reply.Missing = append(reply.Missing, name+": not in force on every thread (init: "+oneLine(strings.Join(why, "; "))+")")
			continue
		}
		reply.Applied = append(reply.Applied, name)
	}
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
	return reply
}

// oneLine keeps a joined error on one line for a layer's detail.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
