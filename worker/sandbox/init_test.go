//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func init() {
	// initfails runs Init as PID 1 of fresh namespaces on a thread that
	// lost its capabilities first, so the /proc remount fails, and reports
	// what Init still did.
	helpers["initfails"] = func(string) int {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fail("capset: %v", err)
		}
		err := Init(InitConfig{MaxOpenFiles: 40})
		byLayer, other := LayerErrors(err)
		var nofile unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
		dumpable, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		emit(map[string]any{"err": errString(err), "layers": byLayer, "other": other, "nofile": nofile.Max, "dumpable": dumpable})
		return 0
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestInitFailureCostsNoOtherLayer: a failed step of Init (here the /proc
// remount) is reported, and the layers after it are still applied.
func TestInitFailureCostsNoOtherLayer(t *testing.T) {
	requireNamespaces(t)
	res, err := runHelper(t, "initfails", &SpawnConfig{Namespaces: true}, "")
	require.NoError(t, err)
	out := decodeLines[struct {
		Err      string
		Layers   map[string][]string
		Other    []string
		Nofile   uint64
		Dumpable int
	}](t, res.Stdout)
	require.Len(t, out, 1)
	got := out[0]
	require.Contains(t, got.Err, "sandbox init: make mounts private: operation not permitted")
	require.Equal(t, []string{"make mounts private: operation not permitted"}, got.Other)
	require.EqualValues(t, 40, got.Nofile, "rlimits were not applied after the failure")
	require.Equal(t, 0, got.Dumpable, "dumpable was not cleared after the failure")
	// /proc is still the host's, so the per-thread steps refuse (and say
	// which layer they are).
	require.Contains(t, got.Layers[LayerNoNewPrivs], ErrForeignProc.Error())
	require.Contains(t, got.Layers[LayerCapabilities], ErrForeignProc.Error())
}

func TestLayerErrors(t *testing.T) {
	plain := errors.New("preinit: unshare user namespace: operation not permitted")
	err := errors.Join(plain, fmt.Errorf("sandbox init: %w", errors.Join(
		errors.New("mount proc: EPERM"),
		&LayerError{Layer: LayerRlimits, Err: errors.New("setrlimit core=0: EPERM")},
		&LayerError{Layer: LayerRlimits, Err: errors.New("setrlimit nofile=64: EPERM")},
		fmt.Errorf("thread 7: %w", &LayerError{Layer: LayerNoNewPrivs, Err: errors.New(`NoNewPrivs "0"`)}),
	)))
	byLayer, other := LayerErrors(err)
	require.Equal(t, map[string][]string{
		LayerRlimits:    {"setrlimit core=0: EPERM", "setrlimit nofile=64: EPERM"},
		LayerNoNewPrivs: {`NoNewPrivs "0"`},
	}, byLayer)
	require.Equal(t, []string{plain.Error(), "mount proc: EPERM"}, other)

	byLayer, other = LayerErrors(nil)
	require.Empty(t, byLayer)
	require.Empty(t, other)
}
