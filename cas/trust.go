package cas

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/pelletier/go-toml/v2"

	"aileron.dev/aileron/cas/atomicfile"
	"aileron.dev/aileron/cas/filelock"
	"aileron.dev/aileron/manifest"
)

// Trust pins one publisher key per source authority ("github://aileron",
// "gitlab://team/sub", "hub://acme") in $AILERON_HOME/trust.toml. A package
// from a remote source installs only if its manifest signature verifies
// with the key pinned for the authority of its name. There is one key per
// authority: a package signed by another key is refused, and rotating a
// key is a deliberate `aileron trust rm` and `aileron trust add`.

// TrustFile is the trust store's file name in $AILERON_HOME.
const TrustFile = "trust.toml"

// MaxKeyBytes bounds a published minisign.pub file.
const MaxKeyBytes = 1 << 10

// Trust errors.
var (
	// ErrUnknownAuthority is returned when no key is pinned for the
	// authority a package comes from.
	ErrUnknownAuthority = errors.New("no publisher key is pinned for this source")
	// ErrKeyMismatch is returned when a package is signed by a key other
	// than the one pinned for its authority, and when pinning a second
	// key for an authority.
	ErrKeyMismatch = errors.New("signed by a different key than the one pinned for this source")
	// ErrBadSignature is returned when a signature is malformed or does
	// not verify: the manifest was altered or not signed by the key.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrBadKey is returned for text that is not a minisign public key.
	ErrBadKey = errors.New("not a minisign public key")
	// ErrBadAuthority is returned for a string that is not an authority.
	ErrBadAuthority = errors.New("not a source authority")
)

// TrustedKey is one pin in trust.toml.
type TrustedKey struct {
	// Authority is a canonical authority: [manifest.FQN.Authority] of
	// the connectors the key signs.
	Authority string `toml:"authority" json:"authority"`
	// PublicKey is the minisign public key, base64 as minisign prints
	// it ("RW...").
	PublicKey string `toml:"public_key" json:"public_key"`
	// Added is when the key was pinned.
	Added time.Time `toml:"added" json:"added"`
	// Origin says how: "aileron trust add" or "trust on first use from
	// URL".
	Origin string `toml:"origin" json:"origin"`
}

type trustFile struct {
	Keys []TrustedKey `toml:"keys"`
}

// ParseAuthority checks that s is a canonical authority, the part of an
// FQN before the last segment: "github://org", "hub://namespace",
// "gitlab://group[/sub...]". File names have no authority to trust.
func ParseAuthority(s string) (string, error) {
	scheme, _, _ := strings.Cut(s, "://")
	switch scheme {
	case manifest.SchemeGitHub, manifest.SchemeGitLab, manifest.SchemeHub:
	default:
		return "", fmt.Errorf("%w: %q: write e.g. \"github://org\", \"gitlab://group/sub\" or \"hub://namespace\"", ErrBadAuthority, s)
	}
	f, err := manifest.ParseFQN(s + "/x")
	if err != nil || f.Authority() != s {
		return "", fmt.Errorf("%w: %q: write e.g. \"github://org\", \"gitlab://group/sub\" or \"hub://namespace\"", ErrBadAuthority, s)
	}
	return s, nil
}

// ParsePublicKey parses a minisign public key: the base64 line ("RW...")
// or the whole minisign.pub file.
func ParsePublicKey(text []byte) (minisign.PublicKey, error) {
	var pk minisign.PublicKey
	if len(text) > MaxKeyBytes {
		return pk, fmt.Errorf("%w: over %d bytes", ErrBadKey, MaxKeyBytes)
	}
	text = bytes.TrimSpace(text)
	if err := pk.UnmarshalText(text); err != nil {
		return pk, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pk, nil
}

// KeyID returns a minisign key's ID as minisign prints it: 16 uppercase
// hex digits.
func KeyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// Fingerprint returns how a key is shown to a person and recorded in index
// entries: its ID and the whole public key, which the publisher also
// prints, so the two can be compared.
func Fingerprint(pk minisign.PublicKey) string {
	return "minisign " + KeyID(pk.ID()) + " " + pk.String()
}

// VerifySignature checks that sig is a minisign signature of message by
// key, which is pinned for authority. It is the whole trust decision for a
// package: the signed manifest pins the wasm's hash, so a valid signature
// over the manifest binds both. Callers add which file was checked.
func VerifySignature(authority string, key minisign.PublicKey, message, sig []byte) error {
	return verifySignature(key, message, sig, authority+" is pinned to", "of "+authority, ErrKeyMismatch)
}

// verifyPublished is [VerifySignature] for the key a source publishes at
// keyURL, which is not pinned yet: the errors say where the key came from.
func verifyPublished(keyURL string, key minisign.PublicKey, message, sig []byte) error {
	return verifySignature(key, message, sig, "the key published at "+keyURL+" is", "published at "+keyURL, ErrBadSignature)
}

// verifySignature checks sig. whose and from describe the key in errors
// ("github://a is pinned to" key X; key X "of github://a"), and mismatch
// is the error for a signature made by another key.
func verifySignature(key minisign.PublicKey, message, sig []byte, whose, from string, mismatch error) error {
	var s minisign.Signature
	if len(sig) > MaxSignatureBytes {
		return fmt.Errorf("%w: the signature is over %d bytes", ErrBadSignature, MaxSignatureBytes)
	}
	if err := s.UnmarshalText(sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if s.KeyID != key.ID() {
		return fmt.Errorf("signed by key %s, but %s key %s: %w", KeyID(s.KeyID), whose, KeyID(key.ID()), mismatch)
	}
	if !minisign.Verify(key, message, sig) {
		return fmt.Errorf("%w with key %s %s: the file or its signature was altered", ErrBadSignature, KeyID(key.ID()), from)
	}
	return nil
}

// Trust is the trust store file. Its methods lock the file, so concurrent
// installs that pin keys do not lose each other's writes.
type Trust struct {
	path string
	lock *filelock.Lock
}

// OpenTrust returns the trust store in home; the file need not exist.
func OpenTrust(home string) *Trust {
	p := filepath.Join(home, TrustFile)
	return &Trust{path: p, lock: filelock.New(p + ".lock")}
}

// Path returns the trust file's path.
func (t *Trust) Path() string { return t.path }

func (t *Trust) read() ([]TrustedKey, error) {
	b, err := os.ReadFile(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseTrust(t.path, b)
}

func parseTrust(path string, b []byte) ([]TrustedKey, error) {
	var f trustFile
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, k := range f.Keys {
		if _, err := ParseAuthority(k.Authority); err != nil {
			return nil, fmt.Errorf("%s: keys[%d]: %w", path, i, err)
		}
		if _, err := ParsePublicKey([]byte(k.PublicKey)); err != nil {
			return nil, fmt.Errorf("%s: keys[%d] (%s): %w", path, i, k.Authority, err)
		}
		if seen[k.Authority] {
			return nil, fmt.Errorf("%s: keys[%d]: %s has two keys; an authority has one", path, i, k.Authority)
		}
		seen[k.Authority] = true
	}
	return f.Keys, nil
}

// List returns the pinned keys, sorted by authority.
func (t *Trust) List() ([]TrustedKey, error) {
	ks, err := t.read()
	sort.Slice(ks, func(i, j int) bool { return ks[i].Authority < ks[j].Authority })
	return ks, err
}

// Key returns the key pinned for authority, or ErrUnknownAuthority.
func (t *Trust) Key(authority string) (minisign.PublicKey, error) {
	ks, err := t.read()
	if err != nil {
		return minisign.PublicKey{}, err
	}
	for _, k := range ks {
		if k.Authority == authority {
			return ParsePublicKey([]byte(k.PublicKey))
		}
	}
	return minisign.PublicKey{}, fmt.Errorf("%s: %w", authority, ErrUnknownAuthority)
}

// Add pins key for authority. Pinning the key already pinned is a no-op;
// pinning another key for an authority that has one is ErrKeyMismatch.
func (t *Trust) Add(authority string, key minisign.PublicKey, origin string) error {
	return t.pinAfter(authority, key, origin, nil)
}

// pinAfter is [Trust.Add] that first runs store (if not nil), under the
// trust lock, once the key is known not to conflict with a pin. If store
// fails, nothing is pinned. Because the check, store and the write happen
// under one lock, no other pin or removal comes between them, and nobody
// sees a pin made for a package that then fails to install (and so nobody
// relies on a pin that is then taken back).
func (t *Trust) pinAfter(authority string, key minisign.PublicKey, origin string, store func() error) error {
	if _, err := ParseAuthority(authority); err != nil {
		return err
	}
	unlock, err := t.lockFile()
	if err != nil {
		return err
	}
	defer unlock()
	ks, err := t.read()
	if err != nil {
		return err
	}
	pinned := false
	for _, k := range ks {
		if k.Authority != authority {
			continue
		}
		if k.PublicKey != key.String() {
			old, _ := ParsePublicKey([]byte(k.PublicKey))
			return fmt.Errorf("%s is already pinned to key %s, not %s: %w; if the publisher really changed keys, run `aileron trust rm %s` first", authority, KeyID(old.ID()), KeyID(key.ID()), ErrKeyMismatch, authority)
		}
		pinned = true
	}
	if store != nil {
		if err := store(); err != nil {
			return err
		}
	}
	if pinned {
		return nil
	}
	ks = append(ks, TrustedKey{Authority: authority, PublicKey: key.String(), Added: time.Now().UTC().Truncate(time.Second), Origin: origin})
	return t.write(ks)
}

// Remove unpins authority's key. Installed packages stay installed.
func (t *Trust) Remove(authority string) error {
	unlock, err := t.lockFile()
	if err != nil {
		return err
	}
	defer unlock()
	ks, err := t.read()
	if err != nil {
		return err
	}
	for i, k := range ks {
		if k.Authority == authority {
			return t.write(append(ks[:i:i], ks[i+1:]...))
		}
	}
	return fmt.Errorf("%s: %w", authority, ErrUnknownAuthority)
}

// lockFile takes the trust file's writer lock, against other goroutines
// and other processes; the returned function releases it.
func (t *Trust) lockFile() (func(), error) {
	unlock, err := t.lock.Lock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", t.path, err)
	}
	return unlock, nil
}

func (t *Trust) write(ks []TrustedKey) error {
	sort.Slice(ks, func(i, j int) bool { return ks[i].Authority < ks[j].Authority })
	var b bytes.Buffer
	b.WriteString("# Publisher keys pinned per source authority. Manage with `aileron trust`.\n")
	if len(ks) > 0 {
		enc, err := toml.Marshal(trustFile{Keys: ks})
		if err != nil {
			return err
		}
		b.WriteString("\n")
		b.Write(enc)
	}
	return atomicfile.WriteFile(t.path, b.Bytes(), 0o600, "")
}
