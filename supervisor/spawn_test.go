package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// startProc starts sh -c script the way the supervisor starts its children,
// with go-plugin's part (Wait) played here.
func startProc(t *testing.T, script string) *procRunner {
	r, err := runnerFunc(procSpec{Path: "/bin/sh", Args: []string{"-c", script}})(hclog.NewNullLogger(), &exec.Cmd{}, "")
	require.NoError(t, err)
	p := r.(*procRunner)
	require.NoError(t, p.Start(context.Background()))
	go func() { _ = p.Wait(context.Background()) }()
	return p
}

func TestProcRunner_ExitDetail(t *testing.T) {
	require.Equal(t, " (exit status 3)", startProc(t, "exit 3").exitDetail())
	require.Equal(t, " (it exited with status 0)", startProc(t, "exit 0").exitDetail())

	p := startProc(t, "sleep 60")
	require.False(t, p.waitExit(20*time.Millisecond))
	require.NoError(t, p.Kill(context.Background()))
	require.True(t, p.waitExit(5*time.Second))
	require.Equal(t, " (signal: killed)", p.exitDetail())
}

// TestProcRunner_FailedStartReportsExit: go-plugin never calls Wait after a
// failed Start, so the runner must end and reap its own process; waiting
// for its exit must not time out.
func TestProcRunner_FailedStartReportsExit(t *testing.T) {
	t.Run("start_hook_fails", func(t *testing.T) {
		r, err := runnerFunc(procSpec{Path: "/bin/sh", Args: []string{"-c", "sleep 60"},
			Started: func(int) error { return errors.New("no cgroup") }})(hclog.NewNullLogger(), &exec.Cmd{}, "")
		require.NoError(t, err)
		p := r.(*procRunner)
		require.EqualError(t, p.Start(context.Background()), "no cgroup")
		require.True(t, p.waitExit(time.Second), "the killed process was not reaped")
		require.Equal(t, " (signal: killed)", p.exitDetail())
	})
	t.Run("exec_fails", func(t *testing.T) {
		r, err := runnerFunc(procSpec{Path: "/nonexistent/aileron-worker"})(hclog.NewNullLogger(), &exec.Cmd{}, "")
		require.NoError(t, err)
		p := r.(*procRunner)
		require.Error(t, p.Start(context.Background()))
		require.True(t, p.waitExit(50*time.Millisecond))
	})
}

// TestConnectionLost: however the broken connection to a dead worker is
// reported, it counts as the worker dying; an error the worker answered
// does not.
func TestConnectionLost(t *testing.T) {
	for _, err := range []error{io.EOF, io.ErrUnexpectedEOF, rpc.ErrShutdown, errors.New("session shutdown"), fmt.Errorf("read: %w", syscall.ECONNRESET)} {
		require.True(t, connectionLost(err), "%v", err)
	}
	require.False(t, connectionLost(rpc.ServerError("load: bad artifact")))
	require.False(t, connectionLost(nil))
}
