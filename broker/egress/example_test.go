package egress_test

import (
	"fmt"

	"aileron.dev/aileron/broker/egress"
)

func ExampleDecide() {
	rules, err := egress.ParseRules([]string{"slack.com:443", "*.slack-edge.com:443"})
	if err != nil {
		panic(err)
	}
	for _, u := range []string{
		"https://SLACK.com./api/chat.postMessage#x",
		"https://files.slack-edge.com/a.png",
		"http://slack.com:443/",
		"https://0x7f.1/",
		"https://evil.example.com/",
	} {
		d := egress.Decide(rules, "GET", u, nil)
		fmt.Printf("%s %s: %s\n", d.Result, d.Code, d.Reason)
	}
	// Output:
	// allow allowed: host slack.com:443 matches rule slack.com:443
	// allow allowed: host files.slack-edge.com:443 matches rule *.slack-edge.com:443
	// deny plaintext_to_tls_port: plaintext http to a port declared for TLS: slack.com:443 requires https
	// deny ip_literal_not_declared: host 127.0.0.1:443 is an IP literal that is not declared in the connector manifest; use a declared host name
	// deny host_not_declared: host evil.example.com:443 is not declared in the connector manifest
}
