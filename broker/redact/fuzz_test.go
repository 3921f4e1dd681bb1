package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// forms are the encodings the fuzz test insists never survive outside a
// marker.
func forms(s []byte) []string {
	out := []string{
		string(s),
		base64.StdEncoding.EncodeToString(s),
		base64.URLEncoding.EncodeToString(s),
		base64.RawStdEncoding.EncodeToString(s),
		base64.RawURLEncoding.EncodeToString(s),
		hex.EncodeToString(s),
		strings.ToUpper(hex.EncodeToString(s)),
	}
	for a := 0; a < 3; a++ {
		out = append(out, alignedCore(s, a))
	}
	return out
}

// exposed reports an occurrence of f in out that overlaps no marker. The
// marker may combine with neighbouring bytes into something that looks like
// a secret; that is not a leak, because those bytes were not the secret.
func exposed(out []byte, f string) bool {
	if len(f) < MinSecretLen {
		return false
	}
	var marks [][2]int
	for off := 0; ; {
		i := bytes.Index(out[off:], []byte(Marker))
		if i < 0 {
			break
		}
		marks = append(marks, [2]int{off + i, off + i + len(Marker)})
		off += i + 1
	}
	for off := 0; ; {
		i := bytes.Index(out[off:], []byte(f))
		if i < 0 {
			return false
		}
		s, e := off+i, off+i+len(f)
		covered := false
		for _, m := range marks {
			if s < m[1] && m[0] < e {
				covered = true
				break
			}
		}
		if !covered {
			return true
		}
		off += i + 1
	}
}

func FuzzRedact(f *testing.F) {
	f.Add([]byte("hunter22"), []byte(`{"headers":{"Authorization":"Bearer hunter22"}}`), uint8(1))
	f.Add([]byte("abab"), []byte("ababababab"), uint8(0))
	f.Add([]byte("ED]x"), []byte("[REDACTED]x"), uint8(2))
	f.Add([]byte("\x00\xff\x10\x20"), []byte("AP8QIA=="), uint8(5))
	f.Fuzz(func(t *testing.T, secret, body []byte, pad uint8) {
		r, err := New([][]byte{secret})
		if len(secret) < MinSecretLen {
			if err == nil {
				t.Fatal("short secret accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		mixed := append(append(append(append([]byte{}, body...), secret...), body...), secret...)
		inputs := [][]byte{
			body,
			mixed,
			[]byte(base64.StdEncoding.EncodeToString(append(bytes.Repeat([]byte{'p'}, int(pad%7)), mixed...))),
			[]byte(base64.URLEncoding.EncodeToString(append(bytes.Repeat([]byte{'p'}, int(pad%5)), mixed...))),
			[]byte(string(body) + hex.EncodeToString(secret) + string(body)),
		}
		for _, in := range inputs {
			orig := append([]byte{}, in...)
			out, n := r.Bytes(in)
			if !bytes.Equal(in, orig) {
				t.Fatal("input modified")
			}
			if n == 0 && !bytes.Equal(out, in) {
				t.Fatal("changed without a count")
			}
			if n > 0 && bytes.Count(out, []byte(Marker)) < n {
				t.Fatalf("count %d but fewer markers in %q", n, out)
			}
			for _, fm := range forms(secret) {
				if exposed(out, fm) {
					t.Fatalf("form %q of secret %q survives in %q (input %q)", fm, secret, out, in)
				}
			}
		}
	})
}

// FuzzWith checks that extending a Redactor gives what New gives for all
// the secrets at once, in the same order.
func FuzzWith(f *testing.F) {
	f.Add([]byte("whsec-key-01"), []byte("3f2a9c0d1e4b5a6c"))
	f.Add([]byte("abab"), []byte("abab"))
	f.Add([]byte("same-length-1"), []byte("same-length-2"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		base, err := New([][]byte{a})
		if err != nil {
			return
		}
		with, err := base.With([][]byte{b})
		all, allErr := New([][]byte{a, b})
		if (err == nil) != (allErr == nil) {
			t.Fatalf("With: %v, New: %v", err, allErr)
		}
		if err != nil {
			return
		}
		if len(with.patterns) != len(all.patterns) {
			t.Fatalf("With has %d patterns, New %d", len(with.patterns), len(all.patterns))
		}
		for i := range all.patterns {
			if !bytes.Equal(with.patterns[i], all.patterns[i]) {
				t.Fatalf("pattern %d: With %q, New %q", i, with.patterns[i], all.patterns[i])
			}
		}
	})
}

// BenchmarkBytes redacts a 1 MiB JSON body with three secrets, the common
// case of a bearer token, its header value and a basic-auth pair.
func BenchmarkBytes(b *testing.B) {
	r := mustNew(b, "Bearer xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij", "Basic dXNlcjpwYXNz")
	body := bytes.Repeat([]byte(`{"ok":true,"channel":"C0123456","ts":"1712345678.000100","text":"hello world"},`), 1<<20/80)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Bytes(body)
	}
	b.ReportMetric(float64(r.Patterns()), "patterns")
}
