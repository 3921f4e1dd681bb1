// Package audit keeps the broker's decision record: an append-only JSONL
// file in which every line is hash-chained to the one before, so that an
// edit, deletion, insertion or reordering anywhere is detected by [Verify].
//
// # Format
//
// One [Record] per line, as canonical JSON (fixed field order, no HTML
// escaping, map keys sorted), ending with its own hash:
//
//	{"seq":1,"time":"...","prev":"000…0","kind":"egress",...,"hash":"3f…"}
//
// hash is the lower-case hex SHA-256 of the line's bytes without the
// trailing `,"hash":"…"` (that is, the same object closed right after its
// last other field). prev is the hash of the previous record; the first
// record's prev is 64 zeros ([Genesis]). seq counts from 1 without gaps.
//
// # What the chain proves
//
// Anyone who can write the file can also recompute every hash after an
// edit: the chain shows that a log is internally consistent, not who wrote
// it. Removing records from the end is indistinguishable from a log that
// stopped there. Both are caught by comparing the head (the last record,
// from [Tail]) with a copy kept elsewhere, which `aileron audit verify`
// prints for exactly that purpose.
//
// # Durability
//
// [Log.Append] writes each record with one write(2) on an O_APPEND file
// and returns only once an fsync covers it, so a decision the broker acted
// on is on disk first. Concurrent appends share fsyncs (group commit): the
// cost of durability is one fsync of latency per Append, not one fsync of
// throughput per record. A failed write or fsync makes the Log refuse
// further appends: the file may end in a partial record, and [Open] refuses
// to append to a file whose tail does not verify.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"aileron.dev/aileron/cas/atomicfile"
	"aileron.dev/aileron/sdk/abi"
)

// Genesis is the prev of the first record.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxRecordBytes bounds one line of the log.
const MaxRecordBytes = 256 << 10

// Record kinds written by the broker. Kind is free text otherwise, but
// never empty.
const (
	// KindEgress is an egress decision, one record per request the broker
	// sent or refused (a followed redirect is one more request): allowed
	// (with status and sizes) or denied (with code and reason).
	KindEgress = "egress"
	// KindConnectorEvent is an event the connector emitted with
	// audit_emit; Event and Fields come from the connector.
	KindConnectorEvent = "connector_event"
	// KindRun marks the start or end of an action run.
	KindRun = "run"
	// KindCredential is something the broker did with a credential on its
	// own behalf, such as an OAuth2 refresh (Event "oauth2_refresh"); Code
	// says how it went, Host is the endpoint, CredentialID the credential.
	KindCredential = "credential"
)

// Values of [Record.Decision], the same words egress.Result prints.
const (
	// DecisionAllow: the request left the broker. Code and Reason are set
	// if it then failed (no answer in time, a response over the limit).
	DecisionAllow = "allow"
	// DecisionDeny: the request did not leave the broker: a policy or a
	// limit refused it, or it could not be sent (the name did not resolve,
	// the connection or the TLS handshake failed). Code and Reason say
	// why.
	DecisionDeny = "deny"
)

// Record is one audit entry. The broker fills the descriptive fields;
// [Log.Append] fills Seq, Prev, Hash and, when zero, Time. A credential
// appears only by id, never by value.
type Record struct {
	// Seq is the record's position, from 1.
	Seq uint64 `json:"seq"`
	// Time is when the record was appended, in UTC.
	Time time.Time `json:"time"`
	// Prev is the Hash of the previous record, or Genesis.
	Prev string `json:"prev"`
	// Kind says what the record describes, e.g. KindEgress.
	Kind string `json:"kind"`
	// Decision is DecisionAllow or DecisionDeny, for decisions.
	Decision string `json:"decision,omitempty"`
	// Code is the stable machine code of the decision, e.g.
	// "host_not_declared".
	Code string `json:"code,omitempty"`
	// Reason is the decision's human reason.
	Reason string `json:"reason,omitempty"`
	// Tenant identifies whose action ran, for multi-tenant servers.
	Tenant string `json:"tenant,omitempty"`
	// Action is the action's name.
	Action string `json:"action,omitempty"`
	// RunID identifies the action run.
	RunID string `json:"run_id,omitempty"`
	// Step is the step id within the action.
	Step string `json:"step,omitempty"`
	// Via says how the run was started: "cli", "mcp" or "serve".
	Via string `json:"via,omitempty"`
	// Connector is the connector's FQN and version.
	Connector string `json:"connector,omitempty"`
	// Intent is the connector intent being run.
	Intent string `json:"intent,omitempty"`
	// Method is the HTTP method.
	Method string `json:"method,omitempty"`
	// Host is the destination host.
	Host string `json:"host,omitempty"`
	// Port is the destination port.
	Port uint16 `json:"port,omitempty"`
	// Path is the URL path, without the query string (queries carry data).
	Path string `json:"path,omitempty"`
	// Status is the HTTP response status.
	Status int `json:"status,omitempty"`
	// RequestBytes is the request body size.
	RequestBytes int64 `json:"request_bytes,omitempty"`
	// Bytes is the response body size.
	Bytes int64 `json:"bytes,omitempty"`
	// Redactions counts secret occurrences scrubbed from the response.
	Redactions int `json:"redactions,omitempty"`
	// CredentialID names the credential used; never its value.
	CredentialID string `json:"credential_id,omitempty"`
	// DurationMS is how long the request took, in milliseconds.
	DurationMS float64 `json:"duration_ms,omitempty"`
	// Event is the name of a connector-emitted event.
	Event string `json:"event,omitempty"`
	// Fields holds connector-emitted or extra fields. Numbers read back as
	// json.Number.
	Fields map[string]any `json:"fields,omitempty"`
	// Hash is the hex SHA-256 of the record's line without this field.
	Hash string `json:"hash,omitempty"`
}

// Errors from [Open] and [Log.Append].
var (
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit log is closed")
)

// Log appends records to a hash-chained file. It is safe for concurrent
// use.
type Log struct {
	mu   sync.Mutex // guards the fields below and the order of writes
	f    *os.File
	path string
	seq  uint64 // seq of the last record written
	head string // hash of the last record written
	size int64  // file size after the last record this Log wrote or read
	err  error  // sticky: set when a write or fsync failed
	sync bool   // fsync per record; only tests and benchmarks turn it off

	syncMu sync.Mutex // serializes fsync; held while one runs
	synced uint64     // seq of the last record known to be on disk
}

// Open opens or creates the log at path (mode 0600) and recovers the chain
// head from its last records. It refuses a file that group or others can
// access, and a file whose tail does not verify (a torn or edited last
// record): appending to it would chain new records onto unverifiable ones.
// Open reads only the tail; checking the whole file is [Verify]'s job.
//
// Several processes may append to one log (each `aileron run` has its own
// broker): every append takes an exclusive lock on the file, and if another
// process appended since, re-reads the head before chaining onto it.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	l, err := open(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func open(f *os.File, path string) (*Log, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: open %s: not a regular file", path)
	}
	// Security: a log others can write is a log others can rewrite.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit: open %s: mode %#o gives access to group or others; want 0600", path, perm)
	}
	unlock, err := lockFile(f)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	defer unlock()
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	seq, head, err := recoverHead(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if fi.Size() == 0 {
		// Make the new file's directory entry durable too (best effort:
		// a filesystem that cannot fsync a directory must not stop the
		// broker).
		_ = atomicfile.SyncDir(filepath.Dir(path))
	}
	return &Log{f: f, path: path, seq: seq, head: head, size: fi.Size(), sync: true}, nil
}

// recoverHead verifies the last records of the file and returns the seq
// and hash of the last one.
func recoverHead(f *os.File, size int64) (uint64, string, error) {
	if size == 0 {
		return 0, Genesis, nil
	}
	chunk := int64(2*MaxRecordBytes + 2)
	off := max(size-chunk, 0)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return 0, "", fmt.Errorf("read tail: %w", err)
	}
	if buf[len(buf)-1] != '\n' {
		return 0, "", &VerifyError{Reason: "the last record is truncated (no newline at end of file)"}
	}
	s := &scanner{anchored: off == 0, prev: Genesis}
	window := len(buf)
	if off > 0 {
		// Skip the partial line the chunk starts in.
		i := bytes.IndexByte(buf, '\n')
		buf = buf[i+1:]
		s.line = -1 // line numbers are unknown here
	}
	if _, err := s.all(bytes.NewReader(buf), nil); err != nil {
		return 0, "", err
	}
	if s.n == 0 {
		// Security: never restart the chain at Genesis on a non-empty file.
		return 0, "", &VerifyError{Reason: fmt.Sprintf("no complete record in the last %d bytes", window)}
	}
	return s.seq, s.prev, nil
}

// Append assigns r its Seq, Prev, Time (if zero) and Hash, writes it as
// one line and returns once it is on disk. Kind must be set.
func (l *Log) Append(r Record) error {
	if r.Kind == "" {
		return errors.New("audit: append: record has no kind")
	}
	seq, sync, err := l.write(r)
	if err != nil || !sync {
		return err
	}
	return l.syncThrough(seq)
}

// write chains and writes r under the lock, and returns its seq.
func (l *Log) write(r Record) (uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, false, fmt.Errorf("audit: append: %w", ErrClosed)
	}
	if l.err != nil {
		return 0, false, fmt.Errorf("audit: append: an earlier write failed, the log may be torn: %w", l.err)
	}
	// Security: the file lock keeps two processes from chaining onto the
	// same head; a head another process moved is re-read, and verified,
	// before we chain onto it.
	unlock, err := lockFile(l.f)
	if err != nil {
		l.err = err
		return 0, false, fmt.Errorf("audit: append: %w", err)
	}
	defer unlock()
	fi, err := l.f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("audit: append: %w", err)
	}
	if fi.Size() != l.size {
		seq, head, err := recoverHead(l.f, fi.Size())
		if err != nil {
			return 0, false, fmt.Errorf("audit: append: another writer left the log unverifiable: %w", err)
		}
		l.seq, l.head, l.size = seq, head, fi.Size()
	}
	r.Seq, r.Prev, r.Hash = l.seq+1, l.head, ""
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	line, hash, err := encodeLine(r)
	if err != nil {
		return 0, false, fmt.Errorf("audit: append %s record: %w", r.Kind, err)
	}
	if len(line) > MaxRecordBytes {
		return 0, false, fmt.Errorf("audit: append %s record: %d bytes, over the limit of %d", r.Kind, len(line), MaxRecordBytes)
	}
	if _, err := l.f.Write(line); err != nil {
		l.err = err
		return 0, false, fmt.Errorf("audit: append: %w", err)
	}
	l.seq, l.head, l.size = r.Seq, hash, l.size+int64(len(line))
	return r.Seq, l.sync, nil
}

// syncThrough returns once record seq is on disk. Group commit: whoever
// finds no fsync covering seq runs one for every record written so far, so
// concurrent appenders share fsyncs instead of queueing for one each.
func (l *Log) syncThrough(seq uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= seq {
		return nil // an fsync that started after our write covered it
	}
	l.mu.Lock()
	f, target, err := l.f, l.seq, l.err
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("audit: append: an earlier write failed, the log may be torn: %w", err)
	}
	if f == nil {
		return fmt.Errorf("audit: append: fsync: %w", ErrClosed)
	}
	if err := f.Sync(); err != nil {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		return fmt.Errorf("audit: append: fsync: %w", err)
	}
	l.synced = target
	return nil
}

// Close releases the lock and closes the file.
func (l *Log) Close() error {
	l.syncMu.Lock() // let a running fsync finish
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}

// canonical returns r (without Hash) as canonical JSON. Encoding, decoding
// and encoding again reaches a fixed point (invalid UTF-8 becomes U+FFFD,
// numbers in Fields become json.Number), so Verify can demand that a line
// re-encodes to itself.
func canonical(r Record) ([]byte, error) {
	r.Hash = ""
	b, err := marshal(r)
	if err != nil {
		return nil, err
	}
	// Typed fields already are a fixed point; only untyped Fields and
	// strings that held invalid UTF-8 (now \ufffd escapes) change.
	if r.Fields == nil && !bytes.Contains(b, []byte(`\ufffd`)) {
		return b, nil
	}
	var back Record
	if err := abi.DecodeStrictNumbers(b, &back); err != nil {
		return nil, fmt.Errorf("BUG(audit): record does not decode: %w", err)
	}
	return marshal(back)
}

func marshal(r Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// encodeLine returns the full line, newline included, and the hash.
func encodeLine(r Record) ([]byte, string, error) {
	body, err := canonical(r)
	if err != nil {
		return nil, "", err
	}
	h := sha256hex(body)
	line := make([]byte, 0, len(body)+len(hashKey)+len(h)+3)
	line = append(line, body[:len(body)-1]...)
	line = append(line, hashKey...)
	line = append(line, h...)
	line = append(line, "\"}\n"...)
	return line, h, nil
}

const hashKey = `,"hash":"`
