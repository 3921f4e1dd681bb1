// Package abi holds the names, error codes and JSON envelopes of the Aileron
// connector ABI, version 1. It is the single source of these values: the
// worker's host functions, the Go SDK and the manifest import check all use it,
// so the two sides of the ABI cannot drift apart.
//
// docs/ABI.md is the normative description; this package must match it.
//
// # Shape of an invocation
//
// A connector is a WASI preview 1 command module. One invocation is one call
// of its _start export:
//
//   - stdin carries one [Invocation] as JSON;
//   - stdout must carry one [Result] as JSON;
//   - stderr is captured as the connector's log (size-limited);
//   - host functions are imported from the module [ModuleName].
//
// The package imports only the standard library, so it compiles for
// GOOS=wasip1 as part of the SDK.
package abi

// Version is the ABI version implemented by this package. It is carried in
// every [Invocation] so a connector can refuse an ABI it does not know.
const Version = "aileron_v1"

// ModuleName is the WebAssembly import module of the host functions.
const ModuleName = "aileron_v1"

// Host function names in [ModuleName]. The signatures are documented on each
// function in docs/ABI.md; all parameters are i32 and all return an i32
// [Errno].
const (
	// FuncHTTPSend sends one HTTP request through the broker:
	// http_send(req_ptr, req_len, result_len_ptr) -> errno.
	FuncHTTPSend = "http_send"
	// FuncResultRead copies the pending result of the last call into guest
	// memory: result_read(buf_ptr, buf_len) -> errno.
	FuncResultRead = "result_read"
	// FuncLog writes one structured log record: log(rec_ptr, rec_len) -> errno.
	FuncLog = "log"
	// FuncAuditEmit appends one connector event to the audit log:
	// audit_emit(ev_ptr, ev_len) -> errno.
	FuncAuditEmit = "audit_emit"
)

// CredentialPlaceholder marks where the broker puts the credential. The
// connector writes it into a request header value (for example
// "Authorization: Bearer {{aileron.credential}}"); the broker replaces it
// host-side, only in headers, only for the connector's declared credential
// and only on requests to declared hosts. The connector never sees the bytes
// that replace it.
const CredentialPlaceholder = "{{aileron.credential}}"

// SignaturePlaceholder marks where the broker puts a request signature made
// with a signing_key credential (docs/ABI.md section 5): the lower-case hex
// HMAC-SHA256, under the key, of the canonical request. The broker also
// sets [SignatureTimestampHeader]. The key never leaves the broker.
const SignaturePlaceholder = "{{aileron.signature}}"

// SignatureTimestampHeader is the header in which the broker sends the Unix
// time (seconds, decimal) that a signature covers. It is set only by the
// broker; a connector that sets it is refused.
const SignatureTimestampHeader = "X-Aileron-Timestamp"

// SignatureAlgorithm is the first line of the canonical request that a
// signature covers, naming the scheme and its version.
const SignatureAlgorithm = "AILERON-HMAC-SHA256"

// Size limits that are part of the contract. A host may enforce lower limits
// set by the operator; it never accepts more.
const (
	// MaxRequestBytes bounds the JSON encoding of one [HTTPRequest].
	MaxRequestBytes = 16 << 20
	// MaxLogRecordBytes bounds one log record or audit event.
	MaxLogRecordBytes = 16 << 10
	// MaxInvocationBytes bounds the JSON [Invocation] on stdin.
	MaxInvocationBytes = 4 << 20
	// MaxResultBytes bounds the JSON [Result] on stdout.
	MaxResultBytes = 4 << 20
)
