package egress

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"aileron.dev/aileron/sdk/abi"
)

// BenchmarkSend measures what the policy adds to a request: each iteration
// sends the same GET to the same loopback server once with a plain
// keep-alive http.Client and once with Client.Send, and reports the median
// of each and the median difference. The goal is under 500µs added.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	direct := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	c, err := NewClient(TransportConfig{Dialer: &Dialer{
		Hosts:  map[string][]netip.Addr{"api.test": addrs("127.0.0.1")},
		Policy: AddrPolicy{UnsafeAllowLoopback: true},
	}})
	if err != nil {
		b.Fatal(err)
	}
	rules := mustRules("api.test:" + port)
	req := &abi.HTTPRequest{Method: "GET", URL: "http://api.test:" + port + "/v1/x",
		Headers: map[string][]string{"Authorization": {"Bearer 0123456789"}, "Accept": {"application/json"}}}
	ctx := context.Background()

	getDirect := func() {
		hr, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/x", nil)
		hr.Header = http.Header{"Authorization": {"Bearer 0123456789"}, "Accept": {"application/json"}}
		resp, err := direct.Do(hr)
		if err != nil {
			b.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	send := func() {
		if _, _, err := c.Send(ctx, rules, req, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	for range 50 { // warm both connection pools
		getDirect()
		send()
	}
	var td, ts []time.Duration
	for b.Loop() {
		t0 := time.Now()
		getDirect()
		t1 := time.Now()
		send()
		t2 := time.Now()
		td, ts = append(td, t1.Sub(t0)), append(ts, t2.Sub(t1))
	}
	md, ms := median(td), median(ts)
	b.ReportMetric(float64(md.Nanoseconds()), "direct-ns/req")
	b.ReportMetric(float64(ms.Nanoseconds()), "send-ns/req")
	b.ReportMetric(float64((ms - md).Microseconds()), "added-µs/req")
	b.ReportMetric(float64(ms)/float64(md), "send/direct")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkDecide measures the pure policy check alone.
func BenchmarkDecide(b *testing.B) {
	h := map[string][]string{"Authorization": {"Bearer x"}, "Content-Type": {"application/json"}, "Accept": {"*/*"}}
	for b.Loop() {
		Decide(testRules, "POST", "https://api.example.com/v1/chat.postMessage?x=1", h)
	}
}
