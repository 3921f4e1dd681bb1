// Package filelock is a writer lock on a file that excludes both other
// processes and this process's other goroutines.
//
// A flock alone does not do the second: a second flock on the same handle
// returns at once, and the first unlock releases both. So the lock is a
// mutex for the goroutines of this process, taken first, and a flock for
// the other processes.
package filelock

import (
	"sync"

	"github.com/gofrs/flock"
)

// Lock is a lock on one lock file. Its zero value is not usable: use New.
type Lock struct {
	mu sync.Mutex
	f  *flock.Flock
}

// New returns the lock on the file at path, created when first locked.
func New(path string) *Lock { return &Lock{f: flock.New(path)} }

// Lock waits for the lock; the returned function releases it.
func (l *Lock) Lock() (unlock func(), err error) {
	l.mu.Lock()
	if err := l.f.Lock(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	return func() {
		_ = l.f.Unlock()
		l.mu.Unlock()
	}, nil
}
