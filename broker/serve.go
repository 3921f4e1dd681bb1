package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

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

// Defaults for Config's zero fields.
const (
	defaultMaxRequestsPerStep = 100
	defaultMaxResponseBytes   = 8 << 20
	defaultRequestTimeout     = 30 * time.Second
)

// Serve runs the broker process: it serves [Control] over go-plugin and the
// worker channels passed to it, until the supervisor kills it.
func Serve() int {
	log := hclog.New(&hclog.LoggerOptions{Name: "broker", Level: hclog.Info, Output: os.Stderr, JSONFormat: true})
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "the broker is started by aileron; it is not meant to be run by hand")
		return 2
	}
	s := newServer(log, os.NewFile(PassFD, "broker-pass"))
	plugin.Serve(&plugin.ServeConfig{HandshakeConfig: Handshake, Plugins: PluginMap(s)})
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
	channels map[string]*channelState
}

func newServer(log hclog.Logger, pass *os.File) *server {
	return &server{log: log, pass: pass, channels: map[string]*channelState{}}
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
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = defaultMaxResponseBytes
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
	s.cfg, s.vault, s.audit, s.egress, s.limits = &cfg, vault.New(fb), al, eg, lim
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

// Open implements Control: it takes the next descriptor from the passing
// socket, which must carry args.ChannelID, and binds it to args.Grant.
func (s *server) Open(args OpenArgs) error {
	cfg, err := s.configured()
	if err != nil {
		return err
	}
	s.passMu.Lock()
	id, f, err := RecvChannel(s.pass)
	s.passMu.Unlock()
	if err != nil {
		return fmt.Errorf("receive channel: %w", err)
	}
	if id != args.ChannelID {
		f.Close()
		return fmt.Errorf("received channel %q while opening %q", id, args.ChannelID)
	}
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
	ch := &channelState{id: id, grant: args.Grant, rules: rules, conn: conn, done: make(chan struct{})}
	if args.Grant.CredentialKind != "" {
		rec, err := s.vault.ForConnector(context.Background(), cfg.Tenant, args.Grant.Connector)
		if err != nil {
			conn.Close()
			return credentialError(args.Grant, err)
		}
		if string(rec.Meta.Kind) != args.Grant.CredentialKind {
			conn.Close()
			return fmt.Errorf("credential %s bound to %s is %s, but the connector declares %s", rec.Meta.Name, args.Grant.Connector, rec.Meta.Kind, args.Grant.CredentialKind)
		}
		ch.cred = newAttacher(rec, s.vault)
	}
	s.mu.Lock()
	if _, dup := s.channels[id]; dup {
		s.mu.Unlock()
		conn.Close()
		return fmt.Errorf("channel %s is already open", id)
	}
	s.channels[id] = ch
	s.mu.Unlock()
	go s.serveChannel(ch)
	return nil
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
	for _, sc := range args.Step.Scopes {
		// Security: the supervisor checked this already; the broker checks
		// again so a supervisor bug cannot widen a grant.
		if !slices.Contains(ch.grant.Scopes, sc) {
			return fmt.Errorf("step %s: intent %s needs scope %q, which the action did not grant to %s", args.Step.StepID, args.Step.Intent, sc, ch.grant.Connector)
		}
	}
	ch.mu.Lock()
	ch.step = &args.Step
	ch.stepRequests = 0
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

	mu           sync.Mutex
	step         *Step
	stepRequests int
	requests     int
	denied       int
}

// serveChannel answers one worker's requests, one at a time, until the
// worker or the supervisor closes the channel. A malformed frame ends the
// channel: a worker that speaks garbage has nothing more to say.
func (s *server) serveChannel(ch *channelState) {
	defer close(ch.done)
	defer ch.conn.Close()
	for {
		var req channel.Request
		err := channel.ReadFrame(ch.conn, &req)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("closing channel after malformed frame", "channel", ch.id, "connector", ch.grant.Connector, "error", err)
			s.auditChannel(ch, audit.KindEgress, audit.DecisionDeny, "malformed frame: "+err.Error())
			_ = channel.WriteFrame(ch.conn, &channel.Response{Errno: abi.ErrnoInvalid, Error: &abi.Error{Code: "invalid", Message: "malformed frame; channel closed"}})
			return
		}
		resp := s.handle(ch, &req)
		if err := channel.WriteFrame(ch.conn, resp); err != nil {
			return
		}
	}
}

func (s *server) handle(ch *channelState, req *channel.Request) *channel.Response {
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
		return s.handleHTTP(ch, step, req.HTTP)
	case channel.OpAudit:
		if req.Audit == nil || req.HTTP != nil {
			return deny(abi.ErrnoInvalid, "invalid", "audit event missing")
		}
		if err := s.audit.Append(withRun(audit.Record{Kind: audit.KindConnectorEvent, Event: req.Audit.Event, Fields: req.Audit.Fields}, ch, step, s.cfg.Tenant)); err != nil {
			return deny(abi.ErrnoUnavailable, "unavailable", "audit log unavailable")
		}
		return &channel.Response{Errno: abi.ErrnoOK}
	}
	return deny(abi.ErrnoInvalid, "invalid", fmt.Sprintf("unknown operation %q", req.Op))
}

func deny(e abi.Errno, code, msg string) *channel.Response {
	return &channel.Response{Errno: e, Error: &abi.Error{Code: code, Message: msg}}
}

func (s *server) auditChannel(ch *channelState, kind, decision, reason string) {
	ch.mu.Lock()
	step := ch.step
	ch.mu.Unlock()
	_ = s.audit.Append(withRun(audit.Record{Kind: kind, Decision: decision, Reason: reason}, ch, step, s.cfg.Tenant))
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
