package egress

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var testRules = mustRules(
	"api.example.com:443",
	"*.wild.example.com:443",
	"plain.example.com:8080",
	"both.example.com:443",
	"both.example.com:8443",
)

// ipRules names an IP literal, as an operator rule (never a manifest) may.
var ipRules = mustRules("127.0.0.1:443", "[2001:db8::1]:443")

func mustRules(s ...string) Rules {
	r, err := ParseRules(s)
	if err != nil {
		panic(err)
	}
	return r
}

func TestZeroValuesDeny(t *testing.T) {
	require.False(t, Decision{}.Allowed())
	require.Equal(t, "deny", Decision{}.Result.String())
	require.Equal(t, "deny(7)", Result(7).String())
	require.False(t, Decision{Result: 7}.Allowed())
	d := Decide(Rules{}, "GET", "https://api.example.com/", nil)
	require.Equal(t, CodeHostNotDeclared, d.Code)
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name    string
		rules   Rules
		method  string
		url     string
		headers map[string][]string
		wantURL string
		rule    string
	}{
		{name: "exact", url: "https://api.example.com/v1/x?q=1", wantURL: "https://api.example.com/v1/x?q=1", rule: "api.example.com:443"},
		{name: "no path", url: "https://api.example.com", wantURL: "https://api.example.com", rule: "api.example.com:443"},
		{name: "case folded", url: "HTTPS://API.Example.COM/X", wantURL: "https://api.example.com/X", rule: "api.example.com:443"},
		{name: "explicit default port dropped", url: "https://api.example.com:443/x", wantURL: "https://api.example.com/x", rule: "api.example.com:443"},
		{name: "trailing dot", url: "https://api.example.com./x", wantURL: "https://api.example.com/x", rule: "api.example.com:443"},
		{name: "fragment stripped", url: "https://api.example.com/x?a=b#frag/../../admin", wantURL: "https://api.example.com/x?a=b", rule: "api.example.com:443"},
		{name: "wildcard one label", url: "https://a.wild.example.com/", wantURL: "https://a.wild.example.com/", rule: "*.wild.example.com:443"},
		{name: "http to declared non-TLS port", url: "http://plain.example.com:8080/", wantURL: "http://plain.example.com:8080/", rule: "plain.example.com:8080"},
		{name: "https to declared non-443 port", url: "https://plain.example.com:8080/", wantURL: "https://plain.example.com:8080/", rule: "plain.example.com:8080"},
		{name: "second port of a host", url: "https://both.example.com:8443/", wantURL: "https://both.example.com:8443/", rule: "both.example.com:8443"},
		{name: "every allowed method", method: "OPTIONS", url: "https://api.example.com/", wantURL: "https://api.example.com/", rule: "api.example.com:443"},
		{name: "matching Host header", url: "https://api.example.com/", headers: map[string][]string{"Host": {"API.example.com."}}, wantURL: "https://api.example.com/", rule: "api.example.com:443"},
		{name: "matching Host header with default port", url: "https://api.example.com/", headers: map[string][]string{"host": {"api.example.com:443"}}, wantURL: "https://api.example.com/", rule: "api.example.com:443"},
		{name: "ordinary headers", url: "https://api.example.com/", headers: map[string][]string{"Authorization": {"Bearer {{aileron.credential}}"}, "X-Tab": {"a\tb"}, "Accept": nil}, wantURL: "https://api.example.com/", rule: "api.example.com:443"},
		// IP literals in every spelling normalize to the one address an
		// operator rule names (WHATWG URL IPv4 parser, inet_aton).
		{name: "dotted quad", rules: ipRules, url: "https://127.0.0.1/", wantURL: "https://127.0.0.1/", rule: "127.0.0.1:443"},
		{name: "hex short form", rules: ipRules, url: "https://0x7f.1/", wantURL: "https://127.0.0.1/", rule: "127.0.0.1:443"},
		{name: "decimal", rules: ipRules, url: "https://2130706433/", wantURL: "https://127.0.0.1/", rule: "127.0.0.1:443"},
		{name: "octal", rules: ipRules, url: "https://0177.0.0.1/", wantURL: "https://127.0.0.1/", rule: "127.0.0.1:443"},
		{name: "short form", rules: ipRules, url: "https://127.1/", wantURL: "https://127.0.0.1/", rule: "127.0.0.1:443"},
		{name: "IPv4-mapped IPv6", rules: ipRules, url: "https://[::ffff:127.0.0.1]/", wantURL: "https://127.0.0.1/", rule: "127.0.0.1:443"},
		{name: "IPv4-mapped IPv6 hex", rules: ipRules, url: "https://[::FFFF:7f00:1]/", wantURL: "https://127.0.0.1/", rule: "127.0.0.1:443"},
		{name: "IPv6 non-canonical", rules: ipRules, url: "https://[2001:DB8:0:0::1]/", wantURL: "https://[2001:db8::1]/", rule: "[2001:db8::1]:443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules, method := tc.rules, tc.method
			if len(rules.rules) == 0 {
				rules = testRules
			}
			if method == "" {
				method = "GET"
			}
			d := Decide(rules, method, tc.url, tc.headers)
			require.Equal(t, Allow, d.Result, d.Reason)
			require.Equal(t, CodeAllowed, d.Code)
			require.Equal(t, tc.wantURL, d.URL)
			require.Equal(t, tc.rule, d.Rule)
			require.Equal(t, "host "+d.Host+":"+strconv.Itoa(int(d.Port))+" matches rule "+tc.rule, d.Reason)
		})
	}
}

func TestDecide_Errors(t *testing.T) {
	long := "https://api.example.com/" + strings.Repeat("a", MaxURLBytes)
	big := map[string][]string{"X-Big": {strings.Repeat("a", MaxHeaderBytes)}}
	tests := []struct {
		name    string
		rules   Rules
		method  string
		url     string
		headers map[string][]string
		code    string
		reason  string
	}{
		// Destination rules.
		{name: "undeclared host", url: "https://evil.example.com/", code: CodeHostNotDeclared,
			reason: "host evil.example.com:443 is not declared in the connector manifest"},
		{name: "no rules", rules: Rules{}, url: "https://api.example.com/", code: CodeHostNotDeclared,
			reason: "host api.example.com:443 is not declared in the connector manifest"},
		{name: "suffix confusion", url: "https://api.example.com.evil.com/", code: CodeHostNotDeclared,
			reason: "host api.example.com.evil.com:443 is not declared in the connector manifest"},
		{name: "prefix confusion", url: "https://evilapi.example.com/", code: CodeHostNotDeclared,
			reason: "host evilapi.example.com:443 is not declared in the connector manifest"},
		{name: "wildcard does not match its base", url: "https://wild.example.com/", code: CodeHostNotDeclared,
			reason: "host wild.example.com:443 is not declared in the connector manifest"},
		{name: "wildcard matches one label only", url: "https://a.b.wild.example.com/", code: CodeHostNotDeclared,
			reason: "host a.b.wild.example.com:443 is not declared in the connector manifest"},
		{name: "undeclared port", url: "https://api.example.com:8443/", code: CodePortNotDeclared,
			reason: "host api.example.com:8443 is not declared in the connector manifest (declared ports for api.example.com: 443)"},
		{name: "http defaults to port 80", url: "http://api.example.com/", code: CodePortNotDeclared,
			reason: "host api.example.com:80 is not declared in the connector manifest (declared ports for api.example.com: 443)"},
		{name: "plaintext to TLS port", url: "http://api.example.com:443/", code: CodePlaintextToTLSPort,
			reason: "plaintext http to a port declared for TLS: api.example.com:443 requires https"},
		// IP literals (SSRF filter bypass spellings).
		{name: "loopback literal", url: "https://127.0.0.1/", code: CodeIPLiteral,
			reason: "host 127.0.0.1:443 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "hex short form literal", url: "https://0x7f.1/", code: CodeIPLiteral,
			reason: "host 127.0.0.1:443 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "decimal literal", url: "https://2130706433:8080/", code: CodeIPLiteral,
			reason: "host 127.0.0.1:8080 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "octal literal", url: "https://0177.0.0.01/", code: CodeIPLiteral,
			reason: "host 127.0.0.1:443 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "metadata literal in hex", url: "http://0xA9FEA9FE/", code: CodeIPLiteral,
			reason: "host 169.254.169.254:80 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "mapped literal", url: "https://[::ffff:169.254.169.254]/", code: CodeIPLiteral,
			reason: "host 169.254.169.254:443 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "IPv6 loopback literal", url: "https://[::1]:8080/", code: CodeIPLiteral,
			reason: "host [::1]:8080 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "IP rule does not match another IP", rules: ipRules, url: "https://127.0.0.2/", code: CodeIPLiteral,
			reason: "host 127.0.0.2:443 is an IP literal that is not declared in the connector manifest; use a declared host name"},
		{name: "IPv6 zone", url: "https://[fe80::1%25eth0]/", code: CodeBadHost,
			reason: `host "[fe80::1%25eth0]": IPv6 zone identifiers are not allowed`},
		{name: "IPv4 in brackets", url: "https://[127.0.0.1]/", code: CodeBadHost,
			reason: `host "[127.0.0.1]": brackets must contain an IPv6 address`},
		{name: "IPvFuture", url: "https://[v1.fe]/", code: CodeBadHost,
			reason: `host "[v1.fe]": brackets must contain an IPv6 address`},
		{name: "unbracketed IPv6", url: "https://::1/", code: CodeBadHost,
			reason: `host "::1": more than one ':' in host (IPv6 must be bracketed)`},
		{name: "five-part IPv4", url: "https://1.2.3.4.5/", code: CodeBadHost,
			reason: `host "1.2.3.4.5": malformed IPv4 literal`},
		{name: "IPv4 part overflow", url: "https://256.1.1.1/", code: CodeBadHost,
			reason: `host "256.1.1.1": malformed IPv4 literal`},
		{name: "IPv4 value overflow", url: "https://4294967296/", code: CodeBadHost,
			reason: `host "4294967296": malformed IPv4 literal`},
		{name: "bad octal digit", url: "https://09.1.1.1/", code: CodeBadHost,
			reason: `host "09.1.1.1": malformed IPv4 literal`},
		{name: "numeric TLD", url: "https://api.example.123/", code: CodeBadHost,
			reason: `host "api.example.123": malformed IPv4 literal`},
		// URL syntax (parser differentials).
		{name: "userinfo", url: "https://user:pass@api.example.com/", code: CodeUserinfo,
			reason: "URL must not contain userinfo (user:password@)"},
		{name: "userinfo hides host", url: "https://api.example.com@evil.example.com/", code: CodeUserinfo,
			reason: "URL must not contain userinfo (user:password@)"},
		{name: "backslash", url: `https://evil.example.com\@api.example.com/`, code: CodeBadURL,
			reason: "URL contains a space, control, backslash or non-ASCII byte at offset 24"},
		{name: "IDN homograph", url: "https://\u0430pi.example.com/", code: CodeBadURL,
			reason: "URL contains a space, control, backslash or non-ASCII byte at offset 8"},
		{name: "space", url: "https://api.example.com/a b", code: CodeBadURL,
			reason: "URL contains a space, control, backslash or non-ASCII byte at offset 25"},
		{name: "newline", url: "https://api.example.com/\r\nHost: evil", code: CodeBadURL,
			reason: "URL contains a space, control, backslash or non-ASCII byte at offset 24"},
		{name: "percent-encoded host", url: "https://api%2eexample.com/", code: CodeBadHost,
			reason: `host "api%2eexample.com": invalid character in host name`},
		{name: "sub-delims in host", url: "https://api.example.com;evil.com/", code: CodeBadHost,
			reason: `host "api.example.com;evil.com": invalid character in host name`},
		{name: "empty host", url: "https:///x", code: CodeBadHost, reason: `host "": empty host`},
		{name: "double trailing dot", url: "https://api.example.com../", code: CodeBadHost,
			reason: `host "api.example.com..": empty label in host name`},
		{name: "long label", url: "https://" + strings.Repeat("a", 64) + ".example.com/", code: CodeBadHost,
			reason: `host "` + strings.Repeat("a", 64) + `"...: label longer than 63 bytes in host name`},
		{name: "not absolute", url: "//api.example.com/x", code: CodeBadURL, reason: "URL is not absolute (want https://host/...)"},
		{name: "empty scheme", url: "://api.example.com/x", code: CodeBadScheme, reason: `scheme "" is not allowed; use https`},
		{name: "no scheme", url: "api.example.com/x", code: CodeBadURL, reason: "URL is not absolute (want https://host/...)"},
		{name: "opaque", url: "https:api.example.com", code: CodeBadURL, reason: "URL is not absolute (want https://host/...)"},
		{name: "ftp", url: "ftp://api.example.com/", code: CodeBadScheme, reason: `scheme "ftp" is not allowed; use https`},
		{name: "file", url: "file:///etc/passwd", code: CodeBadScheme, reason: `scheme "file" is not allowed; use https`},
		{name: "ws", url: "wss://api.example.com/", code: CodeBadScheme, reason: `scheme "wss" is not allowed; use https`},
		{name: "bad escape", url: "https://api.example.com/%zz", code: CodeBadURL, reason: "URL for host api.example.com is malformed"},
		{name: "too long", url: long, code: CodeBadURL, reason: "URL is longer than 16384 bytes"},
		{name: "port zero", url: "https://api.example.com:0/", code: CodeBadPort,
			reason: "host api.example.com: port is not a canonical number in 1-65535"},
		{name: "port too big", url: "https://api.example.com:65536/", code: CodeBadPort,
			reason: "host api.example.com: port is not a canonical number in 1-65535"},
		{name: "port leading zero", url: "https://api.example.com:0443/", code: CodeBadPort,
			reason: "host api.example.com: port is not a canonical number in 1-65535"},
		{name: "port sign", url: "https://api.example.com:+443/", code: CodeBadPort,
			reason: "host api.example.com: port is not a canonical number in 1-65535"},
		{name: "empty port", url: "https://api.example.com:/", code: CodeBadPort, reason: "host api.example.com: empty port"},
		// Methods.
		{name: "lower-case method", method: "get", url: "https://api.example.com/", code: CodeBadMethod,
			reason: `method "get" is not allowed (allowed: GET HEAD POST PUT PATCH DELETE OPTIONS)`},
		{name: "TRACE echoes credentials", method: "TRACE", url: "https://api.example.com/", code: CodeBadMethod,
			reason: `method "TRACE" is not allowed (allowed: GET HEAD POST PUT PATCH DELETE OPTIONS)`},
		{name: "CONNECT tunnels", method: "CONNECT", url: "https://api.example.com/", code: CodeBadMethod,
			reason: `method "CONNECT" is not allowed (allowed: GET HEAD POST PUT PATCH DELETE OPTIONS)`},
		{name: "method injection", method: "GET / HTTP/1.1\r\nHost: evil", url: "https://api.example.com/", code: CodeBadMethod,
			reason: `method "GET / HTTP/1.1\r\nHost: evil" is not allowed (allowed: GET HEAD POST PUT PATCH DELETE OPTIONS)`},
		// Headers (smuggling, splitting, virtual-host confusion).
		{name: "CRLF in value", url: "https://api.example.com/", headers: map[string][]string{"X-A": {"a\r\nHost: evil"}}, code: CodeBadHeader,
			reason: "header X-A has a control character in its value"},
		{name: "NUL in value", url: "https://api.example.com/", headers: map[string][]string{"X-A": {"a\x00b"}}, code: CodeBadHeader,
			reason: "header X-A has a control character in its value"},
		{name: "DEL in value", url: "https://api.example.com/", headers: map[string][]string{"X-A": {"a\x7fb"}}, code: CodeBadHeader,
			reason: "header X-A has a control character in its value"},
		{name: "space in name", url: "https://api.example.com/", headers: map[string][]string{"X A": {"1"}}, code: CodeBadHeader,
			reason: `header name "X A" is not a valid token`},
		{name: "pseudo-header", url: "https://api.example.com/", headers: map[string][]string{":authority": {"evil"}}, code: CodeBadHeader,
			reason: `header name ":authority" is not a valid token`},
		{name: "empty name", url: "https://api.example.com/", headers: map[string][]string{"": {"1"}}, code: CodeBadHeader,
			reason: `header name "" is not a valid token`},
		{name: "Transfer-Encoding", url: "https://api.example.com/", headers: map[string][]string{"transfer-encoding": {"chunked"}}, code: CodeHopByHopHeader,
			reason: "header Transfer-Encoding may not be set by a connector (hop-by-hop)"},
		{name: "Content-Length", url: "https://api.example.com/", headers: map[string][]string{"Content-Length": {"0"}}, code: CodeHopByHopHeader,
			reason: "header Content-Length may not be set by a connector (set by the broker from the body)"},
		{name: "Connection", url: "https://api.example.com/", headers: map[string][]string{"Connection": {"close"}}, code: CodeHopByHopHeader,
			reason: "header Connection may not be set by a connector (hop-by-hop)"},
		{name: "Upgrade", url: "https://api.example.com/", headers: map[string][]string{"Upgrade": {"h2c"}}, code: CodeHopByHopHeader,
			reason: "header Upgrade may not be set by a connector (hop-by-hop)"},
		{name: "TE", url: "https://api.example.com/", headers: map[string][]string{"TE": {"trailers"}}, code: CodeHopByHopHeader,
			reason: "header Te may not be set by a connector (hop-by-hop)"},
		{name: "Proxy-Authorization", url: "https://api.example.com/", headers: map[string][]string{"Proxy-Authorization": {"x"}}, code: CodeHopByHopHeader,
			reason: "header Proxy-Authorization may not be set by a connector (proxy)"},
		{name: "Host mismatch", url: "https://api.example.com/", headers: map[string][]string{"Host": {"evil.example.com"}}, code: CodeHostHeaderMismatch,
			reason: "Host header does not match the URL host api.example.com:443"},
		{name: "Host other port", url: "https://api.example.com/", headers: map[string][]string{"Host": {"api.example.com:8443"}}, code: CodeHostHeaderMismatch,
			reason: "Host header does not match the URL host api.example.com:443"},
		{name: "Host twice", url: "https://api.example.com/", headers: map[string][]string{"Host": {"api.example.com", "evil.example.com"}}, code: CodeHostHeaderMismatch,
			reason: "Host header does not match the URL host api.example.com:443"},
		{name: "Host as IP", url: "https://api.example.com/", headers: map[string][]string{"HOST": {"127.0.0.1"}}, code: CodeHostHeaderMismatch,
			reason: "Host header does not match the URL host api.example.com:443"},
		{name: "headers too large", url: "https://api.example.com/", headers: big, code: CodeHeadersTooLarge,
			reason: "headers exceed 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules, method := tc.rules, tc.method
			if len(rules.rules) == 0 && tc.name != "no rules" {
				rules = testRules
			}
			if method == "" {
				method = "GET"
			}
			d := Decide(rules, method, tc.url, tc.headers)
			require.Equal(t, Deny, d.Result)
			require.Equal(t, tc.code, d.Code)
			require.Equal(t, tc.reason, d.Reason)
			require.Empty(t, d.URL)
		})
	}
}
