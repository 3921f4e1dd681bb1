package serve

import (
	"bytes"
	"net/http/httptest"
	"regexp"
	"testing"
)

// FuzzParseConfig: no configuration file makes the parser or the checks
// panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("data_dir = \"/d\"\n[listen]\nunix = \"/s\"\n[[tenants]]\nname = \"a\"\nuids = [1]\n[tenants.quota]\nconcurrent_runs = 1\n"))
	f.Add([]byte("[pool]\nsize = 70\n[limits]\ndrain_timeout = \"-1s\"\n"))
	f.Add([]byte("[[tenants]]\nname = \"..\"\ntokens = [\"sha256:zz\"]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("f.toml", b)
		if err != nil {
			return
		}
		_, _ = c.check()
	})
}

// FuzzDecodeRun: no request body makes the decoder panic, and whatever it
// accepts names an action by a plain name.
func FuzzDecodeRun(f *testing.F) {
	f.Add([]byte(`{"action":"noop","inputs":{"a":1}}`))
	f.Add([]byte(`{"action":"../x"}`))
	f.Add([]byte(`{"action":"a"} {}`))
	f.Add([]byte(`[]`))
	// An independent statement of the action-name grammar, as the oracle.
	actionNameRE := regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	s := &Server{}
	s.set.Store(&settings{maxBody: 4096})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := httptest.NewRequest("POST", "/v1/runs", bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		req, e, _ := s.decodeRun(httptest.NewRecorder(), r)
		if e == nil && !actionNameRE.MatchString(req.Action) {
			t.Fatalf("accepted action %q", req.Action)
		}
	})
}

// FuzzAuthenticate: no Authorization header makes authentication panic or
// succeed without a matching token.
func FuzzAuthenticate(f *testing.F) {
	c := base()
	c.Tenants[0].Tokens = []string{HashToken("the-token")}
	set, err := c.check()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Bearer the-token")
	f.Add("Bearer ")
	f.Add("Basic abc")
	f.Fuzz(func(t *testing.T, h string) {
		name, err := set.auth.authenticate(identity{authorization: h})
		if err == nil && h != "Bearer the-token" {
			t.Fatalf("%q authenticated as %q", h, name)
		}
	})
}
