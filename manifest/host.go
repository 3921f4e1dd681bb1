package manifest

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// HostPort is one network destination a connector may reach: a DNS name
// and a TCP port, or a wildcard covering exactly one more label.
type HostPort struct {
	// Host is a lowercase DNS name without a trailing dot. For a wildcard
	// it is the suffix after "*.", e.g. "slack.com" for "*.slack.com".
	Host string
	// Port is 1 to 65535.
	Port uint16
	// Wildcard reports a leading "*." label: any single label in front of
	// Host, and not Host itself.
	Wildcard bool
}

// ParseHostPort parses a manifest host entry "host:port" strictly:
//
//   - the port is required, decimal, 1..65535, without leading zeros;
//   - the host is an RFC 1123 name: labels of [a-z0-9-], 1 to 63 bytes,
//     not starting or ending with '-', at most 253 bytes in all; uppercase
//     and a trailing dot are rejected rather than folded, so an entry has
//     one spelling;
//   - IP literals are rejected: connectors name hosts, and the broker
//     resolves and vets the addresses (a literal would bypass that and
//     invites private-range and metadata-address requests). The last label
//     must start with a letter, which also rules out every numeric form
//     inet_aton accepts ("2130706433", "0x7f.1", "127.1");
//   - a wildcard is a single leading "*." followed by at least two labels:
//     "*.slack.com:443" is allowed, "*.com:443", "a.*.com:443", "*:443"
//     and "**.slack.com:443" are not.
func ParseHostPort(s string) (HostPort, error) {
	hp, msg := parseHostPort(s)
	if msg != "" {
		return HostPort{}, &Error{Msg: fmt.Sprintf("invalid host %q: %s", s, msg), Err: ErrInvalid}
	}
	return hp, nil
}

func parseHostPort(s string) (HostPort, string) {
	if len(s) > 253+6 {
		return HostPort{}, "longer than 259 bytes"
	}
	// Security: IPv6 literals ("[::1]:443") and bare IPs are rejected
	// before anything else, with a message that says why.
	if strings.HasPrefix(s, "[") {
		return HostPort{}, "IP literals are not allowed; name the host by its DNS name"
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return HostPort{}, fmt.Sprintf("missing port; write e.g. %q", s+":443")
	}
	host, portStr := s[:i], s[i+1:]
	if _, err := netip.ParseAddr(host); err == nil {
		return HostPort{}, "IP literals are not allowed; name the host by its DNS name"
	}
	if strings.Contains(host, ":") {
		return HostPort{}, "more than one ':'; write \"host:port\""
	}
	port, msg := parsePort(portStr)
	if msg != "" {
		return HostPort{}, msg
	}
	hp := HostPort{Port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		hp.Wildcard = true
		host = rest
		if strings.Count(host, ".") < 1 {
			return HostPort{}, "a wildcard must be followed by at least two labels, e.g. \"*.example.com:443\""
		}
	}
	if strings.Contains(host, "*") {
		return HostPort{}, "a wildcard is allowed only as the whole first label: \"*.example.com:443\""
	}
	if msg := hostnameProblem(host); msg != "" {
		return HostPort{}, msg
	}
	hp.Host = host
	return hp, ""
}

func parsePort(s string) (uint16, string) {
	if s == "" {
		return 0, "missing port after ':'"
	}
	if len(s) > 5 {
		return 0, fmt.Sprintf("port %s is out of range 1-65535", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Sprintf("port %q is not a decimal number", s)
		}
	}
	if s[0] == '0' {
		if s == "0" {
			return 0, "port 0 is out of range 1-65535"
		}
		return 0, fmt.Sprintf("port %q has a leading zero", s)
	}
	n, _ := strconv.Atoi(s)
	if n > 65535 {
		return 0, fmt.Sprintf("port %s is out of range 1-65535", s)
	}
	return uint16(n), ""
}

// hostnameProblem checks an RFC 1123 host name in its canonical spelling.
func hostnameProblem(h string) string {
	switch {
	case h == "":
		return "missing host"
	case len(h) > 253:
		return "host name is longer than 253 bytes"
	case strings.HasSuffix(h, "."):
		return fmt.Sprintf("remove the trailing dot: %q", strings.TrimRight(h, "."))
	}
	if l := strings.ToLower(h); l != h && hostnameProblem(l) == "" {
		return fmt.Sprintf("uppercase letters are not allowed (host names are case-insensitive and have one spelling); write %q", l)
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return "empty label"
		case len(l) > 63:
			return fmt.Sprintf("label %q is longer than 63 bytes", l)
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Sprintf("label %q must not start or end with '-'", l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("label %q has character %q; use only a-z, 0-9 and '-' (IDNs in punycode: xn--)", l, c)
			}
		}
	}
	// Security: a numeric last label means the resolver may treat the
	// name as an IPv4 address in inet_aton form ("127.1", "2130706433",
	// "0x7f000001"); top-level domains always start with a letter.
	if last := labels[len(labels)-1]; last[0] < 'a' || last[0] > 'z' {
		return "the last label must start with a letter (numeric names are IP addresses, which are not allowed)"
	}
	return ""
}

// String returns the canonical "host:port", with "*." for a wildcard.
func (h HostPort) String() string {
	s := h.Host + ":" + strconv.Itoa(int(h.Port))
	if h.Wildcard {
		return "*." + s
	}
	return s
}

// MarshalText encodes h as [HostPort.String] (for JSON).
func (h HostPort) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses text with [ParseHostPort].
func (h *HostPort) UnmarshalText(text []byte) error {
	v, err := ParseHostPort(string(text))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// matches reports whether host:port is one of h's destinations, for
// [HostPort.Covers]; requests are matched by the broker (broker/egress),
// not here. Host names compare case-insensitively; anything else must be
// exact: a trailing dot or an IP address never matches. A wildcard matches
// exactly one label in front of its suffix: "*.slack.com" matches
// "a.slack.com" but neither "slack.com" nor "a.b.slack.com" (one label is
// the narrower reading, and a deeper name is one more place for an
// attacker-controlled subdomain).
func (h HostPort) matches(host string, port uint16) bool {
	if h.Host == "" || port != h.Port {
		return false
	}
	host = strings.ToLower(host)
	if !h.Wildcard {
		return host == h.Host
	}
	label, ok := strings.CutSuffix(host, "."+h.Host)
	return ok && label != "" && !strings.ContainsAny(label, ".*") && hostnameProblem(label+"."+h.Host) == ""
}

// Covers reports whether every destination o matches is also matched by h:
// the test for an action narrowing a connector's hosts.
func (h HostPort) Covers(o HostPort) bool {
	switch {
	case h.Port != o.Port || h.Host == "":
		return false
	case h.Wildcard:
		// A wildcard covers itself, or one concrete name below it.
		return o.Wildcard && o.Host == h.Host || !o.Wildcard && h.matches(o.Host, o.Port)
	default:
		return !o.Wildcard && o.Host == h.Host
	}
}
