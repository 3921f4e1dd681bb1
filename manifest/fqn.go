package manifest

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/semver"
)

// FQN schemes.
const (
	// SchemeGitHub names a connector published from a GitHub repository:
	// github://org/repo.
	SchemeGitHub = "github"
	// SchemeGitLab names a connector published from a GitLab project:
	// gitlab://group/sub/.../repo.
	SchemeGitLab = "gitlab"
	// SchemeHub names a connector published to the Aileron Hub:
	// hub://namespace/name.
	SchemeHub = "hub"
	// SchemeFile names a connector in a local directory, for development:
	// file:///abs/path.
	SchemeFile = "file"
)

// Limits on FQNs.
const (
	// MaxFQNLen bounds the whole FQN string.
	MaxFQNLen = 256
	// maxSegmentLen bounds one path segment (GitHub allows 100 for repos).
	maxSegmentLen = 100
	// maxGitLabDepth is GitLab's own limit on nested groups, plus the
	// project itself.
	maxGitLabDepth = 21
	// maxVersionLen bounds a version string.
	maxVersionLen = 64
)

// FQN is a connector's fully-qualified name: where it comes from. Two FQNs
// are the same connector exactly when they are equal (==); [ParseFQN]
// accepts only the canonical spelling, so there is one string per
// connector.
type FQN struct {
	// Scheme is one of SchemeGitHub, SchemeGitLab, SchemeHub, SchemeFile.
	Scheme string
	// Namespace is the publisher: the GitHub org, the GitLab group path
	// ("team/sub", nested groups joined by "/") or the Hub namespace.
	// Empty for file.
	Namespace string
	// Name is the repository or Hub name. Empty for file.
	Name string
	// Path is the absolute, clean local path of a file FQN; empty
	// otherwise.
	Path string
}

// ParseFQN parses a connector name strictly. It accepts only the canonical
// spelling, so ParseFQN(f.String()) == f for every FQN it returns:
//
//   - github://org/repo and hub://namespace/name: exactly two segments;
//   - gitlab://group/.../repo: a namespace of 1 to 20 groups, then the repo;
//   - file:///abs/path: an absolute, clean path (no "..", "." or "//", no
//     trailing slash).
//
// Segments use only [a-z0-9._-] and start with a letter or digit. Uppercase
// is rejected rather than folded (GitHub names are case-insensitive, so
// folding would give one connector several spellings, and trust pins and
// store keys must not have aliases); the error shows the lowercase
// spelling. Userinfo, ports, queries, fragments and percent-encoding are
// rejected.
func ParseFQN(s string) (FQN, error) {
	if msg := fqnProblem(s); msg != "" {
		return FQN{}, &Error{Msg: fmt.Sprintf("invalid connector name %q: %s", s, msg), Err: ErrInvalid}
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if scheme == SchemeFile {
		return FQN{Scheme: scheme, Path: rest}, nil
	}
	i := strings.LastIndexByte(rest, '/')
	return FQN{Scheme: scheme, Namespace: rest[:i], Name: rest[i+1:]}, nil
}

// fqnProblem says what is wrong with s, or returns "".
func fqnProblem(s string) string {
	if len(s) > MaxFQNLen {
		return fmt.Sprintf("longer than %d bytes", MaxFQNLen)
	}
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return `missing scheme; write e.g. "github://org/repo"`
	}
	switch scheme {
	case SchemeGitHub, SchemeGitLab, SchemeHub, SchemeFile:
	default:
		if l := strings.ToLower(scheme); l != scheme && (l == SchemeGitHub || l == SchemeGitLab || l == SchemeHub || l == SchemeFile) {
			return fmt.Sprintf("the scheme must be lowercase: %q", l)
		}
		return fmt.Sprintf("unknown scheme %q; known schemes: file, github, gitlab, hub", scheme)
	}
	if scheme == SchemeFile {
		return filePathProblem(rest)
	}
	// Security: these characters would give URL parsers something to
	// disagree about (userinfo, port, query, fragment, escapes).
	if i := strings.IndexAny(rest, "@:?#%\\"); i >= 0 {
		return fmt.Sprintf("character %q is not allowed (no userinfo, port, query, fragment or escapes)", rest[i])
	}
	if rest == "" {
		return "missing path; write e.g. \"" + scheme + "://org/repo\""
	}
	if strings.HasSuffix(rest, "/") {
		return fmt.Sprintf("remove the trailing slash: %q", scheme+"://"+strings.TrimRight(rest, "/"))
	}
	segs := strings.Split(rest, "/")
	for _, seg := range segs {
		switch {
		case seg == "":
			return "empty path segment"
		case seg == "." || seg == "..":
			return fmt.Sprintf("path segment %q is not allowed", seg)
		}
	}
	if l := strings.ToLower(rest); l != rest && fqnProblem(scheme+"://"+l) == "" {
		return fmt.Sprintf("uppercase letters are not allowed (names are case-insensitive and have one spelling); write %q", scheme+"://"+l)
	}
	for _, seg := range segs {
		if msg := segmentProblem(seg); msg != "" {
			return msg
		}
	}
	switch scheme {
	case SchemeGitHub:
		if len(segs) != 2 {
			return "a github name has exactly two segments: github://org/repo"
		}
	case SchemeHub:
		if len(segs) != 2 {
			return "a hub name has exactly two segments: hub://namespace/name"
		}
	case SchemeGitLab:
		if len(segs) < 2 || len(segs) > maxGitLabDepth {
			return fmt.Sprintf("a gitlab name has 2 to %d segments: gitlab://group/.../repo", maxGitLabDepth)
		}
	}
	return ""
}

func segmentProblem(seg string) string {
	if len(seg) > maxSegmentLen {
		return fmt.Sprintf("path segment is longer than %d bytes", maxSegmentLen)
	}
	for i, c := range seg {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Sprintf("path segment %q must start with a lowercase letter or digit", seg)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Sprintf("path segment %q has character %q; use only a-z, 0-9, '.', '_' and '-'", seg, c)
		}
	}
	return ""
}

func filePathProblem(p string) string {
	if !strings.HasPrefix(p, "/") {
		return `a file name needs an absolute path: "file:///abs/path"`
	}
	for _, r := range p {
		// Security: control and bidi characters would let a path display
		// as something else at a consent prompt.
		if unicode.IsControl(r) || isBidiControl(r) {
			return fmt.Sprintf("control character %q is not allowed", r)
		}
		if r == '?' || r == '#' || r == '%' {
			return fmt.Sprintf("character %q is not allowed (no query, fragment or escapes)", r)
		}
	}
	if p == "/" {
		return "the path must name a directory below /"
	}
	if c := path.Clean(p); c != p {
		return fmt.Sprintf("the path is not clean; write %q", "file://"+c)
	}
	return ""
}

// String returns the canonical spelling, which [ParseFQN] accepts. The zero
// FQN prints as "".
func (f FQN) String() string {
	switch {
	case f.Scheme == "":
		return ""
	case f.Scheme == SchemeFile:
		return "file://" + f.Path
	default:
		return f.Scheme + "://" + f.Namespace + "/" + f.Name
	}
}

// Authority returns the publisher part under which trust pins are stored:
// "github://aileron", "gitlab://team/sub", "hub://aileron". Every file FQN
// has the authority "file://".
func (f FQN) Authority() string {
	if f.Scheme == SchemeFile {
		return "file://"
	}
	if f.Scheme == "" {
		return ""
	}
	return f.Scheme + "://" + f.Namespace
}

// MarshalText encodes f as its canonical string (for JSON).
func (f FQN) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText parses text with [ParseFQN].
func (f *FQN) UnmarshalText(text []byte) error {
	v, err := ParseFQN(string(text))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Ref is a connector at one version: "github://aileron/slack@1.2.3".
type Ref struct {
	// FQN is the connector.
	FQN FQN
	// Version is a semantic version without a leading "v", as in
	// manifests: "1.2.3", "2.0.0-rc.1".
	Version string
}

// ParseRef parses "FQN@VERSION". The version is required; see [ParseFQN]
// and [ValidateVersion] for what each part accepts.
func ParseRef(s string) (Ref, error) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return Ref{}, &Error{Msg: fmt.Sprintf("invalid connector reference %q: missing @VERSION; write e.g. \"github://aileron/slack@1.2.3\"", s), Err: ErrInvalid}
	}
	f, err := ParseFQN(s[:i])
	if err != nil {
		return Ref{}, err
	}
	if err := ValidateVersion(s[i+1:]); err != nil {
		return Ref{}, err
	}
	return Ref{FQN: f, Version: s[i+1:]}, nil
}

// String returns "FQN@VERSION".
func (r Ref) String() string { return r.FQN.String() + "@" + r.Version }

// ValidateVersion checks a version as written in manifests and actions: a
// full semantic version MAJOR.MINOR.PATCH with an optional pre-release,
// without a leading "v" and without build metadata (two versions differing
// only in build metadata would have equal precedence but different bytes).
func ValidateVersion(v string) error {
	if msg := versionProblem(v); msg != "" {
		return &Error{Msg: fmt.Sprintf("invalid version %q: %s", v, msg), Err: ErrInvalid}
	}
	return nil
}

func versionProblem(v string) string {
	switch {
	case v == "":
		return "must not be empty"
	case len(v) > maxVersionLen:
		return fmt.Sprintf("longer than %d bytes", maxVersionLen)
	case v[0] == 'v' || v[0] == 'V':
		if versionProblem(v[1:]) == "" {
			return fmt.Sprintf("remove the leading %q: write %q", v[:1], v[1:])
		}
	case strings.Contains(v, "+"):
		return "build metadata (+...) is not allowed"
	}
	if c := semver.Canonical("v" + v); c == "" || c != "v"+v {
		return `must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`
	}
	return ""
}

// isBidiControl reports the Unicode bidirectional formatting characters
// that can reorder how text is displayed ("Trojan Source", CVE-2021-42574).
func isBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == 0x200E || r == 0x200F || r == 0x061C
}
