// Package mcpserver serves installed actions to AI agents as Model Context
// Protocol tools, with the official Go SDK
// (github.com/modelcontextprotocol/go-sdk).
//
// Each action file in the actions directory is one tool. Its name comes
// from the action's name ([ToolName], [AssignToolNames]), its description
// says what the action does and what it can reach ([Description]), and its
// input schema is derived from the action's inputs ([ActionSchema]). The SDK
// validates every call's arguments against that schema, so a call with a
// missing, mistyped or undeclared argument is refused before anything
// starts. A valid call runs the action through the supervisor, exactly as
// `aileron run` does: one sandboxed worker per connector, the broker
// attaching credentials and redacting responses, every decision in the
// audit log.
//
// # What an agent cannot do
//
// The server offers the installed actions and nothing else: no tool
// installs, updates, grants or trusts anything. Consent stays with a person
// at the CLI; the agent sees the result of that consent as its tool list.
//
// # Serving
//
//	srv, err := mcpserver.New(mcpserver.Config{Runner: sup, ActionsDir: supervisor.ActionsDir(home)})
//	err = srv.Run(ctx, &mcp.StdioTransport{})    // one client on stdin/stdout
//	err = srv.Serve(ctx, ln)                      // streamable HTTP on a loopback listener
//
// # Changes while serving
//
// The server polls the actions directory and the store's index once a
// second (names, sizes and modification times; standard library only) and
// also before answering tools/list and tools/call. When they changed, it
// re-reads the action files and adds, replaces or removes tools; the SDK
// tells connected clients with notifications/tools/list_changed. Polling
// was chosen over inotify for portability and for having no dependency;
// the checks before tools/list and tools/call mean a client never sees or
// runs a list older than its request.
package mcpserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
)

// Runner runs actions. [*supervisor.Supervisor] is one; build it with
// Config.Via "mcp" so the audit log says which runs came through MCP.
type Runner interface {
	// Prepare checks an action and its inputs before anything starts.
	Prepare(a *manifest.Action, given map[string]any) (*supervisor.Plan, error)
	// RunPlan runs a prepared plan; cancelling ctx kills its workers.
	RunPlan(ctx context.Context, p *supervisor.Plan) (*supervisor.RunResult, error)
	// Store holds the installed connectors, for tool descriptions.
	Store() *cas.Store
}

// Config configures a Server. Zero values are safe defaults except where a
// field says it is required.
type Config struct {
	// Runner runs each call. Required.
	Runner Runner
	// ActionsDir holds the installed action files, $AILERON_HOME/actions.
	// Required; it need not exist yet.
	ActionsDir string
	// PollInterval is how often ActionsDir and the store index are checked
	// for changes (default 1s).
	PollInterval time.Duration
	// Version is the server version reported to clients (default "dev").
	Version string
	// Logger receives the server's logs. It must not write to stdout when
	// serving on stdio. Default: a null logger.
	Logger hclog.Logger
}

// Server serves installed actions as MCP tools. It is safe for concurrent
// use and may serve many sessions at once.
type Server struct {
	cfg Config
	log hclog.Logger
	mcp *mcp.Server

	mu      sync.Mutex        // serializes Sync
	snap    string            // fingerprint of the directories at the last Sync
	tools   map[string]string // registered tool name -> fingerprint
	lastErr string            // last Sync error logged, to log each once
}

// Log keys.
const (
	logFile     = "file"
	logTool     = "tool"
	logAction   = "action"
	logRunID    = "run_id"
	logReason   = "reason"
	logDuration = "duration"
	logOutcome  = "outcome"
	logError    = "error"
)

// New validates cfg and builds a Server with no tools yet; [Server.Run],
// [Server.Serve] and [Server.Sync] load them.
func New(cfg Config) (*Server, error) {
	if cfg.Runner == nil {
		return nil, errors.New("mcpserver: Runner is not set")
	}
	if cfg.ActionsDir == "" {
		return nil, errors.New("mcpserver: ActionsDir is not set")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	cfg.Version = cmp.Or(cfg.Version, "dev")
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("mcp"), tools: map[string]string{}}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "aileron", Title: "Aileron", Version: cfg.Version}, &mcp.ServerOptions{
		Instructions: "Each tool runs an action a person installed in Aileron. Actions call external services " +
			"through sandboxed connectors; Aileron attaches credentials, so you never need or see one. " +
			"You cannot install, change or grant anything through these tools.",
		// Advertise tools (and list_changed) even while no action is
		// installed, so clients listen for the first one. Nothing else:
		// no logging, prompts or resources.
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}},
	})
	s.mcp.AddReceivingMiddleware(s.syncFirst)
	return s, nil
}

// MCP returns the underlying SDK server, to connect other transports
// (in-memory ones in tests).
func (s *Server) MCP() *mcp.Server { return s.mcp }

// syncFirst re-scans before tools/list and tools/call, so a client never
// sees or calls a list older than its request.
func (s *Server) syncFirst(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "tools/list" || method == "tools/call" {
			s.syncLogged()
		}
		return next(ctx, method, req)
	}
}

// Watch polls for changes every PollInterval until ctx is done.
func (s *Server) Watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.syncLogged()
		}
	}
}

// syncLogged runs Sync and logs an error once, not once a second.
func (s *Server) syncLogged() {
	err := s.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != s.lastErr && err != nil {
		s.log.Error("cannot read installed actions", logError, err)
	}
	s.lastErr = msg
}

// Run loads the tools, then serves one session on t (stdio, usually) until
// the client disconnects or ctx is done, picking up changes as it goes.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	if err := s.Sync(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Watch(ctx)
	return s.mcp.Run(ctx, t)
}

// Handler serves MCP over streamable HTTP. The SDK's DNS-rebinding
// protection stays on (a request that reached a loopback address with a
// non-loopback Host header is refused), and cross-origin requests from
// browsers are refused.
func (s *Server) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, &mcp.StreamableHTTPOptions{})
	// Security: a web page the person visits must not drive the local
	// server (CSRF); browsers mark cross-origin requests, MCP clients
	// send no Origin.
	return http.NewCrossOriginProtection().Handler(h)
}

// HTTPPath is where [Server.Serve] serves MCP.
const HTTPPath = "/mcp"

// Serve loads the tools, then serves streamable HTTP at [HTTPPath] on ln
// until ctx is done. Listen on a loopback address ([ListenAddr]): the
// endpoint has no authentication of its own.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Sync(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Watch(ctx)
	mux := http.NewServeMux()
	mux.Handle(HTTPPath, s.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		// Close, not Shutdown: event streams stay open until closed.
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve MCP over HTTP: %w", err)
	}
	return nil
}
