package broker

import (
	"os"
	"time"
)

// Shutdown implements Control: close every channel (cancelling requests in
// flight), close the audit log so no record is cut in half, answer, and
// exit. The supervisor waits for the exit and kills the process only if it
// does not come.
func (s *server) Shutdown() error {
	s.closeAll()
	s.mu.Lock()
	if s.audit != nil {
		_ = s.audit.Close()
	}
	s.mu.Unlock()
	// Leave time for the reply to be written.
	time.AfterFunc(20*time.Millisecond, func() { os.Exit(0) })
	return nil
}

// closeAll closes every open channel, cancelling requests in flight.
func (s *server) closeAll() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.channels))
	for id := range s.channels {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		_, _ = s.Close(id)
	}
}
