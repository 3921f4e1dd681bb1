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
	sf, err := in.fetchSigned(ctx, ref, ActionFile, ActionSignatureFile, manifest.MaxFileBytes, func(b []byte) error {
		_, err := manifest.ParseAction(ActionFile, b)
		return err
	})
	if errors.Is(err, ErrUnsignedRemote) {
		return nil, fmt.Errorf("%w (unsigned actions are added only from a local file)", err)
	}
	if err != nil {
		return nil, err
	}
	return &FetchedAction{Bytes: sf.bytes, Source: sf.release + "/" + ActionFile, NewKey: sf.newKey, authority: ref.FQN.Authority(), keyOrigin: sf.keyOrigin}, nil
}

// PinKey pins the key of an action trusted on first use; it does nothing
// when the key was already pinned.
func (in *Installer) PinKey(fa *FetchedAction) error {
	if fa.NewKey == nil {
		return nil
	}
	return in.Trust.Add(fa.authority, *fa.NewKey, fa.keyOrigin)
}
