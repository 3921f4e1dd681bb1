// Command linear is an example connector for Linear's GraphQL API: it
// creates issues and lists open issues, following cursors.
//
// Linear takes a personal API key in the Authorization header as is, with
// no "Bearer " (that prefix is for OAuth tokens), so the connector writes
// sdk.Credential() alone there. The manifest's credential is an api_key
// with Linear's scopes: listing needs "read", creating needs
// "issues:create" as well (the team is looked up by key first).
//
// GraphQL reports failures in an "errors" list, with HTTP 200 for errors
// during execution and HTTP 400 for requests it could not run; the
// connector turns either into a step error naming the operation, the
// message, Linear's error code and the path.
package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"aileron.dev/aileron/sdk"
)

const endpoint = "https://api.linear.app/graphql"

// Paging of the issues query.
const (
	pageSize     = 50
	maxPages     = 10
	defaultLimit = 50
	maxLimit     = 250
)

type createInput struct {
	// Team is the team's key, e.g. "ENG".
	Team        string `json:"team"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// Priority: 0 none, 1 urgent, 2 high, 3 medium, 4 low.
	Priority int `json:"priority"`
}

type listInput struct {
	// Team is a team key; empty lists every team.
	Team string `json:"team"`
	// Assignee is an email address; empty lists everyone's issues.
	Assignee string `json:"assignee"`
	// IncludeDone also lists completed and canceled issues.
	IncludeDone bool `json:"include_done"`
	Limit       int  `json:"limit"`
}

// issue is what the connector returns for an issue.
type issue struct {
	ID         string `json:"id"`
	Identifier string `json:"identifier"`
	Title      string `json:"title"`
	URL        string `json:"url"`
	Priority   string `json:"priority"`
	State      string `json:"state"`
	Team       string `json:"team"`
	Assignee   string `json:"assignee"`
}

type listOutput struct {
	Issues []issue `json:"issues"`
	Count  int     `json:"count"`
	// Summary is one line per issue, for a chat message or a report:
	// "ENG-12 Fix login (In Progress, Ada Lovelace)".
	Summary string `json:"summary"`
}

// issueFields is the selection the connector reads for an issue.
const issueFields = `id identifier title url priorityLabel state { name } team { key } assignee { name }`

// gqlIssue decodes issueFields.
type gqlIssue struct {
	ID            string `json:"id"`
	Identifier    string `json:"identifier"`
	Title         string `json:"title"`
	URL           string `json:"url"`
	PriorityLabel string `json:"priorityLabel"`
	State         struct {
		Name string `json:"name"`
	} `json:"state"`
	Team struct {
		Key string `json:"key"`
	} `json:"team"`
	Assignee *struct {
		Name string `json:"name"`
	} `json:"assignee"`
}

func (g gqlIssue) issue() issue {
	i := issue{ID: g.ID, Identifier: g.Identifier, Title: g.Title, URL: g.URL, Priority: g.PriorityLabel, State: g.State.Name, Team: g.Team.Key}
	if g.Assignee != nil {
		i.Assignee = g.Assignee.Name
	}
	return i
}

func main() {
	register()
	sdk.Main()
}

func register() {
	sdk.Handle("create_issue", createIssue)
	sdk.Handle("list_issues", listIssues)
}

const teamQuery = `query TeamByKey($key: String!) {
  teams(filter: { key: { eq: $key } }, first: 1) { nodes { id key name } }
}`

const createMutation = `mutation IssueCreate($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { ` + issueFields + ` } }
}`

func createIssue(c *sdk.Call, in createInput) (any, error) {
	switch {
	case in.Team == "" || strings.TrimSpace(in.Title) == "":
		return nil, sdk.Errorf("invalid_input", "team and title are required")
	case in.Priority < 0 || in.Priority > 4:
		return nil, sdk.Errorf("invalid_input", "priority must be 0 (none) to 4 (low)")
	}
	var teams struct {
		Teams struct {
			Nodes []struct{ ID, Key, Name string } `json:"nodes"`
		} `json:"teams"`
	}
	if err := graphql(c, "TeamByKey", teamQuery, map[string]any{"key": in.Team}, &teams); err != nil {
		return nil, err
	}
	if len(teams.Teams.Nodes) == 0 {
		return nil, sdk.Errorf("not_found", "Linear has no team with key %q", in.Team)
	}
	input := map[string]any{"teamId": teams.Teams.Nodes[0].ID, "title": in.Title}
	if in.Description != "" {
		input["description"] = in.Description
	}
	if in.Priority != 0 {
		input["priority"] = in.Priority
	}
	var created struct {
		IssueCreate struct {
			Success bool      `json:"success"`
			Issue   *gqlIssue `json:"issue"`
		} `json:"issueCreate"`
	}
	if err := graphql(c, "IssueCreate", createMutation, map[string]any{"input": input}, &created); err != nil {
		return nil, err
	}
	if !created.IssueCreate.Success || created.IssueCreate.Issue == nil {
		return nil, sdk.Errorf("service_error", "Linear IssueCreate reported no success")
	}
	out := created.IssueCreate.Issue.issue()
	if err := c.Audit("issue_created", map[string]any{"issue": out.Identifier}); err != nil {
		c.Log.Warn("audit event not recorded", "error", err.Error())
	}
	return out, nil
}

const listQuery = `query ListIssues($filter: IssueFilter, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after, orderBy: updatedAt) {
    nodes { ` + issueFields + ` }
    pageInfo { hasNextPage endCursor }
  }
}`

func listIssues(c *sdk.Call, in listInput) (any, error) {
	limit := in.Limit
	switch {
	case limit == 0:
		limit = defaultLimit
	case limit < 0 || limit > maxLimit:
		return nil, sdk.Errorf("invalid_input", "limit must be 1 to %d", maxLimit)
	}
	filter := map[string]any{}
	if in.Team != "" {
		filter["team"] = map[string]any{"key": map[string]any{"eq": in.Team}}
	}
	if in.Assignee != "" {
		filter["assignee"] = map[string]any{"email": map[string]any{"eq": in.Assignee}}
	}
	if !in.IncludeDone {
		filter["state"] = map[string]any{"type": map[string]any{"nin": []string{"completed", "canceled"}}}
	}
	out := listOutput{Issues: []issue{}}
	var after any
	for page := 0; page < maxPages && len(out.Issues) < limit; page++ {
		var resp struct {
			Issues struct {
				Nodes    []gqlIssue `json:"nodes"`
				PageInfo struct {
					HasNextPage bool   `json:"hasNextPage"`
					EndCursor   string `json:"endCursor"`
				} `json:"pageInfo"`
			} `json:"issues"`
		}
		vars := map[string]any{"filter": filter, "first": min(pageSize, limit-len(out.Issues)), "after": after}
		if err := graphql(c, "ListIssues", listQuery, vars, &resp); err != nil {
			return nil, err
		}
		for _, n := range resp.Issues.Nodes {
			out.Issues = append(out.Issues, n.issue())
		}
		if !resp.Issues.PageInfo.HasNextPage {
			break
		}
		after = resp.Issues.PageInfo.EndCursor
	}
	out.Count = len(out.Issues)
	out.Summary = summary(out.Issues)
	return out, nil
}

func summary(issues []issue) string {
	if len(issues) == 0 {
		return "No open issues."
	}
	lines := make([]string, len(issues))
	for i, is := range issues {
		who := is.Assignee
		if who == "" {
			who = "unassigned"
		}
		lines[i] = fmt.Sprintf("%s %s (%s, %s)", is.Identifier, is.Title, is.State, who)
	}
	return strings.Join(lines, "\n")
}

// gqlError is one entry of a GraphQL response's "errors".
type gqlError struct {
	Message    string `json:"message"`
	Path       []any  `json:"path"`
	Extensions struct {
		Code                   string `json:"code"`
		UserPresentableMessage string `json:"userPresentableMessage"`
	} `json:"extensions"`
}

// errorCodes maps Linear's error codes to step error codes.
var errorCodes = map[string]string{
	"AUTHENTICATION_ERROR":      "unauthorized",
	"FORBIDDEN":                 "forbidden",
	"RATELIMITED":               "ratelimited",
	"INVALID_INPUT":             "invalid_input",
	"GRAPHQL_VALIDATION_FAILED": "graphql_validation",
	"GRAPHQL_PARSE_FAILED":      "graphql_validation",
	"BAD_USER_INPUT":            "graphql_validation",
}

// graphql runs one operation and decodes its data into out.
func graphql(c *sdk.Call, op, query string, vars map[string]any, out any) error {
	resp, err := c.HTTP.PostJSON(endpoint, map[string]string{"Authorization": sdk.Credential()},
		map[string]any{"query": query, "variables": vars, "operationName": op})
	if err != nil {
		return err
	}
	var body struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := resp.Decode(&body); err != nil {
		return sdk.Errorf("service_error", "Linear %s answered HTTP %d without a GraphQL response", op, resp.Status)
	}
	if len(body.Errors) > 0 {
		return graphqlError(op, body.Errors)
	}
	if resp.Status != 200 || len(body.Data) == 0 || string(body.Data) == "null" {
		return sdk.Errorf("service_error", "Linear %s answered HTTP %d with no data", op, resp.Status)
	}
	if err := json.Unmarshal(body.Data, out); err != nil {
		return sdk.Errorf("bad_response", "Linear %s: decode data: %v", op, err)
	}
	return nil
}

// graphqlError reports every error; the code is that of the first.
func graphqlError(op string, errs []gqlError) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		m := e.Message
		if p := e.Extensions.UserPresentableMessage; p != "" && p != m {
			m += ": " + p
		}
		var tags []string
		if e.Extensions.Code != "" {
			tags = append(tags, e.Extensions.Code)
		}
		if len(e.Path) > 0 {
			parts := make([]string, len(e.Path))
			for j, p := range e.Path {
				parts[j] = fmt.Sprint(p)
			}
			tags = append(tags, "at "+strings.Join(parts, "."))
		}
		if len(tags) > 0 {
			m += " (" + strings.Join(tags, ", ") + ")"
		}
		msgs[i] = m
	}
	code, ok := errorCodes[errs[0].Extensions.Code]
	if !ok {
		code = "graphql_error"
	}
	return sdk.Errorf(code, "Linear %s: %s", op, strings.Join(msgs, "; "))
}
