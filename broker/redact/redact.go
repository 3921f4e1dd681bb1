// Package redact scrubs secret bytes from what flows back to a connector.
//
// The broker substitutes credentials into request headers; an echoing or
// careless service can send them back in the response (httpbin's /anything
// returns every request header inside JSON). A [Redactor] replaces every
// occurrence of each secret, in every encoding a service is likely to use,
// with [Marker] before the response reaches the worker.
//
// # Usage
//
// Build one Redactor per credential, passing the exact byte strings the
// broker puts on the wire: the whole header value ("Basic dXNlcjpwYXNz",
// "Bearer tok") and its raw parts (the token; "user", "pass" when long
// enough). Deriving framings is the caller's job; encoding them is this
// package's:
//
//	r, err := redact.New([][]byte{[]byte("Bearer " + tok), []byte(tok)})
//	body, n := r.Bytes(resp.Body)
//	n += r.Headers(resp.Header)
//
// Deriving the encodings is most of the cost, so keep the Redactor as long
// as the credential, and add a secret that changes with every request (a
// signature) with [Redactor.With], which derives only the new one's.
//
// # Encodings
//
// For each secret, [New] derives: the raw bytes; base64 in the standard and
// URL alphabets, padded and raw; the three alignment variants of base64 for
// a secret embedded at any offset inside a larger base64 blob (for example
// base64("Authorization: Bearer tok")); lower- and upper-case hex; and, of
// each of those, the URL query-escaped, path-escaped and JSON-escaped forms
// (with and without HTML escaping and with "\/"), when they differ.
//
// # Limits
//
// Redaction stops echoes, not a determined exfiltration: a service that
// returns part of a header, or transforms it (hashes, reverses, wraps base64
// across lines), defeats it. The real control is that credentials go only to
// declared hosts. Secrets shorter than [MinSecretLen] are refused: a
// 1-byte secret would redact every occurrence of that byte.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Marker replaces each redacted run of bytes.
const Marker = "[REDACTED]"

// MinSecretLen is the shortest secret [New] accepts.
const MinSecretLen = 4

// ErrSecretTooShort is returned (wrapped, naming the secret's index, never
// its bytes) by [New] when a secret is shorter than [MinSecretLen].
var ErrSecretTooShort = errors.New("secret shorter than 4 bytes would redact ordinary text")

// Redactor replaces secrets in byte slices and headers. It is immutable
// after [New] and safe for concurrent use. A nil *Redactor redacts nothing.
type Redactor struct {
	patterns [][]byte // distinct, longest first
}

// New derives every encoding of every secret once. It returns an error
// wrapping [ErrSecretTooShort] if any secret is shorter than
// [MinSecretLen]. No secrets is valid: the Redactor then redacts nothing.
func New(secrets [][]byte) (*Redactor, error) {
	pats, err := derive(secrets, nil)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(pats, func(i, j int) bool { return len(pats[i]) > len(pats[j]) })
	return &Redactor{patterns: pats}, nil
}

// With returns a Redactor for r's secrets and extra, as [New] would build
// from all of them, leaving r as it is. It costs what New costs for extra
// alone: build one Redactor per credential and extend it per request with
// the secrets that change every time (a signature). A nil r is New(extra).
func (r *Redactor) With(extra [][]byte) (*Redactor, error) {
	var have [][]byte
	if r != nil {
		have = r.patterns
	}
	add, err := derive(extra, have)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(add, func(i, j int) bool { return len(add[i]) > len(add[j]) })
	// Merge two lists sorted longest first, r's first among equals, which
	// is the order New would give.
	pats := make([][]byte, 0, len(have)+len(add))
	i, j := 0, 0
	for i < len(have) && j < len(add) {
		if len(add[j]) > len(have[i]) {
			pats = append(pats, add[j])
			j++
		} else {
			pats = append(pats, have[i])
			i++
		}
	}
	pats = append(append(pats, have[i:]...), add[j:]...)
	return &Redactor{patterns: pats}, nil
}

// derive returns the distinct encodings of secrets that are not already in
// have, unsorted.
func derive(secrets, have [][]byte) ([][]byte, error) {
	seen := map[string]bool{}
	var pats [][]byte
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("redact: secret %d is %d bytes: %w", i, len(s), ErrSecretTooShort)
		}
		for _, v := range variants(s) {
			if len(v) < MinSecretLen || seen[v] || slices.ContainsFunc(have, func(p []byte) bool { return string(p) == v }) {
				continue
			}
			seen[v] = true
			pats = append(pats, []byte(v))
		}
	}
	return pats, nil
}

// Patterns returns how many distinct byte strings r searches for.
func (r *Redactor) Patterns() int {
	if r == nil {
		return 0
	}
	return len(r.patterns)
}

func variants(s []byte) []string {
	forms := []string{
		string(s),
		base64.StdEncoding.EncodeToString(s),
		base64.URLEncoding.EncodeToString(s),
		base64.RawStdEncoding.EncodeToString(s),
		base64.RawURLEncoding.EncodeToString(s),
		hex.EncodeToString(s),
		strings.ToUpper(hex.EncodeToString(s)),
	}
	// Security: inside a larger base64 blob the secret starts at offset 0,
	// 1 or 2 modulo 3, and each alignment yields different characters.
	// Only the characters fully determined by the secret's bits are used.
	for a := 0; a < 3; a++ {
		core := alignedCore(s, a)
		forms = append(forms, core, toURLAlphabet(core))
	}
	out := make([]string, 0, 4*len(forms))
	for _, f := range forms {
		out = append(out, f, url.QueryEscape(f), url.PathEscape(f))
		out = append(out, jsonEscapes(f)...)
	}
	return out
}

// alignedCore returns the base64 (standard alphabet) characters that encode
// only bits of s when s starts a bytes into a 3-byte group.
func alignedCore(s []byte, a int) string {
	buf := make([]byte, a+len(s)+2)
	copy(buf[a:], s)
	enc := base64.RawStdEncoding.EncodeToString(buf)
	first := (8*a + 5) / 6        // first char whose 6 bits start at or after the secret
	end := (8 * (a + len(s))) / 6 // chars before end finish within the secret
	if end <= first {
		return ""
	}
	return enc[first:end]
}

func toURLAlphabet(s string) string {
	return strings.NewReplacer("+", "-", "/", "_").Replace(s)
}

// jsonEscapes returns s as it appears inside JSON strings written by common
// encoders: Go (HTML-escaped), most others, and PHP ("\/").
func jsonEscapes(s string) []string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	plain := strings.TrimSuffix(b.String(), "\n")
	plain = plain[1 : len(plain)-1]
	html, _ := json.Marshal(s)
	h := string(html[1 : len(html)-1])
	return []string{plain, h, strings.ReplaceAll(plain, "/", `\/`)}
}

// Bytes returns b with every occurrence of every pattern replaced by
// [Marker], and the number of markers written. Overlapping occurrences
// (of one secret or of several) are covered by a single marker, so no
// fragment of one survives next to another. b itself is not modified; if
// nothing matched, b is returned as is.
func (r *Redactor) Bytes(b []byte) ([]byte, int) {
	if r == nil || len(r.patterns) == 0 || len(b) == 0 {
		return b, 0
	}
	var spans []span
	for _, p := range r.patterns {
		for off := 0; off+len(p) <= len(b); {
			i := bytes.Index(b[off:], p)
			if i < 0 {
				break
			}
			start := off + i
			spans = append(spans, span{start, start + len(p)})
			off = start + 1 // overlapping occurrences count too
		}
	}
	if len(spans) == 0 {
		return b, 0
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	merged := spans[:1]
	for _, s := range spans[1:] {
		last := &merged[len(merged)-1]
		if s.start < last.end { // overlap; adjacent occurrences stay separate
			last.end = max(last.end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	out := make([]byte, 0, len(b)+len(merged)*len(Marker))
	prev := 0
	for _, s := range merged {
		out = append(out, b[prev:s.start]...)
		out = append(out, Marker...)
		prev = s.end
	}
	out = append(out, b[prev:]...)
	return out, len(merged)
}

type span struct{ start, end int }

// String is [Redactor.Bytes] for strings.
func (r *Redactor) String(s string) (string, int) {
	b, n := r.Bytes([]byte(s))
	if n == 0 {
		return s, 0
	}
	return string(b), n
}

// Headers redacts header values, and names, in place and returns the
// number of markers written. A name that contained a secret is replaced
// by its redacted form, its values appended to any already there.
func (r *Redactor) Headers(h map[string][]string) int {
	if r == nil || len(r.patterns) == 0 {
		return 0
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	total := 0
	for _, k := range keys {
		vals := h[k]
		for i, v := range vals {
			nv, n := r.String(v)
			vals[i] = nv
			total += n
		}
		if nk, n := r.String(k); n > 0 {
			delete(h, k)
			h[nk] = append(h[nk], vals...)
			total += n
		}
	}
	return total
}
