package serve

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/supervisor/serve/client"
)

func TestSetup(t *testing.T) {
	data := t.TempDir()
	c := base()
	c.DataDir = data
	require.NoError(t, Setup(c))
	require.NoError(t, Setup(c), "idempotent")
	home := filepath.Join(data, "tenants", "a")
	target, err := os.Readlink(filepath.Join(home, "store"))
	require.NoError(t, err)
	require.Equal(t, "../../store", target)
	st, err := supervisor.LoadSettings(home)
	require.NoError(t, err)
	require.Equal(t, "a", st.Tenant)
	fi, err := os.Stat(home)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	cfg, err := tenantSupervisorConfig(data, TenantConfig{Name: "a", Quota: QuotaConfig{EgressRequestsPerMinute: 7}},
		supervisor.Config{Isolation: supervisor.Isolation{Strict: true}, Via: "serve"})
	require.NoError(t, err)
	require.Equal(t, home, cfg.Home)
	require.Equal(t, "a", cfg.Broker.Tenant)
	require.Equal(t, 7, cfg.Broker.EgressRequestsPerMinute)
	require.True(t, cfg.Isolation.Strict)
}

func TestSetup_Errors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(home string)
		want    string
	}{
		{"own_store", func(home string) { require.NoError(t, os.MkdirAll(filepath.Join(home, "store"), 0o700)) },
			"tenant a: HOME/store is a store of its own, but tenants share DATA/store: move what it holds there (aileron connector install) and remove it"},
		{"store_elsewhere", func(home string) { require.NoError(t, os.Symlink("/tmp", filepath.Join(home, "store"))) },
			"tenant a: HOME/store does not lead to the shared store DATA/store: remove it and run aileron serve setup"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			home := filepath.Join(data, "tenants", "a")
			require.NoError(t, os.MkdirAll(home, 0o700))
			tt.prepare(home)
			c := base()
			c.DataDir = data
			err := Setup(c)
			require.Error(t, err)
			require.Equal(t, tt.want, replacePaths(err.Error(), home, data))
		})
	}
}

func replacePaths(s, home, data string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, home, "HOME"), data, "DATA")
}

func TestTenantSupervisorConfig_Errors(t *testing.T) {
	for _, tt := range []struct {
		name, settings, want string
	}{
		{"other_tenant", "tenant = \"b\"\n", `tenant a: HOME/config.toml says tenant = "b": set tenant = "a" at its top, so the CLI run in this home uses the tenant's vault scope`},
		{"no_tenant", "[broker]\nunsafe_allow_loopback = true\n", `tenant a: HOME/config.toml says tenant = "": set tenant = "a" at its top, so the CLI run in this home uses the tenant's vault scope`},
		{"own_isolation", "tenant = \"a\"\n[isolation]\nmode = \"relaxed\"\n", "tenant a: HOME/config.toml sets [isolation] or [pool], which are the server's: remove them there and set them in the server's configuration"},
		{"own_pool", "tenant = \"a\"\n[pool]\nsize = 3\n", "tenant a: HOME/config.toml sets [isolation] or [pool], which are the server's: remove them there and set them in the server's configuration"},
		{"bad_settings", "tenant = \"a\"\n[limits]\ndeadline = \"x\"\n", `tenant a: config.toml: limits.deadline: time: invalid duration "x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			home := filepath.Join(data, "tenants", "a")
			require.NoError(t, os.MkdirAll(home, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(home, "config.toml"), []byte(tt.settings), 0o600))
			_, err := tenantSupervisorConfig(data, TenantConfig{Name: "a"}, supervisor.Config{})
			require.Error(t, err)
			require.Equal(t, tt.want, replacePaths(err.Error(), home, data))
		})
	}
}

// TestRunResultWire: the client's RunResult is the supervisor's, field for
// field, so `run --server --json` prints what a local run prints.
func TestRunResultWire(t *testing.T) {
	in := supervisor.RunResult{RunID: "r", Action: "x", Output: json.RawMessage(`{"a":1}`), Isolation: []string{"seccomp"},
		Steps: []supervisor.StepResult{{ID: "s", Connector: "c", Intent: "i", Output: json.RawMessage(`1`), DurationMS: 1.5, Attempts: 2, Log: "l"}}}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out client.RunResult
	require.NoError(t, dec.Decode(&out))
	b2, err := json.Marshal(out)
	require.NoError(t, err)
	require.JSONEq(t, string(b), string(b2))
	require.Equal(t, string(b), string(b2), "same field order")
}

// TestGenerations: a replaced or retired generation is closed exactly once,
// after the last run that holds it; a removed tenant gives out nothing.
func TestGenerations(t *testing.T) {
	var closed []*generation
	closeGen := func(g *generation) { closed = append(closed, g) }
	tn := &tenant{name: "a"}
	g1, g2 := &generation{key: "1"}, &generation{key: "2"}
	tn.replace(g1, closeGen)
	got, done, ok := tn.acquire(closeGen)
	require.True(t, ok)
	require.Same(t, g1, got)
	tn.replace(g2, closeGen)
	require.Empty(t, closed, "g1 is still running a run")
	got2, done2, ok := tn.acquire(closeGen)
	require.True(t, ok)
	require.Same(t, g2, got2, "new runs get the new generation")
	done()
	done()
	require.Equal(t, []*generation{g1}, closed)
	tn.replace(g2, closeGen) // a reload that changed nothing
	require.Len(t, closed, 1)
	tn.retire(closeGen)
	require.Len(t, closed, 1, "g2 still runs")
	_, _, ok = tn.acquire(closeGen)
	require.False(t, ok, "a removed tenant starts no run")
	done2()
	require.Equal(t, []*generation{g1, g2}, closed)
	tn.retire(closeGen)
	require.Len(t, closed, 2, "closed once")
}
