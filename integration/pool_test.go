package integration

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
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
