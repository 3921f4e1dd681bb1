//go:build linux

package sandbox

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReportMissing(t *testing.T) {
	var r Report
	r.set(LayerSeccomp, true, "allowlist")
	r.set(LayerUserNS, false, "user namespaces disabled")
	r.set(LayerLandlock, true, "ABI 7")
	require.Equal(t, []string{LayerUserNS, LayerLandlock, LayerSeccomp}, names(r.Layers), "table order")
	require.Equal(t, []string{LayerLandlock, LayerSeccomp}, r.Active())

	got := r.Missing([]string{LayerSeccomp, LayerUserNS, LayerCgroup, "selinux"})
	require.Equal(t, []Layer{
		{Name: LayerUserNS, Detail: "user namespaces disabled"},
		{Name: LayerCgroup, Detail: "not examined"},
		// Security: a typo in a strict-mode list must fail closed.
		{Name: "selinux", Detail: "unknown layer name"},
	}, got)
	require.Empty(t, r.Missing(nil))
}

func names(ls []Layer) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

func TestLayerTable(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range LayerNames() {
		require.False(t, seen[name], name)
		seen[name] = true
		require.NotEmpty(t, LayerDescription(name))
	}
	require.Len(t, seen, 13)
	require.Equal(t, []string{LayerRlimits, LayerNoNewPrivs, LayerNotDumpable, LayerCapabilities, LayerLandlock, LayerSeccomp}, InProcessLayers())
}

// TestProbe runs the doctor probe against this host with a child binary the
// worker's uid can execute. On the project's test machines every layer is
// available; elsewhere the test reports what is missing.
func TestProbe(t *testing.T) {
	requireNamespaces(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)
	r := ProbeWith(ProbeConfig{Executable: helperBinary(t)})
	t.Logf("probe:\n%s", r)
	require.Equal(t, LayerNames(), names(r.Layers))
	for _, l := range r.Layers {
		if l.Name == LayerCgroup && !l.Active {
			skipOrFail(t, "no usable cgroup: %s", l.Detail)
		}
	}
	require.Empty(t, r.Missing(LayerNames()))
	seccomp, _ := r.Layer(LayerSeccomp)
	require.Contains(t, seccomp.Detail, "allowlist")
}

// TestProbeExplainsUnreachableBinary: a child binary the worker's uid
// cannot reach (here: inside a 0700 directory, as go test builds) must be
// reported as such, not as working layers and not silently.
func TestProbeExplainsUnreachableBinary(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "aileron")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755))
	r := ProbeWith(ProbeConfig{Executable: bin})
	require.Equal(t, LayerNames(), names(r.Layers))
	userns, _ := r.Layer(LayerUserNS)
	require.False(t, userns.Active)
	require.Contains(t, userns.Detail, "not accessible to the worker's host uid")
	seccomp, _ := r.Layer(LayerSeccomp)
	require.Contains(t, seccomp.Detail, "not tried")

	// The default Probe (os.Executable) always yields a full report.
	require.Equal(t, LayerNames(), names(Probe().Layers))
}

func TestProbeWithoutNamespaces(t *testing.T) {
	requireRoot(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)
	r := ProbeWith(ProbeConfig{Executable: helperBinary(t), Spawn: &SpawnConfig{}})
	userns, _ := r.Layer(LayerUserNS)
	require.Equal(t, Layer{Name: LayerUserNS, Detail: "off: spawn config has no namespaces"}, userns)
	// The in-process layers do not depend on namespaces.
	require.Empty(t, r.Missing([]string{LayerLandlock, LayerSeccomp, LayerNoNewPrivs, LayerNotDumpable, LayerCapabilities, LayerRlimits}))
}

func init() {
	// waitstdin blocks until its stdin closes, so a test can look at it.
	helpers["waitstdin"] = func(string) int {
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	}
}

// TestNamespaces reads the namespaces a process actually is in: none for
// this process, all six for a child spawned with them.
func TestNamespaces(t *testing.T) {
	for _, l := range Namespaces(os.Getpid()).Layers {
		require.False(t, l.Active, "%s", l)
		require.Contains(t, l.Detail, "shares the supervisor's ")
	}
	r := Namespaces(1 << 30) // no such process
	require.Len(t, r.Layers, 6)
	for _, l := range r.Layers {
		require.False(t, l.Active, "%s", l)
		require.Contains(t, l.Detail, "namespace unknown (readlink /proc/1073741824/ns/")
	}

	requireNamespaces(t)
	cmd := helperCmd(t, "waitstdin", &SpawnConfig{Namespaces: true}, "")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer cmd.Wait()
	defer stdin.Close()
	r = Namespaces(cmd.Process.Pid)
	require.Equal(t, LayerNames()[:6], names(r.Layers))
	require.Empty(t, r.Missing(LayerNames()[:6]), "%s", r)
}
