package cas

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
)

func TestParseVersionIndex(t *testing.T) {
	f, _ := manifest.ParseFQN("github://acme/notes")
	vs, err := ParseVersionIndex(f, []byte(`{"connector": "github://acme/notes", "versions": ["1.10.0", "1.2.0", "1.2.0-rc.1"]}`))
	require.NoError(t, err)
	require.Equal(t, []string{"1.2.0-rc.1", "1.2.0", "1.10.0"}, vs)
	got, err := ParseVersionIndex(f, EncodeVersionIndex(f, vs))
	require.NoError(t, err)
	require.Equal(t, vs, got)
}

func TestParseVersionIndex_Errors(t *testing.T) {
	f, _ := manifest.ParseFQN("github://acme/notes")
	tests := []struct{ name, in, msg string }{
		{"path_traversal", `{"connector": "github://acme/notes", "versions": ["../../../etc/passwd"]}`, `bad version index: invalid version "../../../etc/passwd": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{"traversal_after_version", `{"connector": "github://acme/notes", "versions": ["1.0.0/../../x"]}`, `bad version index: invalid version "1.0.0/../../x": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`},
		{"leading_v", `{"connector": "github://acme/notes", "versions": ["v1.0.0"]}`, `bad version index: invalid version "v1.0.0": remove the leading "v": write "1.0.0"`},
		{"other_connector", `{"connector": "github://acme/other", "versions": ["1.0.0"]}`, `bad version index: it is the index of "github://acme/other", not of github://acme/notes`},
		{"unknown_field", `{"connector": "github://acme/notes", "versions": ["1.0.0"], "latest": "9.9.9"}`, `bad version index: json: unknown field "latest"`},
		{"empty", `{"connector": "github://acme/notes", "versions": []}`, `bad version index: it must list 1 to 1000 versions, not 0`},
		{"duplicate", `{"connector": "github://acme/notes", "versions": ["1.0.0", "1.0.0"]}`, `bad version index: version 1.0.0 is listed twice`},
		{"trailing_data", `{"connector": "github://acme/notes", "versions": ["1.0.0"]} {}`, `bad version index: data after the JSON object`},
		{"not_json", `<html>`, `bad version index: invalid character '<' looking for beginning of value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseVersionIndex(f, []byte(tt.in))
			require.ErrorIs(t, err, ErrBadIndex)
			require.EqualError(t, err, tt.msg)
		})
	}
}

func FuzzParseVersionIndex(f *testing.F) {
	f.Add([]byte(`{"connector": "github://acme/notes", "versions": ["1.0.0", "2.0.0-rc.1"]}`))
	f.Add([]byte(`{"connector": "github://acme/notes", "versions": ["../x"]}`))
	fqn, _ := manifest.ParseFQN("github://acme/notes")
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := ParseVersionIndex(fqn, b)
		if err != nil {
			return
		}
		// Every accepted version makes a URL inside the release tree.
		for _, v := range vs {
			if _, err := (Bases{}).ReleaseURL(manifest.Ref{FQN: fqn, Version: v}, WasmFile); err != nil {
				t.Fatalf("accepted %q but cannot build its URL: %v", v, err)
			}
		}
		again, err := ParseVersionIndex(fqn, EncodeVersionIndex(fqn, vs))
		if err != nil || len(again) != len(vs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestNewer(t *testing.T) {
	avail := []string{"0.9.0", "1.0.0", "1.1.0-rc.1", "1.1.0", "1.10.0", "2.0.0-beta.1"}
	require.Equal(t, []string{"1.1.0", "1.10.0"}, Newer("1.0.0", avail))
	require.Equal(t, []string{"1.1.0-rc.1", "1.1.0", "1.10.0", "2.0.0-beta.1"}, Newer("1.1.0-beta.1", avail))
	require.Empty(t, Newer("1.10.0", avail))
}

func TestInstaller_Check(t *testing.T) {
	f := newInstall(t, true)
	a := mustRef(t, "github://acme/a@1.0.0")
	b := mustRef(t, "github://acme/b@1.0.0")
	for _, r := range []manifest.Ref{a, b} {
		f.repo.publish(r)
		_, err := f.install(r, "")
		require.NoError(t, err)
	}
	idx, _ := f.in.Fetcher.Bases().IndexURL(a.FQN)
	f.repo.set(idx[len(f.repo.srv.URL):], EncodeVersionIndex(a.FQN, []string{"1.0.0", "1.1.0", "2.0.0"}))
	idx, _ = f.in.Fetcher.Bases().IndexURL(b.FQN)
	f.repo.set(idx[len(f.repo.srv.URL):], []byte(`{"connector": "github://acme/b", "versions": ["../../evil"]}`))
	before := snapshot(t, f.in.Store.Root())
	av, err := f.in.Check(context.Background())
	require.NoError(t, err)
	require.Len(t, av, 2)
	require.Equal(t, Available{Connector: "github://acme/a", Installed: []string{"1.0.0"}, Newer: []string{"1.1.0", "2.0.0"}}, av[0])
	require.Equal(t, `github://acme/b: download https://$SRV/acme/b/releases/latest/download/versions.json: downloaded content is not a package file: versions.json: bad version index: invalid version "../../evil": must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.2.3"`, scrub(av[1].Error, f.repo))
	require.Equal(t, before, snapshot(t, f.in.Store.Root()), "check installed something")
}
