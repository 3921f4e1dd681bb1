package egress

import (
	"fmt"
	"net/netip"
)

// Class is the kind of network an IP address belongs to. The zero value,
// ClassInvalid, is denied like every class but ClassPublic.
type Class int

// Address classes, from [ClassifyAddr].
const (
	// ClassInvalid: not a valid address.
	ClassInvalid Class = iota
	// ClassPublic: globally routable unicast. The only class allowed by
	// default.
	ClassPublic
	// ClassUnspecified: 0.0.0.0 or ::. Connecting to it reaches this host.
	ClassUnspecified
	// ClassLoopback: 127.0.0.0/8 or ::1.
	ClassLoopback
	// ClassPrivate: RFC 1918, CGNAT shared space (RFC 6598), unique local
	// IPv6 (RFC 4193).
	ClassPrivate
	// ClassLinkLocal: 169.254.0.0/16, fe80::/10.
	ClassLinkLocal
	// ClassMetadata: a cloud instance metadata or platform endpoint. No
	// [AddrPolicy] switch allows it.
	ClassMetadata
	// ClassMulticast: 224.0.0.0/4, ff00::/8.
	ClassMulticast
	// ClassBroadcast: 255.255.255.255.
	ClassBroadcast
	// ClassReserved: other special-purpose ranges (documentation,
	// benchmarking, future use, protocol assignments, IPv6 outside
	// 2000::/3).
	ClassReserved
	// ClassTransition: IPv6 transition forms that tunnel to IPv4 addresses
	// the policy cannot vouch for (6to4, Teredo, IPv4-compatible,
	// local-use NAT64, and NAT64 of a non-public address).
	ClassTransition
)

var classNames = [...]string{
	ClassInvalid:     "invalid",
	ClassPublic:      "public",
	ClassUnspecified: "unspecified",
	ClassLoopback:    "loopback",
	ClassPrivate:     "private",
	ClassLinkLocal:   "link_local",
	ClassMetadata:    "cloud_metadata",
	ClassMulticast:   "multicast",
	ClassBroadcast:   "broadcast",
	ClassReserved:    "reserved",
	ClassTransition:  "transition",
}

// String returns a stable snake_case name for the class.
func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", int(c))
}

type addrRange struct {
	prefix netip.Prefix
	class  Class
	detail string
}

func rng(p string, c Class, detail string) addrRange {
	return addrRange{netip.MustParsePrefix(p), c, detail}
}

// v4Ranges classifies IPv4. The first match wins, so specific entries come
// before the ranges that contain them. Everything else is public.
var v4Ranges = []addrRange{
	rng("0.0.0.0/32", ClassUnspecified, "the unspecified address (RFC 1122); connecting to it reaches this host"),
	rng("0.0.0.0/8", ClassReserved, `in "this network" (RFC 791, 0.0.0.0/8)`),
	rng("10.0.0.0/8", ClassPrivate, "private (RFC 1918, 10.0.0.0/8)"),
	// Security: Alibaba Cloud's metadata service sits inside CGNAT space, so
	// UnsafeAllowPrivate must not open it.
	rng("100.100.100.200/32", ClassMetadata, "the Alibaba Cloud metadata service (100.100.100.200)"),
	rng("100.64.0.0/10", ClassPrivate, "shared address space for carrier-grade NAT (RFC 6598, 100.64.0.0/10)"),
	rng("127.0.0.0/8", ClassLoopback, "loopback (RFC 1122, 127.0.0.0/8)"),
	// Security: the classic SSRF target: AWS, GCP, Azure, OCI, DigitalOcean
	// and OpenStack serve instance credentials here.
	rng("169.254.169.254/32", ClassMetadata, "the cloud metadata service (169.254.169.254)"),
	rng("169.254.170.2/32", ClassMetadata, "the AWS ECS task metadata and credentials endpoint (169.254.170.2)"),
	rng("169.254.0.0/16", ClassLinkLocal, "link-local (RFC 3927, 169.254.0.0/16)"),
	rng("172.16.0.0/12", ClassPrivate, "private (RFC 1918, 172.16.0.0/12)"),
	rng("192.0.0.192/32", ClassMetadata, "the Oracle Cloud legacy metadata service (192.0.0.192)"),
	rng("192.0.0.0/24", ClassReserved, "reserved for IETF protocol assignments (RFC 6890, 192.0.0.0/24)"),
	rng("192.0.2.0/24", ClassReserved, "reserved for documentation (RFC 5737, TEST-NET-1)"),
	rng("192.88.99.0/24", ClassReserved, "the deprecated 6to4 relay anycast range (RFC 7526, 192.88.99.0/24)"),
	rng("192.168.0.0/16", ClassPrivate, "private (RFC 1918, 192.168.0.0/16)"),
	rng("198.18.0.0/15", ClassReserved, "reserved for benchmarking (RFC 2544, 198.18.0.0/15)"),
	rng("198.51.100.0/24", ClassReserved, "reserved for documentation (RFC 5737, TEST-NET-2)"),
	rng("203.0.113.0/24", ClassReserved, "reserved for documentation (RFC 5737, TEST-NET-3)"),
	rng("224.0.0.0/4", ClassMulticast, "multicast (RFC 5771, 224.0.0.0/4)"),
	rng("255.255.255.255/32", ClassBroadcast, "the limited broadcast address (RFC 919)"),
	rng("240.0.0.0/4", ClassReserved, "reserved for future use (RFC 1112, 240.0.0.0/4)"),
	// Security: a public address that every Azure VM can reach and that
	// answers as the host platform (WireServer: extension config, certs).
	rng("168.63.129.16/32", ClassMetadata, "the Azure WireServer platform endpoint (168.63.129.16)"),
}

// v6Ranges classifies IPv6 addresses that embed no IPv4 address (those are
// handled in classify6 first). The first match wins; anything outside
// 2000::/3 that no entry names is reserved.
var v6Ranges = []addrRange{
	rng("::/128", ClassUnspecified, "the unspecified address (RFC 4291); connecting to it reaches this host"),
	rng("::1/128", ClassLoopback, "loopback (RFC 4291, ::1)"),
	// Security: AWS serves instance credentials over IPv6 here (Nitro).
	rng("fd00:ec2::254/128", ClassMetadata, "the AWS EC2 metadata service over IPv6 (fd00:ec2::254)"),
	rng("fc00::/7", ClassPrivate, "unique local (RFC 4193, fc00::/7)"),
	rng("fe80::/10", ClassLinkLocal, "link-local (RFC 4291, fe80::/10)"),
	rng("fec0::/10", ClassReserved, "deprecated site-local (RFC 3879, fec0::/10)"),
	rng("ff00::/8", ClassMulticast, "multicast (RFC 4291, ff00::/8)"),
	rng("100::/64", ClassReserved, "discard-only (RFC 6666, 100::/64)"),
	rng("2001:db8::/32", ClassReserved, "reserved for documentation (RFC 3849, 2001:db8::/32)"),
	rng("3fff::/20", ClassReserved, "reserved for documentation (RFC 9637, 3fff::/20)"),
	rng("2001:2::/48", ClassReserved, "reserved for benchmarking (RFC 5180, 2001:2::/48)"),
	rng("2001::/23", ClassReserved, "reserved for IETF protocol assignments (RFC 2928, 2001::/23)"),
	rng("5f00::/16", ClassReserved, "reserved for SRv6 SIDs (RFC 9602, 5f00::/16)"),
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	v4Compatible   = netip.MustParsePrefix("::/96")
	nat64WKP       = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	teredo         = netip.MustParsePrefix("2001::/32")
)

// ClassifyAddr returns the class of ip and a short description naming the
// range and its RFC, for reasons. IPv6 forms that carry an IPv4 address
// (IPv4-mapped, NAT64, 6to4) are classified by the IPv4 address they
// reach. A zone is ignored.
func ClassifyAddr(ip netip.Addr) (Class, string) {
	if !ip.IsValid() {
		return ClassInvalid, "not a valid IP address"
	}
	ip = ip.WithZone("")
	if ip.Is4() {
		return classify4(ip)
	}
	// Security: ::ffff:a.b.c.d is a.b.c.d on the wire; IPv6 forms that
	// embed IPv4 can bypass IPv4 checks and enable SSRF, so unmap first.
	if ip.Is4In6() {
		c, d := classify4(ip.Unmap())
		return c, d + " (as IPv4-mapped IPv6)"
	}
	return classify6(ip)
}

func classify4(ip netip.Addr) (Class, string) {
	for _, e := range v4Ranges {
		if e.prefix.Contains(ip) {
			return e.class, e.detail
		}
	}
	return ClassPublic, "public"
}

func classify6(ip netip.Addr) (Class, string) {
	b := ip.As16()
	switch {
	case ip == netip.IPv6Unspecified() || ip == netip.IPv6Loopback():
		// Named in v6Ranges; they also sit inside ::/96.
	case v4Compatible.Contains(ip):
		// Security: deprecated IPv4-compatible addresses (RFC 4291 2.5.5.1)
		// are routed as IPv4 by some stacks.
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		return ClassTransition, fmt.Sprintf("deprecated IPv4-compatible IPv6 (RFC 4291) for %s", v4)
	case nat64WKP.Contains(ip):
		// Security: a NAT64 gateway forwards 64:ff9b::a.b.c.d to a.b.c.d,
		// so the embedded address decides. Public ones stay allowed:
		// IPv6-only networks with DNS64 reach every IPv4 site this way.
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		c, d := classify4(v4)
		if c == ClassPublic {
			return ClassPublic, fmt.Sprintf("NAT64 (RFC 6052) for public %s", v4)
		}
		return embedded(c), fmt.Sprintf("NAT64 (RFC 6052) for %s, which is %s", v4, d)
	case nat64Local.Contains(ip):
		// Local-use NAT64 prefixes may embed IPv4 at any of six offsets
		// (RFC 8215, RFC 6052 section 2.2): no safe way to tell which.
		return ClassTransition, "local-use NAT64 (RFC 8215, 64:ff9b:1::/48)"
	case sixToFour.Contains(ip):
		// Security: 6to4 relays tunnel to the embedded IPv4 address.
		v4 := netip.AddrFrom4([4]byte(b[2:6]))
		if c, d := classify4(v4); c != ClassPublic {
			return embedded(c), fmt.Sprintf("6to4 (RFC 3056) for %s, which is %s", v4, d)
		}
		return ClassTransition, fmt.Sprintf("deprecated 6to4 (RFC 7526) for %s", v4)
	case teredo.Contains(ip):
		// Security: Teredo tunnels to the client IPv4 address stored
		// inverted in the last 32 bits (RFC 4380 section 4).
		var c4 [4]byte
		for i := range c4 {
			c4[i] = ^b[12+i]
		}
		return ClassTransition, fmt.Sprintf("Teredo (RFC 4380) for client %s", netip.AddrFrom4(c4))
	}
	for _, e := range v6Ranges {
		if e.prefix.Contains(ip) {
			return e.class, e.detail
		}
	}
	if !globalUnicast6.Contains(ip) {
		return ClassReserved, "outside IPv6 global unicast (RFC 4291, 2000::/3)"
	}
	return ClassPublic, "public"
}

// embedded is the class of a transition address that embeds a non-public
// IPv4 address of class c.
//
// Security: such an address is never "loopback" or "private" to this host:
// a gateway elsewhere would deliver it, so the Unsafe switches must not open
// it. Metadata stays metadata, so alerts name it.
func embedded(c Class) Class {
	if c == ClassMetadata {
		return ClassMetadata
	}
	return ClassTransition
}

// AddrPolicy decides which IP addresses egress may connect to. The zero
// value allows public addresses only. Switches named Unsafe open ranges an
// attacker-controlled DNS answer can point at; the broker prints a warning
// at startup when one is on.
type AddrPolicy struct {
	// UnsafeAllowLoopback allows 127.0.0.0/8 and ::1. For tests and local
	// development only: services on this host (the broker's own control
	// plane, databases, admin ports) become reachable from connectors.
	UnsafeAllowLoopback bool
	// UnsafeAllowPrivate allows RFC 1918, CGNAT (RFC 6598) and unique local
	// IPv6 addresses, for services on a private network. It never allows
	// link-local or cloud metadata addresses.
	UnsafeAllowPrivate bool
}

// Check decides whether egress may connect to ip. IPv4-mapped addresses are
// checked as IPv4.
func (p AddrPolicy) Check(ip netip.Addr) Decision {
	d, what := p.check(ip)
	if d.Host == "" {
		d.Reason = "address is " + what
	} else {
		d.Reason = "address " + d.Host + " is " + what
	}
	return d
}

// check returns the decision without a reason, and a predicate describing
// the address ("loopback (RFC 1122, 127.0.0.0/8)") for callers to phrase
// one.
func (p AddrPolicy) check(ip netip.Addr) (Decision, string) {
	if !ip.IsValid() {
		return Decision{Result: Deny, Code: CodeAddressDenied}, "not a valid IP address"
	}
	if ip.Zone() != "" {
		return Decision{Result: Deny, Code: CodeAddressDenied, Host: ip.String()}, "scoped to an IPv6 zone"
	}
	ip = ip.Unmap()
	c, what := ClassifyAddr(ip)
	switch {
	case c == ClassPublic:
	case c == ClassLoopback && p.UnsafeAllowLoopback:
		what += ", allowed by UnsafeAllowLoopback"
	case c == ClassPrivate && p.UnsafeAllowPrivate:
		what += ", allowed by UnsafeAllowPrivate"
	default:
		return Decision{Result: Deny, Code: CodeAddressDenied, Host: ip.String()}, what
	}
	return Decision{Result: Allow, Code: CodeAddressAllowed, Host: ip.String()}, what
}
