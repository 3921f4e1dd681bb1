package sandbox

import (
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestThreads(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := Threads(0)
	require.NoError(t, err)
	require.Contains(t, self, unix.Gettid())
	require.Contains(t, self, os.Getpid(), "the main thread")
	byPID, err := Threads(os.Getpid())
	require.NoError(t, err)
	require.Contains(t, byPID, unix.Gettid())

	_, err = Threads(-1)
	require.Error(t, err)
}
