package egress

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRules(t *testing.T) {
	r, err := ParseRules([]string{"slack.com:443", "*.slack-edge.com:443", "127.0.0.1:8080", "[::1]:8080", "a_b.example.com:443"})
	require.NoError(t, err)
	require.Len(t, r.rules, 5)
	require.Equal(t, "slack.com:443,*.slack-edge.com:443,127.0.0.1:8080,[::1]:8080,a_b.example.com:443", ruleTexts(r))

	empty, err := ParseRules(nil)
	require.NoError(t, err)
	require.Empty(t, empty.rules)
}

// ruleTexts returns the rules as parsed, comma-separated.
func ruleTexts(r Rules) string {
	s := make([]string, len(r.rules))
	for i, ru := range r.rules {
		s[i] = ru.text
	}
	return strings.Join(s, ",")
}

func TestParseRules_Errors(t *testing.T) {
	tests := []struct {
		name, rule, err string
	}{
		{"missing port", "slack.com", `egress: rule "slack.com": missing :port`},
		{"empty port", "slack.com:", `egress: rule "slack.com:": empty port`},
		{"port zero", "slack.com:0", `egress: rule "slack.com:0": port is not a canonical number in 1-65535`},
		{"port leading zero", "slack.com:0443", `egress: rule "slack.com:0443": port is not a canonical number in 1-65535`},
		{"upper case", "Slack.com:443", `egress: rule "Slack.com:443": host is not lower-case`},
		{"trailing dot", "slack.com.:443", `egress: rule "slack.com.:443": empty label in host name`},
		{"wildcard mid label", "a.*.slack.com:443", `egress: rule "a.*.slack.com:443": invalid character in host name`},
		{"wildcard partial label", "*foo.slack.com:443", `egress: rule "*foo.slack.com:443": invalid character in host name`},
		{"double wildcard", "*.*.slack.com:443", `egress: rule "*.*.slack.com:443": invalid character in host name`},
		// Security: "*.com" would match every .com name.
		{"wildcard on TLD", "*.com:443", `egress: rule "*.com:443": wildcard suffix needs at least two labels`},
		{"bare wildcard", "*:443", `egress: rule "*:443": invalid character in host name`},
		{"numeric last label", "example.123:443", `egress: rule "example.123:443": host name ends in a numeric label`},
		{"hex last label", "example.0x10:443", `egress: rule "example.0x10:443": host name ends in a numeric label`},
		{"non-canonical IPv4", "127.1:443", `egress: rule "127.1:443": host name ends in a numeric label`},
		{"non-canonical IPv6", "[::0:1]:443", `egress: rule "[::0:1]:443": IP literal is not canonical (want [::1])`},
		{"mapped IPv6", "[::ffff:127.0.0.1]:443", `egress: rule "[::ffff:127.0.0.1]:443": IP literal is not canonical (want 127.0.0.1)`},
		{"zone", "[fe80::1%eth0]:443", `egress: rule "[fe80::1%eth0]:443": IPv6 zone identifiers are not allowed`},
		{"unbracketed IPv6", "::1:443", `egress: rule "::1:443": more than one ':' in host (IPv6 must be bracketed)`},
		{"userinfo", "u@slack.com:443", `egress: rule "u@slack.com:443": invalid character in host name`},
		{"scheme", "https://slack.com:443", `egress: rule "https://slack.com:443": more than one ':' in host (IPv6 must be bracketed)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules([]string{"ok.example.com:443", tc.rule})
			require.EqualError(t, err, tc.err)
		})
	}
}

func TestRuleMatching(t *testing.T) {
	r := mustRules("*.example.com:443", "exact.example.org:443")
	tests := []struct {
		host string
		want bool
	}{
		{"a.example.com", true},
		{"a-b_c.example.com", true},
		{"example.com", false},            // the wildcard does not cover its base
		{"a.b.example.com", false},        // nor two extra labels
		{"aexample.com", false},           // label boundary
		{"a.example.com.evil.org", false}, // suffix appended
		{"exact.example.org", true},       // exact
		{"sub.exact.example.org", false},  // exact does not cover subdomains
		{"exact.example.org.evil", false}, // suffix appended
		{"xexact.example.org", false},     // prefix
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			d := Decide(r, "GET", "https://"+tc.host+"/", nil)
			require.Equal(t, tc.want, d.Allowed(), d.Reason)
		})
	}
}
