package filelock

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLock_ExcludesGoroutines: goroutines sharing one Lock never hold it
// together (a flock alone would let them).
func TestLock_ExcludesGoroutines(t *testing.T) {
	l := New(filepath.Join(t.TempDir(), ".lock"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside, most := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				unlock, err := l.Lock()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, most)
}

func TestLock_BadPath(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "missing", "dir", ".lock")).Lock()
	require.Error(t, err)
	// A failed Lock leaves the lock usable.
	l := New(filepath.Join(t.TempDir(), ".lock"))
	unlock, err := l.Lock()
	require.NoError(t, err)
	unlock()
}
