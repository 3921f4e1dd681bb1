// Command slack is an example connector for the Slack Web API. It posts
// messages (chat.postMessage) and lists public channels
// (conversations.list, following cursors).
//
// Authentication is an OAuth 2 bot token: the connector writes
// sdk.Bearer() into the Authorization header and the broker attaches the
// token (and refreshes it) host-side. The manifest asks for the scopes
// chat:write and channels:read, and declares per intent which one it
// needs, so an action that only posts never grants channel listing.
//
// Slack answers rate-limited calls with HTTP 429 and Retry-After. The
// connector waits and retries while the total wait stays inside
// waitBudget, a third of the default 30 s invocation deadline; a longer
// Retry-After fails the step at once with code "ratelimited" rather than
// sleeping into the deadline and being killed.
package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"aileron.dev/aileron/sdk"
)

const api = "https://slack.com/api/"

// Retry policy for HTTP 429.
const (
	waitBudget  = 10 * time.Second // total Retry-After waited in one invocation
	maxAttempts = 5                // requests per call, the first included
)

// Paging of conversations.list.
const (
	pageSize       = 200  // Slack recommends no more than 200
	maxPages       = 20   // keeps a call well inside the broker's request budget
	defaultMaxList = 1000 // channels returned when the input sets no limit
)

type postInput struct {
	Channel  string `json:"channel"`
	Text     string `json:"text"`
	ThreadTS string `json:"thread_ts,omitempty"`
}

type postOutput struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
	Text    string `json:"text"`
}

type listInput struct {
	IncludeArchived bool `json:"include_archived"`
	Limit           int  `json:"limit"`
}

// channel is the part of a Slack conversation object the connector returns.
type channel struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	IsPrivate  bool   `json:"is_private"`
	IsArchived bool   `json:"is_archived"`
	IsMember   bool   `json:"is_member"`
	NumMembers int    `json:"num_members"`
	Topic      string `json:"topic"`
}

type listOutput struct {
	Channels []channel `json:"channels"`
	Count    int       `json:"count"`
}

func main() {
	register()
	sdk.Main()
}

func register() {
	sdk.Handle("post_message", postMessage)
	sdk.Handle("list_channels", listChannels)
}

func postMessage(c *sdk.Call, in postInput) (any, error) {
	if in.Channel == "" || in.Text == "" {
		return nil, sdk.Errorf("invalid_input", "channel and text are required")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	var out struct {
		Channel string `json:"channel"`
		TS      string `json:"ts"`
		Message struct {
			Text string `json:"text"`
		} `json:"message"`
	}
	err = call(c, "chat.postMessage", sdk.Request{
		Method: "POST",
		URL:    api + "chat.postMessage",
		// Slack warns (missing_charset) about JSON without a charset.
		Headers: map[string]string{"Authorization": sdk.Bearer(), "Content-Type": "application/json; charset=utf-8"},
		Body:    body,
	}, &out)
	if err != nil {
		return nil, err
	}
	// The message is posted: an audit failure must not fail the step, or
	// a retry would post it twice.
	if err := c.Audit("message_posted", map[string]any{"channel": out.Channel, "ts": out.TS}); err != nil {
		c.Log.Warn("audit event not recorded", "error", err.Error())
	}
	return postOutput{Channel: out.Channel, TS: out.TS, Text: out.Message.Text}, nil
}

func listChannels(c *sdk.Call, in listInput) (any, error) {
	limit := in.Limit
	if limit <= 0 {
		limit = defaultMaxList
	}
	out := listOutput{Channels: []channel{}}
	cursor := ""
	for page := 0; page < maxPages; page++ {
		q := url.Values{"types": {"public_channel"}, "limit": {strconv.Itoa(min(pageSize, limit-len(out.Channels)))}}
		if !in.IncludeArchived {
			q.Set("exclude_archived", "true")
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var resp struct {
			Channels []struct {
				channel
				Topic struct {
					Value string `json:"value"`
				} `json:"topic"`
			} `json:"channels"`
			ResponseMetadata struct {
				NextCursor string `json:"next_cursor"`
			} `json:"response_metadata"`
		}
		err := call(c, "conversations.list", sdk.Request{
			Method:  "GET",
			URL:     api + "conversations.list?" + q.Encode(),
			Headers: map[string]string{"Authorization": sdk.Bearer()},
		}, &resp)
		if err != nil {
			return nil, err
		}
		for _, ch := range resp.Channels {
			ch.channel.Topic = ch.Topic.Value
			out.Channels = append(out.Channels, ch.channel)
		}
		cursor = resp.ResponseMetadata.NextCursor
		if cursor == "" || len(out.Channels) >= limit {
			out.Count = len(out.Channels)
			return out, nil
		}
	}
	return nil, sdk.Errorf("too_many_pages", "conversations.list returned more than %d pages; set a limit", maxPages)
}

// slackError is the common part of every Web API response.
type slackError struct {
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	Needed   string `json:"needed"`
	Provided string `json:"provided"`
}

// call sends req, waits out rate limits within the budget, and decodes a
// successful response into out. A response with "ok": false becomes an
// error whose code is Slack's error string (channel_not_found, ...).
func call(c *sdk.Call, method string, req sdk.Request, out any) error {
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return err
		}
		if resp.Status == 429 {
			wait := retryAfter(resp.Header("Retry-After"))
			if attempt >= maxAttempts || waited+wait > waitBudget {
				return sdk.Errorf("ratelimited", "Slack rate-limited %s (Retry-After %s) after %d attempts and %s of waiting; the wait budget is %s, try again later",
					method, wait, attempt, waited, waitBudget)
			}
			c.Log.Warn("rate limited by Slack; waiting", "method", method, "retry_after_ms", wait.Milliseconds(), "attempt", attempt)
			time.Sleep(wait)
			waited += wait
			continue
		}
		if resp.Status != 200 {
			return sdk.Errorf("service_error", "Slack %s answered HTTP %d: %s", method, resp.Status, truncate(resp.Body))
		}
		var se slackError
		if err := resp.Decode(&se); err != nil {
			return sdk.Errorf("bad_response", "Slack %s: %v", method, err)
		}
		if !se.OK {
			if se.Error == "missing_scope" {
				return sdk.Errorf(se.Error, "Slack %s: the token lacks scope %s (it has %s)", method, se.Needed, se.Provided)
			}
			return sdk.Errorf(se.Error, "Slack %s: %s", method, se.Error)
		}
		return resp.Decode(out)
	}
}

// retryAfter reads Retry-After seconds; Slack always sends it with a 429,
// so a missing or odd value waits one second.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return time.Second
	}
	return time.Duration(min(n, 86400)) * time.Second
}

func truncate(b []byte) string {
	const max = 200
	if len(b) > max {
		return fmt.Sprintf("%s... (%d bytes)", b[:max], len(b))
	}
	return string(b)
}
