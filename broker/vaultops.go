package broker

import (
	"context"
	"time"

	"aileron.dev/aileron/broker/internal/vault"
)

// VaultSet implements Control.
func (s *server) VaultSet(a VaultSetArgs) error {
	cfg, err := s.configured()
	if err != nil {
		return err
	}
	rec := vault.Record{
		Meta: vault.Meta{Name: a.Name, Tenant: cfg.Tenant, Kind: vault.Kind(a.Kind), Scopes: a.Scopes, Connectors: a.Connectors},
		Secret: vault.Secret{
			Value: a.Secret.Value, Username: a.Secret.Username, Password: a.Secret.Password,
			AccessToken: a.Secret.AccessToken, RefreshToken: a.Secret.RefreshToken,
			TokenURL: a.Secret.TokenURL, ClientID: a.Secret.ClientID, ClientSecret: a.Secret.ClientSecret,
		},
	}
	if a.Secret.ExpiryUnix > 0 {
		rec.Secret.Expiry = time.Unix(a.Secret.ExpiryUnix, 0).UTC()
	}
	return s.vault.Put(context.Background(), rec)
}

// VaultList implements Control: names, kinds, scopes and bindings, never
// secret values.
func (s *server) VaultList() ([]CredentialInfo, error) {
	cfg, err := s.configured()
	if err != nil {
		return nil, err
	}
	metas, err := s.vault.List(context.Background(), cfg.Tenant)
	if err != nil {
		return nil, err
	}
	out := make([]CredentialInfo, 0, len(metas))
	for _, m := range metas {
		out = append(out, CredentialInfo{Name: m.Name, Kind: string(m.Kind), Scopes: m.Scopes, Connectors: m.Connectors, Updated: m.Updated})
	}
	return out, nil
}

// VaultRemove implements Control.
func (s *server) VaultRemove(name string) error {
	cfg, err := s.configured()
	if err != nil {
		return err
	}
	return s.vault.Backend().Delete(context.Background(), cfg.Tenant, name)
}
