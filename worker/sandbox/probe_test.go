//go:build linux

package sandbox

import (
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
