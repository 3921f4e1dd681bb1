// Package egress decides whether a connector's outgoing HTTP request may
// leave the broker, and then sends it without giving the decision a chance to
// go stale. It is the broker's last line of defence: every check here sees
// the value that will actually be used, as late as possible.
//
// # Three checks, three places
//
//  1. [Decide] is a pure function over the request the connector asked for:
//     strict URL parsing, the declared "host:port" rules ([ParseRules]), the
//     scheme/port pairing, the method allowlist and header hygiene. It
//     returns a [Decision] whose zero value denies.
//  2. [AddrPolicy.Check] classifies every IP address a name resolves to
//     ([ClassifyAddr]): loopback, private, link-local, cloud metadata and
//     other special-purpose ranges are denied unless the operator opts in.
//  3. [Dialer.DialContext] resolves a name once, vets every answer with the
//     policy, connects to the vetted address itself (no second lookup, so no
//     DNS rebinding window) and re-checks the connected peer.
//
// [Client.Send] ties them together: it decides, sends through a
// [NewTransport] transport that uses the pinned [Dialer] and verified TLS,
// never honours proxy environment variables, returns redirects to the caller
// unless asked to follow them (re-deciding every hop), and enforces size
// limits and a total deadline.
//
// # Rules
//
// A rule is a canonical string, as printed by the manifest package:
//
//	api.example.com:443      exactly this name and port
//	*.example.com:443        exactly one extra label: a.example.com:443 matches,
//	                         example.com:443 and a.b.example.com:443 do not
//	127.0.0.1:8080, [::1]:8080
//	                         an IP literal; manifests never contain these, but
//	                         operator rules and tests may
//
// # Scheme and port
//
// https may go to any declared port. Plain http may go only to a declared
// port other than 443: a rule for :443 is a promise of verified TLS, so
// http://example.com:443/ is denied. Plain http to other declared ports
// exists for loopback test services and legacy endpoints; consent shows the
// port, so a manifest that declares example.com:80 asks for plaintext in the
// open.
//
// # Denials
//
// Every denial carries a stable [Decision.Code] (the Code* constants) and a
// human [Decision.Reason] that names the host and port but never echoes
// header values, query strings or bodies. Errors from dialing and sending
// that stem from policy are [*DeniedError], so the broker can audit the
// reason with [errors.As].
package egress

import (
	"fmt"

	"aileron.dev/aileron/sdk/abi"
)

// Result is the outcome of a decision. The zero value is [Deny]: a Decision
// that was never filled in denies.
type Result int

const (
	// Deny refuses the request. It is the zero value.
	Deny Result = iota
	// Allow lets the request proceed to the next check.
	Allow
)

// String returns "allow" or "deny". Unknown values print as denials, because
// they are treated as denials.
func (r Result) String() string {
	if r == Allow {
		return "allow"
	}
	if r == Deny {
		return "deny"
	}
	return fmt.Sprintf("deny(%d)", int(r))
}

// Decision is the result of one policy check together with its reason. The
// broker logs Reason and writes it, with Code, to the audit log.
type Decision struct {
	// Result is Allow or Deny; anything else denies.
	Result Result
	// Code is a short, stable, machine-readable name for the outcome, one
	// of the Code* constants.
	Code string
	// Reason explains the outcome to a person. It names the host and port
	// but never contains header values, query strings or body bytes.
	Reason string
	// Host is the canonical destination host as it appears in a URL: a
	// lower-case name without a trailing dot, a dotted quad, or a
	// bracketed IPv6 address. Empty when the URL did not get that far.
	Host string
	// Port is the destination port, when it is known.
	Port uint16
	// URL is, when Result is Allow, the URL to send: canonical host,
	// default port omitted, fragment removed. Use it instead of the URL the
	// connector supplied.
	URL string
	// Rule is, when the decision matched a rule, that rule as written.
	Rule string
}

// Allowed reports whether d allows the request.
func (d Decision) Allowed() bool { return d.Result == Allow }

// Stable decision codes. They are part of the broker's contract with the
// audit log and the connector (they appear in abi.Error messages); add new
// ones, never rename.
const (
	// CodeAllowed: every check passed.
	CodeAllowed = "allowed"
	// CodeBadURL: the URL is malformed, too long, relative, or parsed
	// differently by two parsers.
	CodeBadURL = "bad_url"
	// CodeBadScheme: the scheme is not https or http.
	CodeBadScheme = "bad_scheme"
	// CodeUserinfo: the URL carries user:password@.
	CodeUserinfo = "userinfo_in_url"
	// CodeBadHost: the host is not a valid name or IP literal.
	CodeBadHost = "bad_host"
	// CodeBadPort: the port is empty, zero, out of range or not canonical.
	CodeBadPort = "bad_port"
	// CodeHostNotDeclared: no rule names the host.
	CodeHostNotDeclared = abi.CodeHostNotDeclared
	// CodePortNotDeclared: a rule names the host, but not on this port.
	CodePortNotDeclared = "port_not_declared"
	// CodeIPLiteral: the host is an IP literal that no rule names.
	CodeIPLiteral = "ip_literal_not_declared"
	// CodePlaintextToTLSPort: http:// to a port declared for TLS (443).
	CodePlaintextToTLSPort = "plaintext_to_tls_port"
	// CodeBadMethod: the method is not in the allowlist.
	CodeBadMethod = "bad_method"
	// CodeBadHeader: a header name or value is malformed.
	CodeBadHeader = "bad_header"
	// CodeHopByHopHeader: a hop-by-hop or broker-managed header was set.
	CodeHopByHopHeader = "hop_by_hop_header"
	// CodeHostHeaderMismatch: a Host header disagrees with the URL.
	CodeHostHeaderMismatch = "host_header_mismatch"
	// CodeHeadersTooLarge: the headers exceed [MaxHeaderBytes].
	CodeHeadersTooLarge = "headers_too_large"
	// CodeRequestTooLarge: the request body exceeds the limit.
	CodeRequestTooLarge = "request_too_large"
	// CodeRedirectDowngrade: a redirect from https to http.
	CodeRedirectDowngrade = "redirect_downgrade"
	// CodeAddressAllowed: the address is public or allowed by the operator.
	CodeAddressAllowed = "address_allowed"
	// CodeAddressDenied: the address is in a denied range; the reason names
	// the range.
	CodeAddressDenied = "address_denied"
	// CodeResolveFailed: the name did not resolve to any address.
	CodeResolveFailed = "resolve_failed"
	// CodePeerMismatch: the connected peer is not the vetted address.
	CodePeerMismatch = "peer_mismatch"
	// CodeBadNetwork: a dial for a network other than tcp, tcp4 or tcp6.
	CodeBadNetwork = "bad_network"
)

// DeniedError is returned by [Dialer.DialContext] and [Client.Send] when a
// policy check, not the network, stopped the request. Use [errors.As] to
// recover the [Decision] for the audit log.
type DeniedError struct {
	Decision Decision
}

// Error returns "egress denied: " and the decision's reason.
func (e *DeniedError) Error() string {
	return "egress denied: " + e.Decision.Reason
}

func deny(code, host string, port uint16, format string, args ...any) Decision {
	return Decision{Result: Deny, Code: code, Host: host, Port: port, Reason: fmt.Sprintf(format, args...)}
}
