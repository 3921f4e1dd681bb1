package main

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/examples/services/slack"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/sdk"
	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/sdk/sdktest"
)

const token = "xoxb-1111-2222-unit-test-token"

func TestMain(m *testing.M) {
	register()
	os.Exit(m.Run())
}

// The manifest lists exactly the intents the code registers.
func TestManifestMatchesHandlers(t *testing.T) {
	m, err := manifest.LoadManifest("manifest.toml")
	require.NoError(t, err)
	require.Equal(t, sdk.Intents(), slices.Sorted(slices.Values(m.Provides.Intents)))
}

func newHost(scopes ...string) (*slack.Service, *sdktest.Host) {
	svc := slack.New()
	svc.AddToken(token, scopes...)
	return svc, &sdktest.Host{Service: svc, Hosts: []string{"slack.com:443"}, Credential: token}
}

func TestPostMessage(t *testing.T) {
	svc, h := newHost("chat:write")
	out, err := postMessage(h.Call("run-1/post", 1), postInput{Channel: "#releases", Text: "v1.2 is out"})
	require.NoError(t, err)
	got := out.(postOutput)
	require.Equal(t, "C0400RLSES", got.Channel)
	require.Equal(t, "v1.2 is out", got.Text)

	msgs := svc.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, got.TS, msgs[0].TS)
	// The connector wrote the placeholder; the service got the token.
	require.Equal(t, "Bearer {{aileron.credential}}", h.Sent()[0].Headers["Authorization"])
	seen := svc.Seen()
	require.Equal(t, "Bearer "+token, seen[0].Header.Get("Authorization"))
	require.Equal(t, "application/json; charset=utf-8", seen[0].Header.Get("Content-Type"))
}

func TestPostMessage_Errors(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		cred   string
		in     postInput
		code   string
		msg    string
	}{
		{name: "missing_input", scopes: []string{"chat:write"}, in: postInput{Channel: "#general"}, code: "invalid_input", msg: "channel and text are required"},
		{name: "unknown_channel", scopes: []string{"chat:write"}, in: postInput{Channel: "#nope", Text: "x"}, code: "channel_not_found", msg: "Slack chat.postMessage: channel_not_found"},
		{name: "bot_not_member", scopes: []string{"chat:write"}, in: postInput{Channel: "#random", Text: "x"}, code: "not_in_channel", msg: "Slack chat.postMessage: not_in_channel"},
		{name: "archived", scopes: []string{"chat:write"}, in: postInput{Channel: "old-launch", Text: "x"}, code: "is_archived", msg: "Slack chat.postMessage: is_archived"},
		{name: "private_not_member", scopes: []string{"chat:write"}, in: postInput{Channel: "#leadership", Text: "x"}, code: "channel_not_found", msg: "Slack chat.postMessage: channel_not_found"},
		{name: "missing_scope", scopes: []string{"channels:read"}, in: postInput{Channel: "#general", Text: "x"}, code: "missing_scope", msg: "Slack chat.postMessage: the token lacks scope chat:write (it has channels:read)"},
		{name: "revoked_token", scopes: []string{"chat:write"}, cred: "xoxb-revoked-token-9999", in: postInput{Channel: "#general", Text: "x"}, code: "invalid_auth", msg: "Slack chat.postMessage: invalid_auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, h := newHost(tt.scopes...)
			if tt.cred != "" {
				h.Credential = tt.cred
			}
			_, err := postMessage(h.Call("run-1/post", 1), tt.in)
			var ae *abi.Error
			require.True(t, errors.As(err, &ae), "%v", err)
			require.Equal(t, tt.code, ae.Code)
			require.Equal(t, tt.msg, ae.Message)
			require.Empty(t, svc.Messages())
		})
	}
}

func TestListChannels_FollowsCursors(t *testing.T) {
	svc, h := newHost("channels:read")
	svc.MaxPageSize(2) // Slack may return fewer than asked
	out, err := listChannels(h.Call("run-1/list", 1), listInput{})
	require.NoError(t, err)
	got := out.(listOutput)
	var names []string
	for _, c := range got.Channels {
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"general", "random", "engineering", "releases"}, names)
	require.Equal(t, 4, got.Count)
	require.Equal(t, "Building things", got.Channels[2].Topic)

	seen := svc.Seen()
	require.Len(t, seen, 2)
	require.Empty(t, seen[0].Query.Get("cursor"))
	require.NotEmpty(t, seen[1].Query.Get("cursor"))
	require.Equal(t, "true", seen[1].Query.Get("exclude_archived"))

	// With archived channels and a limit.
	out, err = listChannels(h.Call("run-1/list", 1), listInput{IncludeArchived: true, Limit: 3})
	require.NoError(t, err)
	require.Equal(t, 3, out.(listOutput).Count)
}

func TestRateLimit_WaitsRetryAfter(t *testing.T) {
	svc, h := newHost("chat:write")
	svc.RateLimit(1, 1)
	start := time.Now()
	_, err := postMessage(h.Call("run-1/post", 1), postInput{Channel: "#general", Text: "hi"})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), time.Second)
	require.Len(t, svc.Seen(), 2)
	require.Len(t, svc.Messages(), 1)
}

func TestRateLimit_BeyondBudgetFailsAtOnce(t *testing.T) {
	svc, h := newHost("chat:write")
	svc.RateLimit(1, 120)
	start := time.Now()
	_, err := postMessage(h.Call("run-1/post", 1), postInput{Channel: "#general", Text: "hi"})
	require.EqualError(t, err, "ratelimited: Slack rate-limited chat.postMessage (Retry-After 2m0s) after 1 attempts and 0s of waiting; the wait budget is 10s, try again later")
	require.Less(t, time.Since(start), time.Second)
	require.Empty(t, svc.Messages())
}
