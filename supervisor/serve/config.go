package serve

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/supervisor"
)

// Config is the server's configuration file (`aileron serve --config
// FILE`), strict TOML: an unknown key is an error with its line and column.
// Zero values are the safe defaults. [LoadConfig] reads and checks it.
type Config struct {
	// DataDir holds the shared store (DataDir/store), the pool's state
	// (DataDir/server) and one home per tenant (DataDir/tenants/NAME).
	// Required; an absolute path.
	DataDir string `toml:"data_dir"`
	// Listen says where the API is served.
	Listen ListenConfig `toml:"listen"`
	// Isolation is the workers' isolation, for every tenant.
	Isolation IsolationConfig `toml:"isolation"`
	// Pool sizes the warm pool all tenants share.
	Pool PoolConfig `toml:"pool"`
	// Limits bound the server as a whole.
	Limits LimitsConfig `toml:"limits"`
	// Tenants are the callers the server knows. Reloaded on SIGHUP.
	Tenants []TenantConfig `toml:"tenants"`
}

// ListenConfig says where the API is served. At least one of Unix and TCP
// must be set.
type ListenConfig struct {
	// Unix is the path of the API's unix socket. Callers are identified
	// by their uid (SO_PEERCRED) or a bearer token.
	Unix string `toml:"unix"`
	// UnixMode is the socket's permission bits, in octal (default "0660").
	UnixMode string `toml:"unix_mode"`
	// UnixGroup, if set, is the socket's group (a name or a numeric gid):
	// the group whose members may connect.
	UnixGroup string `toml:"unix_group"`
	// TCP is "host:port" for the API over TLS with client certificates
	// (mutual TLS); TLSCert, TLSKey and ClientCA are then required.
	TCP string `toml:"tcp"`
	// TLSCert and TLSKey are the server's PEM certificate chain and key.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// ClientCA is the PEM file of the CAs that sign client certificates.
	// Every TCP client must present one; a tenant is chosen by the
	// certificate's public key fingerprint or by a bearer token.
	ClientCA string `toml:"client_ca"`
	// Metrics is "host:port" of a plain HTTP listener for /metrics,
	// /healthz and /readyz, for the operator's monitoring. It has no
	// authentication and its metrics name tenants: keep it on loopback or
	// a management network. Empty: no metrics listener.
	Metrics string `toml:"metrics"`
}

// IsolationConfig is the workers' isolation.
type IsolationConfig struct {
	// Mode is "strict" (the default: refuse to start, or to run a
	// connector, when any isolation layer is missing) or "relaxed" (run
	// with loud warnings).
	Mode string `toml:"mode"`
	// UnsafeDisable names layers not to apply; see
	// supervisor.Isolation.UnsafeDisable. Strict mode then refuses to
	// start.
	UnsafeDisable []string `toml:"unsafe_disable"`
	// WorkerSHA256 pins the worker binary ("sha256:<hex>").
	WorkerSHA256 string `toml:"worker_sha256"`
}

// PoolConfig sizes the warm pool.
type PoolConfig struct {
	// Size is how many sandboxed, unbound workers to keep ready for all
	// tenants (default 4; 0 to 64). Each serves one run of one tenant.
	Size *int `toml:"size"`
}

// LimitsConfig bound the server as a whole. Durations are Go durations
// ("5s").
type LimitsConfig struct {
	// MaxConcurrentRuns is the admission cap over all tenants (default
	// 32); a run past it is refused at once with 503 (overloaded).
	MaxConcurrentRuns int `toml:"max_concurrent_runs"`
	// MaxConnections bounds open API connections per listener (default
	// 256); more are closed at once.
	MaxConnections int `toml:"max_connections"`
	// MaxBodyBytes bounds a request body (default 1 MiB): 413 past it.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// ReadHeaderTimeout bounds reading a request's headers, and the TLS
	// handshake (default "5s"): a slow client is cut off.
	ReadHeaderTimeout string `toml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request (default "15s").
	ReadTimeout string `toml:"read_timeout"`
	// IdleTimeout closes a kept-alive connection idle that long (default
	// "60s").
	IdleTimeout string `toml:"idle_timeout"`
	// DrainTimeout is how long a SIGTERM waits for runs in flight before
	// it cancels them and kills their workers (default "30s").
	DrainTimeout string `toml:"drain_timeout"`
}

// TenantConfig is one tenant: who may act as it, and its quotas. Its
// home, DataDir/tenants/NAME, holds its actions, vault (with its own key),
// consent records and audit log, and a config.toml with its egress
// settings ([broker], [limits], [sources]) and `tenant = "NAME"`.
type TenantConfig struct {
	// Name identifies the tenant: 1-64 of a-z 0-9 . _ - starting with a
	// letter or digit.
	Name string `toml:"name"`
	// UIDs are the local users who are this tenant when they connect to
	// the unix socket. A uid belongs to at most one tenant.
	UIDs []uint32 `toml:"uids"`
	// Tokens are "sha256:<hex>" hashes of bearer tokens (`aileron serve
	// hash-token` prints one); the tokens themselves are never stored.
	Tokens []string `toml:"tokens"`
	// Certs are "sha256:<hex>" fingerprints of client certificates'
	// public keys (SPKI; `aileron serve fingerprint` prints one), so a
	// certificate renewed with the same key keeps working.
	Certs []string `toml:"certs"`
	// Quota bounds what the tenant may use; zero fields mean no limit
	// beyond the server's.
	Quota QuotaConfig `toml:"quota"`
}

// QuotaConfig bounds one tenant. Zero means no limit of that kind (the
// server's admission cap still applies).
type QuotaConfig struct {
	// ConcurrentRuns bounds the tenant's runs in flight.
	ConcurrentRuns int `toml:"concurrent_runs"`
	// RunsPerMinute bounds run requests (a token bucket holding one
	// minute's worth, so bursts up to it pass).
	RunsPerMinute int `toml:"runs_per_minute"`
	// EgressRequestsPerMinute and EgressBytesPerMinute bound what the
	// tenant's connectors send; its broker enforces them.
	EgressRequestsPerMinute int   `toml:"egress_requests_per_minute"`
	EgressBytesPerMinute    int64 `toml:"egress_bytes_per_minute"`
}

// Defaults.
const (
	defaultPoolSize          = 4
	defaultMaxConcurrentRuns = 32
	defaultMaxConnections    = 256
	defaultMaxBodyBytes      = 1 << 20
	defaultUnixMode          = 0o660
	defaultReadHeaderTimeout = 5 * time.Second
	defaultReadTimeout       = 15 * time.Second
	defaultIdleTimeout       = 60 * time.Second
	defaultDrainTimeout      = 30 * time.Second
)

// settings is a checked Config with defaults filled in and durations
// parsed.
type settings struct {
	cfg               *Config
	strict            bool
	poolSize          int
	unixMode          os.FileMode
	unixGID           int // -1: leave the group alone
	maxRuns           int
	maxConns          int
	maxBody           int64
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	idleTimeout       time.Duration
	drainTimeout      time.Duration
	auth              *authTable
}

// LoadConfig reads and checks the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(path, b)
	if err != nil {
		return nil, err
	}
	if _, err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a configuration file strictly; file names it in
// errors. It does not check values ([LoadConfig] does).
func ParseConfig(file string, b []byte) (*Config, error) {
	var c Config
	if err := supervisor.DecodeTOML(file, b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// check validates c and returns its settings. It never half-applies: any
// problem is an error naming the key.
func (c *Config) check() (*settings, error) {
	s := &settings{cfg: c, strict: true, unixGID: -1}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		return nil, fmt.Errorf("data_dir %q: must be an absolute path", c.DataDir)
	}
	l := c.Listen
	if l.Unix == "" && l.TCP == "" {
		return nil, errors.New("listen: set unix (a socket path) or tcp (host:port, with tls_cert, tls_key and client_ca)")
	}
	if l.Unix != "" && !filepath.IsAbs(l.Unix) {
		return nil, fmt.Errorf("listen.unix %q: must be an absolute path", l.Unix)
	}
	s.unixMode = defaultUnixMode
	if l.UnixMode != "" {
		m, err := strconv.ParseUint(l.UnixMode, 8, 32)
		if err != nil || m > 0o777 {
			return nil, fmt.Errorf("listen.unix_mode %q: want octal permission bits such as \"0660\"", l.UnixMode)
		}
		if m&0o007 != 0 {
			return nil, fmt.Errorf("listen.unix_mode %q: other users may not connect; grant access with unix_group", l.UnixMode)
		}
		s.unixMode = os.FileMode(m)
	}
	if l.UnixGroup != "" {
		gid, err := lookupGroup(l.UnixGroup)
		if err != nil {
			return nil, fmt.Errorf("listen.unix_group: %w", err)
		}
		s.unixGID = gid
	}
	if l.TCP != "" {
		if _, _, err := net.SplitHostPort(l.TCP); err != nil {
			return nil, fmt.Errorf("listen.tcp %q: want host:port", l.TCP)
		}
		if l.TLSCert == "" || l.TLSKey == "" || l.ClientCA == "" {
			return nil, errors.New("listen.tcp: set tls_cert, tls_key and client_ca: the TCP listener is mutual TLS only")
		}
	}
	if l.Metrics != "" {
		if _, _, err := net.SplitHostPort(l.Metrics); err != nil {
			return nil, fmt.Errorf("listen.metrics %q: want host:port", l.Metrics)
		}
	}
	switch c.Isolation.Mode {
	case "", "strict":
	case "relaxed":
		s.strict = false
	default:
		return nil, fmt.Errorf("isolation.mode %q: must be strict or relaxed", c.Isolation.Mode)
	}
	if w := c.Isolation.WorkerSHA256; w != "" {
		if err := supervisor.CheckWorkerSHA256(w); err != nil {
			return nil, err
		}
	}
	s.poolSize = defaultPoolSize
	if c.Pool.Size != nil {
		s.poolSize = *c.Pool.Size
	}
	if err := supervisor.CheckPoolSize(s.poolSize); err != nil {
		return nil, err
	}
	lim := c.Limits
	var err error
	if s.maxRuns, err = positive("limits.max_concurrent_runs", lim.MaxConcurrentRuns, defaultMaxConcurrentRuns); err != nil {
		return nil, err
	}
	if s.maxConns, err = positive("limits.max_connections", lim.MaxConnections, defaultMaxConnections); err != nil {
		return nil, err
	}
	mb, err := positive("limits.max_body_bytes", int(lim.MaxBodyBytes), defaultMaxBodyBytes)
	if err != nil {
		return nil, err
	}
	s.maxBody = int64(mb)
	for _, d := range []struct {
		key string
		val string
		def time.Duration
		dst *time.Duration
	}{
		{"limits.read_header_timeout", lim.ReadHeaderTimeout, defaultReadHeaderTimeout, &s.readHeaderTimeout},
		{"limits.read_timeout", lim.ReadTimeout, defaultReadTimeout, &s.readTimeout},
		{"limits.idle_timeout", lim.IdleTimeout, defaultIdleTimeout, &s.idleTimeout},
		{"limits.drain_timeout", lim.DrainTimeout, defaultDrainTimeout, &s.drainTimeout},
	} {
		*d.dst = d.def
		if d.val != "" {
			v, err := time.ParseDuration(d.val)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("%s %q: write a positive Go duration such as \"5s\"", d.key, d.val)
			}
			*d.dst = v
		}
	}
	if s.auth, err = c.checkTenants(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkTenants validates [[tenants]] and builds the authentication table.
func (c *Config) checkTenants() (*authTable, error) {
	a := newAuthTable()
	for i, t := range c.Tenants {
		at := fmt.Sprintf("tenants[%d]", i)
		if !broker.ValidTenant(t.Name) {
			return nil, fmt.Errorf("%s.name %q: use 1-64 of a-z 0-9 . _ - starting with a letter or digit", at, t.Name)
		}
		at = fmt.Sprintf("tenant %s", t.Name)
		if a.names[t.Name] {
			return nil, fmt.Errorf("%s: defined twice", at)
		}
		a.names[t.Name] = true
		if len(t.UIDs)+len(t.Tokens)+len(t.Certs) == 0 {
			return nil, fmt.Errorf("%s: nobody can act as it: set uids, tokens or certs", at)
		}
		for _, uid := range t.UIDs {
			if other, ok := a.byUID[uid]; ok {
				return nil, fmt.Errorf("%s: uid %d already belongs to tenant %s", at, uid, other)
			}
			a.byUID[uid] = t.Name
		}
		for _, h := range t.Tokens {
			sum, err := parseSHA256(h)
			if err != nil {
				return nil, fmt.Errorf("%s: tokens: %w (aileron serve hash-token prints one)", at, err)
			}
			for _, e := range a.tokens {
				if e.hash == sum {
					return nil, fmt.Errorf("%s: token hash %s already belongs to tenant %s", at, h, e.tenant)
				}
			}
			a.tokens = append(a.tokens, tokenEntry{hash: sum, tenant: t.Name})
		}
		for _, h := range t.Certs {
			if _, err := parseSHA256(h); err != nil {
				return nil, fmt.Errorf("%s: certs: %w (aileron serve fingerprint prints one)", at, err)
			}
			if other, ok := a.bySPKI[h]; ok {
				return nil, fmt.Errorf("%s: certificate key %s already belongs to tenant %s", at, h, other)
			}
			a.bySPKI[h] = t.Name
		}
		q := t.Quota
		if q.ConcurrentRuns < 0 || q.RunsPerMinute < 0 || q.EgressRequestsPerMinute < 0 || q.EgressBytesPerMinute < 0 {
			return nil, fmt.Errorf("%s: quota: negative limit", at)
		}
	}
	return a, nil
}

func positive(key string, v, def int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0:
		return 0, fmt.Errorf("%s %d: must be positive", key, v)
	}
	return v, nil
}

// parseSHA256 parses "sha256:<64 hex>".
func parseSHA256(s string) ([32]byte, error) {
	var out [32]byte
	d, err := cas.ParseDigest(s)
	if err != nil {
		return out, fmt.Errorf("%q is not sha256:<64 lowercase hex digits>", s)
	}
	_, err = hex.Decode(out[:], []byte(d.Hex()))
	return out, err
}
