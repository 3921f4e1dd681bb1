package main

import (
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/examples/services/linear"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/sdk"
	"aileron.dev/aileron/sdk/sdktest"
)

const key = "lin_api_UnitTestKey0000000000000000000000"

func TestMain(m *testing.M) {
	register()
	os.Exit(m.Run())
}

func TestManifestMatchesHandlers(t *testing.T) {
	m, err := manifest.LoadManifest("manifest.toml")
	require.NoError(t, err)
	require.Equal(t, sdk.Intents(), slices.Sorted(slices.Values(m.Provides.Intents)))
}

func newHost(scopes ...string) (*linear.Service, *sdktest.Host) {
	svc := linear.New()
	svc.AddKey(key, scopes...)
	return svc, &sdktest.Host{Service: svc, Hosts: []string{"api.linear.app:443"}, Credential: key}
}

func TestCreateIssue(t *testing.T) {
	svc, h := newHost("read", "issues:create")
	out, err := createIssue(h.Call("run-1/create", 1), createInput{Team: "ENG", Title: "Fix the login page", Description: "It 500s", Priority: 2})
	require.NoError(t, err)
	got := out.(issue)
	require.Equal(t, "ENG-1", got.Identifier)
	require.Equal(t, "Todo", got.State)
	require.Equal(t, "High", got.Priority)
	require.Equal(t, "https://linear.app/aileron/issue/ENG-1/fix-the-login-page", got.URL)

	issues := svc.Issues()
	require.Len(t, issues, 1)
	require.Equal(t, "It 500s", issues[0].Description)
	seen := svc.Seen()
	require.Len(t, seen, 2)
	require.Equal(t, []string{"TeamByKey", "IssueCreate"}, []string{seen[0].OperationName, seen[1].OperationName})
	for _, r := range seen {
		require.Equal(t, key, r.Header.Get("Authorization")) // no "Bearer " for a personal key
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	}
}

func TestListIssues(t *testing.T) {
	svc, h := newHost("read")
	svc.AddIssue("ENG", "Fix login", "In Progress", "ada@example.com", 1)
	svc.AddIssue("ENG", "Write docs", "Todo", "", 3)
	svc.AddIssue("ENG", "Ship v1", "Done", "grace@example.com", 2)
	svc.AddIssue("OPS", "Rotate keys", "Todo", "grace@example.com", 2)
	for i := 0; i < 60; i++ {
		svc.AddIssue("OPS", "Old chore", "Canceled", "", 0)
	}

	out, err := listIssues(h.Call("run-1/list", 1), listInput{Team: "ENG"})
	require.NoError(t, err)
	got := out.(listOutput)
	require.Equal(t, 2, got.Count)
	require.Equal(t, "ENG-2 Write docs (Todo, unassigned)\nENG-1 Fix login (In Progress, Ada Lovelace)", got.Summary)

	out, err = listIssues(h.Call("run-1/list", 1), listInput{Assignee: "grace@example.com", IncludeDone: true})
	require.NoError(t, err)
	require.Equal(t, "OPS-1 Rotate keys (Todo, Grace Hopper)\nENG-3 Ship v1 (Done, Grace Hopper)", out.(listOutput).Summary)

	// 64 issues with done ones: two pages.
	out, err = listIssues(h.Call("run-1/list", 1), listInput{IncludeDone: true, Limit: 250})
	require.NoError(t, err)
	require.Equal(t, 64, out.(listOutput).Count)
	seen := svc.Seen()
	last := seen[len(seen)-1]
	require.NotNil(t, last.Variables["after"])
}

func TestLinear_Errors(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		cred   string
		run    func(c *sdk.Call) error
		want   string
	}{
		{name: "unknown_team", scopes: []string{"read", "issues:create"},
			run:  func(c *sdk.Call) error { _, err := createIssue(c, createInput{Team: "NOPE", Title: "x"}); return err },
			want: `not_found: Linear has no team with key "NOPE"`},
		{name: "bad_priority", run: func(c *sdk.Call) error {
			_, err := createIssue(c, createInput{Team: "ENG", Title: "x", Priority: 7})
			return err
		},
			want: "invalid_input: priority must be 0 (none) to 4 (low)"},
		{name: "read_only_key", scopes: []string{"read"},
			run:  func(c *sdk.Call) error { _, err := createIssue(c, createInput{Team: "ENG", Title: "x"}); return err },
			want: "forbidden: Linear IssueCreate: Invalid scope: `write` required: The API key does not have the write scope. (FORBIDDEN, at issueCreate)"},
		{name: "wrong_key", scopes: []string{"read"}, cred: "lin_api_WrongKey000000000000000000000000",
			run:  func(c *sdk.Call) error { _, err := listIssues(c, listInput{}); return err },
			want: "unauthorized: Linear ListIssues: Authentication required, not authenticated: You need to authenticate to access this operation. (AUTHENTICATION_ERROR)"},
		{name: "bad_limit", run: func(c *sdk.Call) error { _, err := listIssues(c, listInput{Limit: 500}); return err },
			want: "invalid_input: limit must be 1 to 250"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, h := newHost(tt.scopes...)
			if tt.cred != "" {
				h.Credential = tt.cred
			}
			require.EqualError(t, tt.run(h.Call("run-1/x", 1)), tt.want)
			require.Empty(t, svc.Issues())
		})
	}
}

// A query mistake is reported with GraphQL's message, the code and where.
func TestGraphQLValidationErrorSurfaced(t *testing.T) {
	_, h := newHost("read")
	err := graphql(h.Call("run-1/x", 1), "Bad", `query Bad { issues { nodes { id titel } } }`, nil, &struct{}{})
	require.EqualError(t, err, `graphql_validation: Linear Bad: Cannot query field "titel" on type "Issue". (GRAPHQL_VALIDATION_FAILED)`)
}
