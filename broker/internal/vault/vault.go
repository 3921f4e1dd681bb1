// Package vault stores credentials encrypted at rest. It is the only code in
// the project that decrypts them, and it lives under broker/internal so the
// compiler keeps every package outside broker/ from importing it.
//
// # Format
//
// Each credential is one file, creds/<tenant>/<name>.age, holding the JSON of
// a [Record] (metadata and secret) encrypted with age to the vault's X25519
// recipient. The identity (private key) is vault/identity, mode 0600, or
// vault/identity.age protected by a passphrase for servers. Writes are
// atomic (temp file, fsync, rename) and serialized by a file lock.
//
// # Backends
//
// [Backend] is the storage interface; [FileBackend] is the default. A server
// deployment can implement it over HashiCorp Vault or OpenBao.
package vault

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"aileron.dev/aileron/broker/redact"
	"aileron.dev/aileron/manifest"
)

// Kind is a credential kind: the manifest's, so the two cannot drift.
type Kind = manifest.CredentialKind

// Credential kinds.
const (
	KindOAuth2     = manifest.CredentialOAuth2
	KindAPIKey     = manifest.CredentialAPIKey
	KindBasic      = manifest.CredentialBasic
	KindSigningKey = manifest.CredentialSigningKey
)

// Meta is everything about a credential that is not secret.
type Meta struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant,omitempty"`
	Kind   Kind   `json:"kind"`
	// Scopes the credential was issued with.
	Scopes []string `json:"scopes,omitempty"`
	// Connectors are the canonical FQNs this credential is bound to. A
	// connector gets a credential only through an explicit binding.
	Connectors []string  `json:"connectors"`
	Updated    time.Time `json:"updated"`
}

// Secret is the secret material of one credential; which fields are used
// depends on the kind.
type Secret struct {
	// Value is the API key (api_key) or the signing key (signing_key).
	Value string `json:"value,omitempty"`
	// Username and Password are used by basic.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// OAuth2 token and refresh configuration.
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	TokenURL     string    `json:"token_url,omitempty"`
	ClientID     string    `json:"client_id,omitempty"`
	ClientSecret string    `json:"client_secret,omitempty"`
}

// Record is one stored credential.
type Record struct {
	Meta   Meta   `json:"meta"`
	Secret Secret `json:"secret"`
}

// Backend stores records. Implementations must make Put atomic.
type Backend interface {
	List(ctx context.Context, tenant string) ([]Record, error)
	Get(ctx context.Context, tenant, name string) (Record, error)
	Put(ctx context.Context, r Record) error
	Delete(ctx context.Context, tenant, name string) error
	// Update re-reads one record under the backend's write lock, which
	// every Put, Delete and Update takes, in every process sharing the
	// store, and passes it to fn. If fn reports a change, the record it
	// returns is stored atomically before the lock is released. Update
	// returns the stored record. It is how a refreshed OAuth2 token is
	// written back without losing a refresh another process made meanwhile
	// (a server backend would use check-and-set).
	Update(ctx context.Context, tenant, name string, fn func(Record) (Record, bool, error)) (Record, error)
}

// Errors.
var (
	// ErrNotFound: no credential of that name (for that tenant).
	ErrNotFound = errors.New("credential not found")
	// ErrNoBinding: no credential is bound to the connector.
	ErrNoBinding = errors.New("no credential is bound to this connector")
	// ErrAmbiguousBinding: more than one credential is bound to the
	// connector; bindings must be unique per tenant and connector.
	ErrAmbiguousBinding = errors.New("more than one credential is bound to this connector")
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName reports whether s can name a credential or a tenant: it is also
// a file name, so the charset is strict.
func ValidName(s string) bool { return nameRE.MatchString(s) && s != "." && s != ".." }

// Validate checks a record before it is stored.
func (r *Record) Validate() error {
	m := &r.Meta
	if !ValidName(m.Name) {
		return fmt.Errorf("credential name %q: use 1-64 of a-z 0-9 . _ - starting with a letter or digit", m.Name)
	}
	if m.Tenant != "" && !ValidName(m.Tenant) {
		return fmt.Errorf("tenant %q: use 1-64 of a-z 0-9 . _ -", m.Tenant)
	}
	if !m.Kind.Valid() {
		return fmt.Errorf("credential kind %q: must be one of %s", m.Kind, manifest.CredentialKinds())
	}
	s := &r.Secret
	switch m.Kind {
	case KindAPIKey, KindSigningKey:
		if s.Value == "" {
			return fmt.Errorf("credential %s: %s needs a secret value", m.Name, m.Kind)
		}
	case KindBasic:
		if s.Username == "" || s.Password == "" {
			return fmt.Errorf("credential %s: basic needs a username and a password", m.Name)
		}
	case KindOAuth2:
		if s.AccessToken == "" && s.RefreshToken == "" {
			return fmt.Errorf("credential %s: oauth2 needs an access token or a refresh token", m.Name)
		}
	}
	// Security: the broker redacts every secret it sends from what comes
	// back, and redaction needs redact.MinSecretLen bytes (a 1-byte secret
	// would redact every occurrence of that byte). A secret it could not
	// redact is refused here, so it is never stored, and never sent.
	for _, f := range []struct{ name, value string }{
		{"value", s.Value},
		{"password", s.Password},
		{"access_token", s.AccessToken},
		{"refresh_token", s.RefreshToken},
		{"client_secret", s.ClientSecret},
	} {
		if f.value != "" && len(f.value) < redact.MinSecretLen {
			return fmt.Errorf("credential %s: %s is shorter than %d bytes, too short to redact from responses", m.Name, f.name, redact.MinSecretLen)
		}
	}
	return nil
}

// Vault looks credentials up for connectors.
type Vault struct {
	b Backend
}

// New returns a vault over b.
func New(b Backend) *Vault { return &Vault{b: b} }

// Backend returns the storage backend.
func (v *Vault) Backend() Backend { return v.b }

// ForConnector returns the one credential bound to connector for tenant.
func (v *Vault) ForConnector(ctx context.Context, tenant, connector string) (Record, error) {
	recs, err := v.b.List(ctx, tenant)
	if err != nil {
		return Record{}, err
	}
	var found []Record
	for _, r := range recs {
		if slices.Contains(r.Meta.Connectors, connector) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return Record{}, ErrNoBinding
	case 1:
		return found[0], nil
	}
	return Record{}, ErrAmbiguousBinding
}

// Put validates and stores r, refusing a binding that would make a
// connector's credential ambiguous.
func (v *Vault) Put(ctx context.Context, r Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	recs, err := v.b.List(ctx, r.Meta.Tenant)
	if err != nil {
		return err
	}
	for _, o := range recs {
		if o.Meta.Name == r.Meta.Name {
			continue
		}
		for _, c := range r.Meta.Connectors {
			if slices.Contains(o.Meta.Connectors, c) {
				return fmt.Errorf("connector %s is already bound to credential %s: remove that binding first", c, o.Meta.Name)
			}
		}
	}
	r.Meta.Updated = time.Now().UTC()
	return v.b.Put(ctx, r)
}

// Update re-reads the credential tenant/name under the vault's write lock
// and lets fn replace its secret; see [Backend.Update]. fn may not change
// the metadata other than through the secret; Updated is set on a change.
func (v *Vault) Update(ctx context.Context, tenant, name string, fn func(Record) (Record, bool, error)) (Record, error) {
	return v.b.Update(ctx, tenant, name, func(cur Record) (Record, bool, error) {
		next, changed, err := fn(cur)
		if err != nil || !changed {
			return cur, false, err
		}
		next.Meta = cur.Meta
		next.Meta.Updated = time.Now().UTC()
		return next, true, nil
	})
}

// List returns the metadata of every credential of tenant.
func (v *Vault) List(ctx context.Context, tenant string) ([]Meta, error) {
	recs, err := v.b.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Meta, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Meta)
	}
	slices.SortFunc(out, func(a, b Meta) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}
