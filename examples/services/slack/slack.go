// Package slack is a fake of the Slack Web API (https://slack.com/api/...)
// for tests and the demo. It follows the real API's shapes closely enough
// to catch connector mistakes:
//
//   - a bearer token (or a form "token" field) is required; unknown tokens
//     get invalid_auth, missing ones not_authed, and each method checks the
//     token's scopes (missing_scope with needed/provided);
//   - errors are HTTP 200 with {"ok": false, "error": "..."}, except rate
//     limits: HTTP 429, a Retry-After header in seconds and
//     {"ok": false, "error": "ratelimited"} ([Service.RateLimit]);
//   - chat.postMessage takes JSON (and warns missing_charset when the
//     Content-Type has no charset, as Slack does) or a form;
//   - conversations.list pages with opaque cursors in
//     response_metadata.next_cursor, may return fewer items than asked
//     ([Service.MaxPageSize]) and rejects bad limits and cursors;
//   - oauth.v2.access rotates refresh tokens ([Service.AddRefreshToken]).
//
// It records every request it receives ([Service.Seen]) so tests can
// assert on exactly what reached the service.
package slack

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Channel is a conversation in the fake workspace.
type Channel struct {
	ID         string
	Name       string
	Topic      string
	Purpose    string
	IsPrivate  bool
	IsArchived bool
	// IsMember says whether the app's bot user is in the channel; a bot
	// can only post where it is a member (not_in_channel otherwise).
	IsMember   bool
	NumMembers int
	Created    int64
}

// Message is a message the service accepted.
type Message struct {
	Channel  string
	TS       string
	Text     string
	ThreadTS string
	Blocks   json.RawMessage
}

// Request is one request as the service received it.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   string
	At     time.Time
}

// Service is the fake Slack workspace. Create it with New.
type Service struct {
	mu         sync.Mutex
	tokens     map[string][]string // access token -> scopes
	refresh    map[string]refreshGrant
	channels   []Channel
	messages   []Message
	seen       []Request
	limited    int
	retryAfter int
	pageCap    int
	seq        int
}

type refreshGrant struct {
	clientID, clientSecret string
	scopes                 []string
}

// Team is the fake workspace's team id.
const Team = "T0AILERON"

// BotUser and BotID identify the app's bot in posted messages.
const (
	BotUser = "U0AILBOT1"
	BotID   = "B0AILBOT1"
)

// New returns a workspace with a few channels: #general, #engineering and
// #releases (the bot is a member), #random (it is not), #old-launch
// (archived) and #leadership (private, the bot is not a member). It has no
// tokens: add them with AddToken.
func New() *Service {
	s := &Service{tokens: map[string][]string{}, refresh: map[string]refreshGrant{}}
	for _, c := range []Channel{
		{ID: "C0100GENRL", Name: "general", Topic: "Company-wide announcements", IsMember: true, NumMembers: 42},
		{ID: "C0200RANDM", Name: "random", Topic: "Non-work banter", NumMembers: 40},
		{ID: "C0300ENGNR", Name: "engineering", Topic: "Building things", Purpose: "Engineering chatter", IsMember: true, NumMembers: 12},
		{ID: "C0400RLSES", Name: "releases", Topic: "What shipped", IsMember: true, NumMembers: 30},
		{ID: "C0500OLDLN", Name: "old-launch", Topic: "Launch of 2019", IsArchived: true, IsMember: true, NumMembers: 8},
		{ID: "G0600LEADS", Name: "leadership", IsPrivate: true, NumMembers: 5},
	} {
		s.AddChannel(c)
	}
	return s
}

// AddToken makes token valid with the given scopes.
func (s *Service) AddToken(token string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = slices.Clone(scopes)
}

// AddRefreshToken lets oauth.v2.access exchange refresh for a new access
// token with scopes, authenticating the app by clientID and clientSecret.
// Each exchange rotates the refresh token, as Slack's token rotation does.
func (s *Service) AddRefreshToken(refresh, clientID, clientSecret string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh[refresh] = refreshGrant{clientID, clientSecret, slices.Clone(scopes)}
}

// AddChannel adds a channel; a zero Created is set to a fixed time.
func (s *Service) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Created == 0 {
		c.Created = 1449252889 + int64(len(s.channels))*86400
	}
	s.channels = append(s.channels, c)
}

// RateLimit makes the next n API calls fail with HTTP 429 and
// Retry-After: retryAfter (seconds).
func (s *Service) RateLimit(n, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited, s.retryAfter = n, retryAfter
}

// MaxPageSize makes conversations.list return at most n channels a page
// whatever the limit asked for (Slack may return fewer than the limit).
// Zero means no cap.
func (s *Service) MaxPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageCap = n
}

// Seen returns the requests received so far.
func (s *Service) Seen() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// Messages returns the messages posted so far.
func (s *Service) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(body), At: time.Now()})

	method, ok := strings.CutPrefix(r.URL.Path, "/api/")
	if !ok || method == "" {
		http.NotFound(w, r)
		return
	}
	if s.limited > 0 {
		s.limited--
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter))
		reply(w, http.StatusTooManyRequests, obj{"ok": false, "error": "ratelimited"})
		return
	}
	// Slack reads JSON bodies only for write methods; a read method
	// given JSON sees no arguments at all (a connector paging that way
	// would loop on the first page).
	a, errCode := parseArgs(r, body, method == "chat.postMessage")
	if errCode != "" {
		reply(w, http.StatusOK, obj{"ok": false, "error": errCode})
		return
	}
	switch method {
	case "oauth.v2.access":
		s.oauthAccess(w, r, a)
		return
	case "chat.postMessage", "conversations.list":
	default:
		reply(w, http.StatusNotFound, obj{"ok": false, "error": "unknown_method", "req_method": method})
		return
	}

	token := a.token
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_auth"})
			return
		}
		token = t
	}
	if token == "" {
		reply(w, http.StatusOK, obj{"ok": false, "error": "not_authed"})
		return
	}
	scopes, ok := s.lookup(token)
	if !ok {
		reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_auth"})
		return
	}
	w.Header().Set("X-OAuth-Scopes", strings.Join(scopes, ","))
	switch method {
	case "chat.postMessage":
		w.Header().Set("X-Accepted-OAuth-Scopes", "chat:write")
		s.postMessage(w, a, scopes)
	case "conversations.list":
		w.Header().Set("X-Accepted-OAuth-Scopes", "channels:read,groups:read,mpim:read,im:read")
		s.conversationsList(w, a, scopes)
	}
}

func (s *Service) lookup(token string) ([]string, bool) {
	for t, sc := range s.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			return sc, true
		}
	}
	return nil, false
}

// args are a call's arguments from the query, a form or a JSON body.
type args struct {
	str     map[string]string
	raw     map[string]json.RawMessage // JSON bodies only
	token   string
	json    bool
	charset bool
}

func (a args) get(k string) string { return a.str[k] }

// parseArgs reads arguments the way Slack does: the query string, plus a
// form body on POST, or a JSON body if acceptJSON. It returns a Slack
// error code for a body it cannot read.
func parseArgs(r *http.Request, body []byte, acceptJSON bool) (args, string) {
	a := args{str: map[string]string{}}
	for k, v := range r.URL.Query() {
		a.str[k] = v[0]
	}
	if r.Method != http.MethodPost {
		return a, ""
	}
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return a, "invalid_form_data"
		}
		for k, v := range form {
			a.str[k] = v[0]
		}
		a.token = a.str["token"]
	case "application/json":
		a.json, a.charset = true, params["charset"] != ""
		if !acceptJSON {
			return a, ""
		}
		if err := json.Unmarshal(body, &a.raw); err != nil {
			return a, "invalid_json"
		}
		for k, v := range a.raw {
			var s string
			if json.Unmarshal(v, &s) == nil {
				a.str[k] = s
			} else if string(v) == "true" || string(v) == "false" {
				a.str[k] = string(v)
			} else {
				a.str[k] = string(v) // numbers and structures, verbatim
			}
		}
	case "":
		if len(body) > 0 {
			return a, "invalid_form_data"
		}
	default:
		return a, "invalid_form_data"
	}
	return a, ""
}

func (s *Service) postMessage(w http.ResponseWriter, a args, scopes []string) {
	if !slices.Contains(scopes, "chat:write") {
		reply(w, http.StatusOK, missingScope("chat:write", scopes))
		return
	}
	warn := func(o obj) obj {
		if a.json && !a.charset {
			o["warning"] = "missing_charset"
			o["response_metadata"] = obj{"warnings": []string{"missing_charset"}}
		}
		return o
	}
	if raw, ok := a.raw["channel"]; ok && !isJSONString(raw) {
		reply(w, http.StatusOK, warn(obj{"ok": false, "error": "invalid_arguments", "response_metadata": obj{"messages": []string{"[ERROR] invalid type for channel: expected string"}}}))
		return
	}
	c := s.channel(a.get("channel"))
	switch {
	case c == nil, c.IsPrivate && !c.IsMember:
		reply(w, http.StatusOK, warn(obj{"ok": false, "error": "channel_not_found"}))
		return
	case c.IsArchived:
		reply(w, http.StatusOK, warn(obj{"ok": false, "error": "is_archived"}))
		return
	case !c.IsMember:
		reply(w, http.StatusOK, warn(obj{"ok": false, "error": "not_in_channel"}))
		return
	}
	text := a.get("text")
	var blocks json.RawMessage
	if b := a.raw["blocks"]; len(b) > 0 && string(b) != "null" {
		blocks = b
	} else if b := a.str["blocks"]; b != "" && !a.json {
		blocks = json.RawMessage(b)
	}
	switch {
	case text == "" && blocks == nil:
		reply(w, http.StatusOK, warn(obj{"ok": false, "error": "no_text"}))
		return
	case len(text) > 40000:
		reply(w, http.StatusOK, warn(obj{"ok": false, "error": "msg_too_long"}))
		return
	case blocks != nil && !json.Valid(blocks):
		reply(w, http.StatusOK, warn(obj{"ok": false, "error": "invalid_blocks"}))
		return
	}
	s.seq++
	ts := fmt.Sprintf("%d.%06d", time.Now().Unix(), s.seq)
	m := Message{Channel: c.ID, TS: ts, Text: text, ThreadTS: a.get("thread_ts"), Blocks: blocks}
	s.messages = append(s.messages, m)
	msg := obj{"type": "message", "subtype": "bot_message", "text": text, "user": BotUser, "bot_id": BotID, "team": Team, "ts": ts}
	if m.ThreadTS != "" {
		msg["thread_ts"] = m.ThreadTS
	}
	reply(w, http.StatusOK, warn(obj{"ok": true, "channel": c.ID, "ts": ts, "message": msg}))
}

// channel finds a channel by id, or by name with or without "#".
func (s *Service) channel(ref string) *Channel {
	name := strings.TrimPrefix(ref, "#")
	for i := range s.channels {
		if c := &s.channels[i]; c.ID == ref || c.Name == name {
			return c
		}
	}
	return nil
}

// typeScopes maps conversation types to the scope that lists them.
var typeScopes = map[string]string{
	"public_channel":  "channels:read",
	"private_channel": "groups:read",
	"mpim":            "mpim:read",
	"im":              "im:read",
}

func (s *Service) conversationsList(w http.ResponseWriter, a args, scopes []string) {
	types := []string{"public_channel"}
	if t := a.get("types"); t != "" {
		types = strings.Split(t, ",")
	}
	for _, t := range types {
		need, ok := typeScopes[t]
		if !ok {
			reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_types"})
			return
		}
		if !slices.Contains(scopes, need) {
			reply(w, http.StatusOK, missingScope(need, scopes))
			return
		}
	}
	limit := 100
	if l := a.get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 999 {
			reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_limit"})
			return
		}
		limit = n
	}
	if s.pageCap > 0 {
		limit = min(limit, s.pageCap)
	}
	excludeArchived := a.get("exclude_archived") == "true" || a.get("exclude_archived") == "1"

	var match []Channel
	for _, c := range s.channels {
		kind := "public_channel"
		if c.IsPrivate {
			kind = "private_channel"
		}
		if !slices.Contains(types, kind) || (c.IsPrivate && !c.IsMember) || (excludeArchived && c.IsArchived) {
			continue
		}
		match = append(match, c)
	}
	start := 0
	if cur := a.get("cursor"); cur != "" {
		id, ok := decodeCursor(cur)
		i := slices.IndexFunc(match, func(c Channel) bool { return c.ID == id })
		if !ok || i < 0 {
			reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_cursor"})
			return
		}
		start = i
	}
	end := min(start+limit, len(match))
	page := make([]obj, 0, end-start)
	for _, c := range match[start:end] {
		page = append(page, channelJSON(c))
	}
	next := ""
	if end < len(match) {
		next = base64.StdEncoding.EncodeToString([]byte("team:" + match[end].ID))
	}
	reply(w, http.StatusOK, obj{"ok": true, "channels": page, "response_metadata": obj{"next_cursor": next}})
}

func decodeCursor(c string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	return strings.CutPrefix(string(b), "team:")
}

func channelJSON(c Channel) obj {
	return obj{
		"id": c.ID, "name": c.Name, "name_normalized": c.Name,
		"is_channel": !c.IsPrivate, "is_group": c.IsPrivate, "is_im": false, "is_mpim": false,
		"is_private": c.IsPrivate, "is_archived": c.IsArchived, "is_general": c.Name == "general",
		"is_member": c.IsMember, "is_shared": false, "is_ext_shared": false, "is_org_shared": false,
		"created": c.Created, "creator": "U0100ADMIN", "unlinked": 0, "context_team_id": Team,
		"topic":          obj{"value": c.Topic, "creator": "", "last_set": 0},
		"purpose":        obj{"value": c.Purpose, "creator": "", "last_set": 0},
		"previous_names": []string{}, "num_members": c.NumMembers,
	}
}

// oauthAccess implements the refresh_token grant of oauth.v2.access, with
// the client authenticated by HTTP basic auth or form fields.
func (s *Service) oauthAccess(w http.ResponseWriter, r *http.Request, a args) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = a.get("client_id"), a.get("client_secret")
	}
	if a.get("grant_type") != "refresh_token" {
		reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_grant_type"})
		return
	}
	g, ok := s.refresh[a.get("refresh_token")]
	switch {
	case !ok:
		reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_refresh_token"})
		return
	case id != g.clientID:
		reply(w, http.StatusOK, obj{"ok": false, "error": "invalid_client_id"})
		return
	case subtle.ConstantTimeCompare([]byte(secret), []byte(g.clientSecret)) != 1:
		reply(w, http.StatusOK, obj{"ok": false, "error": "bad_client_secret"})
		return
	}
	delete(s.refresh, a.get("refresh_token"))
	access, refresh := "xoxe.xoxb-1-"+randHex(24), "xoxe-1-"+randHex(24)
	s.tokens[access] = g.scopes
	s.refresh[refresh] = g
	reply(w, http.StatusOK, obj{
		"ok": true, "app_id": "A0AILERON", "access_token": access, "token_type": "bot",
		"scope": strings.Join(g.scopes, ","), "bot_user_id": BotUser, "team": obj{"id": Team, "name": "Aileron Test"},
		"expires_in": 43200, "refresh_token": refresh,
	})
}

func missingScope(need string, have []string) obj {
	return obj{"ok": false, "error": "missing_scope", "needed": need, "provided": strings.Join(have, ",")}
}

func isJSONString(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil
}

type obj = map[string]any

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
