package cas

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"aileron.dev/aileron/manifest"
)

// Where packages are published. Each remote scheme maps a connector FQN and
// version to a release directory; a package is four files in it
// ([ManifestFile], [WasmFile], [SignatureFile], and [KeyFile], the
// publisher's public key, fetched only for trust-on-first-use). Each
// connector also has a version index ([IndexFile]).
//
//	github://org/repo@1.2.3
//	  <github>/org/repo/releases/download/v1.2.3/<file>
//	  <github>/org/repo/releases/latest/download/versions.json
//	gitlab://group/sub/repo@1.2.3
//	  <gitlab>/group/sub/repo/-/releases/v1.2.3/downloads/<file>
//	  <gitlab>/group/sub/repo/-/releases/permalink/latest/downloads/versions.json
//	hub://namespace/name@1.2.3
//	  <hub>/namespace/name/1.2.3/<file>
//	  <hub>/namespace/name/versions.json
//
// The GitHub and GitLab layouts are those services' own release-asset
// URLs: a publisher attaches the four files (and versions.json) to the
// release tagged v1.2.3. The base URLs default to the public services and
// are set in config.toml ([sources]) or the environment, which is how the
// tests serve real packages from a loopback HTTPS server.

// Default base URLs of the remote sources.
const (
	DefaultGitHubBase = "https://github.com"
	DefaultGitLabBase = "https://gitlab.com"
	DefaultHubBase    = "https://hub.aileron.dev"
)

// Package file names beside the three of a package.
const (
	// KeyFile is the publisher's minisign public key, published with
	// each release. It is only fetched to offer trust-on-first-use.
	KeyFile = "minisign.pub"
	// IndexFile lists a connector's published versions.
	IndexFile = "versions.json"
)

// Bases holds the base URL of each remote source. Empty fields mean the
// defaults. Each must be an https URL without query or fragment.
type Bases struct {
	GitHub string
	GitLab string
	Hub    string
}

// ErrBadSource is returned (wrapped) for a base URL or a name that cannot
// make a download URL.
var ErrBadSource = errors.New("bad package source")

// Validate checks every base URL.
func (b Bases) Validate() error {
	for _, s := range []struct{ name, v string }{{"github", b.GitHub}, {"gitlab", b.GitLab}, {"hub", b.Hub}} {
		if s.v == "" {
			continue
		}
		if err := checkBase(s.v); err != nil {
			return fmt.Errorf("source %s: %w", s.name, err)
		}
	}
	return nil
}

func checkBase(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrBadSource, s, err)
	}
	switch {
	// Security: packages are signed, but the trust-on-first-use key and
	// the version index are only as good as the channel they came over.
	case u.Scheme != "https":
		return fmt.Errorf("%w: %q: the base URL must be https", ErrBadSource, s)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%w: %q: write a base URL like https://host[:port][/path]", ErrBadSource, s)
	}
	return nil
}

func (b Bases) base(scheme string) string {
	v := map[string]string{manifest.SchemeGitHub: b.GitHub, manifest.SchemeGitLab: b.GitLab, manifest.SchemeHub: b.Hub}[scheme]
	if v == "" {
		v = map[string]string{manifest.SchemeGitHub: DefaultGitHubBase, manifest.SchemeGitLab: DefaultGitLabBase, manifest.SchemeHub: DefaultHubBase}[scheme]
	}
	return strings.TrimRight(v, "/")
}

// Remote reports whether f is published on a remote source (not file://).
func Remote(f manifest.FQN) bool {
	switch f.Scheme {
	case manifest.SchemeGitHub, manifest.SchemeGitLab, manifest.SchemeHub:
		return true
	}
	return false
}

// segments returns the FQN's path segments after re-checking each, so no
// URL is ever built from a segment that could climb out of the release
// directory, even for an FQN not made by [manifest.ParseFQN].
func segments(f manifest.FQN) ([]string, error) {
	if _, err := manifest.ParseFQN(f.String()); err != nil || !Remote(f) {
		return nil, fmt.Errorf("%w: %q is not a remote connector name", ErrBadSource, f.String())
	}
	return strings.Split(f.Namespace+"/"+f.Name, "/"), nil
}

// ReleaseURL returns the URL of file in the release of ref.
func (b Bases) ReleaseURL(ref manifest.Ref, file string) (string, error) {
	segs, err := segments(ref.FQN)
	if err != nil {
		return "", err
	}
	// Security: the version goes into a path; only a strict semantic
	// version (no "/", no "..") may.
	if err := manifest.ValidateVersion(ref.Version); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSource, err)
	}
	if !packageFile(file) {
		return "", fmt.Errorf("BUG(aileron): %q is not a package file", file)
	}
	root := b.base(ref.FQN.Scheme) + "/" + strings.Join(segs, "/")
	switch ref.FQN.Scheme {
	case manifest.SchemeGitHub:
		return root + "/releases/download/v" + ref.Version + "/" + file, nil
	case manifest.SchemeGitLab:
		return root + "/-/releases/v" + ref.Version + "/downloads/" + file, nil
	default:
		return root + "/" + ref.Version + "/" + file, nil
	}
}

// IndexURL returns the URL of the version index of f.
func (b Bases) IndexURL(f manifest.FQN) (string, error) {
	segs, err := segments(f)
	if err != nil {
		return "", err
	}
	root := b.base(f.Scheme) + "/" + strings.Join(segs, "/")
	switch f.Scheme {
	case manifest.SchemeGitHub:
		return root + "/releases/latest/download/" + IndexFile, nil
	case manifest.SchemeGitLab:
		return root + "/-/releases/permalink/latest/downloads/" + IndexFile, nil
	default:
		return root + "/" + IndexFile, nil
	}
}

func packageFile(name string) bool {
	switch name {
	case ManifestFile, WasmFile, SignatureFile, KeyFile, ActionFile, ActionSignatureFile:
		return true
	}
	return false
}
