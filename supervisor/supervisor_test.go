package supervisor

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/broker"
)

// TestOpenChannel_RefusesAnotherBrokersClient: a run still holding the
// control client of a broker that was since replaced must not send its
// descriptor over the new broker's pass socket.
func TestOpenChannel_RefusesAnotherBrokersClient(t *testing.T) {
	supEnd, brokerSide, err := broker.NewPassPair()
	require.NoError(t, err)
	defer brokerSide.Close()
	current := &broker.Client{}
	s := &Supervisor{broker: &brokerConn{client: current, pass: supEnd}}
	old := &broker.Client{}
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()

	err = s.openChannel(old, "c1", w, broker.Grant{}, nil)
	require.ErrorIs(t, err, ErrBrokerRestarted)
	require.ErrorIs(t, w.Close(), os.ErrClosed, "the descriptor must be closed on failure too")

	// Nothing reached the current broker.
	supEnd.Close()
	n, err := brokerSide.Read(make([]byte, 64))
	require.Zero(t, n)
	require.ErrorIs(t, err, io.EOF)

	// Nor is anything sent once the supervisor has no broker.
	s.broker = nil
	r2, w2, err := os.Pipe()
	require.NoError(t, err)
	defer r2.Close()
	require.ErrorIs(t, s.openChannel(current, "c2", w2, broker.Grant{}, nil), ErrBrokerRestarted)
}
