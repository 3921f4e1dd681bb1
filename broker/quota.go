package broker

import (
	"fmt"
	"sync"
	"time"
)

// codeEgressQuota is the code of a request refused because the broker's
// egress quota (Config.EgressRequestsPerMinute, EgressBytesPerMinute) is
// spent.
const codeEgressQuota = "egress_quota_exceeded"

// egressQuota meters what leaves through one broker, over all its channels.
// A server runs one broker per tenant, so this is the tenant's egress quota:
// one tenant spending it never slows another. A nil *egressQuota (no quota
// configured) allows everything.
type egressQuota struct {
	tenant   string
	requests *tokenBucket // nil: no limit
	bytes    *tokenBucket // nil: no limit
}

func newEgressQuota(cfg *Config, now time.Time) (*egressQuota, error) {
	if cfg.EgressRequestsPerMinute < 0 || cfg.EgressBytesPerMinute < 0 {
		return nil, fmt.Errorf("broker config: negative egress quota (requests %d, bytes %d per minute)", cfg.EgressRequestsPerMinute, cfg.EgressBytesPerMinute)
	}
	if cfg.EgressRequestsPerMinute == 0 && cfg.EgressBytesPerMinute == 0 {
		return nil, nil
	}
	return &egressQuota{
		tenant:   cfg.Tenant,
		requests: newTokenBucket(int64(cfg.EgressRequestsPerMinute), now),
		bytes:    newTokenBucket(cfg.EgressBytesPerMinute, now),
	}, nil
}

// admit decides whether one more request may leave now, and takes its
// request token if so. It returns the refusal's reason, or "" to send. The
// byte bucket only has to be out of debt: a request's bytes are known once
// its response is in, and [egressQuota.charge] counts them then.
func (q *egressQuota) admit(now time.Time) string {
	if q == nil {
		return ""
	}
	if !q.bytes.positive(now) {
		return fmt.Sprintf("egress quota of %d bytes per minute %s is spent; retry later", q.bytes.perMinute, q.whose())
	}
	if !q.requests.take(now, 1) {
		return fmt.Sprintf("egress quota of %d requests per minute %s is spent; retry later", q.requests.perMinute, q.whose())
	}
	return ""
}

// charge counts n bytes (request plus response body) that went out and
// came back.
func (q *egressQuota) charge(now time.Time, n int) {
	if q == nil {
		return
	}
	q.bytes.spend(now, float64(n))
}

func (q *egressQuota) whose() string {
	if q.tenant == "" {
		return "of this broker"
	}
	return "of tenant " + q.tenant
}

// tokenBucket holds up to one minute's worth of tokens and refills
// continuously. spend may take it into debt, which later refills repay.
// A nil bucket is unlimited.
type tokenBucket struct {
	perMinute int64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// newTokenBucket returns a full bucket, or nil for perMinute <= 0.
func newTokenBucket(perMinute int64, now time.Time) *tokenBucket {
	if perMinute <= 0 {
		return nil
	}
	return &tokenBucket{perMinute: perMinute, tokens: float64(perMinute), last: now}
}

// refill adds the tokens earned since the last call; b.mu is held.
func (b *tokenBucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(b.perMinute), b.tokens+d.Minutes()*float64(b.perMinute))
		b.last = now
	}
}

// take removes n tokens if the bucket holds them.
func (b *tokenBucket) take(now time.Time, n float64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// positive reports whether the bucket is out of debt.
func (b *tokenBucket) positive(now time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens > 0
}

// spend removes n tokens, into debt if need be.
func (b *tokenBucket) spend(now time.Time, n float64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens -= n
}
