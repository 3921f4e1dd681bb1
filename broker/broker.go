// Package broker is the process that holds the vault and is the only one with
// network egress. This file is its contract with the supervisor: the
// go-plugin handshake, the control RPC and the grant a channel is bound to.
//
// # Channels
//
// For every worker the supervisor creates a socketpair, hands one end to the
// worker and passes the other to the broker over the descriptor-passing
// socket (SCM_RIGHTS), then calls [Control.Open] with the grant for it. From
// then on the broker attributes every request arriving on that socket to that
// grant; a worker cannot name another connector, run or credential.
// [Control.Step] tells the broker which step (intent, scopes) is running on
// the channel; [Control.Close] ends it.
//
// # Process
//
// The broker is the aileron binary started with the hidden "broker"
// subcommand; [Serve] is its main loop. Only this package and its internal
// subpackages decrypt credentials.
package broker

import (
	"net/rpc"
	"time"

	"github.com/hashicorp/go-plugin"
)

// Handshake is the broker's go-plugin handshake (not a security measure).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "AILERON_BROKER",
	MagicCookieValue: "4f2d7e31-broker-v1",
}

// PluginName is the name the control service is dispensed under.
const PluginName = "broker"

// PassFD is the broker's descriptor of the SOCK_SEQPACKET socket over which
// the supervisor passes channel ends (ExtraFiles[0]).
const PassFD = 3

// Config is sent once with [Control.Configure] before any channel opens.
type Config struct {
	// Home is $AILERON_HOME: the vault and the audit log live under it.
	Home string
	// Tenant scopes vault lookups and audit records ("" on a single-user
	// host).
	Tenant string
	// AuditPath is the hash-chained audit log; default Home/audit.jsonl.
	AuditPath string
	// UnsafeAllowLoopback lets connectors reach loopback addresses. Tests
	// and the demo use it; it is logged loudly at startup.
	UnsafeAllowLoopback bool
	// UnsafeAllowPrivate lets connectors reach RFC 1918 and other private
	// ranges.
	UnsafeAllowPrivate bool
	// ExtraRootCAs is PEM of additional CAs trusted for TLS (tests).
	ExtraRootCAs []byte
	// HostsOverride maps host names to addresses, consulted before DNS
	// (tests point declared names at addresses they control).
	HostsOverride map[string][]string
	// Routes sends a declared "host:port" to another "ip:port" (tests run
	// fake services on loopback ports behind real names). The policy still
	// checks the declared host and the routed address.
	Routes map[string]string
	// MaxRequestsPerStep bounds egress requests per step (0: default 100).
	MaxRequestsPerStep int
	// MaxRequestsPerChannel bounds egress requests over all the steps a
	// channel (one connector in one run) serves (0: default 1000).
	MaxRequestsPerChannel int
	// MaxChannels bounds the channels open at once in this broker (0:
	// default 256); Open refuses more.
	MaxChannels int
	// FollowRedirects is how many redirects the broker follows itself,
	// re-deciding every hop against the grant (0: none, a 3xx goes back
	// to the connector). The credential goes only to hops on the original
	// scheme, host and port.
	FollowRedirects int
	// MaxResponseBytes bounds one response body (0: default 8 MiB; at most
	// 15 MiB, so a response fits in one channel frame).
	MaxResponseBytes int64
	// RequestTimeoutMS bounds one request (0: default).
	RequestTimeoutMS int64
	// EgressRequestsPerMinute bounds the requests that leave through this
	// broker, over all its channels (0: no limit). A server runs one
	// broker per tenant, so this is the tenant's egress quota. It is a
	// token bucket holding one minute's worth; a request over it is
	// refused with code egress_quota_exceeded and never sent.
	EgressRequestsPerMinute int
	// EgressBytesPerMinute bounds request plus response body bytes the
	// same way (0: no limit). A request is sent while the bucket is not
	// in debt and its bytes are charged once its response is in, so one
	// request may overdraw the bucket; the next waits until it refills.
	EgressBytesPerMinute int64
}

// Grant is what one channel may do: the connector's manifest intersected
// with the action's narrowing. The zero Grant allows nothing.
type Grant struct {
	// RunID and Action identify the action run, for the audit log.
	RunID  string
	Action string
	// Connector is the canonical FQN; Version and Hash pin it.
	Connector string
	Version   string
	Hash      string
	// Hosts are canonical "host:port" entries the connector may reach.
	Hosts []string
	// CredentialKind is the kind the manifest declares ("" for none).
	CredentialKind string
	// Scopes are the scopes the action granted to this connector.
	Scopes []string
}

// Step names the step running on a channel and what it may use.
type Step struct {
	StepID string
	Intent string
	// Scopes the intent needs; they must lie inside the channel's grant.
	Scopes []string
	// DeadlineMS is the step's remaining wall-clock budget. The broker
	// counts it from when it is told of the step: each request is bounded
	// by what is left, and refused once nothing is.
	DeadlineMS int64
	// Via says how the run was started ("cli", "mcp", "serve"), for audit.
	Via string
}

// OpenArgs registers the channel end passed with ChannelID.
type OpenArgs struct {
	// ChannelID matches the bytes sent with the descriptor.
	ChannelID string
	Grant     Grant
	// Step, if set, is the channel's first active step, saving a Step
	// call (see Control.Step).
	Step *Step
}

// StepArgs sets the active step of a channel.
type StepArgs struct {
	ChannelID string
	Step      Step
}

// CloseReply summarises a closed channel.
type CloseReply struct {
	Requests int
	Denied   int
}

// SecretInput is secret material sent once, from `aileron vault set` to the
// broker, which encrypts it; it is never sent back.
type SecretInput struct {
	Value        string
	Username     string
	Password     string
	AccessToken  string
	RefreshToken string
	ExpiryUnix   int64
	TokenURL     string
	ClientID     string
	ClientSecret string
}

// VaultSetArgs stores or replaces one credential.
type VaultSetArgs struct {
	Name       string
	Kind       string
	Scopes     []string
	Connectors []string
	Secret     SecretInput
}

// CredentialInfo describes a credential without its secret.
type CredentialInfo struct {
	Name       string
	Kind       string
	Scopes     []string
	Connectors []string
	Updated    time.Time
}

// RunRecord summarises one action run for the audit log: how it ended and
// under which isolation.
type RunRecord struct {
	RunID  string
	Action string
	Via    string
	// Isolation is "strict" or "relaxed"; Layers are those in force for
	// the run's workers, Missing those that were not.
	Isolation string
	Layers    []string
	Missing   []string
	// Code is "ok" or the failure's code; Message says why.
	Code       string
	Message    string
	DurationMS float64
	// PeakRSSKiB is each worker's peak resident set (VmHWM, shared file
	// pages included), PeakMemoryKiB its cgroup's peak charged memory (0
	// without a cgroup), CPUMS the CPU time its processes used, in ms:
	// with a cgroup v2 group all of it, read after they ended; otherwise
	// the sum over the threads alive just before they were killed.
	PeakRSSKiB    []int64
	PeakMemoryKiB []int64
	CPUMS         []float64
}

// Control is the broker's control RPC, served to the supervisor only.
type Control interface {
	// Shutdown closes every channel and the audit log and makes the
	// broker exit, so nothing is cut off in the middle of an append.
	Shutdown() error
	RecordRun(RunRecord) error
	Configure(Config) error
	Open(OpenArgs) error
	Step(StepArgs) error
	Close(channelID string) (CloseReply, error)
	VaultSet(VaultSetArgs) error
	VaultList() ([]CredentialInfo, error)
	VaultRemove(name string) error
}

// Plugin is the go-plugin glue for [Control] over net/rpc.
type Plugin struct {
	// Impl is set on the broker side only.
	Impl Control
}

// Server implements plugin.Plugin.
func (p *Plugin) Server(*plugin.MuxBroker) (any, error) { return &rpcServer{impl: p.Impl}, nil }

// Client implements plugin.Plugin.
func (p *Plugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) { return &Client{c: c}, nil }

// PluginMap is the plugin set both sides use.
func PluginMap(impl Control) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &Plugin{Impl: impl}}
}

// Client is the supervisor's side of [Control].
type Client struct{ c *rpc.Client }

var _ Control = (*Client)(nil)

// Configure implements Control.
func (c *Client) Configure(cfg Config) error {
	var r struct{}
	return c.c.Call("Plugin.Configure", cfg, &r)
}

// Open implements Control.
func (c *Client) Open(a OpenArgs) error {
	var r struct{}
	return c.c.Call("Plugin.Open", a, &r)
}

// Step implements Control.
func (c *Client) Step(a StepArgs) error {
	var r struct{}
	return c.c.Call("Plugin.Step", a, &r)
}

// Close implements Control.
func (c *Client) Close(id string) (CloseReply, error) {
	var r CloseReply
	err := c.c.Call("Plugin.Close", id, &r)
	return r, err
}

// Shutdown implements Control.
func (c *Client) Shutdown() error {
	var out struct{}
	return c.c.Call("Plugin.Shutdown", struct{}{}, &out)
}

// RecordRun implements Control.
func (c *Client) RecordRun(r RunRecord) error {
	var out struct{}
	return c.c.Call("Plugin.RecordRun", r, &out)
}

// VaultSet implements Control.
func (c *Client) VaultSet(a VaultSetArgs) error {
	var r struct{}
	return c.c.Call("Plugin.VaultSet", a, &r)
}

// VaultList implements Control.
func (c *Client) VaultList() ([]CredentialInfo, error) {
	var r []CredentialInfo
	err := c.c.Call("Plugin.VaultList", struct{}{}, &r)
	return r, err
}

// VaultRemove implements Control.
func (c *Client) VaultRemove(name string) error {
	var r struct{}
	return c.c.Call("Plugin.VaultRemove", name, &r)
}

type rpcServer struct{ impl Control }

func (s *rpcServer) RecordRun(r RunRecord, _ *struct{}) error { return s.impl.RecordRun(r) }
func (s *rpcServer) Shutdown(_ struct{}, _ *struct{}) error   { return s.impl.Shutdown() }

func (s *rpcServer) VaultSet(a VaultSetArgs, _ *struct{}) error { return s.impl.VaultSet(a) }
func (s *rpcServer) VaultRemove(n string, _ *struct{}) error    { return s.impl.VaultRemove(n) }
func (s *rpcServer) VaultList(_ struct{}, r *[]CredentialInfo) (err error) {
	*r, err = s.impl.VaultList()
	return err
}

func (s *rpcServer) Configure(c Config, _ *struct{}) error { return s.impl.Configure(c) }
func (s *rpcServer) Open(a OpenArgs, _ *struct{}) error    { return s.impl.Open(a) }
func (s *rpcServer) Step(a StepArgs, _ *struct{}) error    { return s.impl.Step(a) }
func (s *rpcServer) Close(id string, r *CloseReply) (err error) {
	*r, err = s.impl.Close(id)
	return err
}
