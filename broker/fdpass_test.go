package broker

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestChannelPassing(t *testing.T) {
	sup, brk, err := NewPassPair()
	require.NoError(t, err)
	defer sup.Close()
	defer brk.Close()
	w, b, err := NewChannelPair()
	require.NoError(t, err)
	defer w.Close()

	require.NoError(t, SendChannel(sup, "chan-1", b))
	b.Close()
	id, got, err := RecvChannel(brk)
	require.NoError(t, err)
	defer got.Close()
	require.Equal(t, "chan-1", id)

	// What the worker writes arrives on the passed end.
	_, err = w.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(got, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
}

func TestRecvChannel_Errors(t *testing.T) {
	sup, brk, err := NewPassPair()
	require.NoError(t, err)
	defer sup.Close()
	defer brk.Close()

	// A message without a descriptor is refused.
	require.NoError(t, unix.Sendmsg(int(sup.Fd()), []byte("no-fd"), nil, nil, 0))
	_, _, err = RecvChannel(brk)
	require.EqualError(t, err, "malformed channel message (5 bytes, 0 descriptors)")

	// Two descriptors: refused, and both are closed (no leak).
	r1, w1, err := os.Pipe()
	require.NoError(t, err)
	defer r1.Close()
	defer w1.Close()
	require.NoError(t, unix.Sendmsg(int(sup.Fd()), []byte("two"), unix.UnixRights(int(r1.Fd()), int(w1.Fd())), nil, 0))
	_, _, err = RecvChannel(brk)
	require.EqualError(t, err, "malformed channel message (3 bytes, 2 descriptors)")

	require.Error(t, SendChannel(sup, "", r1))
}
