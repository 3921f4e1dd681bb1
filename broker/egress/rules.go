package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rules is a parsed set of allowed destinations. The zero value allows
// nothing. Build it once per grant with [ParseRules]; it is immutable and
// safe for concurrent use.
type Rules struct {
	rules []rule
}

type rule struct {
	text     string
	wildcard bool       // "*.suffix": exactly one extra label
	name     string     // exact name, or the suffix of a wildcard
	ip       netip.Addr // IP literal rule
	port     uint16
}

// ParseRules parses canonical destination strings: "name:port",
// "*.suffix:port" (one leading wildcard label, matching exactly one extra
// label; the suffix needs at least two labels), "a.b.c.d:port" or
// "[v6]:port". Canonical means lower-case, no trailing dot, decimal port
// 1-65535 without leading zeros, and IP literals in their shortest standard
// form. Anything else is an error: the manifest package prints canonical
// strings, so a non-canonical one is a bug worth stopping on.
func ParseRules(dests []string) (Rules, error) {
	out := make([]rule, 0, len(dests))
	for _, d := range dests {
		r, err := parseRule(d)
		if err != nil {
			return Rules{}, fmt.Errorf("egress: rule %q: %w", d, err)
		}
		out = append(out, r)
	}
	return Rules{rules: out}, nil
}

func parseRule(d string) (rule, error) {
	h, p, hasPort, problem := splitHostPort(d)
	if problem != "" {
		return rule{}, fmt.Errorf("%s", problem)
	}
	if !hasPort {
		return rule{}, fmt.Errorf("missing :port")
	}
	port, problem := parsePort(p)
	if problem != "" {
		return rule{}, fmt.Errorf("%s", problem)
	}
	r := rule{text: d, port: port}
	if strings.HasPrefix(h, "[") {
		hh, problem := parseBracketed(h)
		if problem != "" {
			return rule{}, fmt.Errorf("%s", problem)
		}
		if hh.String() != h {
			return rule{}, fmt.Errorf("IP literal is not canonical (want %s)", hh)
		}
		r.ip = hh.ip
		return r, nil
	}
	if ip, err := netip.ParseAddr(h); err == nil && ip.Is4() {
		r.ip = ip
		return r, nil
	}
	if strings.HasPrefix(h, "*.") {
		r.wildcard = true
		h = h[2:]
		if strings.Count(h, ".") < 1 {
			return rule{}, fmt.Errorf("wildcard suffix needs at least two labels")
		}
	}
	if strings.ToLower(h) != h {
		return rule{}, fmt.Errorf("host is not lower-case")
	}
	if problem := checkName(h); problem != "" {
		return rule{}, fmt.Errorf("%s", problem)
	}
	if isNumericLabel(h[strings.LastIndexByte(h, '.')+1:]) {
		// Security: URL parsers would read such a host as IPv4.
		return rule{}, fmt.Errorf("host name ends in a numeric label")
	}
	r.name = h
	return r, nil
}

// match returns the first rule naming h on port, and whether some rule
// names h on another port (for a precise reason).
func (r Rules) match(h host, port uint16) (matched *rule, otherPorts []uint16) {
	for i := range r.rules {
		ru := &r.rules[i]
		if !ru.matchesHost(h) {
			continue
		}
		if ru.port == port {
			return ru, nil
		}
		otherPorts = append(otherPorts, ru.port)
	}
	return nil, otherPorts
}

func (ru *rule) matchesHost(h host) bool {
	if h.isIP() || ru.ip.IsValid() {
		return h.ip.IsValid() && ru.ip == h.ip
	}
	if !ru.wildcard {
		return ru.name == h.name
	}
	// Security: exactly one extra label. "*.example.com" must not cover
	// example.com itself nor a.b.example.com, where other parties may
	// control names.
	label, ok := strings.CutSuffix(h.name, "."+ru.name)
	return ok && label != "" && !strings.Contains(label, ".")
}

func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}
