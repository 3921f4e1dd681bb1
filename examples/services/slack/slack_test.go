package slack

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const tok = "xoxb-test-0000-service"

func do(s *Service, method, path, ct, auth, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
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

func TestAPI_Errors(t *testing.T) {
	const js = "application/json; charset=utf-8"
	tests := []struct {
		name   string
		scopes []string
		method string
		path   string
		ct     string
		auth   string
		body   string
		status int
		want   string
	}{
		{name: "no_token", method: "POST", path: "/api/chat.postMessage", ct: js, body: `{"channel":"#general","text":"x"}`,
			status: 200, want: `{"ok":false,"error":"not_authed"}`},
		{name: "unknown_token", method: "POST", path: "/api/chat.postMessage", ct: js, auth: "Bearer xoxb-nope", body: `{"channel":"#general","text":"x"}`,
			status: 200, want: `{"ok":false,"error":"invalid_auth"}`},
		{name: "not_bearer", method: "POST", path: "/api/chat.postMessage", ct: js, auth: tok, body: `{}`,
			status: 200, want: `{"ok":false,"error":"invalid_auth"}`},
		{name: "token_in_json_body_ignored", method: "POST", path: "/api/chat.postMessage", ct: js, body: `{"token":"` + tok + `","channel":"#general","text":"x"}`,
			status: 200, want: `{"ok":false,"error":"not_authed"}`},
		{name: "missing_scope", scopes: []string{"channels:read"}, method: "POST", path: "/api/chat.postMessage", ct: js, auth: "Bearer " + tok, body: `{"channel":"#general","text":"x"}`,
			status: 200, want: `{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"channels:read"}`},
		{name: "no_text", method: "POST", path: "/api/chat.postMessage", ct: js, auth: "Bearer " + tok, body: `{"channel":"#general"}`,
			status: 200, want: `{"ok":false,"error":"no_text"}`},
		{name: "channel_not_string", method: "POST", path: "/api/chat.postMessage", ct: js, auth: "Bearer " + tok, body: `{"channel":7,"text":"x"}`,
			status: 200, want: `{"ok":false,"error":"invalid_arguments","response_metadata":{"messages":["[ERROR] invalid type for channel: expected string"]}}`},
		{name: "bad_json", method: "POST", path: "/api/chat.postMessage", ct: js, auth: "Bearer " + tok, body: `{`,
			status: 200, want: `{"ok":false,"error":"invalid_json"}`},
		{name: "unsupported_content_type", method: "POST", path: "/api/chat.postMessage", ct: "text/plain", auth: "Bearer " + tok, body: `hi`,
			status: 200, want: `{"ok":false,"error":"invalid_form_data"}`},
		{name: "json_without_charset_warns", method: "POST", path: "/api/chat.postMessage", ct: "application/json", auth: "Bearer " + tok, body: `{"channel":"#nope","text":"x"}`,
			status: 200, want: `{"ok":false,"error":"channel_not_found","warning":"missing_charset","response_metadata":{"warnings":["missing_charset"]}}`},
		{name: "bad_limit", scopes: []string{"channels:read"}, method: "GET", path: "/api/conversations.list?limit=1000", auth: "Bearer " + tok,
			status: 200, want: `{"ok":false,"error":"invalid_limit"}`},
		{name: "bad_cursor", scopes: []string{"channels:read"}, method: "GET", path: "/api/conversations.list?cursor=bm9wZQ==", auth: "Bearer " + tok,
			status: 200, want: `{"ok":false,"error":"invalid_cursor"}`},
		{name: "private_needs_groups_read", scopes: []string{"channels:read"}, method: "GET", path: "/api/conversations.list?types=public_channel,private_channel", auth: "Bearer " + tok,
			status: 200, want: `{"ok":false,"error":"missing_scope","needed":"groups:read","provided":"channels:read"}`},
		{name: "bad_types", scopes: []string{"channels:read"}, method: "GET", path: "/api/conversations.list?types=dm", auth: "Bearer " + tok,
			status: 200, want: `{"ok":false,"error":"invalid_types"}`},
		{name: "unknown_method", method: "POST", path: "/api/chat.postMesage", ct: js, auth: "Bearer " + tok, body: `{}`,
			status: 404, want: `{"ok":false,"error":"unknown_method","req_method":"chat.postMesage"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			scopes := tt.scopes
			if scopes == nil {
				scopes = []string{"chat:write"}
			}
			s.AddToken(tok, scopes...)
			w := do(s, tt.method, tt.path, tt.ct, tt.auth, tt.body)
			require.Equal(t, tt.status, w.Code)
			require.JSONEq(t, tt.want, w.Body.String())
			require.Empty(t, s.Messages())
		})
	}
}

func TestPostMessage_FormAndJSON(t *testing.T) {
	s := New()
	s.AddToken(tok, "chat:write")
	w := do(s, "POST", "/api/chat.postMessage", "application/x-www-form-urlencoded", "", "token="+tok+"&channel=C0100GENRL&text=hello")
	require.Contains(t, w.Body.String(), `"ok":true`)
	w = do(s, "POST", "/api/chat.postMessage", "application/json; charset=utf-8", "Bearer "+tok, `{"channel":"#engineering","text":"hi","thread_ts":"1.000001"}`)
	var got struct {
		OK      bool   `json:"ok"`
		Channel string `json:"channel"`
		TS      string `json:"ts"`
		Message struct {
			Text     string `json:"text"`
			ThreadTS string `json:"thread_ts"`
			BotID    string `json:"bot_id"`
		} `json:"message"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.True(t, got.OK)
	require.Equal(t, "C0300ENGNR", got.Channel)
	require.Equal(t, "1.000001", got.Message.ThreadTS)
	require.Equal(t, BotID, got.Message.BotID)
	require.Equal(t, "chat:write", w.Header().Get("X-OAuth-Scopes"))
	msgs := s.Messages()
	require.Len(t, msgs, 2)
	require.Equal(t, got.TS, msgs[1].TS)
}

func TestConversationsList_Pages(t *testing.T) {
	s := New()
	s.AddToken(tok, "channels:read")
	var names []string
	cursor := ""
	for pages := 1; ; pages++ {
		w := do(s, "GET", "/api/conversations.list?limit=2&exclude_archived=true&cursor="+cursor, "", "Bearer "+tok, "")
		var page struct {
			OK       bool `json:"ok"`
			Channels []struct {
				Name string `json:"name"`
			} `json:"channels"`
			Meta struct {
				Next string `json:"next_cursor"`
			} `json:"response_metadata"`
		}
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
		require.True(t, page.OK, w.Body.String())
		for _, c := range page.Channels {
			names = append(names, c.Name)
		}
		if page.Meta.Next == "" {
			require.Equal(t, 2, pages)
			break
		}
		b, err := base64.StdEncoding.DecodeString(page.Meta.Next)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(b), "team:C"))
		cursor = page.Meta.Next
	}
	require.Equal(t, []string{"general", "random", "engineering", "releases"}, names)

	// A JSON body is not read by a read method: the cursor is ignored.
	w := do(s, "POST", "/api/conversations.list", "application/json; charset=utf-8", "Bearer "+tok, `{"limit":1}`)
	require.Equal(t, 5, strings.Count(w.Body.String(), `"name_normalized"`)) // default limit; archived included, private excluded
}

func TestRateLimit(t *testing.T) {
	s := New()
	s.AddToken(tok, "chat:write")
	s.RateLimit(2, 3)
	for i := 0; i < 2; i++ {
		w := do(s, "POST", "/api/chat.postMessage", "application/json; charset=utf-8", "Bearer "+tok, `{"channel":"#general","text":"x"}`)
		require.Equal(t, http.StatusTooManyRequests, w.Code)
		require.Equal(t, "3", w.Header().Get("Retry-After"))
		require.JSONEq(t, `{"ok":false,"error":"ratelimited"}`, w.Body.String())
	}
	w := do(s, "POST", "/api/chat.postMessage", "application/json; charset=utf-8", "Bearer "+tok, `{"channel":"#general","text":"x"}`)
	require.Equal(t, http.StatusOK, w.Code)
	require.Len(t, s.Seen(), 3)
	require.Len(t, s.Messages(), 1)
}

func TestOAuthRefreshRotates(t *testing.T) {
	s := New()
	s.AddRefreshToken("xoxe-1-first", "cid.123", "csecret", "chat:write")
	form := "grant_type=refresh_token&refresh_token=xoxe-1-first&client_id=cid.123&client_secret=csecret"
	w := do(s, "POST", "/api/oauth.v2.access", "application/x-www-form-urlencoded", "", form)
	var got struct {
		OK      bool   `json:"ok"`
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
		Expires int    `json:"expires_in"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.True(t, got.OK, w.Body.String())
	require.Equal(t, 43200, got.Expires)
	require.True(t, strings.HasPrefix(got.Access, "xoxe.xoxb-1-"))

	// The new access token works; the old refresh token does not.
	w = do(s, "POST", "/api/chat.postMessage", "application/json; charset=utf-8", "Bearer "+got.Access, `{"channel":"#general","text":"x"}`)
	require.Contains(t, w.Body.String(), `"ok":true`)
	w = do(s, "POST", "/api/oauth.v2.access", "application/x-www-form-urlencoded", "", form)
	require.JSONEq(t, `{"ok":false,"error":"invalid_refresh_token"}`, w.Body.String())

	// Client authentication by basic auth, with a wrong secret.
	r := httptest.NewRequest("POST", "/api/oauth.v2.access", strings.NewReader("grant_type=refresh_token&refresh_token="+got.Refresh))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("cid.123", "wrong")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	require.JSONEq(t, `{"ok":false,"error":"bad_client_secret"}`, rec.Body.String())
}

// FuzzServeHTTP sends arbitrary methods, queries, content types and
// bodies: the fake must answer, never panic.
func FuzzServeHTTP(f *testing.F) {
	f.Add("/api/chat.postMessage", "", "application/json; charset=utf-8", `{"channel":"#general","text":"x","blocks":[{}]}`)
	f.Add("/api/conversations.list", "limit=2&cursor=dGVhbTpDMDIwMFJBTkRN&types=public_channel,private_channel", "", "")
	f.Add("/api/oauth.v2.access", "", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=r&client_id=c")
	f.Fuzz(func(t *testing.T, path, query, ct, body string) {
		s := New()
		s.AddToken(tok, "chat:write", "channels:read")
		s.AddRefreshToken("r", "c", "secret")
		for _, method := range []string{"GET", "POST"} {
			r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set("Content-Type", ct)
			s.ServeHTTP(httptest.NewRecorder(), r)
		}
	})
}
