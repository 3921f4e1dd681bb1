package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSettingsApply(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := filepath.Join(dir, "ca1.pem"), filepath.Join(dir, "ca2.pem")
	require.NoError(t, os.WriteFile(ca1, []byte("one\n"), 0o600))
	require.NoError(t, os.WriteFile(ca2, []byte("two\n"), 0o600))
	missing := filepath.Join(dir, "missing.pem")
	hash := strings.Repeat("0f", 32)
	tests := []struct {
		name   string
		s      Settings
		err    string
		worker string
	}{
		{"worker_hash", Settings{Isolation: IsolationSettings{WorkerSHA256: "sha256:" + hash}}, "", "sha256:" + hash},
		{"worker_hash_no_prefix", Settings{Isolation: IsolationSettings{WorkerSHA256: hash}}, "", hash},
		{"worker_hash_short", Settings{Isolation: IsolationSettings{WorkerSHA256: "sha256:abc"}},
			`config.toml: isolation.worker_sha256 "sha256:abc": want sha256:<64 lowercase hex digits>`, ""},
		{"worker_hash_not_hex", Settings{Isolation: IsolationSettings{WorkerSHA256: "sha256:" + strings.Repeat("zz", 32)}},
			`config.toml: isolation.worker_sha256 "sha256:` + strings.Repeat("zz", 32) + `": want sha256:<64 lowercase hex digits>`, ""},
		{"worker_hash_upper", Settings{Isolation: IsolationSettings{WorkerSHA256: strings.ToUpper(hash)}},
			`config.toml: isolation.worker_sha256 "` + strings.ToUpper(hash) + `": want sha256:<64 lowercase hex digits>`, ""},
		{"worker_hash_other_algorithm", Settings{Isolation: IsolationSettings{WorkerSHA256: "sha512:" + hash}},
			`config.toml: isolation.worker_sha256 "sha512:` + hash + `": want sha256:<64 lowercase hex digits>`, ""},
		{"bad_tenant", Settings{Tenant: "../etc"},
			`config.toml: tenant "../etc": use 1-64 of a-z 0-9 . _ - starting with a letter or digit`, ""},
		{"ca_missing", Settings{Broker: BrokerSettings{ExtraRootCAs: []string{ca1, missing}}},
			"config.toml: broker.extra_root_cas: open " + missing + ": no such file or directory", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			err := tt.s.Apply(&cfg)
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.worker, cfg.WorkerSHA256)
		})
	}

	var cfg Config
	require.NoError(t, Settings{Broker: BrokerSettings{ExtraRootCAs: []string{ca1, ca2}}}.Apply(&cfg))
	require.Equal(t, "one\ntwo\n", string(cfg.Broker.ExtraRootCAs))
}

func TestSettingsSourceConfig_ExtraRootCAs(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("pem\n"), 0o600))
	noenv := func(string) string { return "" }
	sc, err := Settings{Sources: SourceSettings{ExtraRootCAs: []string{ca, ca}}}.SourceConfig(noenv)
	require.NoError(t, err)
	require.Equal(t, "pem\npem\n", string(sc.ExtraRootCAs))
	missing := filepath.Join(dir, "missing.pem")
	_, err = Settings{Sources: SourceSettings{ExtraRootCAs: []string{missing}}}.SourceConfig(noenv)
	require.EqualError(t, err, "config.toml: sources.extra_root_cas: open "+missing+": no such file or directory")
}

func TestLoadSettings_Errors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"unknown_keys", "tenant = \"a\"\n[broker]\nhost = 1\n[limits]\nmem = 2\n",
			"HOME/config.toml:3:1: unknown key broker.host\nHOME/config.toml:5:1: unknown key limits.mem"},
		{"wrong_type", "[limits]\ndeadline = 5\n",
			"HOME/config.toml:2:12: cannot decode TOML integer into struct field supervisor.LimitSettings.Deadline of type string"},
		{"syntax", "[limits\n", "HOME/config.toml:1:8: expected ']' to close table name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(home, SettingsFile), []byte(tt.file), 0o600))
			_, err := LoadSettings(home)
			require.Error(t, err)
			require.Equal(t, tt.want, strings.ReplaceAll(err.Error(), home, "HOME"))
		})
	}
}
