package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func apiKey(name, secret string, connectors ...string) Record {
	return Record{Meta: Meta{Name: name, Kind: KindAPIKey, Connectors: connectors}, Secret: Secret{Value: secret}}
}

func TestVault_EncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	fb, err := OpenFile(dir, KeyConfig{})
	require.NoError(t, err)
	v := New(fb)
	ctx := context.Background()
	require.NoError(t, v.Put(ctx, apiKey("slack", "xoxb-very-secret-token", "github://aileron/slack")))

	// The key file is private and no file on disk holds the secret.
	st, err := os.Stat(filepath.Join(dir, "identity"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		require.NoError(t, err)
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NotContains(t, string(b), "xoxb-very-secret-token", p)
		}
		return nil
	})
	require.NoError(t, err)

	// A second open with the same key reads it back.
	fb2, err := OpenFile(dir, KeyConfig{})
	require.NoError(t, err)
	rec, err := New(fb2).ForConnector(ctx, "", "github://aileron/slack")
	require.NoError(t, err)
	require.Equal(t, "xoxb-very-secret-token", rec.Secret.Value)

	_, err = New(fb2).ForConnector(ctx, "", "github://acme/slack")
	require.ErrorIs(t, err, ErrNoBinding)
}

func TestVault_Errors(t *testing.T) {
	fb, err := OpenFile(t.TempDir(), KeyConfig{})
	require.NoError(t, err)
	v := New(fb)
	ctx := context.Background()
	tests := []struct {
		name string
		rec  Record
		want string
	}{
		{"bad_name", apiKey("../x", "s", "github://a/b"), `credential name "../x": use 1-64 of a-z 0-9 . _ - starting with a letter or digit`},
		{"bad_kind", Record{Meta: Meta{Name: "x", Kind: "password"}}, `credential kind "password": must be one of oauth2, api_key, basic, signing_key`},
		{"empty_key", apiKey("x", "", "github://a/b"), "credential x: api_key needs a secret value"},
		{"basic_no_password", Record{Meta: Meta{Name: "x", Kind: KindBasic}, Secret: Secret{Username: "u"}}, "credential x: basic needs a username and a password"},
		// Security: a secret the broker cannot redact from responses is
		// never stored, so it is never sent.
		{"short_api_key", apiKey("x", "abc", "github://a/b"), "credential x: value is shorter than 4 bytes, too short to redact from responses"},
		{"short_signing_key", Record{Meta: Meta{Name: "x", Kind: KindSigningKey}, Secret: Secret{Value: "k"}}, "credential x: value is shorter than 4 bytes, too short to redact from responses"},
		{"short_password", Record{Meta: Meta{Name: "x", Kind: KindBasic}, Secret: Secret{Username: "alice", Password: "pw3"}}, "credential x: password is shorter than 4 bytes, too short to redact from responses"},
		{"short_access_token", Record{Meta: Meta{Name: "x", Kind: KindOAuth2}, Secret: Secret{AccessToken: "tok"}}, "credential x: access_token is shorter than 4 bytes, too short to redact from responses"},
		{"short_refresh_token", Record{Meta: Meta{Name: "x", Kind: KindOAuth2}, Secret: Secret{AccessToken: "access-1", RefreshToken: "r1"}}, "credential x: refresh_token is shorter than 4 bytes, too short to redact from responses"},
		{"short_client_secret", Record{Meta: Meta{Name: "x", Kind: KindOAuth2}, Secret: Secret{RefreshToken: "refresh-1", ClientSecret: "cs"}}, "credential x: client_secret is shorter than 4 bytes, too short to redact from responses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.EqualError(t, v.Put(ctx, tt.rec), tt.want)
		})
	}
	require.NoError(t, v.Put(ctx, apiKey("one", "secret-1", "github://a/b")))
	require.EqualError(t, v.Put(ctx, apiKey("two", "secret-2", "github://a/b")), "connector github://a/b is already bound to credential one: remove that binding first")
	// Replacing the same credential is fine.
	require.NoError(t, v.Put(ctx, apiKey("one", "s1-rotated", "github://a/b")))
}

func TestVault_TenantsAreSeparate(t *testing.T) {
	fb, err := OpenFile(t.TempDir(), KeyConfig{})
	require.NoError(t, err)
	v := New(fb)
	ctx := context.Background()
	a := apiKey("k", "tenant-a-secret", "github://a/b")
	a.Meta.Tenant = "tenant-a"
	require.NoError(t, v.Put(ctx, a))
	_, err = v.ForConnector(ctx, "tenant-b", "github://a/b")
	require.ErrorIs(t, err, ErrNoBinding)
	rec, err := v.ForConnector(ctx, "tenant-a", "github://a/b")
	require.NoError(t, err)
	require.Equal(t, "tenant-a-secret", rec.Secret.Value)
}

func TestVault_KeyFileReadableByOthersRefused(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenFile(dir, KeyConfig{})
	require.NoError(t, err)
	require.NoError(t, os.Chmod(filepath.Join(dir, "identity"), 0o644))
	_, err = OpenFile(dir, KeyConfig{})
	require.ErrorContains(t, err, "is readable by others (mode 644): chmod 600 it")
}

func TestVault_Passphrase(t *testing.T) {
	dir := t.TempDir()
	fb, err := OpenFile(dir, KeyConfig{Passphrase: "correct horse"})
	require.NoError(t, err)
	require.NoError(t, New(fb).Put(context.Background(), apiKey("k", "s3cr3t-value", "github://a/b")))
	_, err = OpenFile(dir, KeyConfig{Passphrase: "wrong"})
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "wrong passphrase"), err.Error())
	_, err = os.Stat(filepath.Join(dir, "identity"))
	require.True(t, os.IsNotExist(err), "a passphrase vault must not keep a clear key")
}

func TestVault_UpdateIsExclusiveAcrossOpens(t *testing.T) {
	// Two opens of one directory stand for two broker processes: their
	// read-modify-write cycles must not interleave.
	dir := t.TempDir()
	ctx := context.Background()
	fb1, err := OpenFile(dir, KeyConfig{})
	require.NoError(t, err)
	fb2, err := OpenFile(dir, KeyConfig{})
	require.NoError(t, err)
	require.NoError(t, New(fb1).Put(ctx, apiKey("ctr", "count-0", "github://a/b")))
	var wg sync.WaitGroup
	for _, v := range []*Vault{New(fb1), New(fb2), New(fb1), New(fb2)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				_, err := v.Update(ctx, "", "ctr", func(r Record) (Record, bool, error) {
					var n int
					fmt.Sscanf(r.Secret.Value, "count-%d", &n)
					r.Secret.Value = fmt.Sprintf("count-%d", n+1)
					return r, true, nil
				})
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	rec, err := fb2.Get(ctx, "", "ctr")
	require.NoError(t, err)
	require.Equal(t, "count-40", rec.Secret.Value)
}

func TestVault_UpdateErrors(t *testing.T) {
	fb, err := OpenFile(t.TempDir(), KeyConfig{})
	require.NoError(t, err)
	v := New(fb)
	ctx := context.Background()
	_, err = v.Update(ctx, "", "missing", func(r Record) (Record, bool, error) { return r, false, nil })
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, v.Put(ctx, apiKey("k", "value-1", "github://a/b")))
	boom := errors.New("boom")
	_, err = v.Update(ctx, "", "k", func(r Record) (Record, bool, error) { return r, true, boom })
	require.ErrorIs(t, err, boom)
	_, err = v.Update(ctx, "", "k", func(r Record) (Record, bool, error) {
		r.Secret.Value = ""
		return r, true, nil
	})
	require.EqualError(t, err, "credential k: api_key needs a secret value")
	// Metadata cannot be changed through Update.
	got, err := v.Update(ctx, "", "k", func(r Record) (Record, bool, error) {
		r.Meta.Connectors = []string{"github://evil/x"}
		r.Secret.Value = "value-2"
		return r, true, nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"github://a/b"}, got.Meta.Connectors)
	rec, err := v.ForConnector(ctx, "", "github://a/b")
	require.NoError(t, err)
	require.Equal(t, "value-2", rec.Secret.Value)
}

func TestVault_IdentityCreationHammer(t *testing.T) {
	// Brokers starting at once on a new home all create the identity:
	// exactly one key must win, and none may read a half-written file.
	for round := range 20 {
		dir := t.TempDir()
		const n = 8
		recips := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				fb, err := OpenFile(dir, KeyConfig{})
				errs[i] = err
				if err == nil {
					recips[i] = fb.recip.(interface{ String() string }).String()
				}
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i], "round %d opener %d", round, i)
			require.Equal(t, recips[0], recips[i], "round %d: every opener uses the one key", round)
		}
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		require.Equal(t, []string{"creds", "identity"}, names, "no temp file is left behind")
	}
}
