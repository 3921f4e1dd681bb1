package cas

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"aead.dev/minisign"

	"aileron.dev/aileron/manifest"
)

// Publishing. A publisher makes one minisign key pair per authority
// ([GenerateKeyFiles], or the minisign tool itself), packs each release
// with [Pack], signs it with [SignPackage] and attaches the files of the
// output directory to the release.

// LoadPrivateKey reads a minisign private key file, decrypting it with
// password if it is encrypted.
func LoadPrivateKey(path, password string) (minisign.PrivateKey, error) {
	b, err := readLimited(path, 4<<10)
	if err != nil {
		return minisign.PrivateKey{}, err
	}
	if minisign.IsEncrypted(b) {
		if password == "" {
			return minisign.PrivateKey{}, fmt.Errorf("%s is encrypted: a password is needed", path)
		}
		k, err := minisign.DecryptKey(password, b)
		if err != nil {
			return minisign.PrivateKey{}, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	var k minisign.PrivateKey
	if err := k.UnmarshalText(b); err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// IsEncryptedKeyFile reports whether path holds an encrypted minisign
// private key (so a password must be asked for).
func IsEncryptedKeyFile(path string) bool {
	b, err := readLimited(path, 4<<10)
	return err == nil && minisign.IsEncrypted(b)
}

// PublicKeyOf returns the public half of a private key.
func PublicKeyOf(k minisign.PrivateKey) minisign.PublicKey {
	return k.Public().(minisign.PublicKey)
}

// Sign returns a minisign signature of message, with "aileron" and what
// is signed as its trusted comment.
func Sign(k minisign.PrivateKey, message []byte, what string) []byte {
	return minisign.SignWithComments(k, message, "aileron "+what, "signature from aileron key "+KeyID(k.ID()))
}

// SignPackage signs the manifest in the package directory dir, writing
// [SignatureFile] and the public key as [KeyFile] beside it. The manifest
// is checked against the module first, as an installer would.
func SignPackage(dir string, k minisign.PrivateKey) (*manifest.Manifest, error) {
	pkg, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := pkg.Manifest
	if err := os.WriteFile(filepath.Join(dir, SignatureFile), Sign(k, pkg.ManifestBytes, m.Ref().String()), 0o644); err != nil {
		return nil, err
	}
	pub, _ := PublicKeyOf(k).MarshalText()
	return m, os.WriteFile(filepath.Join(dir, KeyFile), append(pub, '\n'), 0o644)
}

// GenerateKeyFiles makes a minisign key pair: the private key at privPath
// (encrypted with password unless it is empty; never overwritten) and the
// public key at pubPath.
func GenerateKeyFiles(privPath, pubPath, password string) (minisign.PublicKey, error) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return pub, err
	}
	var text []byte
	if password != "" {
		text, err = minisign.EncryptKey(password, priv)
	} else {
		text, err = priv.MarshalText()
	}
	if err != nil {
		return pub, err
	}
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return pub, fmt.Errorf("%s exists: refusing to overwrite a private key", privPath)
	}
	if err != nil {
		return pub, err
	}
	if _, err := f.Write(append(text, '\n')); err != nil {
		f.Close()
		return pub, err
	}
	if err := f.Close(); err != nil {
		return pub, err
	}
	pt, _ := pub.MarshalText()
	return pub, os.WriteFile(pubPath, append(pt, '\n'), 0o644)
}
