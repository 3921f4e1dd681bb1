package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host name. [net.DefaultResolver]
// satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DefaultDialTimeout bounds resolution plus connection when
// [Dialer.Timeout] is zero.
const DefaultDialTimeout = 10 * time.Second

// Dialer connects only to addresses its [AddrPolicy] allows, and only to
// the addresses it vetted. Its zero value resolves with
// [net.DefaultResolver] and allows public addresses only.
type Dialer struct {
	// Resolver resolves names; nil means net.DefaultResolver. It is asked
	// for the absolute name (with a trailing dot), so resolv.conf search
	// domains never turn "api" into "api.corp.internal".
	Resolver Resolver
	// Policy vets every resolved address and the connected peer.
	Policy AddrPolicy
	// Timeout bounds resolution plus connection; zero means
	// DefaultDialTimeout.
	Timeout time.Duration
	// Hosts is an optional static map from lower-case name (no trailing
	// dot) to addresses, consulted before Resolver. Tests use it to point
	// declared names at loopback servers. Its addresses are vetted like
	// resolved ones.
	Hosts map[string][]netip.Addr
	// Routes is an optional static map from lower-case "host:port" to the
	// address and port to connect to instead, consulted before Hosts and
	// Resolver. Tests and demos run fake services on loopback ports behind
	// real names with it. The routed address is vetted like a resolved one;
	// TLS still verifies the declared name.
	Routes map[string]netip.AddrPort
}

// DialContext resolves the host in addr once, denies the whole name if any
// answer is denied by the policy, connects to a vetted address directly (no
// second lookup) and re-checks the peer of the established connection.
// Policy failures are [*DeniedError].
//
// Security: a name whose answers mix allowed and denied addresses is denied
// as a whole rather than filtered. A mixed answer is the signature of DNS
// rebinding (one public address to pass checks, one internal address to
// land on), and filtering would let the attacker keep trying.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	hostText, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %q: %w", addr, err)
	}
	port, problem := parsePort(portText)
	if problem != "" {
		return nil, &DeniedError{deny(CodeBadPort, hostText, 0, "dial %s: %s", quoteShort(addr), problem)}
	}
	var lookupNet string
	switch network {
	case "tcp":
		lookupNet = "ip"
	case "tcp4":
		lookupNet = "ip4"
	case "tcp6":
		lookupNet = "ip6"
	default:
		return nil, &DeniedError{deny(CodeBadNetwork, hostText, port, "network %s is not allowed (tcp only)", quoteShort(network))}
	}
	hp := net.JoinHostPort(hostText, portText)
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if r, ok := d.Routes[strings.ToLower(hp)]; ok {
		ip := r.Addr().Unmap()
		if c, what := d.Policy.check(ip); !c.Allowed() {
			c.Host, c.Port = hostText, port
			c.Reason = fmt.Sprintf("host %s is routed to %s, which is %s", hp, ip, what)
			return nil, &DeniedError{c}
		}
		return d.dialVetted(ctx, network, hostText, netip.AddrPortFrom(ip, r.Port()))
	}
	addrs, err := d.resolve(ctx, lookupNet, hostText)
	if err != nil {
		var de *DeniedError
		if errors.As(err, &de) {
			de.Decision.Port = port
			return nil, err
		}
		return nil, fmt.Errorf("egress: resolve %s: %w", hostText, err)
	}
	if len(addrs) == 0 {
		return nil, &DeniedError{deny(CodeResolveFailed, hostText, port, "host %s resolved to no addresses", hp)}
	}
	for i, ip := range addrs {
		if c, what := d.Policy.check(ip); !c.Allowed() {
			c.Host, c.Port = hostText, port
			c.Reason = fmt.Sprintf("host %s resolved to %s, which is %s", hp, ip.Unmap(), what)
			return nil, &DeniedError{c}
		}
		addrs[i] = ip.Unmap()
	}
	var firstErr error
	for _, ip := range addrs {
		if lookupNet == "ip4" && !ip.Is4() || lookupNet == "ip6" && !ip.Is6() {
			continue
		}
		conn, err := d.dialVetted(ctx, network, hostText, netip.AddrPortFrom(ip, port))
		if err == nil {
			return conn, nil
		}
		var de *DeniedError
		if errors.As(err, &de) {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("no %s address for %s", lookupNet, hostText)
	}
	return nil, fmt.Errorf("egress: dial %s: %w", hp, firstErr)
}

func (d *Dialer) resolve(ctx context.Context, network, h string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{ip}, nil // zones are denied by the policy
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if problem := checkName(name); problem != "" {
		return nil, &DeniedError{deny(CodeBadHost, h, 0, "host %s: %s", quoteShort(h), problem)}
	}
	if a, ok := d.Hosts[name]; ok {
		return append([]netip.Addr(nil), a...), nil
	}
	res := d.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	return res.LookupNetIP(ctx, network, name+".")
}

// dialVetted connects to exactly ap and verifies the connection's peer.
func (d *Dialer) dialVetted(ctx context.Context, network, name string, ap netip.AddrPort) (net.Conn, error) {
	nd := net.Dialer{
		// Keep-alive as net/http's default transport does.
		KeepAlive: 30 * time.Second,
		// Security: a last check at connect(2) time, on the address the
		// kernel is about to use, whatever happens above this layer.
		Control: func(_, address string, _ syscall.RawConn) error {
			got, err := netip.ParseAddrPort(address)
			if err != nil || got.Addr().Unmap() != ap.Addr() || got.Port() != ap.Port() {
				return &DeniedError{deny(CodePeerMismatch, name, ap.Port(), "connect to %s, which is not the vetted address %s", address, ap)}
			}
			return nil
		},
	}
	conn, err := nd.DialContext(ctx, network, ap.String())
	if err != nil {
		return nil, err
	}
	// Security: check what we are actually connected to, not what we asked
	// for.
	ta, ok := conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		conn.Close()
		return nil, &DeniedError{deny(CodePeerMismatch, name, ap.Port(), "connection to %s has no TCP peer address", ap)}
	}
	peer := ta.AddrPort()
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	if peer != ap {
		conn.Close()
		return nil, &DeniedError{deny(CodePeerMismatch, name, ap.Port(), "connected peer %s is not the vetted address %s", peer, ap)}
	}
	if c, what := d.Policy.check(peer.Addr()); !c.Allowed() {
		conn.Close()
		c.Host, c.Port = name, ap.Port()
		c.Reason = fmt.Sprintf("connected peer %s is %s", peer, what)
		return nil, &DeniedError{c}
	}
	return conn, nil
}
