package broker

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/sdk/abi"
)

// BenchmarkChannelHTTP measures what the broker adds to one request, as a
// worker sees it: framing and JSON both ways over the socketpair, the
// policy, credential substitution and redaction, the pinned transport, and
// the fsynced audit record. Each iteration sends the same GET to the same
// loopback HTTPS service once directly (a keep-alive HTTP/2 client, the
// baseline) and once through the broker's channel, and the benchmark
// reports the median of each, the median difference and their ratio. The
// goal is under 500µs added.
func BenchmarkChannelHTTP(b *testing.B) {
	body := []byte(`{"ok":true,"items":[1,2,3]}`)
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	tb := newTestBroker(b, loopbackOK, map[string]http.Handler{"api.example.com": svc})
	tb.put(b, "k", "api_key", SecretInput{Value: "sk-bench-0123456789"})
	w, _ := tb.open(b, Grant{Action: "bench", Connector: testConnector, Hosts: []string{"api.example.com:443"}, CredentialKind: "api_key"})
	tb.s.cfg.MaxRequestsPerStep, tb.s.cfg.MaxRequestsPerChannel = 1<<30, 1<<30

	ca := tb.cfg.ExtraRootCAs
	pool := newPool(b, ca)
	route := tb.cfg.Routes["api.example.com:443"]
	direct := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", route)
		},
		TLSClientConfig:    &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2:  true,
		DisableCompression: true,
	}}
	defer direct.CloseIdleConnections()
	headers := map[string][]string{"Authorization": {"Bearer sk-bench-0123456789"}, "Accept": {"application/json"}}
	getDirect := func() {
		hr, _ := http.NewRequest("GET", "https://api.example.com/v1/items?limit=3", nil)
		hr.Header = headers
		resp, err := direct.Do(hr)
		if err != nil {
			b.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	req := &channel.Request{Op: channel.OpHTTP, HTTP: &abi.HTTPRequest{Method: "GET", URL: "https://api.example.com/v1/items?limit=3",
		Headers: map[string][]string{"Authorization": {"Bearer " + abi.CredentialPlaceholder}, "Accept": {"application/json"}}}}
	viaBroker := func() {
		if err := channel.WriteFrame(w, req); err != nil {
			b.Fatal(err)
		}
		var resp channel.Response
		if err := channel.ReadFrame(w, &resp); err != nil {
			b.Fatal(err)
		}
		if resp.Errno != abi.ErrnoOK || resp.HTTP.Status != 200 {
			b.Fatalf("%+v", resp.Error)
		}
	}
	for range 50 { // warm both connection pools
		getDirect()
		viaBroker()
	}
	var td, tv []time.Duration
	for b.Loop() {
		t0 := time.Now()
		getDirect()
		t1 := time.Now()
		viaBroker()
		t2 := time.Now()
		td, tv = append(td, t1.Sub(t0)), append(tv, t2.Sub(t1))
	}
	md, mv := median(td), median(tv)
	b.StopTimer()
	// The share of the fsynced audit append, measured on the same log.
	var ta []time.Duration
	for range min(len(tv), 200) {
		t0 := time.Now()
		if err := tb.s.audit.Append(audit.Record{Kind: audit.KindEgress, Decision: audit.DecisionAllow, Connector: testConnector, Method: "GET", Host: "api.example.com", Port: 443, Path: "/v1/items", Status: 200}); err != nil {
			b.Fatal(err)
		}
		ta = append(ta, time.Since(t0))
	}
	b.ReportMetric(float64(md.Nanoseconds()), "direct-ns/req")
	b.ReportMetric(float64(mv.Nanoseconds()), "broker-ns/req")
	b.ReportMetric(float64((mv - md).Microseconds()), "added-µs/req")
	b.ReportMetric(float64(median(ta).Microseconds()), "audit-µs/req")
	b.ReportMetric(float64(mv)/float64(md), "broker/direct")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
