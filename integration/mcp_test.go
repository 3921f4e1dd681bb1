package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/examples/kit"
	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/supervisor/mcpserver"
)

// installNotesAction installs the notes connector with its key and the
// example add-note action pinned to it.
func (e *env) installNotesAction() {
	e.t.Helper()
	m := e.install("notes", notesKey)
	action := filepath.Join(e.home, "add-note.toml")
	require.NoError(e.t, kit.PinAction(filepath.Join(kit.RepoRoot(), "examples/actions/add-note.toml"), action, m))
	e.ok("", "action", "add", action)
}

// auditLines counts the audit log's records; the log may not exist yet.
func (e *env) auditLines() int {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.home, "audit.jsonl"))
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(e.t, err)
	return strings.Count(string(b), "\n")
}

// lockedBuffer collects a child's stderr, or a logger's output, while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// progressLog records progress notifications a client receives.
type progressLog struct {
	mu   sync.Mutex
	msgs []string
}

func (p *progressLog) handler(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, fmt.Sprintf("%v %g/%g %s", r.Params.ProgressToken, r.Params.Progress, r.Params.Total, r.Params.Message))
}

func (p *progressLog) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.msgs...)
}

// callAddNote calls the add-note tool with a progress token and checks the
// result, the progress reports and what the notes service received.
func callAddNote(t *testing.T, e *env, cs *mcp.ClientSession, progress *progressLog) string {
	t.Helper()
	params := &mcp.CallToolParams{Name: "add-note", Arguments: map[string]any{"title": "from an agent", "body": "via MCP"}}
	params.SetProgressToken("p1")
	res, err := cs.CallTool(context.Background(), params)
	require.NoError(t, err)
	require.False(t, res.IsError, "%v", res.Content)
	b, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var got struct {
		RunID  string `json:"run_id"`
		Action string `json:"action"`
		Output struct {
			Count int `json:"count"`
			Notes []struct{ Title, Body string }
		} `json:"output"`
		Steps []struct{ ID string }
	}
	require.NoError(t, json.Unmarshal(b, &got), string(b))
	require.Equal(t, "add-note", got.Action)
	require.Equal(t, 1, got.Output.Count)
	require.Equal(t, "from an agent", got.Output.Notes[0].Title)
	require.Equal(t, "via MCP", got.Output.Notes[0].Body)
	require.Len(t, got.Steps, 2)
	require.NotContains(t, string(b), notesKey)

	// The service got the real key on both requests, attached by the
	// broker; the agent never had it.
	seen := e.notes.Seen()
	require.Len(t, seen, 2)
	for _, s := range seen {
		require.Equal(t, notesKey, s.Header.Get("X-Api-Key"))
	}
	require.Eventually(t, func() bool { return len(progress.get()) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{
		"p1 0/2 step 1 of 2: create (github://aileron-examples/notes create_note)",
		"p1 1/2 step 2 of 2: list (github://aileron-examples/notes list_notes)",
	}, progress.get())

	// Every audit record of the run says it came through MCP.
	var n int
	for _, rec := range e.auditRecords() {
		if rec["run_id"] == got.RunID {
			n++
			require.Equal(t, "mcp", rec["via"], "%v", rec)
		}
	}
	require.Equal(t, 2, n, "one egress record per request")
	return got.RunID
}

// TestMCP_InMemory drives the library over the SDK's in-memory transport
// with a real supervisor, broker and workers.
func TestMCP_InMemory(t *testing.T) {
	e := newEnv(t, "")
	e.installNotesAction()

	cfg := supervisor.Config{Home: e.home, WorkerPath: filepath.Join(binDir, "aileron-worker"),
		BrokerPath: filepath.Join(binDir, "aileron"), BrokerArgs: []string{"broker"}, Via: "mcp"}
	settings, err := supervisor.LoadSettings(e.home)
	require.NoError(t, err)
	require.NoError(t, settings.Apply(&cfg))
	sup, err := supervisor.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { sup.Close() })
	srv, err := mcpserver.New(mcpserver.Config{Runner: sup, ActionsDir: filepath.Join(e.home, "actions")})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, ct := mcp.NewInMemoryTransports()
	go func() { _ = srv.Run(ctx, st) }()
	progress := &progressLog{}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{ProgressNotificationHandler: progress.handler}).Connect(ctx, ct, nil)
	require.NoError(t, err)
	defer cs.Close()

	res, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	require.Len(t, res.Tools, 1)
	tl := res.Tools[0]
	require.Equal(t, "add-note", tl.Name)
	require.Contains(t, tl.Description, "Uses github://aileron-examples/notes@0.1.0 (create_note, list_notes): may reach notes.example.com:443; credential api_key.")
	schema, err := json.Marshal(tl.InputSchema)
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"object","required":["title"],"additionalProperties":false,"properties":{
		"title":{"type":"string","description":"Title of the note"},
		"body":{"type":"string","description":"Text of the note","default":""}}}`, string(schema))

	callAddNote(t, e, cs, progress)
}

// mcpStdio starts `aileron mcp -v` as an MCP client would, through the
// SDK's CommandTransport.
func (e *env) mcpStdio(opts *mcp.ClientOptions) (*mcp.ClientSession, *exec.Cmd, *lockedBuffer) {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "aileron"), "mcp", "-v")
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	require.NoError(e.t, err, stderr.String())
	return cs, cmd, stderr
}

// brokerOrWorkers lists the broker and worker processes alive.
func brokerOrWorkers() []string {
	var out []string
	for _, c := range children() {
		if strings.Contains(c, "aileron-worker") || strings.HasSuffix(strings.TrimSpace(c), " broker") {
			out = append(out, c)
		}
	}
	return out
}

func TestMCP_Stdio(t *testing.T) {
	e := newEnv(t, "")
	e.installNotesAction()
	hostile := e.install("hostile", notesKey)
	e.ok("", "action", "add", e.action(hostile, "inspect", "inspect", `{ url = "https://echo.example.com/headers" }`))
	e.ok("", "action", "add", e.action(hostile, "sleep", "sleep", "{}"))

	audited := e.auditLines()
	progress := &progressLog{}
	changed := make(chan struct{}, 16)
	cs, cmd, stderr := e.mcpStdio(&mcp.ClientOptions{
		ProgressNotificationHandler: progress.handler,
		ToolListChangedHandler:      func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	ctx := context.Background()

	// The installed actions and nothing else.
	res, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	require.ElementsMatch(t, []string{"add-note", "inspect", "sleep"}, names)

	t.Run("invalid arguments start nothing", func(t *testing.T) {
		for _, args := range []map[string]any{
			{"body": "no title"}, // missing required
			{"title": 7},         // wrong type
			{"title": "t", "api_key": "{{aileron.credential}}"}, // extra field
		} {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add-note", Arguments: args})
			require.NoError(t, err)
			require.True(t, res.IsError)
			require.Contains(t, res.Content[0].(*mcp.TextContent).Text, `validating "arguments"`)
		}
		// Not even the broker started: the supervisor never saw the call.
		require.Empty(t, brokerOrWorkers())
		require.Empty(t, e.notes.Seen())
		require.Equal(t, audited, e.auditLines(), "nothing ran, so nothing was audited")
	})

	t.Run("call the example action", func(t *testing.T) {
		callAddNote(t, e, cs, progress)
	})

	t.Run("no credential reaches the agent or the log", func(t *testing.T) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "inspect"})
		require.NoError(t, err)
		require.False(t, res.IsError, "%v", res.Content)
		b, err := json.Marshal(res)
		require.NoError(t, err)
		// The echo service received the key and sent it back; the broker
		// redacted it before the connector could read it.
		require.Equal(t, notesKey, e.echo.Seen()[0].Get("X-Api-Key"))
		require.Contains(t, string(b), "[REDACTED]")
		require.Contains(t, string(b), "{{aileron.credential}}")
		require.NotContains(t, string(b), notesKey)
	})

	t.Run("cancelling a call kills its worker", func(t *testing.T) {
		// The previous call's worker may still be tearing down: it must
		// not be mistaken for this call's.
		require.Eventually(t, func() bool { return !hasWorker() }, 10*time.Second, 20*time.Millisecond, "%v", children())
		callCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := cs.CallTool(callCtx, &mcp.CallToolParams{Name: "sleep"})
			done <- err
		}()
		waitWorker(t, done)
		start := time.Now()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		for hasWorker() && time.Since(start) < 10*time.Second {
			time.Sleep(20 * time.Millisecond)
		}
		require.False(t, hasWorker(), "worker still running after the call was cancelled: %v", children())
		t.Logf("worker gone %s after cancel", time.Since(start))
		// The server carries on.
		_, err := cs.ListTools(ctx, nil)
		require.NoError(t, err)
	})

	t.Run("an action added while serving appears", func(t *testing.T) {
		for len(changed) > 0 {
			<-changed
		}
		e.ok("", "action", "add", e.action(hostile, "env", "env", "{}"))
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatal("no notifications/tools/list_changed")
		}
		res, err := cs.ListTools(ctx, nil)
		require.NoError(t, err)
		var names []string
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
		}
		require.ElementsMatch(t, []string{"add-note", "inspect", "sleep", "env"}, names)
		out, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "env"})
		require.NoError(t, err)
		require.False(t, out.IsError, "%v", out.Content)
	})

	// Closing stdin ends the server cleanly, broker and workers with it.
	require.NoError(t, cs.Close())
	require.True(t, cmd.ProcessState.Success(), "%v\n%s", cmd.ProcessState, stderr.String())
	assertNoChildren(t)
	logs := stderr.String()
	require.NotContains(t, logs, notesKey)
	require.Contains(t, logs, "call done")
}

func TestMCP_HTTP(t *testing.T) {
	e := newEnv(t, "")
	e.installNotesAction()
	cmd := exec.Command(filepath.Join(binDir, "aileron"), "mcp", "--http", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "AILERON_HOME="+e.home)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var url string
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`serving MCP at (http://127\.0\.0\.1:\d+/mcp)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	require.NotEmpty(t, url)
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	require.NoError(t, err)
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	require.Len(t, res.Tools, 1)
	require.Equal(t, "add-note", res.Tools[0].Name)

	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	post := func(mutate func(*http.Request)) int {
		req, err := http.NewRequest("POST", url, strings.NewReader(initialize))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		mutate(req)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, post(func(*http.Request) {}))
	// DNS rebinding: a page at attacker.example whose name now resolves
	// to 127.0.0.1 sends its own Host header.
	require.Equal(t, http.StatusForbidden, post(func(r *http.Request) { r.Host = "attacker.example:80" }))
	// CSRF: a page the person visits posts to the local server.
	require.Equal(t, http.StatusForbidden, post(func(r *http.Request) {
		r.Header.Set("Origin", "https://attacker.example")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
	}))
}
