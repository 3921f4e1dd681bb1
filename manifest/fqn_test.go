package manifest

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFQN(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      FQN
		authority string
	}{
		{name: "github", in: "github://aileron/slack", want: FQN{Scheme: "github", Namespace: "aileron", Name: "slack"}, authority: "github://aileron"},
		{name: "github punctuation", in: "github://acme-corp/stripe.connector_v2", want: FQN{Scheme: "github", Namespace: "acme-corp", Name: "stripe.connector_v2"}, authority: "github://acme-corp"},
		{name: "gitlab one group", in: "gitlab://team/linear", want: FQN{Scheme: "gitlab", Namespace: "team", Name: "linear"}, authority: "gitlab://team"},
		{name: "gitlab nested groups", in: "gitlab://team/sub/deeper/linear", want: FQN{Scheme: "gitlab", Namespace: "team/sub/deeper", Name: "linear"}, authority: "gitlab://team/sub/deeper"},
		{name: "hub", in: "hub://aileron/slack", want: FQN{Scheme: "hub", Namespace: "aileron", Name: "slack"}, authority: "hub://aileron"},
		{name: "file", in: "file:///home/dev/connectors/notes", want: FQN{Scheme: "file", Path: "/home/dev/connectors/notes"}, authority: "file://"},
		{name: "file with spaces and unicode", in: "file:///home/dév/my connectors", want: FQN{Scheme: "file", Path: "/home/dév/my connectors"}, authority: "file://"},
		{name: "digits first", in: "github://0xdead/1password", want: FQN{Scheme: "github", Namespace: "0xdead", Name: "1password"}, authority: "github://0xdead"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFQN(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.in, got.String())
			require.Equal(t, tc.authority, got.Authority())
		})
	}
}

func TestParseFQN_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: `invalid connector name "": missing scheme; write e.g. "github://org/repo"`},
		{name: "no scheme", in: "aileron/slack", want: `invalid connector name "aileron/slack": missing scheme; write e.g. "github://org/repo"`},
		{name: "unknown scheme", in: "https://github.com/aileron/slack", want: `invalid connector name "https://github.com/aileron/slack": unknown scheme "https"; known schemes: file, github, gitlab, hub`},
		{name: "uppercase scheme", in: "GitHub://aileron/slack", want: `invalid connector name "GitHub://aileron/slack": the scheme must be lowercase: "github"`},
		// One spelling per connector: trust pins and store keys must not alias.
		{name: "uppercase name", in: "github://Aileron/Slack", want: `invalid connector name "github://Aileron/Slack": uppercase letters are not allowed (names are case-insensitive and have one spelling); write "github://aileron/slack"`},
		{name: "github one segment", in: "github://aileron", want: `invalid connector name "github://aileron": a github name has exactly two segments: github://org/repo`},
		{name: "github three segments", in: "github://aileron/slack/extra", want: `invalid connector name "github://aileron/slack/extra": a github name has exactly two segments: github://org/repo`},
		{name: "hub three segments", in: "hub://a/b/c", want: `invalid connector name "hub://a/b/c": a hub name has exactly two segments: hub://namespace/name`},
		{name: "gitlab one segment", in: "gitlab://team", want: `invalid connector name "gitlab://team": a gitlab name has 2 to 21 segments: gitlab://group/.../repo`},
		{name: "gitlab too deep", in: "gitlab://a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v", want: `invalid connector name "gitlab://a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v": a gitlab name has 2 to 21 segments: gitlab://group/.../repo`},
		{name: "empty path", in: "github://", want: `invalid connector name "github://": missing path; write e.g. "github://org/repo"`},
		{name: "empty segment", in: "github://aileron//slack", want: `invalid connector name "github://aileron//slack": empty path segment`},
		{name: "trailing slash", in: "github://aileron/slack/", want: `invalid connector name "github://aileron/slack/": remove the trailing slash: "github://aileron/slack"`},
		// Path traversal into a directory built from the name.
		{name: "dot dot", in: "github://aileron/..", want: `invalid connector name "github://aileron/..": path segment ".." is not allowed`},
		{name: "dot", in: "github://./slack", want: `invalid connector name "github://./slack": path segment "." is not allowed`},
		{name: "hidden segment", in: "github://aileron/.slack", want: `invalid connector name "github://aileron/.slack": path segment ".slack" must start with a lowercase letter or digit`},
		// URL parser differentials: userinfo, port, query, fragment, escapes.
		{name: "userinfo", in: "github://evil@aileron/slack", want: `invalid connector name "github://evil@aileron/slack": character '@' is not allowed (no userinfo, port, query, fragment or escapes)`},
		{name: "port", in: "github://aileron:443/slack", want: `invalid connector name "github://aileron:443/slack": character ':' is not allowed (no userinfo, port, query, fragment or escapes)`},
		{name: "query", in: "hub://aileron/slack?v=2", want: `invalid connector name "hub://aileron/slack?v=2": character '?' is not allowed (no userinfo, port, query, fragment or escapes)`},
		{name: "fragment", in: "hub://aileron/slack#x", want: `invalid connector name "hub://aileron/slack#x": character '#' is not allowed (no userinfo, port, query, fragment or escapes)`},
		{name: "percent escape", in: "github://aileron/sl%61ck", want: `invalid connector name "github://aileron/sl%61ck": character '%' is not allowed (no userinfo, port, query, fragment or escapes)`},
		{name: "backslash", in: `github://aileron\slack`, want: `invalid connector name "github://aileron\\slack": character '\\' is not allowed (no userinfo, port, query, fragment or escapes)`},
		// Homoglyph: Cyrillic а (U+0430) looks like Latin a.
		{name: "homoglyph", in: "github://аileron/slack", want: `invalid connector name "github://аileron/slack": path segment "аileron" must start with a lowercase letter or digit`},
		{name: "space", in: "github://aileron/sl ack", want: `invalid connector name "github://aileron/sl ack": path segment "sl ack" has character ' '; use only a-z, 0-9, '.', '_' and '-'`},
		{name: "segment too long", in: "github://aileron/" + string(make101()), want: `invalid connector name "github://aileron/` + string(make101()) + `": path segment is longer than 100 bytes`},
		{name: "invalid utf8", in: "github://aileron/\xff", want: `invalid connector name "github://aileron/\xff": not valid UTF-8`},
		{name: "file relative", in: "file://connectors/notes", want: `invalid connector name "file://connectors/notes": a file name needs an absolute path: "file:///abs/path"`},
		{name: "file root", in: "file:///", want: `invalid connector name "file:///": the path must name a directory below /`},
		{name: "file unclean", in: "file:///home/dev/../root", want: `invalid connector name "file:///home/dev/../root": the path is not clean; write "file:///home/root"`},
		{name: "file trailing slash", in: "file:///home/dev/", want: `invalid connector name "file:///home/dev/": the path is not clean; write "file:///home/dev"`},
		{name: "file query", in: "file:///home/dev?x", want: `invalid connector name "file:///home/dev?x": character '?' is not allowed (no query, fragment or escapes)`},
		{name: "file control character", in: "file:///home/dev\x1b[2J", want: `invalid connector name "file:///home/dev\x1b[2J": control character '\x1b' is not allowed`},
		{name: "file bidi override", in: "file:///home/\u202edev", want: `invalid connector name "file:///home/\u202edev": control character '\u202e' is not allowed`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFQN(tc.in)
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func make101() []byte {
	b := make([]byte, 101)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

func TestFQN_Zero(t *testing.T) {
	require.Equal(t, "", FQN{}.String())
	require.Equal(t, "", FQN{}.Authority())
}

func TestFQN_JSON(t *testing.T) {
	f, err := ParseFQN("gitlab://team/sub/linear")
	require.NoError(t, err)
	b, err := json.Marshal(f)
	require.NoError(t, err)
	require.Equal(t, `"gitlab://team/sub/linear"`, string(b))
	var back FQN
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, f, back)
	require.Error(t, json.Unmarshal([]byte(`"github://A/b"`), &back))
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Ref
	}{
		{name: "release", in: "github://aileron/slack@1.2.3", want: Ref{FQN: FQN{Scheme: "github", Namespace: "aileron", Name: "slack"}, Version: "1.2.3"}},
		{name: "prerelease", in: "hub://aileron/slack@2.0.0-rc.1", want: Ref{FQN: FQN{Scheme: "hub", Namespace: "aileron", Name: "slack"}, Version: "2.0.0-rc.1"}},
		{name: "file path with @", in: "file:///home/me@work/notes@0.1.0", want: Ref{FQN: FQN{Scheme: "file", Path: "/home/me@work/notes"}, Version: "0.1.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRef(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.in, got.String())
		})
	}
}

func TestParseRef_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "no version", in: "github://aileron/slack", want: `invalid connector reference "github://aileron/slack": missing @VERSION; write e.g. "github://aileron/slack@1.2.3"`},
		{name: "leading v", in: "github://aileron/slack@v1.2.3", want: `invalid version "v1.2.3": remove the leading "v": write "1.2.3"`},
		{name: "bad name", in: "github://aileron@1.2.3", want: `invalid connector name "github://aileron": a github name has exactly two segments: github://org/repo`},
		{name: "empty version", in: "github://aileron/slack@", want: `invalid version "": must not be empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRef(tc.in)
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestValidateVersion(t *testing.T) {
	for _, v := range []string{"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92"} {
		t.Run(v, func(t *testing.T) {
			require.NoError(t, ValidateVersion(v))
		})
	}
}

func TestValidateVersion_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: `invalid version "": must not be empty`},
		{name: "leading v", in: "v1.2.3", want: `invalid version "v1.2.3": remove the leading "v": write "1.2.3"`},
		{name: "leading V", in: "V1.2.3", want: `invalid version "V1.2.3": remove the leading "V": write "1.2.3"`},
		{name: "short", in: "1.2", want: `invalid version "1.2": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{name: "major only", in: "1", want: `invalid version "1": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{name: "leading zero", in: "01.2.3", want: `invalid version "01.2.3": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{name: "build metadata", in: "1.2.3+build.5", want: `invalid version "1.2.3+build.5": build metadata (+...) is not allowed`},
		{name: "word", in: "latest", want: `invalid version "latest": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{name: "whitespace", in: " 1.2.3", want: `invalid version " 1.2.3": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{name: "too long", in: "1.2.3-" + string(make101()), want: `invalid version "1.2.3-` + string(make101()) + `": longer than 64 bytes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateVersion(tc.in)
			require.EqualError(t, err, tc.want)
			var e *Error
			require.True(t, errors.As(err, &e))
		})
	}
}

// FuzzParseFQN checks that ParseFQN never panics and that every name it
// accepts prints back to the same string and value.
func FuzzParseFQN(f *testing.F) {
	for _, s := range []string{
		"github://aileron/slack", "gitlab://a/b/c", "hub://x/y", "file:///a/b",
		"github://A/b", "file:///a/../b", "github://a/b/", "gitlab://a//b", "x://", "://",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fqn, err := ParseFQN(s)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalid)
			return
		}
		require.Equal(t, s, fqn.String())
		again, err := ParseFQN(fqn.String())
		require.NoError(t, err)
		require.Equal(t, fqn, again)
		require.NotEmpty(t, fqn.Authority())
	})
}
