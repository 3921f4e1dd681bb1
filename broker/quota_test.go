package broker

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/sdk/abi"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newTokenBucket(60, t0) // one token a second, 60 at most
	require.True(t, b.take(t0, 60))
	require.False(t, b.take(t0, 1), "empty")
	require.False(t, b.take(t0.Add(500*time.Millisecond), 1), "half a token")
	require.True(t, b.take(t0.Add(time.Second), 1), "one token a second later")
	require.True(t, b.take(t0.Add(time.Hour), 60), "refilled, but only to capacity")
	require.False(t, b.take(t0.Add(time.Hour), 1))

	// spend goes into debt; positive says when it is repaid.
	b = newTokenBucket(60, t0)
	b.spend(t0, 120)
	require.False(t, b.positive(t0))
	require.False(t, b.positive(t0.Add(60*time.Second)), "at zero: still not positive")
	require.True(t, b.positive(t0.Add(61*time.Second)))

	// A clock that steps back does not mint tokens.
	b = newTokenBucket(60, t0)
	require.True(t, b.take(t0, 60))
	require.False(t, b.take(t0.Add(-time.Hour), 1))

	var none *tokenBucket // no quota
	require.Nil(t, newTokenBucket(0, t0))
	require.True(t, none.take(t0, 1e9))
	require.True(t, none.positive(t0))
	none.spend(t0, 1e9)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBroker_EgressRequestQuota(t *testing.T) {
	svc := &echo{}
	b := newTestBroker(t, Config{UnsafeAllowLoopback: true, Tenant: "acme", EgressRequestsPerMinute: 2}, map[string]http.Handler{"api.example.com": svc})
	clock := &fakeClock{t: time.Now().Add(time.Second)}
	b.s.now = clock.now
	w, _ := b.open(t, plainGrant)
	send := func(url string) *channel.Response { return call(t, w, get(url, nil)) }
	require.Equal(t, abi.ErrnoOK, send("https://api.example.com/1").Errno)
	// A request the policy refuses says so, and costs no quota.
	r := send("https://evil.example.com/")
	require.Equal(t, abi.ErrnoDenied, r.Errno)
	require.Equal(t, abi.ErrnoOK, send("https://api.example.com/2").Errno)
	r = send("https://api.example.com/3")
	require.Equal(t, abi.ErrnoLimit, r.Errno)
	require.Equal(t, &abi.Error{Code: "egress_quota_exceeded", Message: "egress quota of 2 requests per minute of tenant acme is spent; retry later"}, r.Error)
	require.Len(t, svc.requests(), 2, "the refused request never left")
	rec := b.lastEgress(t)
	require.Equal(t, audit.DecisionDeny, rec.Decision)
	require.Equal(t, "egress_quota_exceeded", rec.Code)
	require.Equal(t, "acme", rec.Tenant)

	// Half a minute later there is one more request's worth.
	clock.advance(30 * time.Second)
	require.Equal(t, abi.ErrnoOK, send("https://api.example.com/4").Errno)
	require.Equal(t, abi.ErrnoLimit, send("https://api.example.com/5").Errno)
}

func TestBroker_EgressByteQuota(t *testing.T) {
	svc := &echo{}
	b := newTestBroker(t, Config{UnsafeAllowLoopback: true, EgressBytesPerMinute: 100}, map[string]http.Handler{"api.example.com": svc})
	clock := &fakeClock{t: time.Now().Add(time.Second)}
	b.s.now = clock.now
	w, _ := b.open(t, plainGrant)
	big := map[string][]string{"X-Pad": {strings.Repeat("p", 200)}} // echoed back in the body
	r := call(t, w, get("https://api.example.com/", big))
	require.Equal(t, abi.ErrnoOK, r.Errno, "the first request may overdraw the bucket")
	require.Greater(t, len(r.HTTP.Body), 200)
	r = call(t, w, get("https://api.example.com/", nil))
	require.Equal(t, abi.ErrnoLimit, r.Errno)
	require.Equal(t, &abi.Error{Code: "egress_quota_exceeded", Message: "egress quota of 100 bytes per minute of this broker is spent; retry later"}, r.Error)
	require.Len(t, svc.requests(), 1)

	// Once the debt is repaid, requests leave again.
	clock.advance(5 * time.Minute)
	require.Equal(t, abi.ErrnoOK, call(t, w, get("https://api.example.com/", nil)).Errno)
}

func TestBroker_EgressQuotaNegative(t *testing.T) {
	s := newServer(hclog.NewNullLogger(), nil)
	err := s.Configure(Config{Home: t.TempDir(), EgressBytesPerMinute: -1})
	require.EqualError(t, err, "broker config: negative egress quota (requests 0, bytes -1 per minute)")
}
