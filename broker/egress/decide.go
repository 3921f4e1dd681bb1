package egress

import (
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Limits that [Decide] enforces on what a connector asks for.
const (
	// MaxURLBytes bounds the request URL.
	MaxURLBytes = 16 << 10
	// MaxHeaderBytes bounds the sum of header name and value lengths.
	MaxHeaderBytes = 64 << 10
)

// allowedMethods is the method allowlist (RFC 9110 section 9, RFC 5789).
// Methods are case-sensitive: "get" is not GET.
var allowedMethods = map[string]bool{
	"GET":     true,
	"HEAD":    true,
	"POST":    true,
	"PUT":     true,
	"PATCH":   true, // RFC 5789
	"DELETE":  true,
	"OPTIONS": true,
	// Not CONNECT: it would turn the broker into a TCP tunnel to the host.
	// Not TRACE: it echoes the request, credential included (cross-site
	// tracing).
}

// managedHeaders may not be set by a connector. Hop-by-hop headers (RFC 9110
// section 7.6.1) describe one connection, which the broker owns; framing
// headers are computed from the body. Letting a connector set them invites
// request smuggling (CL/TE desync) and protocol switches. Every header whose
// canonical name starts with "Proxy-" is refused too.
var managedHeaders = map[string]string{
	"Connection":        "hop-by-hop",
	"Keep-Alive":        "hop-by-hop",
	"Proxy-Connection":  "hop-by-hop", // non-standard, still honoured by some proxies
	"Te":                "hop-by-hop",
	"Trailer":           "hop-by-hop",
	"Transfer-Encoding": "hop-by-hop", // Security: CL.TE / TE.CL smuggling
	"Upgrade":           "hop-by-hop", // Security: h2c/websocket switch past the policy
	"Http2-Settings":    "hop-by-hop", // RFC 7540 section 3.2.1, h2c upgrade
	"Content-Length":    "set by the broker from the body",
	"Expect":            "set by the broker", // 100-continue is transport business
}

// Decide decides whether a connector may send method to rawURL with headers,
// given the destinations in rules. It is pure: no DNS, no I/O, no clock.
// The address the name resolves to is checked later by [AddrPolicy.Check]
// inside [Dialer.DialContext].
//
// On Allow, use [Decision.URL] (canonical, fragment removed) to build the
// request, and never a Host header from the connector: one that disagrees
// with the URL is denied, one that agrees is redundant.
func Decide(rules Rules, method, rawURL string, headers map[string][]string) Decision {
	t, d := parseTarget(rawURL)
	if !t.ok {
		return d
	}
	hp := t.host.String() + ":" + strconv.Itoa(int(t.port))

	ru, other := rules.match(t.host, t.port)
	if ru == nil {
		switch {
		case len(other) > 0:
			return deny(CodePortNotDeclared, t.host.String(), t.port,
				"host %s is not declared in the connector manifest (declared ports for %s: %s)",
				hp, t.host, portList(other))
		case t.host.isIP():
			return deny(CodeIPLiteral, t.host.String(), t.port,
				"host %s is an IP literal that is not declared in the connector manifest; use a declared host name", hp)
		default:
			return deny(CodeHostNotDeclared, t.host.String(), t.port,
				"host %s is not declared in the connector manifest", hp)
		}
	}
	// Security: a :443 declaration promises verified TLS; plaintext to it
	// would send the credential in the clear.
	if t.scheme == "http" && t.port == 443 {
		return deny(CodePlaintextToTLSPort, t.host.String(), t.port,
			"plaintext http to a port declared for TLS: %s requires https", hp)
	}
	if !allowedMethods[method] {
		return deny(CodeBadMethod, t.host.String(), t.port,
			"method %s is not allowed (allowed: GET HEAD POST PUT PATCH DELETE OPTIONS)", quoteShort(method))
	}
	if d, ok := checkHeaders(t, headers); !ok {
		return d
	}
	return Decision{
		Result: Allow,
		Code:   CodeAllowed,
		Reason: "host " + hp + " matches rule " + ru.text,
		Host:   t.host.String(),
		Port:   t.port,
		URL:    t.url(),
		Rule:   ru.text,
	}
}

// target is a strictly parsed request URL.
type target struct {
	ok     bool
	scheme string
	host   host
	port   uint16
	rest   string // path and query, raw; fragment removed
}

func (t target) url() string {
	s := t.scheme + "://" + t.host.String()
	if t.port != defaultPort(t.scheme) {
		s += ":" + strconv.Itoa(int(t.port))
	}
	return s + t.rest
}

func defaultPort(scheme string) uint16 {
	if scheme == "http" {
		return 80
	}
	return 443
}

// parseTarget parses an absolute http(s) URL with its own strict parser and
// then with net/url; the two must agree on scheme and authority, so that a
// parser differential cannot make the policy check one host and net/http
// dial another.
func parseTarget(raw string) (target, Decision) {
	if len(raw) > MaxURLBytes {
		return target{}, deny(CodeBadURL, "", 0, "URL is longer than %d bytes", MaxURLBytes)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		// Security: backslash is a path separator to WHATWG parsers
		// ("https://evil.com\@good.com"); raw spaces, controls and
		// non-ASCII are never valid in a URI (RFC 3986) and are where
		// parsers disagree.
		if c <= ' ' || c >= 0x7f || c == '\\' {
			return target{}, deny(CodeBadURL, "", 0, "URL contains a space, control, backslash or non-ASCII byte at offset %d", i)
		}
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return target{}, deny(CodeBadURL, "", 0, "URL is not absolute (want https://host/...)")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "https" && scheme != "http" {
		return target{}, deny(CodeBadScheme, "", 0, "scheme %s is not allowed; use https", quoteShort(scheme))
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	// Security: userinfo hides the real host from people
	// ("https://good.com@evil.com") and is a credential channel.
	if strings.IndexByte(authority, '@') >= 0 {
		return target{}, deny(CodeUserinfo, "", 0, "URL must not contain userinfo (user:password@)")
	}
	hostText, portText, hasPort, problem := splitHostPort(authority)
	if problem != "" {
		return target{}, deny(CodeBadHost, "", 0, "host %s: %s", quoteShort(authority), problem)
	}
	h, problem := parseURLHost(hostText)
	if problem != "" {
		return target{}, deny(CodeBadHost, "", 0, "host %s: %s", quoteShort(hostText), problem)
	}
	port := defaultPort(scheme)
	if hasPort {
		if port, problem = parsePort(portText); problem != "" {
			return target{}, deny(CodeBadPort, h.String(), 0, "host %s: %s", h, problem)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, deny(CodeBadURL, h.String(), port, "URL for host %s is malformed", h)
	}
	if u.Scheme != scheme || u.Opaque != "" || u.User != nil || !strings.EqualFold(u.Host, authority) {
		return target{}, deny(CodeBadURL, h.String(), port, "URL for host %s is ambiguous", h)
	}
	// The fragment is never sent on the wire (RFC 9110 section 7.1); drop
	// it so it cannot reach a server that would treat it as path.
	if i := strings.IndexByte(tail, '#'); i >= 0 {
		tail = tail[:i]
	}
	return target{ok: true, scheme: scheme, host: h, port: port, rest: tail}, Decision{}
}

func checkHeaders(t target, headers map[string][]string) (Decision, bool) {
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic reasons
	hs, total := t.host.String(), 0
	for _, name := range names {
		if !validToken(name) {
			return deny(CodeBadHeader, hs, t.port, "header name %s is not a valid token", quoteShort(name)), false
		}
		canon := textproto.CanonicalMIMEHeaderKey(name)
		vals := headers[name]
		total += len(name)
		for _, v := range vals {
			total += len(v)
			// Security: CR/LF splits headers (response splitting,
			// smuggling); NUL and other controls truncate or confuse
			// parsers. RFC 9110 section 5.5 allows only VCHAR,
			// obs-text, SP and HTAB.
			if !validFieldValue(v) {
				return deny(CodeBadHeader, hs, t.port, "header %s has a control character in its value", canon), false
			}
		}
		if total > MaxHeaderBytes {
			return deny(CodeHeadersTooLarge, hs, t.port, "headers exceed %d bytes", MaxHeaderBytes), false
		}
		if why, ok := managedHeaders[canon]; ok {
			return deny(CodeHopByHopHeader, hs, t.port, "header %s may not be set by a connector (%s)", canon, why), false
		}
		if strings.HasPrefix(canon, "Proxy-") {
			return deny(CodeHopByHopHeader, hs, t.port, "header %s may not be set by a connector (proxy)", canon), false
		}
		if canon == "Host" && !hostHeaderMatches(t, vals) {
			// Security: a Host that differs from the vetted URL reaches
			// another virtual host behind the same address (the class of
			// Spin CVE-2024-32980).
			return deny(CodeHostHeaderMismatch, hs, t.port,
				"Host header does not match the URL host %s:%d", hs, t.port), false
		}
	}
	return Decision{}, true
}

func hostHeaderMatches(t target, vals []string) bool {
	if len(vals) != 1 {
		return false
	}
	hostText, portText, hasPort, problem := splitHostPort(vals[0])
	if problem != "" {
		return false
	}
	h, problem := parseURLHost(hostText)
	if problem != "" || h != t.host {
		return false
	}
	port := defaultPort(t.scheme)
	if hasPort {
		if port, problem = parsePort(portText); problem != "" {
			return false
		}
	}
	return port == t.port
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// quoteShort quotes untrusted text for a reason, bounded in length.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
