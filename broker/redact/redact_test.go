package redact

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustNew(t testing.TB, secrets ...string) *Redactor {
	t.Helper()
	bs := make([][]byte, len(secrets))
	for i, s := range secrets {
		bs[i] = []byte(s)
	}
	r, err := New(bs)
	require.NoError(t, err)
	return r
}

func TestNew_Errors(t *testing.T) {
	tests := []struct {
		name    string
		secrets [][]byte
		err     string
	}{
		{"empty secret", [][]byte{[]byte("long-enough"), {}}, "redact: secret 1 is 0 bytes: secret shorter than 4 bytes would redact ordinary text"},
		{"one byte would redact everything", [][]byte{[]byte("a")}, "redact: secret 0 is 1 bytes: secret shorter than 4 bytes would redact ordinary text"},
		{"three bytes", [][]byte{[]byte("abc")}, "redact: secret 0 is 3 bytes: secret shorter than 4 bytes would redact ordinary text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.secrets)
			require.Nil(t, r)
			require.EqualError(t, err, tc.err)
			require.True(t, errors.Is(err, ErrSecretTooShort))
		})
	}
	r, err := New(nil)
	require.NoError(t, err)
	require.Equal(t, 0, r.Patterns())
	in := []byte("anything")
	out, n := r.Bytes(in)
	require.Equal(t, 0, n)
	require.Equal(t, in, out)
}

func TestBytes(t *testing.T) {
	const tok = "s3cr3t/t0k+n=<&>\"é"
	blob := func(pad int) string { // a JSON echo of the header, base64'd whole
		return base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", pad) + `{"Authorization": "Bearer ` + tok + `"}`))
	}
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
		n       int
	}{
		{"raw", []string{"hunter22"}, "pw=hunter22;", "pw=[REDACTED];", 1},
		{"every occurrence", []string{"hunter22"}, "hunter22 and hunter22", "[REDACTED] and [REDACTED]", 2},
		{"adjacent occurrences", []string{"hunter22"}, "hunter22hunter22", "[REDACTED][REDACTED]", 2},
		{"overlapping occurrences of one secret", []string{"abab"}, "xababab", "x[REDACTED]", 1},
		{"overlapping secrets leave no fragment", []string{"abcd", "cdef"}, "-abcdef-", "-[REDACTED]-", 1},
		{"secret inside a longer secret", []string{"token-1234", "1234"}, "token-1234 1234", "[REDACTED] [REDACTED]", 2},
		{"no match", []string{"hunter22"}, "hunter2", "hunter2", 0},
		{"base64 std", []string{"user:pass"}, "x " + base64.StdEncoding.EncodeToString([]byte("user:pass")), "x [REDACTED]", 1},
		{"base64 url raw", []string{"\xfb\xff\xfe\xfd"}, base64.RawURLEncoding.EncodeToString([]byte("\xfb\xff\xfe\xfd")), "[REDACTED]", 1},
		{"hex lower", []string{"key!"}, "6b657921", "[REDACTED]", 1},
		{"hex upper", []string{"key!"}, "6B657921", "[REDACTED]", 1},
		{"query-escaped", []string{tok}, "?t=" + url.QueryEscape(tok) + "&a=1", "?t=[REDACTED]&a=1", 1},
		{"path-escaped", []string{tok}, "/t/" + url.PathEscape(tok) + "/x", "/t/[REDACTED]/x", 1},
		{"JSON escaped (Go)", []string{tok}, jsonString(tok, true), `"[REDACTED]"`, 1},
		{"JSON escaped (Python)", []string{tok}, jsonString(tok, false), `"[REDACTED]"`, 1},
		{"JSON escaped (PHP)", []string{tok}, strings.ReplaceAll(jsonString(tok, false), "/", `\/`), `"[REDACTED]"`, 1},
		{"whole header value echoed", []string{"Basic dXNlcjpwYXNz", "user:pass"}, `{"Authorization":"Basic dXNlcjpwYXNz"}`, `{"Authorization":"[REDACTED]"}`, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, tc.secrets...)
			out, n := r.Bytes([]byte(tc.in))
			require.Equal(t, tc.want, string(out))
			require.Equal(t, tc.n, n)
			s, n2 := r.String(tc.in)
			require.Equal(t, tc.want, s)
			require.Equal(t, tc.n, n2)
		})
	}

	// Security: an echo service that base64-encodes a whole blob puts the
	// secret at any offset modulo 3; all three alignments are caught.
	r := mustNew(t, tok)
	residues := map[int]bool{}
	for pad := 0; pad < 3; pad++ {
		in := blob(pad)
		off := pad + len(`{"Authorization": "Bearer `)
		residues[off%3] = true
		if off%3 != 0 {
			require.NotContains(t, in, base64.RawStdEncoding.EncodeToString([]byte(tok))[:8],
				"offset %d: the plain encoding is not in the blob", off)
		}
		out, n := r.Bytes([]byte(in))
		require.Equal(t, 1, n, "offset %d", off)
		require.Contains(t, string(out), Marker)
	}
	require.Len(t, residues, 3)
}

func jsonString(s string, html bool) string {
	if html {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSpace(sb.String())
}

func TestBytes_DoesNotModifyInput(t *testing.T) {
	r := mustNew(t, "hunter22")
	in := []byte("a hunter22 b")
	out, _ := r.Bytes(in)
	require.Equal(t, "a hunter22 b", string(in))
	require.Equal(t, "a [REDACTED] b", string(out))

	clean := []byte("nothing here")
	out, n := r.Bytes(clean)
	require.Equal(t, 0, n)
	require.Same(t, &clean[0], &out[0], "no copy when nothing matched")

	var nilR *Redactor
	out, n = nilR.Bytes(in)
	require.Equal(t, 0, n)
	require.Equal(t, in, out)
	require.Equal(t, 0, nilR.Headers(map[string][]string{"A": {"hunter22"}}))
}

func TestHeaders(t *testing.T) {
	r := mustNew(t, "hunter22")
	h := map[string][]string{
		"Authorization": {"Bearer hunter22"},
		"X-Echo":        {"ok", base64.StdEncoding.EncodeToString([]byte("hunter22"))},
		"X-Hunter22":    {"name leak"},
		"X-Hex-" + hex.EncodeToString([]byte("hunter22")): {"v"},
		"Content-Type": {"application/json"},
	}
	n := r.Headers(h)
	require.Equal(t, 3, n)
	require.Equal(t, map[string][]string{
		"Authorization":    {"Bearer [REDACTED]"},
		"X-Echo":           {"ok", "[REDACTED]"},
		"X-Hunter22":       {"name leak"}, // names are case-sensitive bytes; this one differs in case
		"X-Hex-[REDACTED]": {"v"},
		"Content-Type":     {"application/json"},
	}, h)
}

func TestAlignedCore(t *testing.T) {
	s := []byte("abcd")
	require.Equal(t, "YWJjZ", alignedCore(s, 0))
	for a := 0; a < 3; a++ {
		core := alignedCore(s, a)
		for _, lead := range []string{"", "012", "012345"} { // whole groups before
			for _, tail := range []string{"", "Q", "QQ", "QQQ"} {
				in := lead + strings.Repeat("P", a) + string(s) + tail
				enc := base64.StdEncoding.EncodeToString([]byte(in))
				require.Contains(t, enc, core, "alignment %d in %q", a, in)
			}
		}
	}
}

func TestWith(t *testing.T) {
	const key, sig = "whsec-signing-key-5a6b7c", "3f2a9c0d1e4b5a6c7d8e9f00112233445566778899aabbccddeeff0011223344"
	base := mustNew(t, key)
	with, err := base.With([][]byte{[]byte(sig)})
	require.NoError(t, err)
	all := mustNew(t, key, sig)
	// The extension redacts exactly as a Redactor built from every
	// secret at once, and leaves the one it extends as it was.
	require.Equal(t, all.patterns, with.patterns)
	require.Equal(t, mustNew(t, key).patterns, base.patterns)
	in := []byte(`{"k":"` + key + `","s":"` + sig + `","h":"` + hex.EncodeToString([]byte(sig)) + `"}`)
	got, n := with.Bytes(in)
	want, wn := all.Bytes(in)
	require.Equal(t, string(want), string(got))
	require.Equal(t, 3, n)
	require.Equal(t, wn, n)

	// Duplicates are not searched twice.
	same, err := base.With([][]byte{[]byte(key)})
	require.NoError(t, err)
	require.Equal(t, base.Patterns(), same.Patterns())

	_, err = base.With([][]byte{[]byte("abc")})
	require.EqualError(t, err, "redact: secret 0 is 3 bytes: secret shorter than 4 bytes would redact ordinary text")
	var none *Redactor
	fromNil, err := none.With([][]byte{[]byte(sig)})
	require.NoError(t, err)
	require.Equal(t, mustNew(t, sig).patterns, fromNil.patterns)
}
