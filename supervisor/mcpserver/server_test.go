package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
)

// fakeRunner stands in for the supervisor: it coerces inputs as Prepare
// does, reports each step as RunPlan does and lets the test decide the
// outcome.
type fakeRunner struct {
	store    *cas.Store
	prepared atomic.Int32
	ran      atomic.Int32
	// run decides the outcome; default: every step outputs its ID.
	run func(ctx context.Context, p *supervisor.Plan) (*supervisor.RunResult, error)
}

func (f *fakeRunner) Store() *cas.Store { return f.store }

func (f *fakeRunner) Prepare(a *manifest.Action, given map[string]any) (*supervisor.Plan, error) {
	f.prepared.Add(1)
	inputs, err := manifest.CoerceInputs(a.Inputs, given)
	if err != nil {
		return nil, err
	}
	return &supervisor.Plan{Action: a, Inputs: inputs}, nil
}

func (f *fakeRunner) RunPlan(ctx context.Context, p *supervisor.Plan) (*supervisor.RunResult, error) {
	f.ran.Add(1)
	res := &supervisor.RunResult{RunID: "run-1", Action: p.Action.Name}
	for i, st := range p.Action.Steps {
		if p.OnStep != nil {
			p.OnStep(st.ID, i, len(p.Action.Steps))
		}
		out, _ := json.Marshal(map[string]any{"step": st.ID, "inputs": p.Inputs})
		res.Steps = append(res.Steps, supervisor.StepResult{ID: st.ID, Connector: st.Connector.String(), Intent: st.Intent, Output: out, DurationMS: 1.5, Log: "connector says hi"})
		res.Output = out
	}
	if f.run != nil {
		return f.run(ctx, p)
	}
	return res, nil
}

// syncBuffer is a log sink the server's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t      *testing.T
	dir    string
	runner *fakeRunner
	srv    *Server
	logs   *syncBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store, err := cas.Open(t.TempDir())
	require.NoError(t, err)
	f := &fixture{t: t, dir: filepath.Join(t.TempDir(), "actions"), runner: &fakeRunner{store: store}, logs: &syncBuffer{}}
	f.srv, err = New(Config{
		Runner:       f.runner,
		ActionsDir:   f.dir,
		PollInterval: 20 * time.Millisecond,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: f.logs, Level: hclog.Debug}),
	})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(f.dir, 0o700))
	return f
}

// connect starts the server's poller and connects a client over an
// in-memory transport.
func (f *fixture) connect(opts *mcp.ClientOptions) *mcp.ClientSession {
	f.t.Helper()
	return f.connectPolling(opts, true)
}

func (f *fixture) connectPolling(opts *mcp.ClientOptions, poll bool) *mcp.ClientSession {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	require.NoError(f.t, f.srv.Sync())
	if poll {
		go f.srv.Watch(ctx)
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := f.srv.MCP().Connect(ctx, st, nil)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts).Connect(ctx, ct, nil)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { cs.Close() })
	return cs
}

// write puts an action file into the actions directory.
func (f *fixture) write(file, src string) {
	f.t.Helper()
	// Write beside and rename, as an installer should, so the poller
	// never reads half a file.
	tmp := filepath.Join(f.dir, "."+file+".tmp")
	require.NoError(f.t, os.WriteFile(tmp, []byte(src), 0o600))
	require.NoError(f.t, os.Rename(tmp, filepath.Join(f.dir, file)))
}

const zeroHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// action is an action file with two steps of a notes-like connector.
func action(name, inputs string) string {
	return fmt.Sprintf(`[action]
name = %q
version = "0.1.0"
description = "Test action %s"
%s
[[requires.connectors]]
name = "github://acme/notes"
version = "1.0.0"
hash = %q
capabilities = []

[[steps]]
id = "create"
connector = "github://acme/notes"
intent = "create_note"

[[steps]]
id = "list"
connector = "github://acme/notes"
intent = "list_notes"
`, name, name, inputs, zeroHash)
}

const noteInputs = `
[inputs.title]
type = "string"
required = true
description = "Title of the note"

[inputs.body]
type = "string"
default = ""

[inputs.priority]
type = "integer"
default = 1
`

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	sort.Strings(names)
	return names
}

func TestServer_ListTools(t *testing.T) {
	f := newFixture(t)
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "actions", "add-note.toml"))
	require.NoError(t, err)
	f.write("add-note.toml", string(example))
	f.write("priority-note.toml", action("priority-note", noteInputs))
	f.write("no-inputs.toml", action("no-inputs", ""))
	// Skipped with a log line, never a panic:
	f.write("broken.toml", "[action]\nname = \"broken\"\n")                                                              // does not parse
	f.write("huge-default.toml", action("huge-default", "[inputs.n]\ntype = \"integer\"\ndefault = 9007199254740993\n")) // no valid schema
	f.write("notes.txt", "not an action")
	require.NoError(t, os.Mkdir(filepath.Join(f.dir, "sub.toml"), 0o700))

	cs := f.connect(nil)
	caps := cs.InitializeResult().Capabilities
	require.NotNil(t, caps.Tools)
	require.True(t, caps.Tools.ListChanged)
	require.Nil(t, caps.Prompts)
	require.Nil(t, caps.Resources)

	res, err := cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	got := map[string]*mcp.Tool{}
	for _, tl := range res.Tools {
		got[tl.Name] = tl
	}
	// The installed actions and nothing else: no tool to install, grant
	// or trust anything.
	require.ElementsMatch(t, []string{"add-note", "priority-note", "no-inputs"}, toolNames(t, cs))

	schema, err := json.Marshal(got["priority-note"].InputSchema)
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"object","required":["title"],"additionalProperties":false,"properties":{
		"title":{"type":"string","description":"Title of the note"},
		"body":{"type":"string","default":""},
		"priority":{"type":"integer","default":1,"minimum":-9007199254740991,"maximum":9007199254740991}}}`, string(schema))
	schema, err = json.Marshal(got["no-inputs"].InputSchema)
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"object","properties":{},"additionalProperties":false}`, string(schema))

	tl := got["add-note"]
	require.Equal(t, "add-note", tl.Title)
	require.Equal(t, "Add a note to the team notes service\n\nAileron action add-note 0.1.0. It runs in a sandbox; credentials are attached by Aileron and never shown to you.\n"+
		"Uses github://aileron-examples/notes@0.1.0 (create_note, list_notes): not installed; calls fail until a person installs it.", tl.Description)
	require.NotNil(t, tl.Annotations.OpenWorldHint)
	require.True(t, *tl.Annotations.OpenWorldHint)

	logs := f.logs.String()
	require.Contains(t, logs, "action skipped: file="+filepath.Join(f.dir, "broken.toml"))
	require.Contains(t, logs, `reason="input \"n\": default 9007199254740993 is outside ±(2^53-1)"`)
}

func TestServer_Call(t *testing.T) {
	f := newFixture(t)
	f.write("note.toml", action("note", noteInputs))
	var mu sync.Mutex
	var progress []*mcp.ProgressNotificationParams
	cs := f.connect(&mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, r.Params)
	}})

	params := &mcp.CallToolParams{Name: "note", Arguments: map[string]any{"title": "hello", "priority": 7}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(context.Background(), params)
	require.NoError(t, err)
	require.False(t, res.IsError, "%v", res.Content)
	got, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	// Defaults filled in, the integer an int64; connector logs left out.
	require.JSONEq(t, `{"run_id":"run-1","action":"note",
		"output":{"step":"list","inputs":{"title":"hello","body":"","priority":7}},
		"steps":[
			{"id":"create","connector":"github://acme/notes","intent":"create_note","output":{"step":"create","inputs":{"title":"hello","body":"","priority":7}},"duration_ms":1.5},
			{"id":"list","connector":"github://acme/notes","intent":"list_notes","output":{"step":"list","inputs":{"title":"hello","body":"","priority":7}},"duration_ms":1.5}]}`, string(got))
	require.Len(t, res.Content, 1)
	require.JSONEq(t, string(got), res.Content[0].(*mcp.TextContent).Text)
	require.Contains(t, f.logs.String(), "connector says hi", "connector logs go to the server log")

	// One progress notification per step, in order. They are delivered
	// before the result, but handled asynchronously.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(progress) == 2 }, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []string{"step 1 of 2: create (github://acme/notes create_note)", "step 2 of 2: list (github://acme/notes list_notes)"} {
		require.Equal(t, "tok-1", progress[i].ProgressToken)
		require.Equal(t, float64(i), progress[i].Progress)
		require.Equal(t, float64(2), progress[i].Total)
		require.Equal(t, want, progress[i].Message)
	}

	// Without a progress token, no notifications.
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note", Arguments: map[string]any{"title": "again"}})
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	require.Len(t, progress, 2)
}

func TestServer_Call_Errors(t *testing.T) {
	tests := []struct {
		name string
		args any
		run  func(ctx context.Context, p *supervisor.Plan) (*supervisor.RunResult, error)
		// want is the whole error text the agent sees; wantPrefix a
		// prefix when the rest is the SDK's validator speaking.
		want, wantPrefix string
		// prepared says whether the call got past argument validation.
		prepared bool
	}{
		{name: "missing_required", args: map[string]any{"body": "b"}, wantPrefix: `validating "arguments": validating root: required: missing properties: ["title"]`},
		{name: "no_arguments", args: nil, wantPrefix: `validating "arguments": validating root: required: missing properties: ["title"]`},
		{name: "wrong_type", args: map[string]any{"title": 42}, wantPrefix: `validating "arguments": validating root: validating /properties/title: type: 42 has type "integer", want "string"`},
		{name: "fraction_for_integer", args: map[string]any{"title": "t", "priority": 1.5}, wantPrefix: `validating "arguments": validating root: validating /properties/priority: type: 1.5 has type "number", want "integer"`},
		{name: "extra_field", args: map[string]any{"title": "t", "template": "${{ steps.x }}"}, wantPrefix: `validating "arguments": validating root: unexpected additional properties ["template"]`},
		{name: "not_an_object", args: []any{"t"}, wantPrefix: `validating "arguments": unmarshaling arguments: `},
		{
			name: "step_failed",
			args: map[string]any{"title": "t"},
			run: func(context.Context, *supervisor.Plan) (*supervisor.RunResult, error) {
				return nil, &supervisor.StepError{Step: "create", Connector: "github://acme/notes", Intent: "create_note", Code: "denied", Message: "host evil.example.com:443 is not declared", Log: "secret-looking log"}
			},
			want:     "action note failed: step create (github://acme/notes create_note): denied: host evil.example.com:443 is not declared",
			prepared: true,
		},
		{
			name: "internal_error",
			args: map[string]any{"title": "t"},
			run: func(context.Context, *supervisor.Plan) (*supervisor.RunResult, error) {
				return nil, fmt.Errorf("start broker: boom")
			},
			want:     "action note could not run: start broker: boom",
			prepared: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.runner.run = tt.run
			f.write("note.toml", action("note", noteInputs))
			cs := f.connect(nil)
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note", Arguments: tt.args})
			require.NoError(t, err, "a failed call is a tool error the agent can read, not a protocol error")
			require.True(t, res.IsError)
			require.Nil(t, res.StructuredContent)
			require.Len(t, res.Content, 1)
			text := res.Content[0].(*mcp.TextContent).Text
			if tt.want != "" {
				require.Equal(t, tt.want, text)
			} else {
				require.True(t, strings.HasPrefix(text, tt.wantPrefix), text)
			}
			if tt.prepared {
				require.EqualValues(t, 1, f.runner.prepared.Load())
			} else {
				require.Zero(t, f.runner.prepared.Load(), "invalid arguments must not reach the supervisor")
				require.Zero(t, f.runner.ran.Load())
			}
			require.NotContains(t, text, "secret-looking log", "connector logs stay in the server log")
		})
	}
}

func TestServer_Call_NotInstalled(t *testing.T) {
	f := newFixture(t)
	f.srv.cfg.Runner = &refusingRunner{fakeRunner: f.runner}
	f.write("note.toml", action("note", noteInputs))
	cs := f.connect(nil)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note", Arguments: map[string]any{"title": "t"}})
	require.NoError(t, err)
	require.True(t, res.IsError)
	require.Equal(t, "cannot run: action note needs github://acme/notes@1.0.0: connector is not installed", res.Content[0].(*mcp.TextContent).Text)
	require.Zero(t, f.runner.ran.Load())

	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "install-connector", Arguments: map[string]any{}})
	require.ErrorContains(t, err, `unknown tool "install-connector"`)
}

// refusingRunner fails Prepare the way the supervisor does for a
// connector that is not installed.
type refusingRunner struct{ *fakeRunner }

func (r *refusingRunner) Prepare(a *manifest.Action, _ map[string]any) (*supervisor.Plan, error) {
	return nil, fmt.Errorf("action %s needs github://acme/notes@1.0.0: %w", a.Name, supervisor.ErrNotInstalled)
}

func TestServer_Call_Cancel(t *testing.T) {
	f := newFixture(t)
	started, stopped := make(chan struct{}), make(chan error, 1)
	f.runner.run = func(ctx context.Context, p *supervisor.Plan) (*supervisor.RunResult, error) {
		close(started)
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, supervisor.ErrCancelled
	}
	f.write("slow.toml", action("slow", ""))
	cs := f.connect(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow"})
		done <- err
	}()
	<-started
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	// The client's notifications/cancelled reached the run's context.
	select {
	case err := <-stopped:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the run's context was not cancelled")
	}
	require.Eventually(t, func() bool { return strings.Contains(f.logs.String(), "call cancelled") }, 5*time.Second, 10*time.Millisecond)
}

func TestServer_ListChanged(t *testing.T) {
	f := newFixture(t)
	f.write("first.toml", action("first", ""))
	changed := make(chan struct{}, 16)
	cs := f.connect(&mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		changed <- struct{}{}
	}})
	require.Equal(t, []string{"first"}, toolNames(t, cs))
	wait := func() {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatal("no notifications/tools/list_changed")
		}
	}

	// Added while serving: the poller notices and the client is told.
	f.write("second.toml", action("second", noteInputs))
	wait()
	require.Equal(t, []string{"first", "second"}, toolNames(t, cs))

	// Changed: the new schema replaces the old one.
	f.write("second.toml", action("second", ""))
	wait()
	res, err := cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	for _, tl := range res.Tools {
		require.NotContains(t, fmt.Sprint(tl.InputSchema), "title")
	}

	// Removed.
	require.NoError(t, os.Remove(filepath.Join(f.dir, "first.toml")))
	wait()
	require.Equal(t, []string{"second"}, toolNames(t, cs))
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "first"})
	require.ErrorContains(t, err, `unknown tool "first"`)

}

func TestServer_ListAndCallRescanFirst(t *testing.T) {
	f := newFixture(t)
	cs := f.connectPolling(nil, false)
	require.Empty(t, toolNames(t, cs))
	// Without a poller, tools/list and tools/call still see the
	// directory as it is when they arrive.
	f.write("third.toml", action("third", ""))
	require.Equal(t, []string{"third"}, toolNames(t, cs))
	f.write("fourth.toml", action("fourth", ""))
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fourth"})
	require.NoError(t, err)
	require.False(t, res.IsError)
	require.NoError(t, os.Remove(filepath.Join(f.dir, "third.toml")))
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "third"})
	require.ErrorContains(t, err, `unknown tool "third"`)
}

func TestServer_NoActionsDir(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, os.Remove(f.dir))
	cs := f.connect(nil)
	require.Empty(t, toolNames(t, cs))
	require.NoError(t, os.MkdirAll(f.dir, 0o700))
	f.write("late.toml", action("late", ""))
	require.Equal(t, []string{"late"}, toolNames(t, cs))
}

func TestNew_Errors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no_runner", Config{ActionsDir: "/x"}, "mcpserver: Runner is not set"},
		{"no_actions_dir", Config{Runner: &fakeRunner{}}, "mcpserver: ActionsDir is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.EqualError(t, err, tt.want)
		})
	}
}

// TestServer_Hammer lists, calls and changes actions at once; run with
// -race.
func TestServer_Hammer(t *testing.T) {
	f := newFixture(t)
	f.write("stable.toml", action("stable", noteInputs))
	cs := f.connect(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stable", Arguments: map[string]any{"title": "t"}})
				if ctx.Err() == nil {
					require.NoError(t, err)
					require.False(t, res.IsError)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _ = cs.ListTools(ctx, nil)
				_, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "flapping"})
			}
		}()
	}
	for i := 0; ctx.Err() == nil; i++ {
		if i%2 == 0 {
			f.write("flapping.toml", action("flapping", ""))
		} else {
			require.NoError(t, os.Remove(filepath.Join(f.dir, "flapping.toml")))
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	require.NoError(t, f.srv.Sync())
	require.Contains(t, toolNames(t, cs), "stable")
}
