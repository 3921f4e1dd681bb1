package egress

import (
	"net/url"
	"strings"
	"testing"
)

// fuzzRules has no IP literal rules, so an Allow must name a declared name.
var fuzzRules = mustRules("api.example.com:443", "*.wild.example.com:443", "plain.example.com:8080")

// independentMatch re-derives host:port from a URL with net/url alone and
// matches it against fuzzRules with plain string logic.
func independentMatch(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[strings.ToLower(u.Scheme)]
	}
	hp := h + ":" + port
	switch {
	case hp == "api.example.com:443", hp == "plain.example.com:8080":
		return h, true
	case strings.HasSuffix(hp, ".wild.example.com:443"):
		label := strings.TrimSuffix(hp, ".wild.example.com:443")
		return h, label != "" && !strings.ContainsAny(label, ".")
	}
	return h, false
}

func FuzzDecide(f *testing.F) {
	for _, s := range []string{
		"https://api.example.com/v1?q=1#f", "HTTPS://API.EXAMPLE.COM./", "https://a.wild.example.com/",
		"http://plain.example.com:8080/", "http://api.example.com:443/", "https://0x7f.1/",
		"https://[::ffff:127.0.0.1]/", "https://api.example.com@evil.com/", `https://evil.com\@api.example.com/`,
		"https://[fe80::1%25eth0]/", "https://2130706433/", "https://api.example.com:0443/",
		"https://api%2eexample.com/", "https://a.b.wild.example.com/", "https:api.example.com",
	} {
		f.Add("GET", s, "Host", "api.example.com")
		f.Add("POST", s, "X-A", "b\r\nc")
	}
	f.Fuzz(func(t *testing.T, method, raw, hname, hvalue string) {
		headers := map[string][]string{hname: {hvalue}}
		d := Decide(fuzzRules, method, raw, headers)
		if !d.Allowed() {
			if d.URL != "" || d.Code == CodeAllowed || d.Reason == "" {
				t.Fatalf("bad denial %+v", d)
			}
			return
		}
		h, ok := independentMatch(raw)
		if !ok || h != d.Host {
			t.Fatalf("Allow for %q, but net/url sees host %q (decided %q, rule %q)", raw, h, d.Host, d.Rule)
		}
		if h2, ok := independentMatch(d.URL); !ok || h2 != d.Host {
			t.Fatalf("vetted URL %q names host %q, not %q", d.URL, h2, d.Host)
		}
		// The vetted URL is a fixed point.
		d2 := Decide(fuzzRules, method, d.URL, headers)
		if !d2.Allowed() || d2.URL != d.URL || d2.Host != d.Host || d2.Port != d.Port {
			t.Fatalf("re-deciding %q: %+v, first %+v", d.URL, d2, d)
		}
		if strings.Contains(d.URL, "#") {
			t.Fatalf("fragment kept in %q", d.URL)
		}
	})
}

func FuzzParseRules(f *testing.F) {
	for _, s := range []string{"slack.com:443", "*.slack-edge.com:443", "127.0.0.1:8080", "[::1]:8080", "*.com:443", "[::ffff:1.2.3.4]:1", "a.0x1:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRules([]string{s})
		if err != nil {
			return
		}
		// Canonical in, canonical out: parse, print, parse is stable.
		r2, err := ParseRules(strings.Split(ruleTexts(r), ","))
		if err != nil || ruleTexts(r2) != s {
			t.Fatalf("round trip of %q: %q, %v", s, ruleTexts(r2), err)
		}
	})
}
