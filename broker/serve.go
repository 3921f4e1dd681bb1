package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/broker/egress"
	"aileron.dev/aileron/broker/internal/vault"
	"aileron.dev/aileron/sdk/abi"
)

// Environment variables the supervisor forwards to the broker (its
// environment is otherwise empty).
const (
	// EnvVaultKeyFile points at the vault's age identity file.
	EnvVaultKeyFile = "AILERON_VAULT_KEY_FILE"
	// EnvVaultPassphrase unlocks a passphrase-protected vault identity.
	EnvVaultPassphrase = "AILERON_VAULT_PASSPHRASE"
)

// Defaults for Config's zero fields, and hard limits.
const (
	defaultMaxRequestsPerStep    = 100
	defaultMaxRequestsPerChannel = 1000
	defaultMaxChannels           = 256
	defaultMaxResponseBytes      = 8 << 20
	defaultRequestTimeout        = 30 * time.Second
	// maxResponseBytes is the largest MaxResponseBytes: a response body
	// must fit, base64-encoded with its headers, in one channel frame.
	maxResponseBytes = 15 << 20
)

// maxEventsPerChannel bounds connector audit events per channel, so a
// flooding worker cannot fill the disk through the audit log. A variable
// so tests can lower it.
var maxEventsPerChannel = 10000

// Serve runs the broker process: it serves [Control] over go-plugin and the
// worker channels passed to it, until the supervisor kills it.
func Serve() int {
	log := hclog.New(&hclog.LoggerOptions{Name: "broker", Level: hclog.Info, Output: os.Stderr, JSONFormat: true})
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "the broker is started by aileron; it is not meant to be run by hand")
		return 2
	}
	s := newServer(log, os.NewFile(PassFD, "broker-pass"))
	plugin.Serve(&plugin.ServeConfig{HandshakeConfig: Handshake, Plugins: PluginMap(s), Logger: log})
	return 0
}

// server implements Control in the broker process.
type server struct {
	log  hclog.Logger
	pass *os.File

	passMu sync.Mutex // serializes descriptor receipt

	mu       sync.Mutex
	cfg      *Config
	vault    *vault.Vault
	audit    *audit.Log
	egress   *egress.Client
	limits   egress.Limits
	quota    *egressQuota
	channels map[string]*channelState

	// refreshes coalesces concurrent OAuth2 refreshes per credential;
	// memos remember the last outcome of each.
	refreshes singleflight.Group
	memoMu    sync.Mutex
	memos     map[string]refreshMemo
	// now is the clock for token expiry and signatures (tests replace it).
	now func() time.Time
}

func newServer(log hclog.Logger, pass *os.File) *server {
	return &server{log: log, pass: pass, channels: map[string]*channelState{}, now: time.Now}
}

// Configure implements Control. It runs once; a second call is refused so
// a policy cannot be loosened while channels are open.
func (s *server) Configure(cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg != nil {
		return errors.New("broker is already configured")
	}
	if cfg.Home == "" {
		return errors.New("broker config: Home is empty")
	}
	if cfg.MaxRequestsPerStep <= 0 {
		cfg.MaxRequestsPerStep = defaultMaxRequestsPerStep
	}
	if cfg.MaxRequestsPerChannel <= 0 {
		cfg.MaxRequestsPerChannel = defaultMaxRequestsPerChannel
	}
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = defaultMaxChannels
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = defaultMaxResponseBytes
	}
	if cfg.MaxResponseBytes > maxResponseBytes {
		return fmt.Errorf("broker config: max_response_bytes %d is over the limit of %d (a response must fit in one channel frame)", cfg.MaxResponseBytes, maxResponseBytes)
	}
	if cfg.FollowRedirects < 0 {
		return errors.New("broker config: FollowRedirects is negative")
	}
	if cfg.RequestTimeoutMS <= 0 {
		cfg.RequestTimeoutMS = defaultRequestTimeout.Milliseconds()
	}
	if cfg.AuditPath == "" {
		cfg.AuditPath = filepath.Join(cfg.Home, "audit.jsonl")
	}
	fb, err := vault.OpenFile(filepath.Join(cfg.Home, "vault"), vault.KeyConfig{
		KeyFile:    os.Getenv(EnvVaultKeyFile),
		Passphrase: os.Getenv(EnvVaultPassphrase),
	})
	if err != nil {
		return fmt.Errorf("open vault: %w", err)
	}
	al, err := audit.Open(cfg.AuditPath)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	quota, err := newEgressQuota(&cfg, s.now())
	if err != nil {
		al.Close()
		return err
	}
	eg, lim, err := newEgress(&cfg)
	if err != nil {
		al.Close()
		return err
	}
	if cfg.UnsafeAllowLoopback {
		s.log.Warn("UNSAFE: connectors may reach loopback addresses (UnsafeAllowLoopback)")
	}
	if cfg.UnsafeAllowPrivate {
		s.log.Warn("UNSAFE: connectors may reach private address ranges (UnsafeAllowPrivate)")
	}
	s.cfg, s.vault, s.audit, s.egress, s.limits, s.quota = &cfg, vault.New(fb), al, eg, lim, quota
	return nil
}

func (s *server) configured() (*Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil {
		return nil, errors.New("broker is not configured")
	}
	return s.cfg, nil
}

// Open implements Control: it takes the descriptor for args.ChannelID from
// the passing socket and binds it to args.Grant.
func (s *server) Open(args OpenArgs) error {
	// The descriptor is taken first, even when Open is then refused, so
	// the next Open finds its own.
	f, err := s.receive(args.ChannelID)
	if err != nil {
		return err
	}
	cfg, err := s.configured()
	if err != nil {
		f.Close()
		return err
	}
	id := args.ChannelID
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("channel %s: %w", id, err)
	}
	rules, err := egress.ParseRules(args.Grant.Hosts)
	if err != nil {
		conn.Close()
		return fmt.Errorf("channel %s: grant for %s: %w", id, args.Grant.Connector, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := &channelState{id: id, grant: args.Grant, rules: rules, conn: conn, done: make(chan struct{}), ctx: ctx, cancel: cancel}
	if args.Step != nil {
		if err := ch.setStep(*args.Step); err != nil {
			cancel()
			conn.Close()
			return err
		}
	}
	if args.Grant.CredentialKind != "" {
		rec, err := s.vault.ForConnector(ctx, cfg.Tenant, args.Grant.Connector)
		if err != nil {
			cancel()
			conn.Close()
			return credentialError(args.Grant, err)
		}
		if string(rec.Meta.Kind) != args.Grant.CredentialKind {
			cancel()
			conn.Close()
			return fmt.Errorf("credential %s bound to %s is %s, but the connector declares %s", rec.Meta.Name, args.Grant.Connector, rec.Meta.Kind, args.Grant.CredentialKind)
		}
		ch.cred = newAttacher(rec)
	}
	s.mu.Lock()
	if _, dup := s.channels[id]; dup {
		s.mu.Unlock()
		cancel()
		conn.Close()
		return fmt.Errorf("channel %s is already open", id)
	}
	if len(s.channels) >= cfg.MaxChannels {
		s.mu.Unlock()
		cancel()
		conn.Close()
		return fmt.Errorf("channel %s: the broker already has %d channels open, its limit", id, cfg.MaxChannels)
	}
	s.channels[id] = ch
	s.mu.Unlock()
	go s.serveChannel(ch)
	return nil
}

// receive takes the descriptor labelled id from the passing socket. The
// supervisor passes it just before calling Open, so it is already queued:
// receive never waits. Descriptors queued before it belong to Opens that
// never arrived (an RPC that failed on the way); they are closed, so that
// one lost Open does not hand every later Open its predecessor's channel.
func (s *server) receive(id string) (*os.File, error) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	for {
		got, f, err := recvChannel(s.pass, unix.MSG_DONTWAIT)
		if errors.Is(err, errNothingPassed) {
			return nil, fmt.Errorf("receive channel %s: no descriptor was passed for it", id)
		}
		if err != nil {
			return nil, fmt.Errorf("receive channel %s: %w", id, err)
		}
		if got == id {
			return f, nil
		}
		f.Close()
		s.log.Warn("closed a stale channel descriptor", "stale", got, "opening", id)
	}
}

func credentialError(g Grant, err error) error {
	switch {
	case errors.Is(err, vault.ErrNoBinding):
		return fmt.Errorf("connector %s needs a %s credential and none is bound to it: run `aileron vault set NAME --kind %s --connector %s`", g.Connector, g.CredentialKind, g.CredentialKind, g.Connector)
	case errors.Is(err, vault.ErrAmbiguousBinding):
		return fmt.Errorf("connector %s: %w", g.Connector, err)
	}
	return fmt.Errorf("look up credential for %s: %w", g.Connector, err)
}

// Step implements Control.
func (s *server) Step(args StepArgs) error {
	ch, err := s.channel(args.ChannelID)
	if err != nil {
		return err
	}
	return ch.setStep(args.Step)
}

// setStep makes st the channel's active step.
func (ch *channelState) setStep(st Step) error {
	for _, sc := range st.Scopes {
		// Security: the supervisor checked this already; the broker checks
		// again so a supervisor bug cannot widen a grant.
		if !slices.Contains(ch.grant.Scopes, sc) {
			return fmt.Errorf("step %s: intent %s needs scope %q, which the action did not grant to %s", st.StepID, st.Intent, sc, ch.grant.Connector)
		}
	}
	var deadline time.Time
	if st.DeadlineMS > 0 {
		deadline = time.Now().Add(time.Duration(st.DeadlineMS) * time.Millisecond)
	}
	ch.mu.Lock()
	ch.step = &st
	ch.stepRequests = 0
	ch.deadline = deadline
	ch.mu.Unlock()
	return nil
}

// Close implements Control.
func (s *server) Close(id string) (CloseReply, error) {
	s.mu.Lock()
	ch, ok := s.channels[id]
	delete(s.channels, id)
	s.mu.Unlock()
	if !ok {
		return CloseReply{}, fmt.Errorf("channel %s is not open", id)
	}
	// Cancelling the channel aborts a request in flight: the step it
	// belonged to is over.
	ch.cancel()
	ch.conn.Close()
	<-ch.done
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return CloseReply{Requests: ch.requests, Denied: ch.denied}, nil
}

func (s *server) channel(id string) (*channelState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.channels[id]
	if !ok {
		return nil, fmt.Errorf("channel %s is not open", id)
	}
	return ch, nil
}

// channelState is everything the broker knows about one worker channel. It
// is found by the socket, never by anything the worker sends.
type channelState struct {
	id    string
	grant Grant
	rules egress.Rules
	conn  net.Conn
	cred  *attacher
	done  chan struct{}
	// ctx lives as long as the channel; every request runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	step *Step
	// deadline is when the step's time is up (zero: no deadline): its
	// DeadlineMS counted from when the broker was told of the step, so
	// each request gets what is left, not the whole budget again.
	deadline     time.Time
	stepRequests int
	requests     int
	events       int
	denied       int
}

// frame is one read from a worker channel.
type frame struct {
	req channel.Request
	err error
}

// serveChannel answers one worker's requests, one at a time, until the
// worker or the supervisor closes the channel.
//
// A reader goroutine keeps reading while a request is handled. The worker
// must wait for each answer, so anything that arrives meanwhile ends the
// channel and cancels the request: end of file (the worker died or was
// killed mid-request, and nobody is left to read the answer) or a second
// request (a worker trying to get more than one request in flight). A
// malformed frame ends the channel too: a worker that speaks garbage has
// nothing more to say.
func (s *server) serveChannel(ch *channelState) {
	defer close(ch.done)
	defer ch.conn.Close()
	defer ch.cancel()
	frames := make(chan frame, 1)
	go func() {
		for {
			var f frame
			f.err = channel.ReadFrame(ch.conn, &f.req)
			select {
			case frames <- f:
			case <-ch.ctx.Done():
				return
			}
			if f.err != nil {
				return
			}
		}
	}()
	for {
		var f frame
		select {
		case f = <-frames:
		case <-ch.ctx.Done():
			return
		}
		if f.err != nil {
			s.readFailed(ch, f.err)
			return
		}
		ctx, cancel := context.WithCancel(ch.ctx)
		answer := make(chan *channel.Response, 1)
		go func(req channel.Request) { answer <- s.handle(ctx, ch, &req) }(f.req)
		var resp *channel.Response
		select {
		case resp = <-answer:
			cancel()
		case next := <-frames:
			cancel()
			<-answer // the handler audits the cancelled request
			if next.err != nil {
				s.readFailed(ch, next.err)
				return
			}
			s.log.Warn("closing channel: a second request while one is in flight", "channel", ch.id, "connector", ch.grant.Connector)
			s.auditChannel(ch, audit.KindEgress, audit.DecisionDeny, "pipelined_request", "a second request arrived while one was in flight; channel closed")
			_ = channel.WriteFrame(ch.conn, deny(abi.ErrnoInvalid, "invalid", "one request at a time: a second request arrived while one was in flight; channel closed"))
			return
		}
		err := channel.WriteFrame(ch.conn, resp)
		if errors.Is(err, channel.ErrFrameTooLarge) {
			s.auditChannel(ch, audit.KindEgress, audit.DecisionDeny, "response_too_large", "the response does not fit in one channel frame")
			err = channel.WriteFrame(ch.conn, deny(abi.ErrnoTooLarge, "response_too_large", "the response does not fit in one channel frame"))
		}
		if err != nil {
			return
		}
	}
}

// readFailed handles the end of a channel's input.
func (s *server) readFailed(ch *channelState, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	s.log.Warn("closing channel after malformed frame", "channel", ch.id, "connector", ch.grant.Connector, "error", err)
	s.auditChannel(ch, audit.KindEgress, audit.DecisionDeny, "malformed_frame", "malformed frame: "+err.Error())
	_ = channel.WriteFrame(ch.conn, deny(abi.ErrnoInvalid, "invalid", "malformed frame; channel closed"))
}

func (s *server) handle(ctx context.Context, ch *channelState, req *channel.Request) *channel.Response {
	ch.mu.Lock()
	step := ch.step
	ch.mu.Unlock()
	if step == nil {
		return deny(abi.ErrnoDenied, "no_step", "no step is active on this channel")
	}
	switch req.Op {
	case channel.OpHTTP:
		if req.HTTP == nil || req.Audit != nil {
			return deny(abi.ErrnoInvalid, "invalid", "http request missing")
		}
		return s.handleHTTP(ctx, ch, step, req.HTTP)
	case channel.OpAudit:
		if req.Audit == nil || req.HTTP != nil {
			return deny(abi.ErrnoInvalid, "invalid", "audit event missing")
		}
		// Security: the worker checks both, but a compromised worker
		// writes frames itself; the broker checks what it appends.
		if req.Audit.Event == "" {
			return deny(abi.ErrnoInvalid, "invalid", "audit event has no name")
		}
		if n := eventSize(req.Audit); n > abi.MaxLogRecordBytes {
			return deny(abi.ErrnoTooLarge, "event_too_large", fmt.Sprintf("audit event is %d bytes, over the limit of %d", n, abi.MaxLogRecordBytes))
		}
		ch.mu.Lock()
		ch.events++
		n := ch.events
		ch.mu.Unlock()
		if n > maxEventsPerChannel {
			return deny(abi.ErrnoLimit, "event_budget_exceeded", fmt.Sprintf("audit event budget of %d per run of the connector exceeded", maxEventsPerChannel))
		}
		if err := s.audit.Append(withRun(audit.Record{Kind: audit.KindConnectorEvent, Event: req.Audit.Event, Fields: req.Audit.Fields}, ch, step, s.cfg.Tenant)); err != nil {
			return deny(abi.ErrnoUnavailable, "unavailable", "audit log unavailable")
		}
		return &channel.Response{Errno: abi.ErrnoOK}
	}
	return deny(abi.ErrnoInvalid, "invalid", fmt.Sprintf("unknown operation %q", req.Op))
}

// eventSize is the size of ev as JSON, as the broker encodes it, without
// HTML escaping (which would count "<" six times).
func eventSize(ev *abi.AuditEvent) int {
	var cw countWriter
	enc := json.NewEncoder(&cw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return math.MaxInt // not encodable: refused as too large
	}
	return cw.n - 1 // Encode's newline
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

func deny(e abi.Errno, code, msg string) *channel.Response {
	return &channel.Response{Errno: e, Error: &abi.Error{Code: code, Message: msg}}
}

func (s *server) auditChannel(ch *channelState, kind, decision, code, reason string) {
	ch.mu.Lock()
	step := ch.step
	ch.mu.Unlock()
	if err := s.audit.Append(withRun(audit.Record{Kind: kind, Decision: decision, Code: code, Reason: reason}, ch, step, s.cfg.Tenant)); err != nil {
		s.log.Error("audit append failed", "error", err)
	}
}

// withRun fills in who and what a record is about, from the channel's grant
// (never from the worker).
func withRun(r audit.Record, ch *channelState, step *Step, tenant string) audit.Record {
	r.Tenant, r.Action, r.RunID, r.Connector = tenant, ch.grant.Action, ch.grant.RunID, ch.grant.Connector
	if step != nil {
		r.Step, r.Intent, r.Via = step.StepID, step.Intent, step.Via
	}
	return r
}
