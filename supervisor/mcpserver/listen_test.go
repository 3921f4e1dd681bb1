package mcpserver

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestListenAddr(t *testing.T) {
	tests := []struct {
		name, addr, want string
	}{
		{"IPv4 loopback", "127.0.0.1:8808", "127.0.0.1:8808"},
		{"anywhere in 127/8", "127.1.2.3:8808", "127.1.2.3:8808"},
		{"IPv6 loopback", "[::1]:8808", "[::1]:8808"},
		{"empty host means loopback, not every interface", ":8808", "127.0.0.1:8808"},
		{"localhost pinned to 127.0.0.1, not resolved", "localhost:8808", "127.0.0.1:8808"},
		{"free port", "127.0.0.1:0", "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListenAddr(tt.addr)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestListenAddr_Errors(t *testing.T) {
	const notLoopback = "not a loopback address; the MCP endpoint has no authentication of its own, so it listens on loopback only"
	tests := []struct {
		name, addr, want string
	}{
		// Every interface: anyone on the network could run actions.
		{"unspecified IPv4", "0.0.0.0:8808", `listen address "0.0.0.0:8808": ` + notLoopback},
		{"unspecified IPv6", "[::]:8808", `listen address "[::]:8808": ` + notLoopback},
		{"private address", "192.168.1.5:8808", `listen address "192.168.1.5:8808": ` + notLoopback},
		// A name could resolve anywhere, and differently tomorrow.
		{"host name", "example.com:8808", `listen address "example.com:8808": host "example.com" is not an IP address or localhost`},
		{"no port", "127.0.0.1", `listen address "127.0.0.1": want HOST:PORT, e.g. 127.0.0.1:8808`},
		{"port out of range", "127.0.0.1:70000", `listen address "127.0.0.1:70000": port "70000" is not a number from 0 to 65535`},
		{"named port", "127.0.0.1:http", `listen address "127.0.0.1:http": port "http" is not a number from 0 to 65535`},
		{"port with leading zero", "127.0.0.1:080", `listen address "127.0.0.1:080": port "080" is not a number from 0 to 65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ListenAddr(tt.addr)
			require.EqualError(t, err, tt.want)
		})
	}
	_, err := ListenAddr("0.0.0.0:1")
	require.ErrorIs(t, err, ErrNotLoopback)
}
