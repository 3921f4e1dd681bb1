package egress

import (
	"net/netip"
	"strconv"
	"strings"
)

// host is a parsed destination host: a DNS name or an IP literal.
type host struct {
	name string     // canonical name when ip is invalid
	ip   netip.Addr // valid for IP literals (never 4in6: those are unmapped)
}

func (h host) isIP() bool { return h.ip.IsValid() }

// String returns the host as it appears in a URL authority and in rules:
// the name, a dotted quad, or a bracketed IPv6 address.
func (h host) String() string {
	if !h.isIP() {
		return h.name
	}
	if h.ip.Is4() {
		return h.ip.String()
	}
	return "[" + h.ip.String() + "]"
}

const maxNameLen = 253 // RFC 1035 section 2.3.4, without the trailing dot

// parseURLHost parses the host part of a URL authority. It accepts what
// clients really send (any case, one trailing dot, IPv4 in every spelling an
// inet_aton or WHATWG URL parser accepts) and normalizes it, so that no
// spelling of an address can look like a name or slip past a rule. It
// returns a problem description on failure.
func parseURLHost(s string) (host, string) {
	if s == "" {
		return host{}, "empty host"
	}
	if s[0] == '[' {
		return parseBracketed(s)
	}
	// Security: "0x7f.1", "2130706433", "0177.0.0.1" and "127.1" are all
	// 127.0.0.1 to inet_aton (and so to getaddrinfo) and to browsers' URL
	// parsers. A host whose last label is numeric is an IPv4 literal, never
	// a name, and is normalized before matching (WHATWG URL "ends in a
	// number").
	lower := strings.ToLower(s)
	trimmed := strings.TrimSuffix(lower, ".")
	if trimmed == "" {
		return host{}, "empty host"
	}
	last := trimmed[strings.LastIndexByte(trimmed, '.')+1:]
	if isNumericLabel(last) {
		ip, ok := parseIPv4Loose(trimmed)
		if !ok {
			return host{}, "malformed IPv4 literal"
		}
		return host{ip: ip}, ""
	}
	if p := checkName(trimmed); p != "" {
		return host{}, p
	}
	return host{name: trimmed}, ""
}

func parseBracketed(s string) (host, string) {
	if len(s) < 2 || s[len(s)-1] != ']' {
		return host{}, "unterminated IPv6 literal"
	}
	inner := s[1 : len(s)-1]
	// Security: a zone ("%eth0", "%25eth0") selects an interface, which is
	// meaningless for a remote destination and a classic filter bypass.
	if strings.IndexByte(inner, '%') >= 0 {
		return host{}, "IPv6 zone identifiers are not allowed"
	}
	// Brackets hold IPv6 only; "[127.0.0.1]" and IPvFuture are rejected.
	if strings.IndexByte(inner, ':') < 0 {
		return host{}, "brackets must contain an IPv6 address"
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || !ip.Is6() {
		return host{}, "malformed IPv6 literal"
	}
	// Security: ::ffff:127.0.0.1 is 127.0.0.1 on the wire; match and
	// classify it as IPv4 so it cannot bypass IPv4 rules and checks.
	return host{ip: ip.Unmap()}, ""
}

// checkName validates a lower-case DNS name without a trailing dot: labels
// of 1-63 letters, digits, '-' or '_', not starting or ending with '-'.
func checkName(s string) string {
	if len(s) > maxNameLen {
		return "host name longer than 253 bytes"
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return "empty label in host name"
		}
		if len(label) > 63 {
			return "label longer than 63 bytes in host name"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "label starts or ends with '-' in host name"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "invalid character in host name"
			}
		}
	}
	return ""
}

// isNumericLabel reports whether a label would make a URL parser treat the
// whole host as IPv4: all decimal digits, or 0x followed by hex digits.
func isNumericLabel(l string) bool {
	if l == "" {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// parseIPv4Loose parses IPv4 the way inet_aton and the WHATWG URL standard
// do: one to four parts, each decimal, octal (leading 0) or hex (0x); the
// last part fills the remaining bytes ("127.1" is 127.0.0.1,
// "2130706433" is 127.0.0.1).
func parseIPv4Loose(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		rem := 4 - i // bytes the last part fills
		if n >= 1<<(8*rem) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" is 0 to WHATWG
		}
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	if len(p) > 32 { // bounds the work; any such value overflows anyway
		return 0, false
	}
	n, err := strconv.ParseUint(p, base, 64)
	if err != nil || n > 0xffffffff {
		return 0, false
	}
	return n, true
}

// parsePort parses a canonical decimal port: 1-65535, no sign, no leading
// zero.
func parsePort(s string) (uint16, string) {
	if s == "" {
		return 0, "empty port"
	}
	if len(s) > 5 || s[0] == '0' {
		return 0, "port is not a canonical number in 1-65535"
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, "port is not a canonical number in 1-65535"
		}
		n = n*10 + int(s[i]-'0')
	}
	if n < 1 || n > 65535 {
		return 0, "port is not a canonical number in 1-65535"
	}
	return uint16(n), ""
}

// splitHostPort splits an authority without userinfo into host and port
// text. hasPort reports whether a ':' separator was present.
func splitHostPort(a string) (h, port string, hasPort bool, problem string) {
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", "", false, "unterminated IPv6 literal"
		}
		h, rest := a[:end+1], a[end+1:]
		if rest == "" {
			return h, "", false, ""
		}
		if rest[0] != ':' {
			return "", "", false, "unexpected text after IPv6 literal"
		}
		return h, rest[1:], true, ""
	}
	i := strings.IndexByte(a, ':')
	if i < 0 {
		return a, "", false, ""
	}
	if strings.IndexByte(a[i+1:], ':') >= 0 {
		return "", "", false, "more than one ':' in host (IPv6 must be bracketed)"
	}
	return a[:i], a[i+1:], true, ""
}
