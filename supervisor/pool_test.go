package supervisor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/worker"
)

// fakeWorker is a pool worker without a process: its go-plugin client was
// never started, so it has not exited and killing it does nothing.
func fakeWorker(t *testing.T) *workerProc {
	return &workerProc{scratch: t.TempDir(), client: plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: worker.Handshake, Plugins: worker.PluginMap(nil), Cmd: exec.Command("/bin/true"),
		Logger: hclog.NewNullLogger(),
	})}
}

// deadWorker is a pool worker whose process has exited.
func deadWorker(t *testing.T) *workerProc {
	w := fakeWorker(t)
	_, err := w.client.Start()
	require.Error(t, err, "/bin/true cannot complete a go-plugin handshake")
	require.Eventually(t, w.client.Exited, 5*time.Second, time.Millisecond)
	return w
}

// TestPool_TakeSkipsExitedWorkers: a ready worker that died while idle is
// killed and replaced; take never returns it.
func TestPool_TakeSkipsExitedWorkers(t *testing.T) {
	dead, alive := deadWorker(t), fakeWorker(t)
	spawned := make(chan *workerProc, 2)
	spawned <- dead
	spawned <- alive
	p := newPool(1, func() (*workerProc, error) {
		select {
		case w := <-spawned:
			return w, nil
		default:
			return nil, errors.New("no more workers")
		}
	}, hclog.NewNullLogger())
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.waitReady(ctx)
	require.Same(t, alive, p.take(ctx))
	_, err := os.Stat(dead.scratch)
	require.ErrorIs(t, err, os.ErrNotExist, "the dead worker was not cleaned up")
}

// TestPool_CloseDoesNotWaitForBackoff: after failed spawns the pool backs
// off (here for 4 s); closing it does not wait for that.
func TestPool_CloseDoesNotWaitForBackoff(t *testing.T) {
	gate := make(chan struct{})
	failed := make(chan struct{}, 1)
	p := newPool(1, func() (*workerProc, error) {
		<-gate
		failed <- struct{}{}
		return nil, errors.New("no worker here")
	}, hclog.NewNullLogger())
	p.mu.Lock()
	p.failures = 39 // the next failure backs off for 4 s
	p.mu.Unlock()
	close(gate)
	<-failed
	time.Sleep(20 * time.Millisecond) // into the back-off
	start := time.Now()
	p.close()
	require.Less(t, time.Since(start), time.Second)
}
