package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"aileron.dev/aileron/broker/audit"
	"aileron.dev/aileron/broker/channel"
	"aileron.dev/aileron/broker/egress"
	"aileron.dev/aileron/sdk/abi"
)

var plainGrant = Grant{Action: "test", Connector: testConnector, Hosts: []string{"api.example.com:443", "other.example.com:443"}}

// blocking is a service whose /slow requests wait until the client goes
// away, and which reports that it noticed.
type blocking struct {
	started   chan struct{}
	cancelled chan struct{}
}

func newBlocking() *blocking {
	return &blocking{started: make(chan struct{}, 8), cancelled: make(chan struct{}, 8)}
}

func (s *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/slow" {
		io.WriteString(w, "ok")
		return
	}
	s.started <- struct{}{}
	select {
	case <-r.Context().Done():
		s.cancelled <- struct{}{}
	case <-time.After(20 * time.Second):
	}
}

func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestBroker_WorkerKilledMidRequestCancelsIt(t *testing.T) {
	svc := newBlocking()
	b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": svc})
	w, id := b.open(t, plainGrant)
	require.NoError(t, channel.WriteFrame(w, get("https://api.example.com/slow", nil)))
	waitFor(t, svc.started, "the request to reach the service")
	start := time.Now()
	w.Close() // the worker dies: its end of the socketpair closes
	waitFor(t, svc.cancelled, "the broker to cancel the request")
	require.Less(t, time.Since(start), 2*time.Second)

	reply, err := b.s.Close(id)
	require.NoError(t, err)
	require.Equal(t, CloseReply{Requests: 1}, reply)
	rec := b.lastEgress(t)
	require.Equal(t, "cancelled", rec.Code)
	require.Equal(t, "the request was cancelled: the worker went away or the channel closed", rec.Reason)
	require.Equal(t, "api.example.com", rec.Host)
}

func TestBroker_CloseCancelsRequestInFlight(t *testing.T) {
	svc := newBlocking()
	b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": svc})
	w, id := b.open(t, plainGrant)
	require.NoError(t, channel.WriteFrame(w, get("https://api.example.com/slow", nil)))
	waitFor(t, svc.started, "the request to reach the service")
	start := time.Now()
	_, err := b.s.Close(id)
	require.NoError(t, err)
	require.Less(t, time.Since(start), 2*time.Second, "Close must not wait for the request")
	waitFor(t, svc.cancelled, "the broker to cancel the request")
	// The worker's end sees the channel close.
	var resp channel.Response
	require.Error(t, channel.ReadFrame(w, &resp))
}

func TestBroker_SecondRequestInFlightClosesChannel(t *testing.T) {
	svc := newBlocking()
	b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": svc})
	w, _ := b.open(t, plainGrant)
	require.NoError(t, channel.WriteFrame(w, get("https://api.example.com/slow", nil)))
	waitFor(t, svc.started, "the request to reach the service")
	require.NoError(t, channel.WriteFrame(w, get("https://api.example.com/fast", nil)))
	waitFor(t, svc.cancelled, "the broker to cancel the request")

	// The cancelled request's answer is never sent; the refusal is.
	var resp channel.Response
	require.NoError(t, channel.ReadFrame(w, &resp))
	require.Equal(t, abi.ErrnoInvalid, resp.Errno)
	require.Equal(t, "one request at a time: a second request arrived while one was in flight; channel closed", resp.Error.Message)
	require.ErrorIs(t, channel.ReadFrame(w, &resp), io.EOF)

	recs := b.records(t)
	require.Len(t, recs, 2)
	require.Equal(t, "cancelled", recs[0].Code)
	require.Equal(t, "pipelined_request", recs[1].Code)
	require.Equal(t, audit.DecisionDeny, recs[1].Decision)
}

func TestBroker_MalformedFrames(t *testing.T) {
	frame := func(body string) []byte {
		b := make([]byte, 4+len(body))
		binary.BigEndian.PutUint32(b, uint32(len(body)))
		copy(b[4:], body)
		return b
	}
	huge := make([]byte, 4)
	binary.BigEndian.PutUint32(huge, channel.MaxFrame+1)
	tests := []struct {
		name  string
		bytes []byte
		want  string
	}{
		{"not_json", frame("hello"), "malformed frame: decode frame: invalid character 'h' looking for beginning of value"},
		{"unknown_field", frame(`{"op":"http","evil":1}`), `malformed frame: decode frame: json: unknown field "evil"`},
		{"trailing_data", frame(`{"op":"audit"} {}`), "malformed frame: decode frame: trailing data"},
		{"oversized_length", huge, "malformed frame: channel frame exceeds the size limit"},
		{"truncated_body", frame(`{"op":"http"}`)[:8], "malformed frame: read frame body: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBroker(t, loopbackOK, nil)
			w, id := b.open(t, plainGrant)
			_, err := w.Write(tt.bytes)
			require.NoError(t, err)
			if tt.name == "truncated_body" {
				// Half-close so the broker sees the body end early.
				require.NoError(t, shutdownWrite(w))
			}
			var resp channel.Response
			require.NoError(t, channel.ReadFrame(w, &resp))
			require.Equal(t, &abi.Error{Code: "invalid", Message: "malformed frame; channel closed"}, resp.Error)
			require.ErrorIs(t, channel.ReadFrame(w, &resp), io.EOF)
			_, err = b.s.Close(id)
			require.NoError(t, err)
			recs := b.records(t)
			require.Len(t, recs, 1)
			require.Equal(t, "malformed_frame", recs[0].Code)
			require.Equal(t, tt.want, recs[0].Reason)
		})
	}
}

func TestBroker_RequestBudgets(t *testing.T) {
	b := newTestBroker(t, Config{UnsafeAllowLoopback: true, MaxRequestsPerStep: 2, MaxRequestsPerChannel: 3}, map[string]http.Handler{"api.example.com": &echo{}})
	w, id := b.open(t, plainGrant)
	send := func() *channel.Response { return call(t, w, get("https://api.example.com/", nil)) }
	require.Equal(t, abi.ErrnoOK, send().Errno)
	require.Equal(t, abi.ErrnoOK, send().Errno)
	r := send()
	require.Equal(t, abi.ErrnoLimit, r.Errno)
	require.Equal(t, &abi.Error{Code: "request_budget_exceeded", Message: "request budget of 2 per step exceeded"}, r.Error)

	// A new step gets a new step budget, but the channel's is spent.
	require.NoError(t, b.s.Step(StepArgs{ChannelID: id, Step: Step{StepID: "s2", Intent: "go"}}))
	r = send()
	require.Equal(t, abi.ErrnoLimit, r.Errno)
	require.Equal(t, &abi.Error{Code: "request_budget_exceeded", Message: "request budget of 3 per run of the connector exceeded"}, r.Error)
	rec := b.lastEgress(t)
	require.Equal(t, audit.DecisionDeny, rec.Decision)
	require.Equal(t, "request_budget_exceeded", rec.Code)
	require.Equal(t, "s2", rec.Step)
}

func TestBroker_EventBudget(t *testing.T) {
	old := maxEventsPerChannel
	maxEventsPerChannel = 2
	t.Cleanup(func() { maxEventsPerChannel = old })
	b := newTestBroker(t, loopbackOK, nil)
	w, _ := b.open(t, plainGrant)
	ev := &channel.Request{Op: channel.OpAudit, Audit: &abi.AuditEvent{Event: "x"}}
	require.Equal(t, abi.ErrnoOK, call(t, w, ev).Errno)
	require.Equal(t, abi.ErrnoOK, call(t, w, ev).Errno)
	r := call(t, w, ev)
	require.Equal(t, abi.ErrnoLimit, r.Errno)
	require.Equal(t, &abi.Error{Code: "event_budget_exceeded", Message: "audit event budget of 2 per run of the connector exceeded"}, r.Error)
	require.Len(t, b.records(t), 2)
}

func TestBroker_EventChecks(t *testing.T) {
	// The worker bounds events too, but the broker does not rely on it: a
	// compromised worker writes frames itself.
	b := newTestBroker(t, loopbackOK, nil)
	w, _ := b.open(t, plainGrant)
	big := &abi.AuditEvent{Event: "x", Fields: map[string]any{"pad": strings.Repeat("a", abi.MaxLogRecordBytes)}}
	r := call(t, w, &channel.Request{Op: channel.OpAudit, Audit: big})
	require.Equal(t, abi.ErrnoTooLarge, r.Errno)
	require.Equal(t, &abi.Error{Code: "event_too_large", Message: "audit event is 16417 bytes, over the limit of 16384"}, r.Error)
	r = call(t, w, &channel.Request{Op: channel.OpAudit, Audit: &abi.AuditEvent{Fields: map[string]any{"id": "42"}}})
	require.Equal(t, abi.ErrnoInvalid, r.Errno)
	require.Equal(t, &abi.Error{Code: "invalid", Message: "audit event has no name"}, r.Error)
	require.Empty(t, b.records(t))

	// Exactly at the limit is fine.
	fits := &abi.AuditEvent{Event: "x", Fields: map[string]any{"pad": strings.Repeat("a", abi.MaxLogRecordBytes-33)}}
	require.Equal(t, abi.ErrnoOK, call(t, w, &channel.Request{Op: channel.OpAudit, Audit: fits}).Errno)
	require.Len(t, b.records(t), 1)
}

func TestBroker_MaxChannels(t *testing.T) {
	b := newTestBroker(t, Config{UnsafeAllowLoopback: true, MaxChannels: 2}, nil)
	_, id1 := b.open(t, plainGrant)
	b.open(t, plainGrant)
	_, id3, err := b.tryOpen(plainGrant)
	require.EqualError(t, err, fmt.Sprintf("channel %s: the broker already has 2 channels open, its limit", id3))
	_, err = b.s.Close(id1)
	require.NoError(t, err)
	b.open(t, plainGrant)
}

func TestBroker_ResponseTooLarge(t *testing.T) {
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", 2048))
	})
	b := newTestBroker(t, Config{UnsafeAllowLoopback: true, MaxResponseBytes: 1024}, map[string]http.Handler{"api.example.com": big})
	w, _ := b.open(t, plainGrant)
	r := call(t, w, get("https://api.example.com/big", nil))
	require.Equal(t, abi.ErrnoTooLarge, r.Errno)
	require.Equal(t, &abi.Error{Code: "response_too_large", Message: "response exceeds 1024 bytes"}, r.Error)
	// The request was sent, so it is audited as allowed; only its
	// response was refused.
	rec := b.lastEgress(t)
	require.Equal(t, audit.DecisionAllow, rec.Decision)
	require.Equal(t, "response_too_large", rec.Code)
	require.Equal(t, 200, rec.Status)

	// The channel is still usable.
	r = call(t, w, get("https://api.example.com/big", map[string][]string{"Host": {"evil.example.com"}}))
	require.Equal(t, abi.ErrnoDenied, r.Errno)
	require.Equal(t, "host_header_mismatch", r.Error.Code)

	s := newServer(hclog.NewNullLogger(), nil)
	require.EqualError(t, s.Configure(Config{Home: t.TempDir(), MaxResponseBytes: 16 << 20}),
		"broker config: max_response_bytes 16777216 is over the limit of 15728640 (a response must fit in one channel frame)")
}

func TestBroker_Redirects(t *testing.T) {
	var otherHits atomic.Int32
	svc := &echo{}
	redirector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, "https://evil.example.com/steal", http.StatusFound)
		case "/other":
			http.Redirect(w, r, "https://other.example.com/landing", http.StatusFound)
		case "/same":
			http.Redirect(w, r, "/landing", http.StatusFound)
		default:
			svc.ServeHTTP(w, r)
		}
	})
	other := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		svc.ServeHTTP(w, r)
	})
	services := map[string]http.Handler{"api.example.com": redirector, "other.example.com": other}
	grant := Grant{Action: "test", Connector: testConnector, Hosts: []string{"api.example.com:443", "other.example.com:443"}, CredentialKind: "api_key"}
	hdr := map[string][]string{"X-Api-Key": {abi.CredentialPlaceholder}}

	t.Run("returned_by_default", func(t *testing.T) {
		b := newTestBroker(t, loopbackOK, services)
		b.put(t, "k", "api_key", SecretInput{Value: "key-redirect-0001"})
		w, _ := b.open(t, grant)
		r := call(t, w, get("https://api.example.com/away", hdr))
		require.Equal(t, abi.ErrnoOK, r.Errno)
		require.Equal(t, 302, r.HTTP.Status)
		require.Equal(t, []string{"https://evil.example.com/steal"}, r.HTTP.Headers["Location"])
		rec := b.lastEgress(t)
		require.Equal(t, audit.DecisionAllow, rec.Decision)
		require.Equal(t, 302, rec.Status)
	})
	t.Run("followed_and_refused", func(t *testing.T) {
		b := newTestBroker(t, Config{UnsafeAllowLoopback: true, FollowRedirects: 3}, services)
		b.put(t, "k", "api_key", SecretInput{Value: "key-redirect-0001"})
		w, id := b.open(t, grant)
		r := call(t, w, get("https://api.example.com/away", hdr))
		require.Equal(t, abi.ErrnoDenied, r.Errno)
		require.Equal(t, &abi.Error{Code: "host_not_declared", Message: "redirect: host evil.example.com:443 is not declared in the manifest of github://acme/svc"}, r.Error)
		// The first hop left with the credential: it is recorded as
		// sent, then the refused hop as denied.
		recs := b.records(t)
		require.Len(t, recs, 2)
		require.Equal(t, audit.DecisionAllow, recs[0].Decision)
		require.Equal(t, "api.example.com", recs[0].Host)
		require.Equal(t, "/away", recs[0].Path)
		require.Equal(t, 302, recs[0].Status)
		require.Equal(t, "k", recs[0].CredentialID)
		require.Equal(t, audit.DecisionDeny, recs[1].Decision)
		require.Equal(t, "evil.example.com", recs[1].Host)
		require.Equal(t, "/steal", recs[1].Path)
		require.Equal(t, "host_not_declared", recs[1].Code)
		require.Empty(t, recs[1].CredentialID, "the credential never went to evil.example.com")

		// Same origin: followed, with the credential.
		before := len(svc.requests())
		r = call(t, w, get("https://api.example.com/same", hdr))
		require.Equal(t, abi.ErrnoOK, r.Errno)
		require.Equal(t, 200, r.HTTP.Status)
		seen := svc.requests()[before:]
		require.Len(t, seen, 1)
		require.Equal(t, "/landing", seen[0].RequestURI)
		require.Equal(t, "key-redirect-0001", seen[0].Header.Get("X-Api-Key"))
		recs = b.records(t)[2:]
		require.Len(t, recs, 2, "one record per hop")
		require.Equal(t, []string{"/same", "/landing"}, []string{recs[0].Path, recs[1].Path})
		require.Equal(t, []int{302, 200}, []int{recs[0].Status, recs[1].Status})
		require.Equal(t, []string{audit.DecisionAllow, audit.DecisionAllow}, []string{recs[0].Decision, recs[1].Decision})

		// Another declared host: followed, without the credential.
		r = call(t, w, get("https://api.example.com/other", hdr))
		require.Equal(t, abi.ErrnoOK, r.Errno)
		require.EqualValues(t, 1, otherHits.Load())
		last := svc.requests()[len(svc.requests())-1]
		require.Empty(t, last.Header.Get("X-Api-Key"))
		recs = b.records(t)[4:]
		require.Len(t, recs, 2)
		require.Equal(t, "k", recs[0].CredentialID)
		require.Equal(t, "other.example.com", recs[1].Host)
		require.Empty(t, recs[1].CredentialID, "the credential does not follow a redirect to another host")
		reply, err := b.s.Close(id)
		require.NoError(t, err)
		require.Equal(t, CloseReply{Requests: 3, Denied: 1}, reply)
	})
}

func TestBroker_ConnectFailureIsNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there any more
	b := newTestBroker(t, Config{UnsafeAllowLoopback: true, Routes: map[string]string{"api.example.com:443": down}}, nil)
	w, id := b.open(t, plainGrant)
	r := call(t, w, get("https://api.example.com/v1?q=secret", nil))
	require.Equal(t, abi.ErrnoUnavailable, r.Errno)
	require.Equal(t, "unavailable", r.Error.Code)
	recs := b.records(t)
	require.Len(t, recs, 1)
	require.Equal(t, audit.DecisionDeny, recs[0].Decision, "nothing left the broker")
	require.Equal(t, "unavailable", recs[0].Code)
	require.Equal(t, "api.example.com", recs[0].Host)
	require.Equal(t, "/v1", recs[0].Path)
	reply, err := b.s.Close(id)
	require.NoError(t, err)
	require.Equal(t, CloseReply{Requests: 1, Denied: 1}, reply)
}

func TestBroker_StepDeadlineIsAbsolute(t *testing.T) {
	svc := &echo{}
	b := newTestBroker(t, loopbackOK, map[string]http.Handler{"api.example.com": svc})
	w, id := b.open(t, plainGrant)
	require.NoError(t, b.s.Step(StepArgs{ChannelID: id, Step: Step{StepID: "s2", Intent: "go", DeadlineMS: 1}}))
	time.Sleep(20 * time.Millisecond)
	// The step's time is spent: the request is not sent at all, rather
	// than given the step's whole deadline again.
	r := call(t, w, get("https://api.example.com/", nil))
	require.Equal(t, abi.ErrnoLimit, r.Errno)
	require.Equal(t, &abi.Error{Code: "step_deadline_exceeded", Message: "the step's deadline has passed"}, r.Error)
	require.Empty(t, svc.requests())
	rec := b.lastEgress(t)
	require.Equal(t, audit.DecisionDeny, rec.Decision)
	require.Equal(t, "step_deadline_exceeded", rec.Code)
}

func TestRequestTimeout(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name     string
		limit    time.Duration
		deadline time.Time
		want     time.Duration
		ok       bool
	}{
		{"no deadline", 5 * time.Second, time.Time{}, 5 * time.Second, true},
		{"no deadline, default limit", 0, time.Time{}, egress.DefaultTimeout, true},
		{"limit first", 5 * time.Second, now.Add(time.Minute), 5 * time.Second, true},
		{"what is left of the step", 5 * time.Second, now.Add(2 * time.Second), 2 * time.Second, true},
		{"default limit, step shorter", 0, now.Add(time.Second), time.Second, true},
		{"deadline now", 5 * time.Second, now, 0, false},
		{"deadline passed", 5 * time.Second, now.Add(-time.Second), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := requestTimeout(tt.limit, tt.deadline, now)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestBroker_ConnectorEventsAudited(t *testing.T) {
	b := newTestBroker(t, loopbackOK, nil)
	w, _ := b.open(t, plainGrant)
	r := call(t, w, &channel.Request{Op: channel.OpAudit, Audit: &abi.AuditEvent{Event: "posted", Fields: map[string]any{"id": "42"}}})
	require.Equal(t, abi.ErrnoOK, r.Errno)
	recs := b.records(t)
	require.Len(t, recs, 1)
	require.Equal(t, audit.KindConnectorEvent, recs[0].Kind)
	require.Equal(t, "posted", recs[0].Event)
	require.Equal(t, testConnector, recs[0].Connector)
}

func shutdownWrite(f interface{ Fd() uintptr }) error {
	return unix.Shutdown(int(f.Fd()), unix.SHUT_WR)
}
