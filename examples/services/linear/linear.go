// Package linear is a fake of Linear's GraphQL API
// (https://api.linear.app/graphql) for tests and the demo. It parses,
// validates and executes real GraphQL documents against a subset of
// Linear's schema (teams, users, workflow states, issues; the issues and
// teams queries with filters and cursor pagination; the issueCreate
// mutation), with graphql-js's error messages, so a connector's query
// mistakes fail here as they would against Linear:
//
//   - a personal API key goes in the Authorization header as is
//     ("lin_api_..."), an OAuth token after "Bearer "; a personal key
//     sent as a bearer token is refused, as Linear does;
//   - keys carry scopes (read, write, issues:create, admin);
//   - syntax and validation errors are HTTP 400 with {"errors": [...]};
//     execution errors (an unknown team, a missing scope) are HTTP 200
//     with "data" and "errors" side by side;
//   - [Service.RateLimit] answers RATELIMITED errors.
//
// It records every request it receives ([Service.Seen]).
package linear

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Org is the fake workspace's URL key.
const Org = "aileron"

// Issue is a stored issue.
type Issue struct {
	ID          string
	Identifier  string
	Number      int
	Title       string
	Description string
	Priority    int
	// Team is the team key, State the workflow state's name, Assignee the
	// assignee's email ("" if unassigned).
	Team     string
	State    string
	Assignee string
	URL      string
	Created  time.Time
	Updated  time.Time
}

// Request is one request as the service received it.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   string
	// OperationName, Query and Variables are from the JSON body, if it
	// decoded.
	OperationName string
	Query         string
	Variables     map[string]any
	At            time.Time
}

type user struct{ id, name, displayName, email string }

type state struct {
	id, name, typ, color string
	position             float64
}

type team struct {
	id, key, name string
	states        []*state
	next          int // next issue number
}

type issue struct {
	id, title, description string
	number, priority       int
	team                   *team
	state                  *state
	assignee, creator      *user
	created, updated       time.Time
}

// Service is the fake Linear workspace. Create it with New.
type Service struct {
	mu       sync.Mutex
	keys     map[string][]string // personal API key -> scopes
	oauth    map[string][]string // OAuth access token -> scopes
	viewer   *user
	users    []*user
	teams    []*team
	issues   []*issue
	seen     []Request
	limited  int
	syncID   int
	clock    time.Time
	reqScope []string // scopes of the request being executed
}

// New returns a workspace with teams ENG (Engineering) and OPS
// (Operations), each with the workflow states Backlog, Todo, In Progress,
// In Review, Done and Canceled, users ada@example.com and
// grace@example.com, and no issues and no keys.
func New() *Service {
	s := &Service{keys: map[string][]string{}, oauth: map[string][]string{}, clock: time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)}
	s.viewer = &user{uuid(), "Aileron Bot", "aileron", "bot@aileron.example"}
	s.users = []*user{s.viewer, {uuid(), "Ada Lovelace", "ada", "ada@example.com"}, {uuid(), "Grace Hopper", "grace", "grace@example.com"}}
	for _, t := range []struct{ key, name string }{{"ENG", "Engineering"}, {"OPS", "Operations"}} {
		tm := &team{id: uuid(), key: t.key, name: t.name, next: 1}
		for i, st := range []struct{ name, typ, color string }{
			{"Backlog", "backlog", "#bec2c8"}, {"Todo", "unstarted", "#e2e2e2"}, {"In Progress", "started", "#f2c94c"},
			{"In Review", "started", "#0f783c"}, {"Done", "completed", "#5e6ad2"}, {"Canceled", "canceled", "#95a2b3"},
		} {
			tm.states = append(tm.states, &state{uuid(), st.name, st.typ, st.color, float64(i)})
		}
		s.teams = append(s.teams, tm)
	}
	return s
}

// AddKey makes a personal API key valid with scopes (read, write,
// issues:create, admin).
func (s *Service) AddKey(key string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = slices.Clone(scopes)
}

// AddOAuthToken makes an OAuth access token valid with scopes.
func (s *Service) AddOAuthToken(token string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth[token] = slices.Clone(scopes)
}

// AddIssue adds an issue to the team with key teamKey, in the named
// workflow state, assigned to the user with assigneeEmail ("" for none).
// It panics on an unknown team, state or user: it is for setting up tests.
func (s *Service) AddIssue(teamKey, title, stateName, assigneeEmail string, priority int) Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.teamBy(teamKey)
	if t == nil {
		panic("linear: no team " + teamKey)
	}
	i := s.newIssue(t, title, "", priority)
	if i.state = t.stateNamed(stateName); i.state == nil {
		panic("linear: no state " + stateName)
	}
	if assigneeEmail != "" {
		if i.assignee = s.userBy(assigneeEmail); i.assignee == nil {
			panic("linear: no user " + assigneeEmail)
		}
	}
	return i.export()
}

// RateLimit makes the next n requests fail with a RATELIMITED error.
func (s *Service) RateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited = n
}

// Seen returns the requests received so far.
func (s *Service) Seen() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// Issues returns the issues, oldest first.
func (s *Service) Issues() []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Issue, len(s.issues))
	for i, is := range s.issues {
		out[i] = is.export()
	}
	return out
}

func (s *Service) newIssue(t *team, title, description string, priority int) *issue {
	s.clock = s.clock.Add(time.Minute)
	i := &issue{id: uuid(), title: title, description: description, number: t.next, priority: priority, team: t,
		state: t.stateNamed("Todo"), creator: s.viewer, created: s.clock, updated: s.clock}
	t.next++
	s.issues = append(s.issues, i)
	return i
}

func (i *issue) identifier() string { return fmt.Sprintf("%s-%d", i.team.key, i.number) }

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func (i *issue) url() string {
	slug := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(i.title), "-"), "-")
	if len(slug) > 60 {
		slug = strings.TrimRight(slug[:60], "-")
	}
	return fmt.Sprintf("https://linear.app/%s/issue/%s/%s", Org, i.identifier(), slug)
}

func (i *issue) export() Issue {
	e := Issue{ID: i.id, Identifier: i.identifier(), Number: i.number, Title: i.title, Description: i.description, Priority: i.priority,
		Team: i.team.key, State: i.state.name, URL: i.url(), Created: i.created, Updated: i.updated}
	if i.assignee != nil {
		e.Assignee = i.assignee.email
	}
	return e
}

func (t *team) stateNamed(name string) *state {
	for _, st := range t.states {
		if st.name == name || st.id == name {
			return st
		}
	}
	return nil
}

func (s *Service) teamBy(ref string) *team {
	for _, t := range s.teams {
		if t.id == ref || t.key == ref {
			return t
		}
	}
	return nil
}

func (s *Service) userBy(ref string) *user {
	for _, u := range s.users {
		if u.id == ref || u.email == ref {
			return u
		}
	}
	return nil
}

// GraphQL objects are maps, read field by field by the executor.

func userObj(u *user) any {
	if u == nil {
		return nil
	}
	return map[string]any{"id": u.id, "name": u.name, "displayName": u.displayName, "email": u.email, "active": true}
}

func teamObj(t *team) map[string]any {
	return map[string]any{"id": t.id, "key": t.key, "name": t.name, "description": nil}
}

func stateObj(st *state) map[string]any {
	return map[string]any{"id": st.id, "name": st.name, "type": st.typ, "color": st.color, "position": st.position}
}

var priorityLabels = []string{"No priority", "Urgent", "High", "Medium", "Low"}

func issueObj(i *issue) map[string]any {
	var completed any
	if i.state.typ == "completed" {
		completed = i.updated.Format(time.RFC3339Nano)
	}
	var desc any
	if i.description != "" {
		desc = i.description
	}
	return map[string]any{
		"id": i.id, "identifier": i.identifier(), "number": float64(i.number), "title": i.title, "description": desc,
		"priority": float64(i.priority), "priorityLabel": priorityLabels[i.priority], "url": i.url(),
		"branchName": strings.ToLower(i.identifier()), "createdAt": i.created.Format(time.RFC3339Nano),
		"updatedAt": i.updated.Format(time.RFC3339Nano), "completedAt": completed,
		"team": teamObj(i.team), "state": stateObj(i.state), "assignee": userObj(i.assignee), "creator": userObj(i.creator),
	}
}

// Errors as Linear's API reports them.

func linearError(msg, code, typ, presentable string) *gqlError {
	return &gqlError{Message: msg, Extensions: map[string]any{"type": typ, "code": code, "userError": true, "userPresentableMessage": presentable}}
}

var errUnauthenticated = linearError("Authentication required, not authenticated", "AUTHENTICATION_ERROR", "authentication error", "You need to authenticate to access this operation.")

func notFound(entity string) *gqlError {
	return linearError("Entity not found: "+entity, "INVALID_INPUT", "invalid input", "Could not find referenced "+entity+".")
}

func invalidInput(presentable string) *gqlError {
	return linearError("Argument Validation Error", "INVALID_INPUT", "invalid input", presentable)
}

// root implements resolver.
func (s *Service) root(typeName, field string, args map[string]any) (any, error) {
	need := []string{"read", "write", "admin"}
	if typeName == "Mutation" {
		need = []string{"write", "issues:create", "admin"}
	}
	if !slices.ContainsFunc(need, func(sc string) bool { return slices.Contains(s.reqScope, sc) }) {
		return nil, linearError(fmt.Sprintf("Invalid scope: `%s` required", need[0]), "FORBIDDEN", "forbidden",
			fmt.Sprintf("The API key does not have the %s scope.", need[0]))
	}
	switch typeName + "." + field {
	case "Query.viewer":
		return userObj(s.viewer), nil
	case "Query.team":
		t := s.teamBy(args["id"].(string))
		if t == nil {
			return nil, notFound("Team")
		}
		return teamObj(t), nil
	case "Query.teams":
		var all []map[string]any
		for _, t := range s.teams {
			o := teamObj(t)
			if f, ok := args["filter"].(map[string]any); !ok || s.matches("TeamFilter", f, o) {
				all = append(all, o)
			}
		}
		return paginate(all, args)
	case "Query.issue":
		for _, i := range s.issues {
			if ref := args["id"].(string); i.id == ref || i.identifier() == ref {
				return issueObj(i), nil
			}
		}
		return nil, notFound("Issue")
	case "Query.issues":
		sorted := slices.Clone(s.issues)
		by := func(i *issue) time.Time { return i.created }
		if args["orderBy"] == "updatedAt" {
			by = func(i *issue) time.Time { return i.updated }
		}
		sort.SliceStable(sorted, func(a, b int) bool { return by(sorted[a]).After(by(sorted[b])) })
		var all []map[string]any
		for _, i := range sorted {
			o := issueObj(i)
			if f, ok := args["filter"].(map[string]any); !ok || s.matches("IssueFilter", f, o) {
				all = append(all, o)
			}
		}
		return paginate(all, args)
	case "Mutation.issueCreate":
		return s.issueCreate(args["input"].(map[string]any))
	}
	return nil, fmt.Errorf("BUG(linear fake): no resolver for %s.%s", typeName, field)
}

func (s *Service) issueCreate(in map[string]any) (any, error) {
	t := s.teamBy(str(in["teamId"]))
	if t == nil || t.key == str(in["teamId"]) { // Linear wants the team's id, not its key
		return nil, notFound("Team")
	}
	title := strings.TrimSpace(str(in["title"]))
	if title == "" {
		return nil, invalidInput("title should not be empty")
	}
	p, _ := in["priority"].(int64)
	if p < 0 || p > 4 {
		return nil, invalidInput("priority must not be greater than 4 or less than 0")
	}
	var st *state
	if id := str(in["stateId"]); id != "" {
		if st = t.stateNamed(id); st == nil || st.id != id {
			return nil, notFound("WorkflowState")
		}
	}
	var assignee *user
	if id := str(in["assigneeId"]); id != "" {
		if assignee = s.userBy(id); assignee == nil || assignee.id != id {
			return nil, notFound("User")
		}
	}
	i := s.newIssue(t, title, str(in["description"]), int(p))
	if st != nil {
		i.state = st
	}
	i.assignee = assignee
	s.syncID++
	return map[string]any{"success": true, "issue": issueObj(i), "lastSyncId": float64(1000 + s.syncID)}, nil
}

// paginate returns a connection of all, from after (a node id) on.
func paginate(all []map[string]any, args map[string]any) (any, error) {
	first := int64(50)
	if n, ok := args["first"].(int64); ok {
		first = n
	}
	if first < 1 || first > 250 {
		return nil, invalidInput("first must be between 1 and 250")
	}
	start := 0
	if after, ok := args["after"].(string); ok && after != "" {
		i := slices.IndexFunc(all, func(o map[string]any) bool { return o["id"] == after })
		if i < 0 {
			return nil, invalidInput("The cursor is not valid")
		}
		start = i + 1
	}
	end := min(start+int(first), len(all))
	nodes := make([]any, 0, end-start)
	for _, o := range all[start:end] {
		nodes = append(nodes, o)
	}
	info := map[string]any{"hasNextPage": end < len(all), "hasPreviousPage": start > 0, "startCursor": nil, "endCursor": nil}
	if len(nodes) > 0 {
		info["startCursor"], info["endCursor"] = all[start]["id"], all[end-1]["id"]
	}
	return map[string]any{"nodes": nodes, "pageInfo": info}, nil
}

// matches evaluates a filter input object of type typeName on obj (nil
// for a null relation).
func (s *Service) matches(typeName string, filter map[string]any, obj map[string]any) bool {
	for k, fv := range filter {
		if fv == nil {
			continue // a null filter field constrains nothing
		}
		switch k {
		case "and", "or":
			list, _ := fv.([]any)
			some, all := false, true
			for _, e := range list {
				sub, _ := e.(map[string]any)
				m := s.matches(typeName, sub, obj)
				some, all = some || m, all && m
			}
			if (k == "and" && !all) || (k == "or" && !some && len(list) > 0) {
				return false
			}
			continue
		case "null":
			if (obj == nil) != (fv == true) {
				return false
			}
			continue
		case "isMe":
			if !compare(fv.(map[string]any), obj != nil && obj["id"] == s.viewer.id) {
				return false
			}
			continue
		}
		if obj == nil {
			return false
		}
		ft := parseType(inputTypes[typeName][k]).named()
		if strings.HasSuffix(ft, "Comparator") {
			if !compare(fv.(map[string]any), obj[k]) {
				return false
			}
			continue
		}
		sub, _ := obj[k].(map[string]any)
		if !s.matches(ft, fv.(map[string]any), sub) {
			return false
		}
	}
	return true
}

// compare applies a comparator input object to v.
func compare(cmp map[string]any, v any) bool {
	for op, want := range cmp {
		var ok bool
		switch op {
		case "eq":
			ok = equal(v, want)
		case "neq":
			ok = !equal(v, want)
		case "in", "nin":
			list, _ := want.([]any)
			ok = slices.ContainsFunc(list, func(w any) bool { return equal(v, w) }) == (op == "in")
		case "eqIgnoreCase":
			ok = strings.EqualFold(str(v), str(want))
		case "neqIgnoreCase":
			ok = !strings.EqualFold(str(v), str(want))
		case "contains":
			ok = strings.Contains(str(v), str(want))
		case "containsIgnoreCase":
			ok = strings.Contains(strings.ToLower(str(v)), strings.ToLower(str(want)))
		case "startsWith":
			ok = strings.HasPrefix(str(v), str(want))
		case "endsWith":
			ok = strings.HasSuffix(str(v), str(want))
		case "lt", "lte", "gt", "gte":
			a, b := num(v), num(want)
			ok = map[string]bool{"lt": a < b, "lte": a <= b, "gt": a > b, "gte": a >= b}[op]
		case "null":
			ok = (v == nil) == (want == true)
		}
		if !ok {
			return false
		}
	}
	return true
}

func equal(a, b any) bool {
	if fa, ok := a.(float64); ok {
		return fa == num(b)
	}
	return a == b || (a != nil && b != nil && str(a) == str(b))
}

func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	}
	return 0
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	var req struct {
		Query         *string         `json:"query"`
		OperationName *string         `json:"operationName"`
		Variables     json.RawMessage `json:"variables"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	bodyErr := dec.Decode(&req)

	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body), At: time.Now()}
	if req.Query != nil {
		rec.Query = *req.Query
	}
	if req.OperationName != nil {
		rec.OperationName = *req.OperationName
	}
	var vars map[string]any
	if len(req.Variables) > 0 && string(req.Variables) != "null" {
		vd := json.NewDecoder(bytes.NewReader(req.Variables))
		vd.UseNumber()
		if vd.Decode(&vars) != nil {
			vars = nil
		}
	}
	rec.Variables = vars
	s.seen = append(s.seen, rec)

	if r.URL.Path != "/graphql" {
		respond(w, http.StatusNotFound, nil, []*gqlError{{Message: "Cannot " + r.Method + " " + r.URL.Path}})
		return
	}
	if s.limited > 0 {
		s.limited--
		w.Header().Set("X-RateLimit-Requests-Limit", "1500")
		w.Header().Set("X-RateLimit-Requests-Remaining", "0")
		w.Header().Set("X-RateLimit-Requests-Reset", strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10))
		respond(w, http.StatusBadRequest, nil, []*gqlError{linearError("Rate limit exceeded", "RATELIMITED", "ratelimited", "Too many requests, please try again later.")})
		return
	}
	scopes, ok := s.authenticate(r.Header.Get("Authorization"))
	if !ok {
		respond(w, http.StatusBadRequest, nil, []*gqlError{errUnauthenticated})
		return
	}
	if r.Method != http.MethodPost {
		respond(w, http.StatusMethodNotAllowed, nil, []*gqlError{{Message: "Only POST requests are supported by the fake Linear API."}})
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		respond(w, http.StatusBadRequest, nil, []*gqlError{{Message: "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). Please either specify a 'content-type' header (with a type that is not one of application/x-www-form-urlencoded, multipart/form-data, text/plain) or provide a non-empty value for one of the following headers: x-apollo-operation-name, apollo-require-preflight", Extensions: map[string]any{"code": "BAD_REQUEST"}}})
		return
	}
	switch {
	case bodyErr != nil:
		respond(w, http.StatusBadRequest, nil, []*gqlError{{Message: "POST body is not valid JSON: " + bodyErr.Error(), Extensions: map[string]any{"code": "BAD_REQUEST"}}})
		return
	case req.Query == nil || *req.Query == "":
		respond(w, http.StatusBadRequest, nil, []*gqlError{{Message: "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.", Extensions: map[string]any{"code": "BAD_REQUEST"}}})
		return
	case len(req.Variables) > 0 && string(req.Variables) != "null" && vars == nil:
		respond(w, http.StatusBadRequest, nil, []*gqlError{{Message: "`variables` in a POST body should be provided as an object.", Extensions: map[string]any{"code": "BAD_REQUEST"}}})
		return
	}
	doc, err := parseDocument(*req.Query)
	if err != nil {
		ge := err.(*gqlError)
		ge.Extensions = map[string]any{"code": "GRAPHQL_PARSE_FAILED"}
		respond(w, http.StatusBadRequest, nil, []*gqlError{ge})
		return
	}
	op, ge := pickOperation(doc, req.OperationName)
	if ge != nil {
		respond(w, http.StatusBadRequest, nil, []*gqlError{ge})
		return
	}
	if errs := validate(op); len(errs) > 0 {
		for _, e := range errs {
			e.Extensions = map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}
		}
		respond(w, http.StatusBadRequest, nil, errs)
		return
	}
	coerced, errs := coerceVariables(op, vars)
	if len(errs) > 0 {
		for _, e := range errs {
			e.Extensions = map[string]any{"code": "BAD_USER_INPUT"}
		}
		respond(w, http.StatusBadRequest, nil, errs)
		return
	}
	s.reqScope = scopes
	data, errs := execute(s, op, coerced)
	respond(w, http.StatusOK, data, errs)
}

// authenticate checks the Authorization header: a personal API key as is,
// or an OAuth access token after "Bearer ".
func (s *Service) authenticate(h string) ([]string, bool) {
	table, cred := s.keys, h
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		// Security: personal keys are not bearer tokens; Linear refuses
		// "Bearer lin_api_...", and so does the fake.
		table, cred = s.oauth, tok
	}
	if cred == "" {
		return nil, false
	}
	for k, scopes := range table {
		if subtle.ConstantTimeCompare([]byte(k), []byte(cred)) == 1 {
			return scopes, true
		}
	}
	return nil, false
}

func pickOperation(doc *document, name *string) (*operation, *gqlError) {
	bad := func(msg string) (*operation, *gqlError) {
		return nil, &gqlError{Message: msg, Extensions: map[string]any{"code": "OPERATION_RESOLUTION_FAILURE"}}
	}
	if name == nil || *name == "" {
		if len(doc.ops) > 1 {
			return bad("Must provide operation name if query contains multiple operations.")
		}
		return doc.ops[0], nil
	}
	for _, op := range doc.ops {
		if op.name == *name {
			return op, nil
		}
	}
	return bad(fmt.Sprintf("Unknown operation named \"%s\".", *name))
}

func respond(w http.ResponseWriter, status int, data any, errs []*gqlError) {
	out := ordered{}
	if status == http.StatusOK {
		out = append(out, kv{"data", data})
	}
	if len(errs) > 0 {
		out = append(out, kv{"errors", errs})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
