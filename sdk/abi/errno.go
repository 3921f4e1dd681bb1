package abi

import "strconv"

// Errno is the i32 status every aileron_v1 host function returns. Zero is
// success, as in WASI; it is an ABI convention, not a policy value: no
// decision is ever derived from an Errno's zero value.
type Errno int32

// Status codes. Their numeric values are part of the ABI and never change.
const (
	// ErrnoOK: the call succeeded.
	ErrnoOK Errno = 0
	// ErrnoFault: a pointer/length pair lies outside guest memory, or the
	// guest exports no memory. Nothing was read or written.
	ErrnoFault Errno = 1
	// ErrnoInvalid: the bytes are not what the function expects (bad JSON,
	// unknown field, bad URL, bad header). A pending result holds an [Error].
	ErrnoInvalid Errno = 2
	// ErrnoTooLarge: a payload exceeds a size limit.
	ErrnoTooLarge Errno = 3
	// ErrnoDenied: the broker refused the request (host not declared,
	// address not allowed, ...). A pending result holds an [Error] naming
	// the reason.
	ErrnoDenied Errno = 4
	// ErrnoUnavailable: the request was allowed but failed in transit
	// (connect, TLS, timeout). A pending result holds an [Error].
	ErrnoUnavailable Errno = 5
	// ErrnoLimit: a per-invocation budget (host calls, requests, bytes) is
	// used up. A pending result holds an [Error].
	ErrnoLimit Errno = 6
	// ErrnoNoResult: result_read was called with no pending result.
	ErrnoNoResult Errno = 7
	// ErrnoBufferTooSmall: result_read's buffer is shorter than the pending
	// result; the result stays pending.
	ErrnoBufferTooSmall Errno = 8
	// ErrnoNotGranted: the function exists but the manifest did not grant
	// the capability behind it.
	ErrnoNotGranted Errno = 9
	// ErrnoInternal: the host failed for a reason that is not the guest's
	// fault. A pending result may hold an [Error].
	ErrnoInternal Errno = 10
)

var errnoNames = [...]string{
	ErrnoOK:             "ok",
	ErrnoFault:          "fault",
	ErrnoInvalid:        "invalid",
	ErrnoTooLarge:       "too_large",
	ErrnoDenied:         "denied",
	ErrnoUnavailable:    "unavailable",
	ErrnoLimit:          "limit",
	ErrnoNoResult:       "no_result",
	ErrnoBufferTooSmall: "buffer_too_small",
	ErrnoNotGranted:     "not_granted",
	ErrnoInternal:       "internal",
}

// String returns the code's stable name, as used in [Error.Code].
func (e Errno) String() string {
	if e >= 0 && int(e) < len(errnoNames) {
		return errnoNames[e]
	}
	return "errno(" + strconv.Itoa(int(e)) + ")"
}
