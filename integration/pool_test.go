package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/worker"
)

// TestPool_Hammer runs many concurrent runs through a supervisor with a warm
// pool: every run succeeds, every worker serves exactly one run, and none
// is left behind once the supervisor closes.
func TestPool_Hammer(t *testing.T) {
	s := newBenchSetup(t, supIsolationDefault(), 2)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	runIDs := make(chan string, 32)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				res, err := s.sup.RunPlan(context.Background(), s.plan)
				if err != nil {
					errs <- err
					continue
				}
				runIDs <- res.RunID
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(runIDs)
	for err := range errs {
		require.NoError(t, err)
	}
	seen := map[string]bool{}
	for id := range runIDs {
		require.False(t, seen[id], "run id %s returned twice", id)
		seen[id] = true
	}
	require.Len(t, seen, 32)
	require.NoError(t, s.sup.Close())
	assertNoChildren(t)
}

// TestPool_WarmModuleCompiledOnce: the first pooled worker compiles the
// warm-up module and the supervisor caches it; the workers after it map
// that artifact instead of compiling it again (each compile is logged by
// the worker that did it), and the cached file is never replaced.
func TestPool_WarmModuleCompiledOnce(t *testing.T) {
	var logs lockedBuffer
	s := newBenchSetupFor(t, "noop", "noop", "", supIsolationDefault(), 1, func(c *supervisor.Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &logs})
	})
	s.sup.WaitPoolReady(context.Background())
	arts, err := filepath.Glob(filepath.Join(s.home, "store", "compiled", cas.Sum([]byte(worker.WarmModule)).Hex()+"-*.cwasm"))
	require.NoError(t, err)
	require.Len(t, arts, 1, "the warm module's artifact is cached")
	before, err := os.Stat(arts[0])
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := s.sup.RunPlan(context.Background(), s.plan)
		require.NoError(t, err)
		s.sup.WaitPoolReady(context.Background())
	}
	require.NoError(t, s.sup.Close())
	require.Equal(t, 1, strings.Count(logs.String(), "warm-up compiled the built-in module"), "logs:\n%s", logs.String())
	after, err := os.Stat(arts[0])
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "the cached warm module was replaced")
}

// TestCompile_ConcurrentFirstRunsCompileOnce: runs that all find the module
// not yet compiled share one compile; the others wait for its artifact.
func TestCompile_ConcurrentFirstRunsCompileOnce(t *testing.T) {
	home := t.TempDir()
	store, err := cas.Open(filepath.Join(home, "store"))
	require.NoError(t, err)
	pkg, err := cas.ReadDir(pkgDirs["noop"])
	require.NoError(t, err)
	_, err = store.Put(pkg)
	require.NoError(t, err)
	m := packages["noop"]
	a, err := manifest.ParseAction("a.toml", []byte(`[action]
name = "noop"
version = "0.1.0"
[[requires.connectors]]
name = "`+m.Connector.Name.String()+`"
version = "`+m.Connector.Version+`"
hash = "`+m.Connector.ProvenanceHash+`"
capabilities = []
[[steps]]
id = "only"
connector = "`+m.Connector.Name.String()+`"
intent = "noop"
`))
	require.NoError(t, err)
	sup, err := supervisor.New(supervisor.Config{Home: home, WorkerPath: filepath.Join(binDir, "aileron-worker"),
		BrokerPath: filepath.Join(binDir, "aileron"), BrokerArgs: []string{"broker"}})
	require.NoError(t, err)
	p, err := sup.Prepare(a, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := sup.RunPlan(context.Background(), p)
			assertNoErr(t, err) // require's FailNow must not run off the test goroutine
		}()
	}
	wg.Wait()
	require.NoError(t, sup.Close())
	// The compiling worker is the one that needed over 50 MiB of memory.
	_, charged, _ := workerStats(t, home)
	compiles := 0
	for _, kib := range charged {
		if kib > 50<<10 {
			compiles++
		}
	}
	require.Equal(t, 1, compiles, "charged memory per worker (KiB): %v", charged)
}
