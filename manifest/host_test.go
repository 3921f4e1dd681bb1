package manifest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseHostPort(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want HostPort
	}{
		{name: "exact", in: "slack.com:443", want: HostPort{Host: "slack.com", Port: 443}},
		{name: "subdomain", in: "api.slack.com:8443", want: HostPort{Host: "api.slack.com", Port: 8443}},
		{name: "single label", in: "localhost:8080", want: HostPort{Host: "localhost", Port: 8080}},
		{name: "digits and hyphens", in: "s3-eu-west-1.amazonaws.com:443", want: HostPort{Host: "s3-eu-west-1.amazonaws.com", Port: 443}},
		{name: "numeric inner label", in: "1.example.com:1", want: HostPort{Host: "1.example.com", Port: 1}},
		{name: "punycode", in: "xn--bcher-kva.de:443", want: HostPort{Host: "xn--bcher-kva.de", Port: 443}},
		{name: "max port", in: "slack.com:65535", want: HostPort{Host: "slack.com", Port: 65535}},
		{name: "wildcard", in: "*.slack.com:443", want: HostPort{Host: "slack.com", Port: 443, Wildcard: true}},
		{name: "wildcard deep suffix", in: "*.eu.example.co.uk:443", want: HostPort{Host: "eu.example.co.uk", Port: 443, Wildcard: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHostPort(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.in, got.String())
		})
	}
}

func TestParseHostPort_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "no port", in: "slack.com", want: `invalid host "slack.com": missing port; write e.g. "slack.com:443"`},
		{name: "empty port", in: "slack.com:", want: `invalid host "slack.com:": missing port after ':'`},
		{name: "port zero", in: "slack.com:0", want: `invalid host "slack.com:0": port 0 is out of range 1-65535`},
		{name: "port too big", in: "slack.com:65536", want: `invalid host "slack.com:65536": port 65536 is out of range 1-65535`},
		{name: "port huge", in: "slack.com:99999999999999999999", want: `invalid host "slack.com:99999999999999999999": port 99999999999999999999 is out of range 1-65535`},
		{name: "port leading zero", in: "slack.com:0443", want: `invalid host "slack.com:0443": port "0443" has a leading zero`},
		// strconv.Atoi accepts a sign; a second spelling of a port.
		{name: "port sign", in: "slack.com:+443", want: `invalid host "slack.com:+443": port "+443" is not a decimal number`},
		{name: "port name", in: "slack.com:https", want: `invalid host "slack.com:https": port "https" is not a decimal number`},
		{name: "empty host", in: ":443", want: `invalid host ":443": missing host`},
		// Cloud metadata endpoint (AWS, GCP, Azure).
		{name: "metadata IPv4", in: "169.254.169.254:80", want: `invalid host "169.254.169.254:80": IP literals are not allowed; name the host by its DNS name`},
		{name: "loopback IPv4", in: "127.0.0.1:443", want: `invalid host "127.0.0.1:443": IP literals are not allowed; name the host by its DNS name`},
		{name: "IPv6 bracketed", in: "[::1]:443", want: `invalid host "[::1]:443": IP literals are not allowed; name the host by its DNS name`},
		// IPv4-mapped IPv6 can bypass IPv4 checks (smokescreen).
		{name: "IPv4-mapped IPv6", in: "[::ffff:169.254.169.254]:80", want: `invalid host "[::ffff:169.254.169.254]:80": IP literals are not allowed; name the host by its DNS name`},
		{name: "IPv6 bare", in: "fe80::1:443", want: `invalid host "fe80::1:443": IP literals are not allowed; name the host by its DNS name`},
		{name: "IPv6 zone", in: "fe80::1%eth0:443", want: `invalid host "fe80::1%eth0:443": IP literals are not allowed; name the host by its DNS name`},
		// inet_aton forms of 127.0.0.1: short, decimal, hex, octal.
		{name: "inet_aton short", in: "127.1:80", want: `invalid host "127.1:80": the last label must start with a letter (numeric names are IP addresses, which are not allowed)`},
		{name: "inet_aton decimal", in: "2130706433:80", want: `invalid host "2130706433:80": the last label must start with a letter (numeric names are IP addresses, which are not allowed)`},
		{name: "inet_aton hex", in: "0x7f000001:80", want: `invalid host "0x7f000001:80": the last label must start with a letter (numeric names are IP addresses, which are not allowed)`},
		{name: "inet_aton octal", in: "0177.0.0.1:80", want: `invalid host "0177.0.0.1:80": the last label must start with a letter (numeric names are IP addresses, which are not allowed)`},
		{name: "extra colon", in: "a:b:443", want: `invalid host "a:b:443": more than one ':'; write "host:port"`},
		{name: "uppercase", in: "Slack.com:443", want: `invalid host "Slack.com:443": uppercase letters are not allowed (host names are case-insensitive and have one spelling); write "slack.com"`},
		// "slack.com." is the same host as "slack.com": one spelling only.
		{name: "trailing dot", in: "slack.com.:443", want: `invalid host "slack.com.:443": remove the trailing dot: "slack.com"`},
		{name: "empty label", in: "slack..com:443", want: `invalid host "slack..com:443": empty label`},
		{name: "leading dot", in: ".slack.com:443", want: `invalid host ".slack.com:443": empty label`},
		{name: "leading hyphen", in: "-x.com:443", want: `invalid host "-x.com:443": label "-x" must not start or end with '-'`},
		{name: "underscore", in: "_dmarc.x.com:443", want: `invalid host "_dmarc.x.com:443": label "_dmarc" has character '_'; use only a-z, 0-9 and '-' (IDNs in punycode: xn--)`},
		{name: "unicode", in: "bücher.de:443", want: `invalid host "bücher.de:443": label "bücher" has character 'ü'; use only a-z, 0-9 and '-' (IDNs in punycode: xn--)`},
		// Homoglyph: Cyrillic с (U+0441) in "slaсk".
		{name: "homoglyph", in: "slaсk.com:443", want: `invalid host "slaсk.com:443": label "slaсk" has character 'с'; use only a-z, 0-9 and '-' (IDNs in punycode: xn--)`},
		{name: "userinfo", in: "user@slack.com:443", want: `invalid host "user@slack.com:443": label "user@slack" has character '@'; use only a-z, 0-9 and '-' (IDNs in punycode: xn--)`},
		{name: "path", in: "slack.com/x:443", want: `invalid host "slack.com/x:443": label "com/x" has character '/'; use only a-z, 0-9 and '-' (IDNs in punycode: xn--)`},
		{name: "label too long", in: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com:443", want: `invalid host "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com:443": label "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is longer than 63 bytes`},
		{name: "wildcard only", in: "*:443", want: `invalid host "*:443": a wildcard is allowed only as the whole first label: "*.example.com:443"`},
		// *.com would allow every .com host.
		{name: "wildcard tld", in: "*.com:443", want: `invalid host "*.com:443": a wildcard must be followed by at least two labels, e.g. "*.example.com:443"`},
		{name: "wildcard mid label", in: "a.*.slack.com:443", want: `invalid host "a.*.slack.com:443": a wildcard is allowed only as the whole first label: "*.example.com:443"`},
		{name: "wildcard partial label", in: "api*.slack.com:443", want: `invalid host "api*.slack.com:443": a wildcard is allowed only as the whole first label: "*.example.com:443"`},
		{name: "wildcard double star", in: "**.slack.com:443", want: `invalid host "**.slack.com:443": a wildcard is allowed only as the whole first label: "*.example.com:443"`},
		{name: "wildcard twice", in: "*.*.slack.com:443", want: `invalid host "*.*.slack.com:443": a wildcard is allowed only as the whole first label: "*.example.com:443"`},
		{name: "wildcard numeric", in: "*.0.1:443", want: `invalid host "*.0.1:443": the last label must start with a letter (numeric names are IP addresses, which are not allowed)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHostPort(tc.in)
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestHostPort_matches(t *testing.T) {
	exact := HostPort{Host: "slack.com", Port: 443}
	wild := HostPort{Host: "slack.com", Port: 443, Wildcard: true}
	tests := []struct {
		name string
		h    HostPort
		host string
		port uint16
		want bool
	}{
		{name: "exact", h: exact, host: "slack.com", port: 443, want: true},
		{name: "exact case-insensitive", h: exact, host: "SLACK.com", port: 443, want: true},
		{name: "exact other port", h: exact, host: "slack.com", port: 80},
		{name: "exact subdomain", h: exact, host: "api.slack.com", port: 443},
		// The suffix trick: evilslack.com ends with "slack.com".
		{name: "exact suffix trick", h: exact, host: "evilslack.com", port: 443},
		{name: "exact trailing dot", h: exact, host: "slack.com.", port: 443},
		{name: "exact prefix trick", h: exact, host: "slack.com.evil.example", port: 443},
		{name: "wildcard one label", h: wild, host: "api.slack.com", port: 443, want: true},
		{name: "wildcard case-insensitive", h: wild, host: "API.Slack.COM", port: 443, want: true},
		{name: "wildcard not the apex", h: wild, host: "slack.com", port: 443},
		// One label only: a deeper name is one more attacker-controlled place.
		{name: "wildcard not two labels", h: wild, host: "a.b.slack.com", port: 443},
		{name: "wildcard suffix trick", h: wild, host: "a.evilslack.com", port: 443},
		{name: "wildcard other port", h: wild, host: "api.slack.com", port: 444},
		{name: "wildcard empty label", h: wild, host: ".slack.com", port: 443},
		{name: "wildcard bad label", h: wild, host: "a_b.slack.com", port: 443},
		{name: "wildcard literal star", h: wild, host: "*.slack.com", port: 443},
		{name: "wildcard trailing dot", h: wild, host: "api.slack.com.", port: 443},
		{name: "zero grants nothing", h: HostPort{}, host: "", port: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.h.matches(tc.host, tc.port))
		})
	}
}

func TestHostPort_Covers(t *testing.T) {
	hp := func(s string) HostPort {
		h, err := ParseHostPort(s)
		require.NoError(t, err)
		return h
	}
	tests := []struct {
		name   string
		h, o   string
		covers bool
	}{
		{name: "same exact", h: "slack.com:443", o: "slack.com:443", covers: true},
		{name: "other port", h: "slack.com:443", o: "slack.com:80"},
		{name: "exact does not cover wildcard", h: "slack.com:443", o: "*.slack.com:443"},
		{name: "wildcard covers itself", h: "*.slack.com:443", o: "*.slack.com:443", covers: true},
		{name: "wildcard covers one name", h: "*.slack.com:443", o: "api.slack.com:443", covers: true},
		{name: "wildcard not apex", h: "*.slack.com:443", o: "slack.com:443"},
		{name: "wildcard not deeper wildcard", h: "*.slack.com:443", o: "*.api.slack.com:443"},
		{name: "wildcard not deeper name", h: "*.slack.com:443", o: "a.b.slack.com:443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.covers, hp(tc.h).Covers(hp(tc.o)))
		})
	}
	require.False(t, HostPort{}.Covers(HostPort{}), "the zero HostPort covers nothing")
}

func TestHostPort_JSON(t *testing.T) {
	b, err := json.Marshal([]HostPort{{Host: "slack.com", Port: 443, Wildcard: true}})
	require.NoError(t, err)
	require.Equal(t, `["*.slack.com:443"]`, string(b))
	var back []HostPort
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, []HostPort{{Host: "slack.com", Port: 443, Wildcard: true}}, back)
	require.Error(t, json.Unmarshal([]byte(`["127.0.0.1:80"]`), &back))
}
