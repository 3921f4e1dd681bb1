package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const hashA = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestParseConfig_Errors(t *testing.T) {
	for _, tt := range []struct {
		name, src, want string
	}{
		{"unknown_top_key", "data_dir = \"/d\"\nport = 1\n", "f.toml:2:1: unknown key port"},
		{"unknown_tenant_key", "[[tenants]]\nname = \"a\"\nuid = 1\n", "f.toml:3:1: unknown key tenants.uid"},
		{"unknown_quota_key", "[[tenants]]\nname = \"a\"\n[tenants.quota]\nruns = 1\n", "f.toml:4:1: unknown key tenants.quota.runs"},
		{"wrong_type", "[pool]\nsize = \"four\"\n", "f.toml:2:8: cannot decode TOML string into struct field serve.PoolConfig.Size of type int"},
		{"negative_uid", "[[tenants]]\nname = \"a\"\nuids = [-1]\n", "f.toml:3:9: negative integer value -1 cannot be stored in uint32"},
		{"syntax", "data_dir = \n", "f.toml:1:12: unexpected character U+000A at start of value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("f.toml", []byte(tt.src))
			require.Error(t, err)
			require.EqualError(t, err, tt.want)
		})
	}
}

// base is a valid configuration the check tests vary.
func base() *Config {
	return &Config{DataDir: "/var/lib/aileron", Listen: ListenConfig{Unix: "/run/aileron.sock"},
		Tenants: []TenantConfig{{Name: "a", Tokens: []string{hashA}}}}
}

func TestConfigCheck_Errors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"relative_data_dir", func(c *Config) { c.DataDir = "data" }, `data_dir "data": must be an absolute path`},
		{"no_listener", func(c *Config) { c.Listen = ListenConfig{} }, "listen: set unix (a socket path) or tcp (host:port, with tls_cert, tls_key and client_ca)"},
		{"relative_socket", func(c *Config) { c.Listen.Unix = "a.sock" }, `listen.unix "a.sock": must be an absolute path`},
		{"bad_mode", func(c *Config) { c.Listen.UnixMode = "rw" }, `listen.unix_mode "rw": want octal permission bits such as "0660"`},
		{"world_mode", func(c *Config) { c.Listen.UnixMode = "0666" }, `listen.unix_mode "0666": other users may not connect; grant access with unix_group`},
		{"unknown_group", func(c *Config) { c.Listen.UnixGroup = "no-such-group-x" }, `listen.unix_group: group "no-such-group-x": group: unknown group no-such-group-x`},
		{"tcp_without_tls", func(c *Config) { c.Listen.TCP = "0.0.0.0:8443" }, "listen.tcp: set tls_cert, tls_key and client_ca: the TCP listener is mutual TLS only"},
		{"tcp_bad", func(c *Config) { c.Listen.TCP = "8443" }, `listen.tcp "8443": want host:port`},
		{"metrics_bad", func(c *Config) { c.Listen.Metrics = "9464" }, `listen.metrics "9464": want host:port`},
		{"bad_mode_name", func(c *Config) { c.Isolation.Mode = "off" }, `isolation.mode "off": must be strict or relaxed`},
		{"bad_worker_hash", func(c *Config) { c.Isolation.WorkerSHA256 = "abc" }, `isolation.worker_sha256 "abc": want sha256:<64 lowercase hex digits>`},
		{"pool_too_big", func(c *Config) { n := 65; c.Pool.Size = &n }, "pool.size 65: must be 0 to 64"},
		{"negative_runs", func(c *Config) { c.Limits.MaxConcurrentRuns = -1 }, "limits.max_concurrent_runs -1: must be positive"},
		{"bad_duration", func(c *Config) { c.Limits.DrainTimeout = "soon" }, `limits.drain_timeout "soon": write a positive Go duration such as "5s"`},
		{"zero_duration", func(c *Config) { c.Limits.ReadHeaderTimeout = "0s" }, `limits.read_header_timeout "0s": write a positive Go duration such as "5s"`},
		{"bad_tenant_name", func(c *Config) { c.Tenants[0].Name = "../etc" }, `tenants[0].name "../etc": use 1-64 of a-z 0-9 . _ - starting with a letter or digit`},
		{"dot_tenant_name", func(c *Config) { c.Tenants[0].Name = ".." }, `tenants[0].name "..": use 1-64 of a-z 0-9 . _ - starting with a letter or digit`},
		{"tenant_twice", func(c *Config) { c.Tenants = append(c.Tenants, TenantConfig{Name: "a", UIDs: []uint32{1}}) }, "tenant a: defined twice"},
		{"nobody", func(c *Config) { c.Tenants[0].Tokens = nil }, "tenant a: nobody can act as it: set uids, tokens or certs"},
		{"uid_twice", func(c *Config) {
			c.Tenants[0].UIDs = []uint32{1000}
			c.Tenants = append(c.Tenants, TenantConfig{Name: "b", UIDs: []uint32{1000}})
		}, "tenant b: uid 1000 already belongs to tenant a"},
		{"token_twice", func(c *Config) { c.Tenants = append(c.Tenants, TenantConfig{Name: "b", Tokens: []string{hashA}}) }, "tenant b: token hash " + hashA + " already belongs to tenant a"},
		{"plain_token", func(c *Config) { c.Tenants[0].Tokens = []string{"hunter2"} }, `tenant a: tokens: "hunter2" is not sha256:<64 lowercase hex digits> (aileron serve hash-token prints one)`},
		{"bad_cert", func(c *Config) { c.Tenants[0].Certs = []string{"sha1:00"} }, `tenant a: certs: "sha1:00" is not sha256:<64 lowercase hex digits> (aileron serve fingerprint prints one)`},
		{"cert_twice", func(c *Config) {
			c.Tenants[0].Certs = []string{hashA}
			c.Tenants = append(c.Tenants, TenantConfig{Name: "b", Certs: []string{hashA}})
		}, "tenant b: certificate key " + hashA + " already belongs to tenant a"},
		{"negative_quota", func(c *Config) { c.Tenants[0].Quota.RunsPerMinute = -1 }, "tenant a: quota: negative limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(c)
			_, err := c.check()
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestConfigCheck_Defaults(t *testing.T) {
	s, err := base().check()
	require.NoError(t, err)
	require.True(t, s.strict, "strict isolation by default")
	require.Equal(t, defaultPoolSize, s.poolSize)
	require.Equal(t, os.FileMode(0o660), s.unixMode)
	require.Equal(t, -1, s.unixGID)
	require.Equal(t, 32, s.maxRuns)
	require.Equal(t, 256, s.maxConns)
	require.Equal(t, int64(1<<20), s.maxBody)
	require.Equal(t, 5*time.Second, s.readHeaderTimeout)
	require.Equal(t, 30*time.Second, s.drainTimeout)

	c := base()
	zero := 0
	c.Pool.Size, c.Isolation.Mode, c.Listen.UnixGroup = &zero, "relaxed", "0"
	s, err = c.check()
	require.NoError(t, err)
	require.False(t, s.strict)
	require.Equal(t, 0, s.poolSize, "an explicit 0 disables the pool")
	require.Equal(t, 0, s.unixGID)

	// worker_sha256 as in a single-user config.toml: the prefix optional.
	c = base()
	c.Isolation.WorkerSHA256 = strings.Repeat("ab", 32)
	_, err = c.check()
	require.NoError(t, err)
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "serve.toml")
	require.NoError(t, os.WriteFile(p, []byte(`data_dir = "/d"
[listen]
unix = "/run/a.sock"
[[tenants]]
name = "a"
uids = [1000]
[tenants.quota]
concurrent_runs = 2
egress_bytes_per_minute = 1048576
`), 0o600))
	c, err := LoadConfig(p)
	require.NoError(t, err)
	require.Equal(t, QuotaConfig{ConcurrentRuns: 2, EgressBytesPerMinute: 1 << 20}, c.Tenants[0].Quota)
	require.NoError(t, os.WriteFile(p, []byte("data_dir = \"d\"\n[listen]\nunix = \"/s\"\n"), 0o600))
	_, err = LoadConfig(p)
	require.EqualError(t, err, p+`: data_dir "d": must be an absolute path`)
}

// TestExampleConfig: the example configuration shipped for systemd is
// valid (with a group that exists on any host).
func TestExampleConfig(t *testing.T) {
	b, err := os.ReadFile("../../examples/systemd/serve.toml")
	require.NoError(t, err)
	c, err := ParseConfig("serve.toml", b)
	require.NoError(t, err)
	require.Equal(t, "aileron", c.Listen.UnixGroup)
	c.Listen.UnixGroup = "0"
	s, err := c.check()
	require.NoError(t, err)
	require.True(t, s.strict)
	require.Len(t, c.Tenants, 2)
}
