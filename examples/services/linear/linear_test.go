package linear

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const key = "lin_api_ServiceTestKey00000000000000000000"

func post(s *Service, auth, ct, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/graphql", strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func gql(query string, vars any) string {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return string(b)
}

func TestGraphQL_Errors(t *testing.T) {
	tests := []struct {
		name   string
		auth   string
		ct     string
		body   string
		status int
		want   string
	}{
		{name: "no_auth", auth: "-", body: gql(`{ viewer { id } }`, nil), status: 400,
			want: `{"errors":[{"message":"Authentication required, not authenticated","extensions":{"code":"AUTHENTICATION_ERROR","type":"authentication error","userError":true,"userPresentableMessage":"You need to authenticate to access this operation."}}]}`},
		{name: "personal_key_as_bearer", auth: "Bearer " + key, body: gql(`{ viewer { id } }`, nil), status: 400,
			want: `{"errors":[{"message":"Authentication required, not authenticated","extensions":{"code":"AUTHENTICATION_ERROR","type":"authentication error","userError":true,"userPresentableMessage":"You need to authenticate to access this operation."}}]}`},
		{name: "form_body_blocked", ct: "application/x-www-form-urlencoded", body: "query=x", status: 400,
			want: "potential Cross-Site Request Forgery"},
		{name: "no_query", body: `{"variables":{}}`, status: 400,
			want: `{"errors":[{"message":"GraphQL operations must contain a non-empty ` + "`query`" + ` or a ` + "`persistedQuery`" + ` extension.","extensions":{"code":"BAD_REQUEST"}}]}`},
		{name: "variables_not_object", body: `{"query":"{ viewer { id } }","variables":[1]}`, status: 400,
			want: "`variables` in a POST body should be provided as an object."},
		{name: "syntax", body: gql(`{ viewer { id }`, nil), status: 400,
			want: `{"errors":[{"message":"Syntax Error: Expected Name, found <EOF>.","locations":[{"line":1,"column":16}],"extensions":{"code":"GRAPHQL_PARSE_FAILED"}}]}`},
		{name: "fragment", body: gql(`{ viewer { ...F } }`, nil), status: 400,
			want: `"The fake Linear API does not support fragments."`},
		{name: "unknown_field", body: gql(`query Q { issues { nodes { id titel } } }`, nil), status: 400,
			want: `{"errors":[{"message":"Cannot query field \"titel\" on type \"Issue\".","locations":[{"line":1,"column":31}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`},
		{name: "unknown_argument", body: gql(`{ issues(last: 2) { nodes { id } } }`, nil), status: 400,
			want: `"Unknown argument \"last\" on field \"Query.issues\"."`},
		{name: "missing_subselection", body: gql(`{ issues { nodes { state } } }`, nil), status: 400,
			want: `"Field \"state\" of type \"WorkflowState!\" must have a selection of subfields. Did you mean \"state { ... }\"?"`},
		{name: "leaf_subselection", body: gql(`{ viewer { name { first } } }`, nil), status: 400,
			want: `"Field \"name\" must not have a selection since type \"String!\" has no subfields."`},
		{name: "required_argument", body: gql(`{ issue { id } }`, nil), status: 400,
			want: `"Field \"issue\" argument \"id\" of type \"String!\" is required, but it was not provided."`},
		{name: "undefined_variable", body: gql(`query Q { issue(id: $id) { id } }`, nil), status: 400,
			want: `"Variable \"$id\" is not defined by operation \"Q\"."`},
		{name: "unused_variable", body: gql(`query Q($x: Int) { viewer { id } }`, nil), status: 400,
			want: `"Variable \"$x\" is never used in operation \"Q\"."`},
		{name: "nullable_variable_in_non_null_position", body: gql(`query Q($id: String) { issue(id: $id) { id } }`, nil), status: 400,
			want: `"Variable \"$id\" of type \"String\" used in position expecting type \"String!\"."`},
		{name: "enum_literal_as_string", body: gql(`{ issues(orderBy: "updatedAt") { nodes { id } } }`, nil), status: 400,
			want: `"Enum \"PaginationOrderBy\" cannot represent non-enum value: \"updatedAt\"."`},
		{name: "bare_enum_where_string_expected", body: gql(`{ issues(filter: { state: { type: { in: [started] } } }) { nodes { id } } }`, nil), status: 400,
			want: `"String cannot represent a non string value: started"`},
		{name: "unknown_filter_field", body: gql(`{ issues(filter: { status: { eq: "x" } }) { nodes { id } } }`, nil), status: 400,
			want: `"Field \"status\" is not defined by type \"IssueFilter\"."`},
		{name: "missing_required_variable", body: gql(`mutation M($input: IssueCreateInput!) { issueCreate(input: $input) { success } }`, nil), status: 400,
			want: `{"errors":[{"message":"Variable \"$input\" of required type \"IssueCreateInput!\" was not provided.","locations":[{"line":1,"column":12}],"extensions":{"code":"BAD_USER_INPUT"}}]}`},
		{name: "variable_unknown_input_field", body: gql(`mutation M($input: IssueCreateInput!) { issueCreate(input: $input) { success } }`, map[string]any{"input": map[string]any{"teamId": "t", "team": "ENG"}}), status: 400,
			want: `"Variable \"$input\" got invalid value {\"team\":\"ENG\",\"teamId\":\"t\"}; Field \"team\" is not defined by type \"IssueCreateInput\"."`},
		{name: "variable_wrong_type", body: gql(`query Q($n: Int!) { issues(first: $n) { nodes { id } } }`, map[string]any{"n": "50"}), status: 400,
			want: `"Variable \"$n\" got invalid value \"50\"; Int cannot represent non-integer value: \"50\""`},
		{name: "nested_variable_path", body: gql(`query Q($f: IssueFilter) { issues(filter: $f) { nodes { id } } }`, map[string]any{"f": map[string]any{"team": map[string]any{"key": map[string]any{"in": []any{"ENG", 3}}}}}), status: 400,
			want: `"Variable \"$f\" got invalid value {\"team\":{\"key\":{\"in\":[\"ENG\",3]}}} at \"f.team.key.in[1]\"; String cannot represent a non string value: 3"`},
		{name: "two_operations_no_name", body: gql(`query A { viewer { id } } query B { viewer { id } }`, nil), status: 400,
			want: `"Must provide operation name if query contains multiple operations."`},
		{name: "subscription", body: gql(`subscription S { viewer { id } }`, nil), status: 400,
			want: `"Schema is not configured to execute subscription operation."`},
		{name: "unknown_team_on_create", body: gql(`mutation M($input: IssueCreateInput!) { issueCreate(input: $input) { success } }`, map[string]any{"input": map[string]any{"teamId": "ENG", "title": "x"}}), status: 200,
			want: `{"data":null,"errors":[{"message":"Entity not found: Team","locations":[{"line":1,"column":41}],"path":["issueCreate"],"extensions":{"code":"INVALID_INPUT","type":"invalid input","userError":true,"userPresentableMessage":"Could not find referenced Team."}}]}`},
		{name: "read_only_key_mutates", auth: "lin_api_ReadOnly", body: gql(`mutation M($input: IssueCreateInput!) { issueCreate(input: $input) { success } }`, map[string]any{"input": map[string]any{"teamId": "x", "title": "x"}}), status: 200,
			want: `"Invalid scope: ` + "`write`" + ` required"`},
		{name: "first_too_large", body: gql(`{ issues(first: 500) { nodes { id } } }`, nil), status: 200,
			want: `"userPresentableMessage":"first must be between 1 and 250"`},
		{name: "int_out_of_range", body: gql(`{ issues(first: 99999999999) { nodes { id } } }`, nil), status: 400,
			want: `"Int cannot represent non 32-bit signed integer value: 99999999999"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.AddKey(key, "read", "write")
			s.AddKey("lin_api_ReadOnly", "read")
			auth := tt.auth
			switch auth {
			case "":
				auth = key
			case "-":
				auth = ""
			}
			ct := tt.ct
			if ct == "" {
				ct = "application/json"
			}
			w := post(s, auth, ct, tt.body)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if strings.HasPrefix(tt.want, "{") {
				require.JSONEq(t, tt.want, w.Body.String())
			} else {
				require.Contains(t, w.Body.String(), tt.want)
			}
			require.Empty(t, s.Issues())
		})
	}
}

func TestGraphQL_QueryAndMutation(t *testing.T) {
	s := New()
	s.AddKey(key, "read", "issues:create")
	s.AddOAuthToken("lin_oauth_token_0000000000000000", "read")
	s.AddIssue("ENG", "First", "Todo", "", 0)

	// Look the team up, then create an issue in it; aliases, __typename
	// and selection order are kept.
	w := post(s, key, "application/json", gql(`query T($k: String!) { teams(filter: {key: {eq: $k}}) { nodes { id key } } }`, map[string]any{"k": "ENG"}))
	var teams struct {
		Data struct {
			Teams struct{ Nodes []struct{ ID, Key string } }
		}
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &teams), w.Body.String())
	require.Len(t, teams.Data.Teams.Nodes, 1)

	w = post(s, key, "application/json", gql(`mutation IssueCreate($input: IssueCreateInput!) {
  issueCreate(input: $input) { success ok: success issue { __typename identifier priorityLabel assignee { name } } }
}`, map[string]any{"input": map[string]any{"teamId": teams.Data.Teams.Nodes[0].ID, "title": "Second", "priority": 1}}))
	require.Equal(t, 200, w.Code)
	require.Equal(t, `{"data":{"issueCreate":{"success":true,"ok":true,"issue":{"__typename":"Issue","identifier":"ENG-2","priorityLabel":"Urgent","assignee":null}}}}`+"\n", w.Body.String())

	// An OAuth token goes after "Bearer"; it may read.
	w = post(s, "Bearer lin_oauth_token_0000000000000000", "application/json", gql(`{ issues(first: 1, orderBy: createdAt) { nodes { identifier } pageInfo { hasNextPage endCursor } } }`, nil))
	require.Contains(t, w.Body.String(), `"nodes":[{"identifier":"ENG-2"}],"pageInfo":{"hasNextPage":true,"endCursor":"`)

	// Pagination with after, and filters with and/or.
	var page struct {
		Data struct {
			Issues struct {
				Nodes    []struct{ Identifier string }
				PageInfo struct{ EndCursor string }
			}
		}
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	w = post(s, key, "application/json", gql(`query P($after: String) { issues(first: 5, after: $after) { nodes { identifier } } }`, map[string]any{"after": page.Data.Issues.PageInfo.EndCursor}))
	require.Contains(t, w.Body.String(), `"nodes":[{"identifier":"ENG-1"}]`)
	w = post(s, key, "application/json", gql(`{ issues(filter: {or: [{priority: {eq: 1}}, {title: {startsWith: "Fi"}}], assignee: {null: true}}) { nodes { identifier } } }`, nil))
	require.Contains(t, w.Body.String(), `"nodes":[{"identifier":"ENG-2"},{"identifier":"ENG-1"}]`)

	require.Len(t, s.Issues(), 2)
	seen := s.Seen()
	require.Equal(t, "IssueCreate", seen[1].Query[9:20])
}

func TestRateLimit(t *testing.T) {
	s := New()
	s.AddKey(key, "read")
	s.RateLimit(1)
	w := post(s, key, "application/json", gql(`{ viewer { id } }`, nil))
	require.Equal(t, 400, w.Code)
	require.Contains(t, w.Body.String(), `"code":"RATELIMITED"`)
	require.Equal(t, "0", w.Header().Get("X-RateLimit-Requests-Remaining"))
	w = post(s, key, "application/json", gql(`{ viewer { email } }`, nil))
	require.JSONEq(t, `{"data":{"viewer":{"email":"bot@aileron.example"}}}`, w.Body.String())
}

func TestParseDocument_Errors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "Syntax Error: Unexpected <EOF>."},
		{"unterminated_string", `{ issue(id: "x) { id } }`, "Syntax Error: Unterminated string."},
		{"bad_escape", `{ issue(id: "\q") { id } }`, "Syntax Error: Invalid character escape sequence."},
		{"bad_number", `{ issues(first: 1x) { nodes { id } } }`, "Syntax Error: Invalid number, expected digit."},
		{"stray_character", `{ viewer { id } } %`, "Syntax Error: Unexpected character: '%'."},
		{"directive", `{ viewer @skip(if: true) { id } }`, "The fake Linear API does not support directives."},
		{"empty_selection", `{ }`, `Syntax Error: Expected Name, found "}".`},
		{"too_deep", "{" + strings.Repeat(" a {", 30) + " b" + strings.Repeat(" }", 31), "Document is nested more than 24 levels deep."},
		{"variable_in_default", `query Q($a: Int = $b) { viewer { id } }`, `Syntax Error: Unexpected "$".`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseDocument(tt.src)
			require.EqualError(t, err, tt.want)
		})
	}
}

func FuzzParseDocument(f *testing.F) {
	for _, seed := range []string{
		`{ viewer { id } }`,
		`query ListIssues($filter: IssueFilter, $first: Int!, $after: String) { issues(filter: $filter, first: $first, after: $after, orderBy: updatedAt) { nodes { id state { name } } pageInfo { hasNextPage endCursor } } }`,
		`mutation M($input: IssueCreateInput! = {teamId: "x", title: "y\u00e9", labelIds: ["a"]}) { issueCreate(input: $input) { success } }`,
		`{ a: issues(first: -1.5e3) { nodes { id } } } # comment`,
		`"""block""" query`,
		`{ teams(filter: {key: null, or: [{name: {eq: "x"}}, {id: {in: ["a"]}}]}) { nodes { id } } issues(filter: {team: {key: {eq: "ENG"}}, assignee: {isMe: {eq: false}}, priority: {lte: 2}}) { nodes { identifier assignee { email } } } }`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		doc, err := parseDocument(src)
		if err != nil {
			return
		}
		// Whatever parses validates and, when valid, executes without
		// panicking.
		s := New()
		s.AddIssue("ENG", "Fix login", "In Progress", "ada@example.com", 1)
		s.AddIssue("OPS", "Rotate keys", "Todo", "", 0)
		s.reqScope = []string{"read", "write"}
		for _, op := range doc.ops {
			if len(validate(op)) == 0 {
				if vars, errs := coerceVariables(op, nil); len(errs) == 0 {
					_, _ = execute(s, op, vars)
				}
			}
		}
	})
}
