package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"aead.dev/minisign"

	"aileron.dev/aileron/manifest"
)

// Installing is two steps with the consent prompt between them:
// [Installer.Fetch] (or [Installer.Local]) downloads and verifies a package
// without writing anything, and [Installer.Commit] stores it. A failure at
// any point leaves the store as it was.
//
// Fetch checks, in this order, each before the next download:
//
//  1. the manifest (it must parse) and its signature (it must be minisign);
//  2. the key pinned for the authority of the requested name, or else the
//     one the source publishes;
//  3. the signature over the manifest bytes, and only then, for a key
//     that is not pinned, the caller's consent to trust it on first use;
//  4. the manifest names exactly the requested FQN@version, and pins the
//     hash the caller expects (an action's pin), if any;
//  5. the module (it must start with the wasm magic) has the hash the
//     manifest pins and imports nothing the manifest does not declare.

// Install errors.
var (
	// ErrWrongPackage is returned when a source serves a package whose
	// manifest names another connector or version than the one asked for.
	ErrWrongPackage = errors.New("the source served another package than the one asked for")
	// ErrUnsignedRemote is returned when a remote package has no
	// signature. Unsigned packages install only from a local directory.
	ErrUnsignedRemote = errors.New("the package is not signed")
)

// Installer fetches, verifies and stores connector packages.
type Installer struct {
	// Store is where packages go.
	Store *Store
	// Trust holds the pinned publisher keys.
	Trust *Trust
	// Fetcher downloads remote packages; nil allows only local ones.
	Fetcher *Fetcher
	// TrustOnFirstUse is asked when no key is pinned for a package's
	// authority, with the key the source publishes (fetched over
	// verified TLS) and where it came from, once that key has verified
	// the signature. Returning nil trusts it: it is pinned when the
	// package is stored. Nil refuses every unknown authority.
	TrustOnFirstUse func(authority string, key minisign.PublicKey, from string) error
	// Warn receives warnings for a person (unsigned development
	// packages). Nil discards them.
	Warn func(msg string)
}

// Fetched is a verified package that is not stored yet, or one that is
// already installed.
type Fetched struct {
	// Ref is the package's FQN@version.
	Ref manifest.Ref
	// Manifest is the verified manifest.
	Manifest *manifest.Manifest
	// Installed is set when the package was already in the store:
	// nothing was downloaded and Commit stores nothing.
	Installed bool
	// Signed reports whether a pinned (or newly trusted) key verified
	// the manifest's signature.
	Signed bool
	// NewKey is set when the package's key is trusted on first use; it
	// is pinned by Commit.
	NewKey *minisign.PublicKey
	// Source is where the package came from.
	Source string

	pkg       *Package
	keyOrigin string
}

// Fetch downloads and verifies ref from its remote source. want, if not
// empty, is the provenance hash the caller requires (an action's pin); a
// package with another one is refused before its module is downloaded.
// An installed ref is returned without any download, after checking want.
func (in *Installer) Fetch(ctx context.Context, ref manifest.Ref, want string) (*Fetched, error) {
	if inst, err := in.Store.Connector(ref.String()); err == nil {
		if want != "" && inst.Manifest.Connector.ProvenanceHash != want {
			return nil, fmt.Errorf("%s: %w: the installed package has hash %s, but %s is required", ref, manifest.ErrPinMismatch, inst.Manifest.Connector.ProvenanceHash, want)
		}
		return &Fetched{Ref: ref, Manifest: inst.Manifest, Installed: true, Signed: inst.Entry.Signature != "", Source: inst.Entry.Source}, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if !Remote(ref.FQN) {
		return nil, fmt.Errorf("%s: %w: a file:// connector is installed from its directory", ref, ErrBadSource)
	}
	if in.Fetcher == nil {
		return nil, fmt.Errorf("%s: BUG(aileron): no fetcher for remote packages", ref)
	}
	sf, err := in.fetchSigned(ctx, ref, ManifestFile, SignatureFile, MaxManifestBytes, func(b []byte) error {
		_, err := manifest.ParseManifest(ManifestFile, b)
		return err
	})
	if errors.Is(err, ErrUnsignedRemote) {
		return nil, fmt.Errorf("%w (unsigned packages install only from a local directory)", err)
	}
	if err != nil {
		return nil, err
	}
	mb := sf.bytes
	f := &Fetched{Ref: ref, Source: sf.release, NewKey: sf.newKey, keyOrigin: sf.keyOrigin}
	m, err := manifest.ParseManifest(ref.String()+"/"+ManifestFile, mb)
	if err != nil {
		return nil, err
	}
	// Security: a validly signed manifest of another connector or version
	// of the same publisher must not install under this name (a
	// downgrade or a swap).
	if m.Ref() != ref {
		return nil, fmt.Errorf("%s: %w: its manifest names %s", ref, ErrWrongPackage, m.Ref())
	}
	if want != "" && m.Connector.ProvenanceHash != want {
		return nil, fmt.Errorf("%s: %w: the package has hash %s, but %s is required", ref, manifest.ErrPinMismatch, m.Connector.ProvenanceHash, want)
	}
	wasmURL, err := in.Fetcher.Bases().ReleaseURL(ref, WasmFile)
	if err != nil {
		return nil, err
	}
	wasm, err := in.Fetcher.Get(ctx, wasmURL, WasmFile, MaxWasmBytes, checkWasm)
	if err != nil {
		return nil, err
	}
	if m, err = CheckPackage(ref.String()+"/"+ManifestFile, mb, wasm); err != nil {
		return nil, err
	}
	f.Manifest, f.Signed = m, true
	f.pkg = &Package{ManifestBytes: mb, Wasm: wasm, Signature: sf.sig, Manifest: m, Source: f.Source, KeyFingerprint: Fingerprint(sf.key)}
	return f, nil
}

// signedFile is a downloaded file whose signature verified.
type signedFile struct {
	bytes, sig []byte
	// release is the URL of the release directory.
	release string
	// key verified the signature. newKey is set (to key) when it is
	// the one the source publishes and the caller agreed to trust it;
	// keyOrigin then says where it came from.
	key       minisign.PublicKey
	newKey    *minisign.PublicKey
	keyOrigin string
}

// fetchSigned downloads file (at most max bytes, which check accepts) and
// its minisign signature sigFile from ref's release, and verifies the
// signature with the key pinned for ref's authority. With no key pinned,
// it fetches the key the source publishes and, if that key verifies the
// signature, asks TrustOnFirstUse about it. A release without sigFile is
// ErrUnsignedRemote.
func (in *Installer) fetchSigned(ctx context.Context, ref manifest.Ref, file, sigFile string, max int64, check func([]byte) error) (*signedFile, error) {
	bases := in.Fetcher.Bases()
	var urls [3]string
	for i, name := range []string{file, sigFile, KeyFile} {
		u, err := bases.ReleaseURL(ref, name)
		if err != nil {
			return nil, err
		}
		urls[i] = u
	}
	fileURL, sigURL, keyURL := urls[0], urls[1], urls[2]
	sf := &signedFile{release: strings.TrimSuffix(fileURL, "/"+file)}
	var err error
	if sf.bytes, err = in.Fetcher.Get(ctx, fileURL, file, max, check); err != nil {
		return nil, err
	}
	sf.sig, err = in.Fetcher.Get(ctx, sigURL, sigFile, MaxSignatureBytes, func(b []byte) error {
		var s minisign.Signature
		return s.UnmarshalText(b)
	})
	if errors.Is(err, ErrNotPublished) {
		return nil, fmt.Errorf("%s: %w: %s has no %s", ref, ErrUnsignedRemote, sf.release, sigFile)
	}
	if err != nil {
		return nil, err
	}
	authority := ref.FQN.Authority()
	sf.key, err = in.Trust.Key(authority)
	switch {
	case errors.Is(err, ErrUnknownAuthority):
		if sf.key, err = in.publishedKey(ctx, authority, keyURL, sf.sig); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		// Security: the key must verify the signature before a person is
		// asked to trust it; consent to a key that signs nothing here
		// would be asked under false pretences.
		if err := verifyPublished(keyURL, sf.key, sf.bytes, sf.sig); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", ref, file, err)
		}
		if err := in.TrustOnFirstUse(authority, sf.key, keyURL); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		sf.newKey, sf.keyOrigin = &sf.key, "trust on first use from "+keyURL
	case err != nil:
		return nil, err
	default:
		if err := VerifySignature(authority, sf.key, sf.bytes, sf.sig); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", ref, file, err)
		}
	}
	return sf, nil
}

// publishedKey fetches the key the source publishes for authority, which
// has no pinned key, if TrustOnFirstUse may be asked about it.
func (in *Installer) publishedKey(ctx context.Context, authority, keyURL string, sig []byte) (minisign.PublicKey, error) {
	var s minisign.Signature
	_ = s.UnmarshalText(sig)
	unknown := fmt.Errorf("%w: %s (the package is signed by key %s)", ErrUnknownAuthority, authority, KeyID(s.KeyID))
	if in.TrustOnFirstUse == nil {
		return minisign.PublicKey{}, unknown
	}
	kb, err := in.Fetcher.Get(ctx, keyURL, KeyFile, MaxKeyBytes, func(b []byte) error {
		_, err := ParsePublicKey(b)
		return err
	})
	if err != nil {
		return minisign.PublicKey{}, fmt.Errorf("%w; fetching the publisher's key: %w", unknown, err)
	}
	return ParsePublicKey(kb)
}

// Local reads a development package from a directory and checks it. If
// the directory holds a signature and a key is pinned for the manifest's
// authority, the signature must verify; otherwise the package is unsigned
// and a warning says so.
func (in *Installer) Local(dir string) (*Fetched, error) {
	pkg, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := pkg.Manifest
	f := &Fetched{Ref: m.Ref(), Manifest: m, Source: pkg.Source, pkg: pkg}
	sig, err := readLimited(filepath.Join(dir, SignatureFile), MaxSignatureBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		in.warn(fmt.Sprintf("WARNING: %s is UNSIGNED: it is a development package from %s, and nothing but this directory vouches for it", m.Ref(), pkg.Source))
	case err != nil:
		return nil, err
	case !Remote(m.Connector.Name):
		in.warn(fmt.Sprintf("WARNING: %s: a file:// connector has no authority to check its signature against; installing it UNSIGNED", m.Ref()))
	default:
		authority := m.Connector.Name.Authority()
		key, err := in.Trust.Key(authority)
		if errors.Is(err, ErrUnknownAuthority) {
			in.warn(fmt.Sprintf("WARNING: %s: no key is pinned for %s, so its signature was NOT checked; installing it as UNSIGNED", m.Ref(), authority))
			break
		}
		if err != nil {
			return nil, err
		}
		if err := VerifySignature(authority, key, pkg.ManifestBytes, sig); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", m.Ref(), ManifestFile, err)
		}
		pkg.Signature, pkg.KeyFingerprint, f.Signed = sig, Fingerprint(key), true
	}
	if inst, err := in.Store.Connector(m.Ref().String()); err == nil {
		// ReadDir proved the module's hash equal to provenance_hash.
		if inst.Entry.Wasm == Digest(m.Connector.ProvenanceHash) && inst.Entry.Manifest == Sum(pkg.ManifestBytes) && (inst.Entry.Signature != "" || !f.Signed) {
			f.Installed = true
		}
	}
	return f, nil
}

// readLimited reads the regular file at path, refusing one over max bytes.
//
// Security: a package directory is someone else's: its files may be
// symlinks to /dev/zero (endless: memory exhaustion) or FIFOs (opening one
// blocks until a writer comes: a hang). Only regular files are read, and
// the file is opened without blocking and checked again through its
// descriptor, so a file swapped after the first check is refused too.
func readLimited(path string, max int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := regularFile(path, st); err != nil {
		return nil, err
	}
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if st, err = fh.Stat(); err != nil {
		return nil, err
	}
	if err := regularFile(path, st); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(fh, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w (%d bytes)", path, ErrTooLarge, max)
	}
	return b, nil
}

// regularFile returns ErrNotRegular, saying what path is instead, unless
// st is a regular file's.
func regularFile(path string, st fs.FileInfo) error {
	m := st.Mode()
	var kind string
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	default:
		kind = "not a regular file"
	}
	return fmt.Errorf("%s: %w: it is %s", path, ErrNotRegular, kind)
}

func (in *Installer) warn(msg string) {
	if in.Warn != nil {
		in.Warn(msg)
	}
}

// Commit stores a fetched package and pins its key if it was trusted on
// first use. The key is pinned under the trust lock, after the package is
// stored and only if it was: a conflicting pin made meanwhile stops the
// install before anything is stored, and a failed install pins nothing
// that another install could come to rely on.
func (in *Installer) Commit(f *Fetched) (Entry, error) {
	if f.Installed {
		return in.Store.Entry(f.Ref.String())
	}
	if f.pkg == nil {
		return Entry{}, fmt.Errorf("BUG(aileron): %s was not fetched", f.Ref)
	}
	var e Entry
	var putErr error
	put := func() error {
		e, putErr = in.Store.Put(f.pkg)
		return putErr
	}
	var err error
	if f.NewKey == nil {
		err = put()
	} else {
		err = in.Trust.pinAfter(f.Ref.FQN.Authority(), *f.NewKey, f.keyOrigin, put)
	}
	switch {
	case putErr != nil:
		return Entry{}, fmt.Errorf("install %s: %w", f.Ref, putErr)
	case err != nil:
		return Entry{}, fmt.Errorf("%s: %w", f.Ref, err)
	}
	return e, nil
}
