package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// listen starts a loopback listener that accepts and closes connections,
// and returns its port and a counter of accepted connections.
func listen(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, &n
}

func TestDialer_Denied(t *testing.T) {
	d := &Dialer{Hosts: map[string][]netip.Addr{
		"loop.test":    addrs("127.0.0.1"),
		"private.test": addrs("10.0.0.1"),
		"meta.test":    addrs("169.254.169.254"),
		"v6loop.test":  addrs("::1"),
		"mapped.test":  addrs("::ffff:127.0.0.1"),
		"nat64.test":   addrs("64:ff9b::a9fe:a9fe"),
		"zero.test":    addrs("0.0.0.0"),
		// Security: DNS rebinding answers one public and one internal
		// address; the whole name is denied, not filtered.
		"mixed.test": addrs("8.8.8.8", "10.0.0.1"),
		"empty.test": {},
	}}
	tests := []struct {
		addr, code, reason string
	}{
		{"loop.test:443", CodeAddressDenied, "host loop.test:443 resolved to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"private.test:443", CodeAddressDenied, "host private.test:443 resolved to 10.0.0.1, which is private (RFC 1918, 10.0.0.0/8)"},
		{"meta.test:80", CodeAddressDenied, "host meta.test:80 resolved to 169.254.169.254, which is the cloud metadata service (169.254.169.254)"},
		{"v6loop.test:443", CodeAddressDenied, "host v6loop.test:443 resolved to ::1, which is loopback (RFC 4291, ::1)"},
		{"mapped.test:443", CodeAddressDenied, "host mapped.test:443 resolved to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"nat64.test:443", CodeAddressDenied, "host nat64.test:443 resolved to 64:ff9b::a9fe:a9fe, which is NAT64 (RFC 6052) for 169.254.169.254, which is the cloud metadata service (169.254.169.254)"},
		{"zero.test:443", CodeAddressDenied, "host zero.test:443 resolved to 0.0.0.0, which is the unspecified address (RFC 1122); connecting to it reaches this host"},
		{"mixed.test:443", CodeAddressDenied, "host mixed.test:443 resolved to 10.0.0.1, which is private (RFC 1918, 10.0.0.0/8)"},
		{"MIXED.test.:443", CodeAddressDenied, "host MIXED.test.:443 resolved to 10.0.0.1, which is private (RFC 1918, 10.0.0.0/8)"},
		{"empty.test:443", CodeResolveFailed, "host empty.test:443 resolved to no addresses"},
		{"127.0.0.1:443", CodeAddressDenied, "host 127.0.0.1:443 resolved to 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"[::ffff:a9fe:a9fe]:443", CodeAddressDenied, "host [::ffff:a9fe:a9fe]:443 resolved to 169.254.169.254, which is the cloud metadata service (169.254.169.254)"},
		{"bad_-.test:443", CodeBadHost, `host "bad_-.test": label starts or ends with '-' in host name`},
		{"loop.test:0", CodeBadPort, `dial "loop.test:0": port is not a canonical number in 1-65535`},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			_, err := d.DialContext(context.Background(), "tcp", tc.addr)
			var de *DeniedError
			require.True(t, errors.As(err, &de), "%v", err)
			require.Equal(t, tc.code, de.Decision.Code)
			require.Equal(t, tc.reason, de.Decision.Reason)
			require.Equal(t, "egress denied: "+tc.reason, err.Error())
			require.False(t, de.Decision.Allowed())
		})
	}
	_, err := d.DialContext(context.Background(), "udp", "loop.test:53")
	var de *DeniedError
	require.True(t, errors.As(err, &de))
	require.Equal(t, `network "udp" is not allowed (tcp only)`, de.Decision.Reason)
}

// countingResolver answers loopback the first time and a private address
// afterwards, like a rebinding DNS server with TTL 0.
type countingResolver struct {
	calls atomic.Int32
	names []string
}

func (r *countingResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.names = append(r.names, network+" "+host)
	if r.calls.Add(1) == 1 {
		return addrs("::ffff:127.0.0.1"), nil
	}
	return addrs("10.0.0.1"), nil
}

func TestDialer_ResolvesOncePinsAndUsesAbsoluteName(t *testing.T) {
	port, accepted := listen(t)
	res := &countingResolver{}
	d := &Dialer{Resolver: res, Policy: AddrPolicy{UnsafeAllowLoopback: true}}
	conn, err := d.DialContext(context.Background(), "tcp", "rebind.test:"+port)
	require.NoError(t, err)
	// The connection goes to the vetted address, unmapped.
	require.Equal(t, "127.0.0.1:"+port, conn.RemoteAddr().String())
	conn.Close()
	require.Equal(t, int32(1), res.calls.Load(), "resolved exactly once")
	// Security: the absolute name, so resolv.conf search domains never
	// expand it to an internal name.
	require.Equal(t, []string{"ip rebind.test."}, res.names)
	require.Eventually(t, func() bool { return accepted.Load() == 1 }, time.Second, time.Millisecond)

	// The second lookup rebinds to a private address and is denied.
	_, err = d.DialContext(context.Background(), "tcp", "rebind.test:"+port)
	var de *DeniedError
	require.True(t, errors.As(err, &de))
	require.Equal(t, "host rebind.test:"+port+" resolved to 10.0.0.1, which is private (RFC 1918, 10.0.0.0/8)", de.Decision.Reason)
}

func TestDialer_HostsBeforeResolver(t *testing.T) {
	port, _ := listen(t)
	res := &countingResolver{}
	d := &Dialer{Resolver: res, Policy: AddrPolicy{UnsafeAllowLoopback: true},
		Hosts: map[string][]netip.Addr{"api.test": addrs("127.0.0.1")}}
	conn, err := d.DialContext(context.Background(), "tcp4", "API.test:"+port)
	require.NoError(t, err)
	conn.Close()
	require.Equal(t, int32(0), res.calls.Load())

	// tcp6 finds no IPv6 address among the vetted ones.
	_, err = d.DialContext(context.Background(), "tcp6", "api.test:"+port)
	require.EqualError(t, err, "egress: dial api.test:"+port+": no ip6 address for api.test")
}

type errResolver struct{}

func (errResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errors.New("no such host")
}

func TestDialer_Errors(t *testing.T) {
	d := &Dialer{Resolver: errResolver{}}
	_, err := d.DialContext(context.Background(), "tcp", "nx.test:443")
	require.EqualError(t, err, "egress: resolve nx.test: no such host")

	_, err = d.DialContext(context.Background(), "tcp", "nx.test")
	require.EqualError(t, err, `egress: dial "nx.test": address nx.test: missing port in address`)

	// A refused connection is a network error, not a denial.
	port, _ := listen(t)
	ln, _ := strconv.Atoi(port)
	d = &Dialer{Policy: AddrPolicy{UnsafeAllowLoopback: true}, Timeout: time.Second}
	_, err = d.DialContext(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(ln+1))
	var de *DeniedError
	require.Error(t, err)
	require.False(t, errors.As(err, &de))
}
