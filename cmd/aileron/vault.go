package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"aileron.dev/aileron/broker"
	"aileron.dev/aileron/manifest"
)

func (a *app) vaultCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "Manage credentials (secrets are read from a terminal or stdin, never from arguments)"}
	var kind, username string
	var connectors, scopes []string
	set := &cobra.Command{
		Use:   "set NAME --kind KIND --connector FQN",
		Short: "Store a credential and bind it to connectors",
		Long: `Store a credential, encrypted, and bind it to one or more connectors.
The secret is read from the terminal without echo, or from stdin:
  api_key, signing_key  the key
  basic                 the password (--username gives the user)
  oauth2                JSON: {"access_token", "refresh_token", "expiry",
                        "token_url", "client_id", "client_secret"}`,
		Args: exactArgs(1, "vault set takes one NAME; the secret comes from stdin, never from arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(connectors) == 0 {
				return usageError{errors.New("bind the credential with --connector FQN (repeatable): a connector only gets a credential bound to it")}
			}
			for _, c := range connectors {
				if _, err := manifest.ParseFQN(c); err != nil {
					return usageError{fmt.Errorf("--connector: %w", err)}
				}
			}
			secret, err := a.readSecret(kind, username)
			if err != nil {
				return err
			}
			b, done, err := a.broker()
			if err != nil {
				return err
			}
			defer done()
			if err := b.VaultSet(broker.VaultSetArgs{Name: args[0], Kind: kind, Scopes: scopes, Connectors: connectors, Secret: secret}); err != nil {
				return fmt.Errorf("vault set %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "stored credential %s (%s) for %s\n", args[0], kind, strings.Join(connectors, ", "))
			return nil
		},
	}
	set.Flags().StringVar(&kind, "kind", "", "oauth2, api_key, basic or signing_key")
	set.Flags().StringVar(&username, "username", "", "user name (basic)")
	set.Flags().StringArrayVar(&connectors, "connector", nil, "connector FQN this credential is bound to (repeatable)")
	set.Flags().StringArrayVar(&scopes, "scope", nil, "scope the credential was issued with (repeatable)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List credentials: names, kinds, scopes, bindings; never values",
		RunE: func(cmd *cobra.Command, args []string) error {
			b, done, err := a.broker()
			if err != nil {
				return err
			}
			defer done()
			creds, err := b.VaultList()
			if err != nil {
				return err
			}
			if a.jsonOut {
				return writeJSON(a.stdout, creds)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tSCOPES\tCONNECTORS\tUPDATED")
			for _, c := range creds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.Kind, strings.Join(c.Scopes, ","), strings.Join(c.Connectors, ","), c.Updated.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&a.jsonOut, "json", false, "print JSON")

	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a credential",
		Args:  exactArgs(1, "vault rm takes one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, done, err := a.broker()
			if err != nil {
				return err
			}
			defer done()
			if err := b.VaultRemove(args[0]); err != nil {
				return fmt.Errorf("vault rm %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "removed credential %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(set, list, rm)
	return cmd
}

// maxSecretBytes bounds a secret read by vault set.
const maxSecretBytes = 64 << 10

// readSecret reads the secret for kind from the terminal (no echo) or from
// stdin. It never comes from argv, where other users could see it in ps.
func (a *app) readSecret(kind, username string) (broker.SecretInput, error) {
	raw, err := a.readHidden("secret for "+kind+" (input hidden): ", maxSecretBytes)
	if err != nil {
		return broker.SecretInput{}, fmt.Errorf("read secret: %w", err)
	}
	return parseSecret(kind, username, raw)
}

// parseSecret turns the secret raw, as typed or piped, into the secret
// input of a credential of kind. Its errors never quote the secret.
func parseSecret(kind, username string, raw []byte) (broker.SecretInput, error) {
	if len(raw) == 0 {
		return broker.SecretInput{}, usageError{errors.New("empty secret: write it to stdin or type it at the prompt")}
	}
	switch manifest.CredentialKind(kind) {
	case manifest.CredentialAPIKey, manifest.CredentialSigningKey:
		return broker.SecretInput{Value: string(raw)}, nil
	case manifest.CredentialBasic:
		if username == "" {
			return broker.SecretInput{}, usageError{errors.New("basic needs --username; the password comes from stdin")}
		}
		return broker.SecretInput{Username: username, Password: string(raw)}, nil
	case manifest.CredentialOAuth2:
		var t struct {
			AccessToken  string    `json:"access_token"`
			RefreshToken string    `json:"refresh_token"`
			Expiry       time.Time `json:"expiry"`
			TokenURL     string    `json:"token_url"`
			ClientID     string    `json:"client_id"`
			ClientSecret string    `json:"client_secret"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			// Security: a syntax error names the offending character,
			// which is part of the secret; say only where it is.
			var se *json.SyntaxError
			if errors.As(err, &se) {
				err = fmt.Errorf("invalid JSON at byte %d", se.Offset)
			}
			return broker.SecretInput{}, usageError{fmt.Errorf("oauth2 secret must be JSON with access_token, refresh_token, expiry, token_url, client_id, client_secret: %w", err)}
		}
		s := broker.SecretInput{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenURL: t.TokenURL, ClientID: t.ClientID, ClientSecret: t.ClientSecret}
		if !t.Expiry.IsZero() {
			s.ExpiryUnix = t.Expiry.Unix()
		}
		return s, nil
	}
	return broker.SecretInput{}, usageError{fmt.Errorf("--kind %q: must be oauth2, api_key, basic or signing_key", kind)}
}

// broker starts a supervisor and its broker for a vault command; done stops
// both.
func (a *app) broker() (*broker.Client, func(), error) {
	sup, err := a.supervisor(nil, false)
	if err != nil {
		return nil, nil, err
	}
	b, err := sup.Broker()
	if err != nil {
		sup.Close()
		return nil, nil, err
	}
	return b, func() { sup.Close() }, nil
}
