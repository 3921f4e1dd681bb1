// Package serve is `aileron serve`: a long-lived supervisor that many
// callers share, for hardened servers and multi-tenant hosts, without
// sharing anything that matters between tenants.
//
// # Tenants
//
// Every caller authenticates and is mapped to a tenant: by its uid on the
// unix socket (SO_PEERCRED), by the public key of its client certificate on
// the mutual-TLS listener, or by a bearer token whose sha256 the
// configuration holds. Each tenant has a supervisor of its own, with its own
// home (DataDir/tenants/NAME): installed actions, consent records, a vault
// with its own age key, and an audit log; and so its own broker process, so
// that no two tenants' secrets are ever in one process. Tenants share two
// things that are safe to share: the content-addressed store (keyed by
// hash) and the warm pool of sandboxed workers, which are bound to nothing
// until a run binds one and serve exactly one run each.
//
// A tenant cannot run another tenant's action, name its credentials, read
// its audit log, or learn whether any of them exist: its requests are
// resolved in its own home only, so an action or credential of another
// tenant gets exactly the answer a nonexistent one gets.
//
// # Quotas and admission
//
// Per tenant: runs in flight, run requests per minute (429 past either), and
// egress requests and bytes per minute (enforced by the tenant's broker;
// the connector gets egress_quota_exceeded). The server as a whole admits
// at most limits.max_concurrent_runs runs at once and sheds the rest with
// 503 at once, instead of spawning without bound.
//
// # API
//
// JSON over HTTP, on a unix socket and optionally on TCP with mutual TLS:
//
//	POST /v1/runs     {"action": "add-note", "inputs": {...}}  -> the run result, or {code, message, ...}
//	GET  /v1/actions  the tenant's installed actions
//	GET  /healthz     liveness; GET /readyz: 503 while draining
//
// The wire types and a client are in package
// [aileron.dev/aileron/supervisor/serve/client]. Prometheus metrics are on a
// separate listener (listen.metrics), because they name tenants.
//
// # Operations
//
// Strict isolation is the default: the server probes the isolation layers
// at start ([supervisor.Supervisor.Doctor]) and refuses to start if one is
// missing, unless the configuration says relaxed (then it warns loudly).
// [Server.Shutdown] stops accepting, drains runs in flight up to a deadline,
// then cancels them (their workers are killed). Every child process has
// Pdeathsig set, so a SIGKILLed server leaves no worker or broker behind.
// [Server.Reload] applies changed tenants and quotas; listeners, isolation
// and the pool need a restart.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/supervisor/serve/client"
)

// Options configure a Server.
type Options struct {
	// Config is the checked configuration ([LoadConfig]). Required.
	Config *Config
	// WorkerPath is the aileron-worker binary. Required.
	WorkerPath string
	// BrokerPath and BrokerArgs start each tenant's broker; default: this
	// executable with the argument "broker".
	BrokerPath string
	BrokerArgs []string
	// Logger receives the server's, the brokers' and the workers' logs.
	// Default: a null logger.
	Logger hclog.Logger
}

// Log keys.
const (
	logTenant   = "tenant"
	logAction   = "action"
	logRunID    = "run_id"
	logStatus   = "status"
	logCode     = "code"
	logDuration = "duration_ms"
	logError    = "error"
	logListener = "listener"
	logMethod   = "method"
	logPath     = "path"
)

// Server is a running `aileron serve`. It is safe for concurrent use.
type Server struct {
	opts Options
	log  hclog.Logger
	set  atomic.Pointer[settings]
	root *supervisor.Supervisor
	base supervisor.Config // what every tenant supervisor starts from
	met  *metrics
	adm  admission

	mu      sync.Mutex
	tenants map[string]*tenant

	reloadMu sync.Mutex
	draining atomic.Bool
	// runCtx is cancelled when the drain deadline passes: every run's
	// context is tied to it.
	runCtx    context.Context
	runCancel context.CancelFunc
	inflight  atomic.Int64   // run handlers running
	bg        sync.WaitGroup // generations closing, audit polling
	stopBg    chan struct{}

	servers    []*http.Server
	metricsSrv *http.Server
	listeners  []net.Listener
	errc       chan error
}

// New checks the host and the configuration, prepares the data directory
// and every tenant's supervisor. Nothing listens yet ([Server.Start]).
func New(opts Options) (_ *Server, err error) {
	if opts.Config == nil {
		return nil, errors.New("serve: Config is not set")
	}
	if opts.WorkerPath == "" {
		return nil, errors.New("serve: WorkerPath is not set")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	set, err := opts.Config.check()
	if err != nil {
		return nil, err
	}
	if err := Setup(opts.Config); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger.Named("serve"), tenants: map[string]*tenant{}, stopBg: make(chan struct{}), errc: make(chan error, 4)}
	s.runCtx, s.runCancel = context.WithCancel(context.Background())
	s.adm.max = set.maxRuns
	iso := supervisor.Isolation{Strict: set.strict, UnsafeDisable: opts.Config.Isolation.UnsafeDisable}
	dataDir := opts.Config.DataDir
	s.base = supervisor.Config{
		StoreDir:     filepath.Join(dataDir, storeDirName),
		WorkerPath:   opts.WorkerPath,
		WorkerSHA256: opts.Config.Isolation.WorkerSHA256,
		BrokerPath:   opts.BrokerPath,
		BrokerArgs:   opts.BrokerArgs,
		Isolation:    iso,
		Via:          "serve",
		Logger:       opts.Logger,
	}
	rootCfg := s.base
	rootCfg.Home = filepath.Join(dataDir, serverDirName)
	rootCfg.PoolSize = set.poolSize
	if s.root, err = supervisor.New(rootCfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if err := s.checkIsolation(set.strict); err != nil {
		return nil, err
	}
	s.base.WorkerSource = s.root
	s.met = newMetrics(func() float64 { return float64(s.root.PoolReady()) })
	s.met.poolSize.Set(float64(set.poolSize))
	gens, err := s.buildGenerations(set)
	if err != nil {
		return nil, err
	}
	for _, tc := range opts.Config.Tenants {
		t := newTenant(dataDir, tc)
		t.replace(gens[tc.Name], s.closeGen)
		s.tenants[tc.Name] = t
	}
	s.set.Store(set)
	s.log.Info("tenants loaded", "tenants", strings.Join(s.tenantNames(), ","), "pool", set.poolSize, "max_concurrent_runs", set.maxRuns)
	return s, nil
}

// checkIsolation probes the layers workers get on this host. Strict mode
// refuses to start without all of them; relaxed mode says loudly which are
// missing.
func (s *Server) checkIsolation(strict bool) error {
	rep := s.root.Doctor()
	var missing []string
	for _, l := range rep.Missing() {
		missing = append(missing, l.Name+" ("+l.Detail+")")
	}
	if len(missing) == 0 {
		return nil
	}
	if strict {
		return fmt.Errorf("%w: %s; fix the host (aileron doctor), or set isolation.mode = \"relaxed\" to run without them", supervisor.ErrIsolation, strings.Join(missing, "; "))
	}
	for _, m := range missing {
		s.log.Warn("RELAXED ISOLATION: workers will run without an isolation layer", "layer", m)
	}
	return nil
}

// newTenant is a tenant with no generation yet.
func newTenant(dataDir string, tc TenantConfig) *tenant {
	home := tenantHome(dataDir, tc.Name)
	return &tenant{name: tc.Name, quota: newTenantQuota(tc.Quota),
		audit: newAuditTail(supervisor.AuditPath(home))}
}

// buildGenerations builds a supervisor for every tenant of set whose
// settings differ from its current generation's (all of them at start),
// and reuses the current generation of the others. Nothing is applied: on
// error, what it built is closed and the reused generations are untouched.
func (s *Server) buildGenerations(set *settings) (_ map[string]*generation, err error) {
	out := map[string]*generation{}
	var built []*generation
	defer func() {
		if err != nil {
			for _, g := range built {
				g.sup.Close()
			}
		}
	}()
	for _, tc := range set.cfg.Tenants {
		cfg, err := tenantSupervisorConfig(set.cfg.DataDir, tc, s.base)
		if err != nil {
			return nil, err
		}
		cfg.Logger = s.opts.Logger.With(logTenant, tc.Name)
		key := generationKey(cfg)
		s.mu.Lock()
		t := s.tenants[tc.Name]
		s.mu.Unlock()
		if t != nil {
			t.mu.Lock()
			cur := t.cur
			t.mu.Unlock()
			if cur != nil && cur.key == key {
				out[tc.Name] = cur
				continue
			}
		}
		if cfg.Broker.UnsafeAllowLoopback || cfg.Broker.UnsafeAllowPrivate {
			s.log.Warn("UNSAFE: a tenant's connectors may reach loopback or private addresses (unsafe_allow_* in its config.toml)", logTenant, tc.Name)
		}
		sup, err := supervisor.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", tc.Name, err)
		}
		g := &generation{sup: sup, key: key}
		built = append(built, g)
		out[tc.Name] = g
	}
	return out, nil
}

// closeGen closes a retired generation in the background.
func (s *Server) closeGen(g *generation) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := g.sup.Close(); err != nil {
			s.log.Warn("close tenant supervisor", logError, err)
		}
	}()
}

func (s *Server) tenantNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tenants))
	for n := range s.tenants {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Reload applies cfg's tenants and quotas: tenants added, removed or
// changed (identities, quotas, the settings in their config.toml). A
// removed tenant's runs in flight finish; a changed tenant's next runs use
// a new supervisor. Listeners, isolation, the pool and the limits are not
// reloaded: a change to them is logged and needs a restart. On error
// nothing changes.
func (s *Server) Reload(cfg *Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.set.Load()
	set, err := cfg.check()
	if err != nil {
		return err
	}
	if cfg.DataDir != old.cfg.DataDir {
		return fmt.Errorf("data_dir changed from %s to %s: restart the server to move it", old.cfg.DataDir, cfg.DataDir)
	}
	for _, d := range []struct {
		name     string
		was, now any
	}{{"listen", old.cfg.Listen, cfg.Listen}, {"isolation", old.cfg.Isolation, cfg.Isolation}, {"pool", old.cfg.Pool, cfg.Pool}, {"limits", old.cfg.Limits, cfg.Limits}} {
		if !reflect.DeepEqual(d.was, d.now) {
			s.log.Warn("configuration changed in a part that is not reloaded; restart the server to apply it", "section", d.name)
		}
	}
	// Keep everything a reload does not change: only the tenants (and the
	// authentication table built from them) are new.
	kept := *old.cfg
	kept.Tenants = cfg.Tenants
	next := *old
	next.cfg, next.auth = &kept, set.auth
	set = &next
	if err := Setup(set.cfg); err != nil {
		return err
	}
	gens, err := s.buildGenerations(set)
	if err != nil {
		return err
	}
	// Reloads are serialized by reloadMu, so s.tenants changes only here.
	s.mu.Lock()
	cur := s.tenants
	s.mu.Unlock()
	tenants := map[string]*tenant{}
	for _, tc := range set.cfg.Tenants {
		t := cur[tc.Name]
		if t == nil {
			t = newTenant(set.cfg.DataDir, tc)
		}
		t.quota.set(tc.Quota)
		// Before publishing, so an added tenant is never seen without a
		// generation (its callers would get 401).
		t.replace(gens[tc.Name], s.closeGen)
		tenants[tc.Name] = t
	}
	var removed []*tenant
	for name, t := range cur {
		if tenants[name] == nil {
			removed = append(removed, t)
		}
	}
	s.mu.Lock()
	s.tenants = tenants
	s.set.Store(set)
	s.mu.Unlock()
	for _, t := range removed {
		t.retire(s.closeGen)
	}
	s.log.Info("configuration reloaded", "tenants", strings.Join(s.tenantNames(), ","), "removed", len(removed))
	return nil
}

// Start opens the listeners and serves on them in the background. Errors
// that end a listener later arrive on [Server.Err].
func (s *Server) Start() error {
	set := s.set.Load()
	l := set.cfg.Listen
	api := s.apiHandler()
	newServer := func(h http.Handler, name string) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: set.readHeaderTimeout,
			ReadTimeout:       set.readTimeout,
			IdleTimeout:       set.idleTimeout,
			MaxHeaderBytes:    16 << 10,
			ConnContext:       connContext,
			ErrorLog:          s.log.Named(name).StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		}
	}
	type served struct {
		srv *http.Server
		ln  net.Listener
	}
	var all []served
	fail := func(err error) error {
		for _, x := range all {
			x.ln.Close()
		}
		return err
	}
	reject := func(name string) func() {
		return func() { s.met.connRejections.WithLabelValues(name).Inc() }
	}
	if l.Unix != "" {
		ln, err := listenUnix(l.Unix, set.unixMode, set.unixGID)
		if err != nil {
			return fail(err)
		}
		all = append(all, served{newServer(withListener(api, "unix"), "unix"), newLimitListener(ln, set.maxConns, true, reject("unix"))})
		s.log.Info("listening", logListener, "unix", "path", l.Unix, "mode", fmt.Sprintf("%04o", set.unixMode))
	}
	if l.TCP != "" {
		tc, err := serverTLS(l)
		if err != nil {
			return fail(err)
		}
		ln, err := net.Listen("tcp", l.TCP)
		if err != nil {
			return fail(fmt.Errorf("listen.tcp: %w", err))
		}
		srv := newServer(withListener(api, "tcp"), "tcp")
		all = append(all, served{srv, tls.NewListener(newLimitListener(ln, set.maxConns, false, reject("tcp")), tc)})
		s.log.Info("listening", logListener, "tcp", "address", ln.Addr().String(), "tls", "mutual")
	}
	if l.Metrics != "" {
		ln, err := net.Listen("tcp", l.Metrics)
		if err != nil {
			return fail(fmt.Errorf("listen.metrics: %w", err))
		}
		s.metricsSrv = newServer(s.metricsHandler(), "metrics")
		all = append(all, served{s.metricsSrv, newLimitListener(ln, 16, false, reject("metrics"))})
		s.log.Info("listening", logListener, "metrics", "address", ln.Addr().String())
	}
	for _, x := range all {
		s.servers = append(s.servers, x.srv)
		s.listeners = append(s.listeners, x.ln)
		go func(x served) {
			if err := x.srv.Serve(x.ln); !errors.Is(err, http.ErrServerClosed) {
				s.errc <- err
			}
		}(x)
	}
	s.bg.Add(1)
	go s.pollAudit()
	return nil
}

// Addrs returns the listeners' addresses (unix, tcp, metrics, in that
// order, those configured), once started.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

// Err reports errors that ended a listener.
func (s *Server) Err() <-chan error { return s.errc }

// DrainTimeout is limits.drain_timeout.
func (s *Server) DrainTimeout() time.Duration { return s.set.Load().drainTimeout }

// Shutdown stops accepting connections and new runs, waits for the runs in
// flight until ctx ends, then cancels the rest (killing their workers),
// and finally stops every broker and pool worker.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.log.Info("shutting down: draining runs in flight")
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		if srv == s.metricsSrv {
			continue // health checks see /readyz say "draining" until the end
		}
		wg.Add(1)
		go func(srv *http.Server) {
			defer wg.Done()
			_ = srv.Shutdown(ctx)
		}(srv)
	}
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		waitZero(context.Background(), &s.inflight)
		close(drained)
	}()
	var err error
	select {
	case <-drained:
		s.log.Info("drained")
	case <-ctx.Done():
		err = fmt.Errorf("drain deadline passed: runs in flight cancelled")
		s.log.Warn("drain deadline passed: cancelling runs in flight")
		s.runCancel()
		// Cancelled runs end at once and their handlers answer 503. A
		// handler blocked writing to a client that does not read returns
		// only when its connection is closed: close them all after a
		// short grace.
		grace, cancel := context.WithTimeout(context.Background(), cancelGrace)
		waitZero(grace, &s.inflight)
		cancel()
		for _, srv := range s.servers {
			srv.Close()
		}
		waitZero(context.Background(), &s.inflight)
	}
	s.runCancel()
	if s.metricsSrv != nil {
		s.metricsSrv.Close()
	}
	s.closeAll()
	return err
}

// cancelGrace is how long handlers of cancelled runs get to answer after
// the drain deadline before their connections are closed.
const cancelGrace = 5 * time.Second

// waitZero waits until n is zero. (A WaitGroup would do, but a handler may
// start, on a connection that was already reading a request, while
// Shutdown waits, and WaitGroup forbids an Add concurrent with a Wait at
// zero.)
func waitZero(ctx context.Context, n *atomic.Int64) {
	for n.Load() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// tenantList returns the tenants served now.
func (s *Server) tenantList() []*tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.tenants))
}

// closeAll stops the audit poller and closes every supervisor.
func (s *Server) closeAll() {
	select {
	case <-s.stopBg:
	default:
		close(s.stopBg)
	}
	ts := s.tenantList()
	for _, t := range ts {
		t.retire(s.closeGen)
	}
	s.bg.Wait()
	if s.root != nil {
		if err := s.root.Close(); err != nil {
			s.log.Warn("close pool", logError, err)
		}
	}
}

// pollAudit counts egress denials from the tenants' audit logs once a
// second (and on every metrics scrape).
func (s *Server) pollAudit() {
	defer s.bg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stopBg:
			return
		case <-t.C:
			s.pollAuditOnce()
		}
	}
}

func (s *Server) pollAuditOnce() {
	ts := s.tenantList()
	for _, t := range ts {
		t.audit.poll(func(code string) { s.met.egressDenials.WithLabelValues(t.name, code).Inc() })
	}
}

// metricsHandler serves the metrics listener.
func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	prom := promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{})
	mux.Handle(client.PathMetrics, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.pollAuditOnce()
		prom.ServeHTTP(w, r)
	}))
	mux.HandleFunc(client.PathHealth, s.handleHealth)
	mux.HandleFunc(client.PathReady, s.handleReady)
	return mux
}
