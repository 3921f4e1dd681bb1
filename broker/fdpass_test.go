package broker

import (
	"io"
	"os"
	"testing"

	"github.com/hashicorp/go-hclog"
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

func TestOpen_PassSocketStaysInStep(t *testing.T) {
	t.Run("open_before_configure", func(t *testing.T) {
		sup, brk, err := NewPassPair()
		require.NoError(t, err)
		defer sup.Close()
		defer brk.Close()
		s := newServer(hclog.NewNullLogger(), brk)
		pass := func(id string) {
			w, be, err := NewChannelPair()
			require.NoError(t, err)
			t.Cleanup(func() { w.Close() })
			require.NoError(t, SendChannel(sup, id, be))
			be.Close()
		}
		pass("early")
		require.EqualError(t, s.Open(OpenArgs{ChannelID: "early", Grant: plainGrant}), "broker is not configured")

		// The refused Open took its descriptor: the next one is in step.
		require.NoError(t, s.Configure(Config{Home: t.TempDir(), UnsafeAllowLoopback: true}))
		t.Cleanup(func() { s.audit.Close() })
		pass("next")
		require.NoError(t, s.Open(OpenArgs{ChannelID: "next", Grant: plainGrant}))
		_, err = s.Close("next")
		require.NoError(t, err)
	})
	t.Run("stale_descriptor_is_drained", func(t *testing.T) {
		// A descriptor whose Open never reached the broker (the RPC
		// failed) must not shift every later Open by one.
		b := newTestBroker(t, loopbackOK, nil)
		w, be, err := NewChannelPair()
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, SendChannel(b.sup, "lost", be))
		be.Close()
		_, id, err := b.tryOpen(plainGrant)
		require.NoError(t, err)
		_, id2, err := b.tryOpen(plainGrant)
		require.NoError(t, err)
		require.NotEqual(t, id, id2)
		// The stale end was closed: its worker sees the channel end.
		_, err = w.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF)
	})
	t.Run("nothing_passed", func(t *testing.T) {
		b := newTestBroker(t, loopbackOK, nil)
		require.EqualError(t, b.s.Open(OpenArgs{ChannelID: "ghost", Grant: plainGrant}), "receive channel ghost: no descriptor was passed for it")
	})
}
