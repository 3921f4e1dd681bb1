package serve

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"aileron.dev/aileron/supervisor"
)

// tenant is one tenant's state in the server: its quotas (which outlive
// reloads) and the current generation of its supervisor.
type tenant struct {
	name  string
	quota *tenantQuota
	audit *auditTail

	mu  sync.Mutex
	cur *generation
}

// generation is one supervisor of a tenant, built from one reading of the
// tenant's settings. A reload that changes them builds a new generation;
// the old one serves its runs in flight and is closed after the last.
type generation struct {
	sup *supervisor.Supervisor
	// key identifies the settings it was built from.
	key     string
	refs    int
	retired bool
	closed  bool
}

// closeIfIdle marks g closed and reports whether the caller must close it:
// once, when it is retired and no run holds it. t.mu is held.
func (g *generation) closeIfIdle() bool {
	if g.retired && g.refs == 0 && !g.closed {
		g.closed = true
		return true
	}
	return false
}

// acquire returns the current generation for one run and done, which must
// be called when the run ends; or ok false if the tenant was removed (or
// the server is stopping).
func (t *tenant) acquire(closeGen func(*generation)) (g *generation, done func(), ok bool) {
	t.mu.Lock()
	g = t.cur
	if g == nil || g.retired {
		t.mu.Unlock()
		return nil, nil, false
	}
	g.refs++
	t.mu.Unlock()
	var once sync.Once
	return g, func() {
		once.Do(func() {
			t.mu.Lock()
			g.refs--
			last := g.closeIfIdle()
			t.mu.Unlock()
			if last {
				closeGen(g)
			}
		})
	}, true
}

// replace makes g current and retires the old generation, closing it now
// if no run holds it.
func (t *tenant) replace(g *generation, closeGen func(*generation)) {
	t.mu.Lock()
	old := t.cur
	t.cur = g
	idle := false
	if old != nil && old != g {
		old.retired = true
		idle = old.closeIfIdle()
	}
	t.mu.Unlock()
	if idle {
		closeGen(old)
	}
}

// retire retires the current generation (the tenant was removed, or the
// server is stopping).
func (t *tenant) retire(closeGen func(*generation)) {
	t.mu.Lock()
	g := t.cur
	idle := false
	if g != nil {
		g.retired = true
		idle = g.closeIfIdle()
	}
	t.mu.Unlock()
	if idle {
		closeGen(g)
	}
}

// Layout of the data directory.
const (
	storeDirName   = "store"
	serverDirName  = "server"
	tenantsDirName = "tenants"
)

// TenantHome is tenant name's home (its AILERON_HOME) under cfg's data
// directory.
func TenantHome(cfg *Config, name string) string { return tenantHome(cfg.DataDir, name) }

// tenantHome is where tenant name lives.
func tenantHome(dataDir, name string) string {
	return filepath.Join(dataDir, tenantsDirName, name)
}

// Setup creates the data directory's layout for cfg: the shared store and
// a home for each tenant, with its store linked to the shared one and a
// config.toml naming the tenant if it has none. It is idempotent; the
// server runs it at start and on reload, and `aileron serve setup` runs it
// so that an operator can install actions and credentials for a tenant
// before the server first starts.
func Setup(cfg *Config) error {
	if _, err := cfg.check(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, storeDirName), 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	for _, t := range cfg.Tenants {
		if err := setupTenantHome(cfg.DataDir, t.Name); err != nil {
			return err
		}
	}
	return nil
}

// setupTenantHome creates tenant name's home.
func setupTenantHome(dataDir, name string) error {
	home := tenantHome(dataDir, name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("tenant %s: %w", name, err)
	}
	shared := filepath.Join(dataDir, storeDirName)
	link := supervisor.StoreDir(home) // where a tenant's CLI finds its store
	fi, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Relative, so the data directory can move as a whole.
		if err := os.Symlink(filepath.Join("..", "..", storeDirName), link); err != nil {
			return fmt.Errorf("tenant %s: link the shared store: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("tenant %s: %w", name, err)
	case fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("tenant %s: %s is a store of its own, but tenants share %s: move what it holds there (aileron connector install) and remove it", name, link, shared)
	default:
		a, err1 := os.Stat(link)
		b, err2 := os.Stat(shared)
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			return fmt.Errorf("tenant %s: %s does not lead to the shared store %s: remove it and run aileron serve setup", name, link, shared)
		}
	}
	cfgPath := filepath.Join(home, supervisor.SettingsFile)
	f, err := os.OpenFile(cfgPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tenant %s: %w", name, err)
	}
	_, err = fmt.Fprintf(f, "# Settings of tenant %s on this aileron serve host: [broker], [limits], [sources].\n# Isolation and the pool are the server's (its --config file).\ntenant = %q\n", name, name)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// tenantSupervisorConfig reads tenant name's settings and returns the
// configuration of its supervisor. base carries what the server decides
// (isolation, worker, pool source, logger).
func tenantSupervisorConfig(dataDir string, tc TenantConfig, base supervisor.Config) (supervisor.Config, error) {
	home := tenantHome(dataDir, tc.Name)
	cfgPath := filepath.Join(home, supervisor.SettingsFile)
	st, err := supervisor.LoadSettings(home)
	if err != nil {
		return supervisor.Config{}, fmt.Errorf("tenant %s: %w", tc.Name, err)
	}
	if st.Tenant != tc.Name {
		return supervisor.Config{}, fmt.Errorf("tenant %s: %s says tenant = %q: set tenant = %q at its top, so the CLI run in this home uses the tenant's vault scope", tc.Name, cfgPath, st.Tenant, tc.Name)
	}
	if st.Isolation.Mode != "" || len(st.Isolation.UnsafeDisable) > 0 || st.Isolation.WorkerSHA256 != "" || st.Pool.Size != 0 {
		return supervisor.Config{}, fmt.Errorf("tenant %s: %s sets [isolation] or [pool], which are the server's: remove them there and set them in the server's configuration", tc.Name, cfgPath)
	}
	cfg := base
	cfg.Home = home
	if err := st.Apply(&cfg); err != nil {
		return supervisor.Config{}, fmt.Errorf("tenant %s: %w", tc.Name, err)
	}
	// Settings.Apply resets what the tenant may not choose; the server's
	// choices win.
	cfg.Isolation, cfg.WorkerSHA256, cfg.PoolSize = base.Isolation, base.WorkerSHA256, 0
	cfg.Broker.Tenant = tc.Name
	cfg.Broker.EgressRequestsPerMinute = tc.Quota.EgressRequestsPerMinute
	cfg.Broker.EgressBytesPerMinute = tc.Quota.EgressBytesPerMinute
	return cfg, nil
}

// generationKey identifies what a generation was built from: a reload
// that leaves it unchanged keeps the running supervisor (and its broker).
func generationKey(cfg supervisor.Config) string {
	return fmt.Sprintf("%#v|%#v", cfg.Broker, cfg.Limits)
}
