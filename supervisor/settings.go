package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/worker"
)

// SettingsFile is the operator's configuration file in $AILERON_HOME.
const SettingsFile = "config.toml"

// Settings is the operator configuration read from $AILERON_HOME/config.toml.
// Every field is optional; the zero value is the safe default.
type Settings struct {
	// Tenant names the tenant this home belongs to on an `aileron serve`
	// host (<data_dir>/tenants/<name>); the broker scopes vault entries
	// and audit records by it, so the CLI run in a tenant's home stores
	// credentials where the server's broker for that tenant finds them.
	// Empty on a single-user host.
	Tenant    string            `toml:"tenant"`
	Broker    BrokerSettings    `toml:"broker"`
	Limits    LimitSettings     `toml:"limits"`
	Isolation IsolationSettings `toml:"isolation"`
	Pool      PoolSettings      `toml:"pool"`
	Sources   SourceSettings    `toml:"sources"`
}

// PoolSettings size the warm pool of sandboxed, unbound workers.
type PoolSettings struct {
	// Size is how many workers to keep ready; 0 (the default) disables
	// the pool. It pays off in long-lived supervisors (serve, mcp); of the
	// CLI's commands only run and mcp start it.
	Size int `toml:"size"`
}

// SourceSettings say where connector packages are downloaded from. The
// environment variables EnvSourceGitHub, EnvSourceGitLab and EnvSourceHub
// override the base URLs.
type SourceSettings struct {
	// GitHub, GitLab and Hub are https base URLs of the sources (a
	// mirror; the tests' loopback server). Empty: the public services.
	GitHub string `toml:"github"`
	GitLab string `toml:"gitlab"`
	Hub    string `toml:"hub"`
	// ExtraRootCAs are PEM files of CAs trusted, in addition to the
	// system's, for downloads. TLS verification is never skipped.
	ExtraRootCAs []string `toml:"extra_root_cas"`
	// Timeout bounds one attempt at one file, a Go duration ("2m").
	Timeout string `toml:"timeout"`
}

// Environment variables that override [sources] base URLs.
const (
	EnvSourceGitHub = "AILERON_SOURCE_GITHUB"
	EnvSourceGitLab = "AILERON_SOURCE_GITLAB"
	EnvSourceHub    = "AILERON_SOURCE_HUB"
)

// SourceConfig returns the download configuration: [sources] with the
// environment (read through getenv) overriding base URLs.
func (s Settings) SourceConfig(getenv func(string) string) (cas.SourceConfig, error) {
	src := s.Sources
	cfg := cas.SourceConfig{Bases: cas.Bases{GitHub: src.GitHub, GitLab: src.GitLab, Hub: src.Hub}}
	for _, o := range []struct {
		env string
		dst *string
	}{{EnvSourceGitHub, &cfg.Bases.GitHub}, {EnvSourceGitLab, &cfg.Bases.GitLab}, {EnvSourceHub, &cfg.Bases.Hub}} {
		if v := getenv(o.env); v != "" {
			*o.dst = v
		}
	}
	if err := cfg.Bases.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: sources: %w", SettingsFile, err)
	}
	if src.Timeout != "" {
		d, err := time.ParseDuration(src.Timeout)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("%s: sources.timeout %q: write a positive Go duration such as \"2m\"", SettingsFile, src.Timeout)
		}
		cfg.Timeout = d
	}
	pems, err := readPEMFiles("sources.extra_root_cas", src.ExtraRootCAs)
	if err != nil {
		return cfg, err
	}
	cfg.ExtraRootCAs = append(cfg.ExtraRootCAs, pems...)
	return cfg, nil
}

// readPEMFiles reads and concatenates the PEM files a settings key names;
// errors name the key.
func readPEMFiles(key string, paths []string) ([]byte, error) {
	var out []byte
	for _, p := range paths {
		pem, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", SettingsFile, key, err)
		}
		out = append(out, pem...)
	}
	return out, nil
}

// BrokerSettings configure egress.
type BrokerSettings struct {
	// UnsafeAllowLoopback lets connectors reach loopback addresses (tests,
	// the demo). Logged loudly whenever it is on.
	UnsafeAllowLoopback bool `toml:"unsafe_allow_loopback"`
	// UnsafeAllowPrivate lets connectors reach private address ranges.
	UnsafeAllowPrivate bool `toml:"unsafe_allow_private"`
	// ExtraRootCAs are PEM files of CAs trusted in addition to the
	// system's (a private service, tests).
	ExtraRootCAs []string `toml:"extra_root_cas"`
	// Hosts maps names to addresses, consulted before DNS.
	Hosts map[string][]string `toml:"hosts"`
	// Routes send a declared "host:port" to another "ip:port".
	Routes map[string]string `toml:"routes"`
	// MaxRequestsPerStep, MaxResponseBytes and RequestTimeout bound egress.
	MaxRequestsPerStep int `toml:"max_requests_per_step"`
	// MaxRequestsPerChannel bounds a worker's requests over all its steps.
	MaxRequestsPerChannel int `toml:"max_requests_per_channel"`
	// MaxChannels bounds the workers connected to one broker at once.
	MaxChannels int `toml:"max_channels"`
	// FollowRedirects is how many redirects the broker follows itself
	// (each hop checked again; the credential only to the original host);
	// 0, the default, returns every 3xx to the connector.
	FollowRedirects  int    `toml:"follow_redirects"`
	MaxResponseBytes int64  `toml:"max_response_bytes"`
	RequestTimeout   string `toml:"request_timeout"`
}

// LimitSettings bound each invocation.
type LimitSettings struct {
	// Deadline is a Go duration, e.g. "30s".
	Deadline    string `toml:"deadline"`
	MemoryBytes int64  `toml:"memory_bytes"`
	HostCalls   int    `toml:"host_calls"`
	StdoutBytes int64  `toml:"stdout_bytes"`
	StderrBytes int64  `toml:"stderr_bytes"`
}

// IsolationSettings choose the isolation mode.
type IsolationSettings struct {
	// Mode is "strict" (refuse to run without every layer) or "relaxed"
	// (run with a loud warning). Default: relaxed for the CLI.
	Mode string `toml:"mode"`
	// UnsafeDisable names layers not to apply; see Isolation.UnsafeDisable.
	UnsafeDisable []string `toml:"unsafe_disable"`
	// WorkerSHA256 pins the worker binary ("sha256:<hex>"), overriding the
	// hash this aileron binary was built with.
	WorkerSHA256 string `toml:"worker_sha256"`
}

// CheckWorkerSHA256 checks an isolation.worker_sha256 pin: the worker's
// sha256, "sha256:" prefix optional, as it always could be.
func CheckWorkerSHA256(w string) error {
	if _, err := cas.ParseDigest("sha256:" + strings.TrimPrefix(w, "sha256:")); err != nil {
		return fmt.Errorf("isolation.worker_sha256 %q: want sha256:<64 lowercase hex digits>", w)
	}
	return nil
}

// MaxPoolSize is the largest warm pool.
const MaxPoolSize = 64

// CheckPoolSize checks a pool.size setting.
func CheckPoolSize(n int) error {
	if n < 0 || n > MaxPoolSize {
		return fmt.Errorf("pool.size %d: must be 0 to %d", n, MaxPoolSize)
	}
	return nil
}

// LoadSettings reads home/config.toml; a missing file is the zero Settings.
func LoadSettings(home string) (Settings, error) {
	var s Settings
	path := filepath.Join(home, SettingsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := DecodeTOML(path, b, &s); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// DecodeTOML decodes b into v strictly: an unknown key is an error. Errors
// name file, line and column ("file:3:1: unknown key tenants.uid", one
// line per key).
func DecodeTOML(file string, b []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		msgs := make([]string, len(se.Errors))
		for i, e := range se.Errors {
			row, col := e.Position()
			msgs[i] = fmt.Sprintf("%s:%d:%d: unknown key %s", file, row, col, strings.Join(e.Key(), "."))
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("%s:%d:%d: %s", file, row, col, strings.TrimPrefix(de.Error(), "toml: "))
	}
	return fmt.Errorf("%s: %w", file, err)
}

// Apply fills cfg from the settings; files named in them are read here.
func (s Settings) Apply(cfg *Config) error {
	b := &cfg.Broker
	if s.Tenant != "" && !broker.ValidTenant(s.Tenant) {
		return fmt.Errorf("%s: tenant %q: use 1-64 of a-z 0-9 . _ - starting with a letter or digit", SettingsFile, s.Tenant)
	}
	b.Tenant = s.Tenant
	b.UnsafeAllowLoopback = s.Broker.UnsafeAllowLoopback
	b.UnsafeAllowPrivate = s.Broker.UnsafeAllowPrivate
	b.HostsOverride = s.Broker.Hosts
	b.Routes = s.Broker.Routes
	b.MaxRequestsPerStep = s.Broker.MaxRequestsPerStep
	b.MaxRequestsPerChannel = s.Broker.MaxRequestsPerChannel
	b.MaxChannels = s.Broker.MaxChannels
	b.FollowRedirects = s.Broker.FollowRedirects
	b.MaxResponseBytes = s.Broker.MaxResponseBytes
	if s.Broker.RequestTimeout != "" {
		d, err := time.ParseDuration(s.Broker.RequestTimeout)
		if err != nil {
			return fmt.Errorf("%s: broker.request_timeout: %w", SettingsFile, err)
		}
		b.RequestTimeoutMS = d.Milliseconds()
	}
	pems, err := readPEMFiles("broker.extra_root_cas", s.Broker.ExtraRootCAs)
	if err != nil {
		return err
	}
	b.ExtraRootCAs = append(b.ExtraRootCAs, pems...)
	lim := worker.Limits{MemoryBytes: s.Limits.MemoryBytes, HostCalls: s.Limits.HostCalls, StdoutBytes: s.Limits.StdoutBytes, StderrBytes: s.Limits.StderrBytes}
	if s.Limits.Deadline != "" {
		d, err := time.ParseDuration(s.Limits.Deadline)
		if err != nil {
			return fmt.Errorf("%s: limits.deadline: %w", SettingsFile, err)
		}
		lim.DeadlineMS = d.Milliseconds()
	}
	cfg.Limits = lim
	cfg.Isolation.UnsafeDisable = s.Isolation.UnsafeDisable
	if w := s.Isolation.WorkerSHA256; w != "" {
		if err := CheckWorkerSHA256(w); err != nil {
			return fmt.Errorf("%s: %w", SettingsFile, err)
		}
		cfg.WorkerSHA256 = w
	}
	if err := CheckPoolSize(s.Pool.Size); err != nil {
		return fmt.Errorf("%s: %w", SettingsFile, err)
	}
	cfg.PoolSize = s.Pool.Size
	switch s.Isolation.Mode {
	case "", "relaxed":
	case "strict":
		cfg.Isolation.Strict = true
	default:
		return fmt.Errorf("%s: isolation.mode %q: must be strict or relaxed", SettingsFile, s.Isolation.Mode)
	}
	return nil
}
