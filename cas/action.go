package cas

import (
	"context"
	"errors"
	"fmt"

	"aead.dev/minisign"

	"aileron.dev/aileron/manifest"
)

// Published actions. An action may be published in a release like a
// connector package: `aileron action add github://org/repo@1.2.3` fetches
// ActionFile and its minisign signature ActionSignatureFile from that
// release and verifies the signature with the key pinned for the
// authority (github://org), exactly as for a connector manifest.
const (
	ActionFile          = "action.toml"
	ActionSignatureFile = "action.toml.minisig"
)

// FetchedAction is a verified published action file.
type FetchedAction struct {
	// Bytes is the action file.
	Bytes []byte
	// Source is its URL.
	Source string
	// NewKey is set when the publisher's key was trusted on first use;
	// [Installer.PinKey] pins it.
	NewKey *minisign.PublicKey

	authority, keyOrigin string
}

// FetchAction downloads and verifies the action published in the release
// of ref. The action must parse; what it requires is installed separately.
func (in *Installer) FetchAction(ctx context.Context, ref manifest.Ref) (*FetchedAction, error) {
	if !Remote(ref.FQN) || in.Fetcher == nil {
		return nil, fmt.Errorf("%s: %w: actions are published only on remote sources", ref, ErrBadSource)
	}
	b := in.Fetcher.Bases()
	aURL, err := b.ReleaseURL(ref, ActionFile)
	if err != nil {
		return nil, err
	}
	sURL, _ := b.ReleaseURL(ref, ActionSignatureFile)
	kURL, _ := b.ReleaseURL(ref, KeyFile)
	ab, err := in.Fetcher.Get(ctx, aURL, ActionFile, manifest.MaxFileBytes, func(b []byte) error {
		_, err := manifest.ParseAction(ActionFile, b)
		return err
	})
	if err != nil {
		return nil, err
	}
	sig, err := in.Fetcher.Get(ctx, sURL, ActionSignatureFile, MaxSignatureBytes, func(b []byte) error {
		var s minisign.Signature
		return s.UnmarshalText(b)
	})
	if errors.Is(err, ErrNotPublished) {
		return nil, fmt.Errorf("%s: %w: the release has no %s", ref, ErrUnsignedRemote, ActionSignatureFile)
	}
	if err != nil {
		return nil, err
	}
	fa := &FetchedAction{Bytes: ab, Source: aURL, authority: ref.FQN.Authority()}
	key, err := in.Trust.Key(fa.authority)
	if errors.Is(err, ErrUnknownAuthority) {
		if key, err = in.firstUse(ctx, fa.authority, kURL, sig); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		fa.NewKey, fa.keyOrigin = &key, "trust on first use from "+kURL
	} else if err != nil {
		return nil, err
	}
	if err := VerifySignature(fa.authority, key, ab, sig); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", ref, ActionFile, err)
	}
	return fa, nil
}

// PinKey pins the key of an action trusted on first use; it does nothing
// when the key was already pinned.
func (in *Installer) PinKey(fa *FetchedAction) error {
	if fa.NewKey == nil {
		return nil
	}
	return in.Trust.Add(fa.authority, *fa.NewKey, fa.keyOrigin)
}
