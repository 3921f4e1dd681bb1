package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/examples/kit"
	"aileron.dev/aileron/examples/services/linear"
	"aileron.dev/aileron/examples/services/slack"
	"aileron.dev/aileron/examples/services/stripe"
	"aileron.dev/aileron/manifest"
)

// The example connectors (Slack, Linear, Stripe) run here through the real
// supervisor, broker and sandboxed workers against the fake services,
// routed behind the real host names.

const (
	slackToken   = "xoxb-2001-3001-integration-token-7c1e"
	slackRefresh = "xoxe-1-integration-refresh-token-55aa"
	slackSecret  = "slack-client-secret-0f9d8e7c6b5a"
	linearKey    = "lin_api_IntegrationKey00000000000000000000"
	stripeKey    = "sk_test_51AileronIntegrationKey00000000"
)

// secrets are every credential byte string the tests put in the vault.
var secrets = []string{slackToken, slackRefresh, slackSecret, linearKey, stripeKey}

// exampleEnv is an env with the three fake services.
type exampleEnv struct {
	*env
	slack  *slack.Service
	linear *linear.Service
	stripe *stripe.Service
}

func newExampleEnv(t *testing.T, extraConfig string) *exampleEnv {
	t.Helper()
	x := &exampleEnv{slack: slack.New(), linear: linear.New(), stripe: stripe.New()}
	x.slack.AddToken(slackToken, "chat:write", "channels:read")
	x.slack.AddRefreshToken(slackRefresh, "2001.3001", slackSecret, "chat:write", "channels:read")
	x.linear.AddKey(linearKey, "read", "issues:create")
	x.stripe.AddSecretKey(stripeKey)
	x.env = newEnvWith(t, envOptions{Config: extraConfig, Services: map[string]http.Handler{"slack.com": x.slack, "api.linear.app": x.linear, "api.stripe.com": x.stripe}})
	return x
}

// installSlack installs the Slack connector and stores its OAuth token.
func (x *exampleEnv) installSlack() *manifest.Manifest {
	x.t.Helper()
	x.ok("", "connector", "install", "--yes", pkgDirs["slack"])
	m := packages["slack"]
	tok, err := json.Marshal(map[string]string{
		"access_token": slackToken, "refresh_token": slackRefresh, "expiry": time.Now().Add(12 * time.Hour).UTC().Format(time.RFC3339),
		"token_url": "https://slack.com/api/oauth.v2.access", "client_id": "2001.3001", "client_secret": slackSecret,
	})
	require.NoError(x.t, err)
	x.ok(string(tok), "vault", "set", "slack-bot", "--kind", "oauth2", "--connector", m.Connector.Name.String(), "--scope", "chat:write", "--scope", "channels:read")
	return m
}

// addExample pins examples/actions/NAME.toml to the packed connectors and
// adds it.
func (x *exampleEnv) addExample(name string, ms ...*manifest.Manifest) {
	x.t.Helper()
	path := filepath.Join(x.home, name+".toml")
	require.NoError(x.t, kit.PinAction(filepath.Join(kit.RepoRoot(), "examples/actions", name+".toml"), path, ms...))
	x.ok("", "action", "add", path)
}

// actionWith writes a one-step action granting caps to m and returns its
// path.
func (x *exampleEnv) actionWith(m *manifest.Manifest, name, intent, with string, caps ...string) string {
	x.t.Helper()
	q := make([]string, len(caps))
	for i, c := range caps {
		q[i] = fmt.Sprintf("%q", c)
	}
	src := fmt.Sprintf(`[action]
name = %q
version = "0.1.0"

[[requires.connectors]]
name = %q
version = %q
hash = %q
capabilities = [%s]

[[steps]]
id = "only"
connector = %q
intent = %q
with = %s
`, name, m.Connector.Name, m.Connector.Version, m.Connector.ProvenanceHash, strings.Join(q, ", "), m.Connector.Name, intent, with)
	path := filepath.Join(x.home, name+".toml")
	require.NoError(x.t, os.WriteFile(path, []byte(src), 0o600))
	return path
}

// runResult is `aileron run --json` output.
type runResult struct {
	RunID string `json:"run_id"`
	Steps []struct {
		ID       string          `json:"id"`
		Output   json.RawMessage `json:"output"`
		Log      string          `json:"log"`
		Attempts int             `json:"attempts"`
	} `json:"steps"`
	Output    json.RawMessage `json:"output"`
	Isolation []string        `json:"isolation"`
}

// isolation is the run flag of the example tests: under
// AILERON_STRICT_TESTS=1 (CI) they refuse to run without every isolation
// layer, so the example connectors are shown to work fully sandboxed.
func isolation() []string {
	if os.Getenv("AILERON_STRICT_TESTS") == "1" {
		return []string{"--isolation", "strict"}
	}
	return nil
}

// run runs an action with --json and requires success; no credential may
// appear anywhere in what the CLI printed.
func (x *exampleEnv) run(args ...string) runResult {
	x.t.Helper()
	r := x.aileron("", append(append([]string{"run", "--json"}, isolation()...), args...)...)
	require.Equal(x.t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	requireNoSecrets(x.t, r.stdout+r.stderr)
	var res runResult
	require.NoError(x.t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	return res
}

// fail runs an action that must fail and returns its stderr.
func (x *exampleEnv) fail(args ...string) string {
	x.t.Helper()
	r := x.aileron("", append(append([]string{"run"}, isolation()...), args...)...)
	require.Equal(x.t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	requireNoSecrets(x.t, r.stdout+r.stderr)
	return r.stderr
}

func requireNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, sec := range secrets {
		require.NotContains(t, s, sec)
	}
}

// requireAttachedOnly checks that a request reached the service with the
// credential exactly where the broker attaches it (want, in header
// Authorization) and nowhere else: not in the URL, the body, or any
// other header.
func requireAttachedOnly(t *testing.T, header http.Header, want string, elsewhere ...string) {
	t.Helper()
	require.Equal(t, want, header.Get("Authorization"))
	for k, vs := range header {
		for _, v := range vs {
			for _, sec := range secrets {
				if k != "Authorization" {
					require.NotContains(t, v, sec, "credential in header %s", k)
				}
			}
		}
	}
	for _, e := range elsewhere {
		for _, sec := range secrets {
			require.NotContains(t, e, sec)
		}
		require.NotContains(t, e, "{{aileron.credential}}")
	}
}

// egress returns the audit log's egress records for host, in order.
func (x *exampleEnv) egress(host string) []map[string]any {
	var out []map[string]any
	for _, rec := range x.auditRecords() {
		if rec["kind"] == "egress" && rec["host"] == host {
			out = append(out, rec)
		}
	}
	return out
}

func TestExample_ShipUpdate(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.installSlack()
	x.addExample("ship-update", m)
	res := x.run("ship-update", "--input", "version=v1.4.0", "--input", "summary=faster installs")

	var out struct{ Channel, TS, Text string }
	require.NoError(t, json.Unmarshal(res.Output, &out))
	require.Equal(t, "C0400RLSES", out.Channel)
	require.Equal(t, ":rocket: Shipped v1.4.0: faster installs", out.Text)
	t.Logf("isolation: %v", res.Isolation)

	msgs := x.slack.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, slack.Message{Channel: "C0400RLSES", TS: out.TS, Text: ":rocket: Shipped v1.4.0: faster installs"}, msgs[0])
	seen := x.slack.Seen()
	require.Len(t, seen, 1)
	require.Equal(t, "/api/chat.postMessage", seen[0].Path)
	require.Equal(t, "application/json; charset=utf-8", seen[0].Header.Get("Content-Type"))
	requireAttachedOnly(t, seen[0].Header, "Bearer "+slackToken, seen[0].Body, seen[0].Query.Encode())

	// The broker attached the credential by name and audited it; the
	// connector's own event is there too.
	eg := x.egress("slack.com")
	require.Len(t, eg, 1)
	require.Equal(t, "slack-bot", eg[0]["credential_id"])
	require.Equal(t, "announce", eg[0]["step"])
	var posted bool
	for _, rec := range x.auditRecords() {
		if rec["event"] == "message_posted" {
			posted = true
			require.Equal(t, map[string]any{"channel": "C0400RLSES", "ts": out.TS}, rec["fields"])
		}
	}
	require.True(t, posted, "no message_posted audit event")
}

func TestExample_DailyStandup(t *testing.T) {
	x := newExampleEnv(t, "")
	x.linear.AddIssue("ENG", "Fix login redirect", "In Progress", "ada@example.com", 1)
	x.linear.AddIssue("ENG", "Write the connector guide", "Todo", "", 3)
	x.linear.AddIssue("ENG", "Ship v1", "Done", "grace@example.com", 2)
	x.linear.AddIssue("OPS", "Rotate keys", "Todo", "grace@example.com", 2)
	lm := x.install("linear", linearKey)
	sm := x.installSlack()
	x.addExample("daily-standup", lm, sm)
	res := x.run("daily-standup", "--input", "team=ENG")

	want := "*Daily standup for ENG*: 2 open issues\n" +
		"ENG-2 Write the connector guide (Todo, unassigned)\n" +
		"ENG-1 Fix login redirect (In Progress, Ada Lovelace)"
	require.Len(t, res.Steps, 2)
	var list struct {
		Count  int
		Issues []struct{ Identifier, URL string }
	}
	require.NoError(t, json.Unmarshal(res.Steps[0].Output, &list))
	require.Equal(t, 2, list.Count)
	require.Equal(t, "https://linear.app/aileron/issue/ENG-2/write-the-connector-guide", list.Issues[0].URL)
	var post struct{ Channel, Text string }
	require.NoError(t, json.Unmarshal(res.Output, &post))
	require.Equal(t, "C0300ENGNR", post.Channel)
	require.Equal(t, want, post.Text)
	require.Equal(t, want, x.slack.Messages()[0].Text)

	// Linear got the key as the whole Authorization value (no Bearer),
	// Slack its bearer token; each connector's credential went only to
	// its own service.
	lseen := x.linear.Seen()
	require.Len(t, lseen, 1)
	require.Equal(t, "ListIssues", lseen[0].OperationName)
	requireAttachedOnly(t, lseen[0].Header, linearKey, lseen[0].Body)
	sseen := x.slack.Seen()
	require.Len(t, sseen, 1)
	requireAttachedOnly(t, sseen[0].Header, "Bearer "+slackToken, sseen[0].Body)
	require.Equal(t, "linear-key", x.egress("api.linear.app")[0]["credential_id"])
	require.Equal(t, "slack-bot", x.egress("slack.com")[0]["credential_id"])
}

func TestExample_ChargeCustomer(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.install("stripe", stripeKey)
	x.addExample("charge-customer", m)
	res := x.run("charge-customer", "--input", "email=ada@example.com", "--input", "name=Ada Lovelace", "--input", "amount=2500", "--input", "description=Pro plan")

	var out map[string]any
	require.NoError(t, json.Unmarshal(res.Output, &out))
	require.Equal(t, "succeeded", out["status"])
	require.EqualValues(t, 2500, out["amount_received"])
	require.Equal(t, false, out["replayed"])

	cus := x.stripe.Customers()
	require.Len(t, cus, 1)
	require.Equal(t, "Ada Lovelace", cus[0].Name)
	intents := x.stripe.PaymentIntents()
	require.Len(t, intents, 1)
	require.Equal(t, cus[0].ID, intents[0].Customer)
	require.EqualValues(t, 2500, intents[0].Amount)
	require.Equal(t, "Pro plan", intents[0].Description)

	// Each step's key derives from the run and the step, nothing else:
	// a retry of the step computes the same key.
	seen := x.stripe.Seen()
	require.Len(t, seen, 2)
	require.Equal(t, "aileron/"+res.RunID+"/customer/create_customer", seen[0].Header.Get("Idempotency-Key"))
	require.Equal(t, "aileron/"+res.RunID+"/charge/create_payment_intent", seen[1].Header.Get("Idempotency-Key"))
	require.Equal(t, "aileron/"+res.RunID+"/charge/create_payment_intent", intents[0].IdempotencyKey)
	for _, r := range seen {
		require.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
		requireAttachedOnly(t, r.Header, "Bearer "+stripeKey, r.Form.Encode())
	}
}

// The network loses Stripe's answer after the PaymentIntent was created.
// The connector retries within the same invocation with the same
// Idempotency-Key, and Stripe replays the saved result: one charge.
func TestExample_StripeRetryReusesIdempotencyKey(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.install("stripe", stripeKey)
	x.addExample("charge-customer", m)
	x.stripe.LoseResponses("/v1/payment_intents", 1)
	res := x.run("charge-customer", "--input", "email=ada@example.com", "--input", "amount=990")

	var out struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Key      string `json:"idempotency_key"`
		Replayed bool   `json:"replayed"`
	}
	require.NoError(t, json.Unmarshal(res.Output, &out))
	require.True(t, out.Replayed)
	require.Equal(t, "succeeded", out.Status)

	intents := x.stripe.PaymentIntents()
	require.Len(t, intents, 1, "charged twice")
	require.Equal(t, intents[0].ID, out.ID)
	var posts []string
	for _, r := range x.stripe.Seen() {
		if r.Path == "/v1/payment_intents" {
			posts = append(posts, r.Header.Get("Idempotency-Key"))
		}
	}
	key := "aileron/" + res.RunID + "/charge/create_payment_intent"
	require.Equal(t, []string{key, key}, posts)
	require.Equal(t, key, out.Key)

	// The broker saw two requests from the connector: the first failed in
	// transit, the second was answered.
	var pis []map[string]any
	for _, rec := range x.egress("api.stripe.com") {
		if rec["path"] == "/v1/payment_intents" {
			pis = append(pis, rec)
		}
	}
	require.Len(t, pis, 2)
	require.Equal(t, "unavailable", pis[0]["code"])
	require.EqualValues(t, 200, pis[1]["status"])
}

// TestExample_StripeRetriedStep: the connector gives up after three lost
// responses; the supervisor runs the step again (attempt 2, same invocation
// id), the connector sends the same Idempotency-Key, and Stripe replays the
// one PaymentIntent it created.
func TestExample_StripeRetriedStep(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.install("stripe", stripeKey)
	x.addExample("charge-customer", m)
	x.stripe.LoseResponses("/v1/payment_intents", 4)
	res := x.run("charge-customer", "--input", "email=grace@example.com", "--input", "amount=1200")

	require.Len(t, res.Steps, 2)
	require.Equal(t, 1, res.Steps[0].Attempts)
	require.Equal(t, 2, res.Steps[1].Attempts, "the charge step was not retried by the supervisor")
	require.Len(t, x.stripe.PaymentIntents(), 1, "charged twice")
	key := "aileron/" + res.RunID + "/charge/create_payment_intent"
	var posts []string
	for _, r := range x.stripe.Seen() {
		if r.Path == "/v1/payment_intents" {
			posts = append(posts, r.Header.Get("Idempotency-Key"))
		}
	}
	require.Equal(t, []string{key, key, key, key, key}, posts, "every try of both attempts must reuse the key")
}

// Slack rate-limits the first two calls with Retry-After: 1; the connector
// waits it out each time and posts once, inside the deadline.
func TestExample_SlackRateLimitHonoursRetryAfter(t *testing.T) {
	x := newExampleEnv(t, "[limits]\ndeadline = \"15s\"\n")
	m := x.installSlack()
	x.addExample("ship-update", m)
	x.slack.RateLimit(2, 1)
	start := time.Now()
	x.run("ship-update", "--input", "version=v2")
	require.Less(t, time.Since(start), 15*time.Second)

	seen := x.slack.Seen()
	require.Len(t, seen, 3)
	for i := 1; i < len(seen); i++ {
		require.GreaterOrEqual(t, seen[i].At.Sub(seen[i-1].At), 950*time.Millisecond, "retry %d came before Retry-After", i)
		require.Equal(t, seen[0].Body, seen[i].Body)
	}
	require.Len(t, x.slack.Messages(), 1)

	// Each attempt went through the broker and is audited.
	eg := x.egress("slack.com")
	require.Len(t, eg, 3)
	require.EqualValues(t, []any{float64(429), float64(429), float64(200)}, []any{eg[0]["status"], eg[1]["status"], eg[2]["status"]})
}

// A Retry-After beyond the connector's wait budget fails the step at once
// with a clear error, instead of sleeping into the deadline.
func TestExample_SlackRateLimitBeyondBudget(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.installSlack()
	x.addExample("ship-update", m)
	x.slack.RateLimit(1, 120)
	start := time.Now()
	stderr := x.fail("ship-update", "--input", "version=v2")
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, stderr, "step announce (github://aileron-examples/slack post_message): ratelimited: Slack rate-limited chat.postMessage (Retry-After 2m0s) after 1 attempts and 0s of waiting; the wait budget is 10s, try again later")
	require.Empty(t, x.slack.Messages())
}

func TestExample_SlackListChannelsPages(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.installSlack()
	x.slack.MaxPageSize(2)
	res := x.run(x.actionWith(m, "channels", "list_channels", "{}", "channels:read"))
	var out struct {
		Count    int
		Channels []struct{ Name string }
	}
	require.NoError(t, json.Unmarshal(res.Output, &out))
	require.Equal(t, 4, out.Count)
	seen := x.slack.Seen()
	require.Len(t, seen, 2)
	require.NotEmpty(t, seen[1].Query.Get("cursor"))
	for _, r := range seen {
		requireAttachedOnly(t, r.Header, "Bearer "+slackToken, r.Query.Encode())
	}
}

// Per-intent scopes: an action that grants the Slack connector only
// chat:write cannot call list_channels, and nothing starts.
func TestExample_IntentScopeNotGranted(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.installSlack()
	stderr := x.fail(x.actionWith(m, "sneaky", "list_channels", "{}", "chat:write"))
	require.Contains(t, stderr, `step "only": intent "list_channels" of connector github://aileron-examples/slack needs scope "channels:read", which the action does not grant`)
	require.Empty(t, x.slack.Seen())
}

// A message that carries the credential placeholder in its text would put
// it in the request body; the broker substitutes only header values and
// refuses the request, so the token can never be steered into content.
func TestExample_PlaceholderInBodyRefused(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.installSlack()
	stderr := x.fail(x.actionWith(m, "leak", "post_message", `{ channel = "#general", text = "token: {{aileron.credential}}" }`, "chat:write"))
	require.Contains(t, stderr, "placeholder_misplaced")
	require.Empty(t, x.slack.Seen())
	require.Empty(t, x.slack.Messages())
}

func TestExample_Linear_Errors(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		intent string
		with   string
		want   string
	}{
		{name: "unknown_team", key: linearKey, intent: "create_issue", with: `{ team = "NOPE", title = "x" }`,
			want: `step only (github://aileron-examples/linear create_issue): not_found: Linear has no team with key "NOPE"`},
		{name: "revoked_key", key: "lin_api_RevokedKey0000000000000000000000000", intent: "list_issues", with: `{ team = "ENG" }`,
			want: "step only (github://aileron-examples/linear list_issues): unauthorized: Linear ListIssues: Authentication required, not authenticated: You need to authenticate to access this operation. (AUTHENTICATION_ERROR)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newExampleEnv(t, "")
			m := x.install("linear", tt.key)
			stderr := x.fail(x.actionWith(m, "linear-"+strings.ReplaceAll(tt.name, "_", "-"), tt.intent, tt.with, "read", "issues:create"))
			require.Contains(t, stderr, tt.want)
			require.NotContains(t, stderr, tt.key)
			require.Empty(t, x.linear.Issues())
		})
	}
}

func TestExample_LinearCreateIssue(t *testing.T) {
	x := newExampleEnv(t, "")
	m := x.install("linear", linearKey)
	res := x.run(x.actionWith(m, "file-bug", "create_issue", `{ team = "OPS", title = "Disk full on db-1", priority = 1 }`, "read", "issues:create"))
	var out struct{ Identifier, State, Priority string }
	require.NoError(t, json.Unmarshal(res.Output, &out))
	require.Equal(t, "OPS-1", out.Identifier)
	require.Equal(t, "Urgent", out.Priority)
	issues := x.linear.Issues()
	require.Len(t, issues, 1)
	require.Equal(t, "Disk full on db-1", issues[0].Title)
}
