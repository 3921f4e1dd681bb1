package abi

import (
	"bytes"
	"strings"
)

// Codes the host puts in [Error.Code] when an invocation fails for a reason
// the connector did not report itself. They are stable: the supervisor, the
// audit log and scripts match on them.
const (
	// CodeDeadline: the invocation's wall-clock deadline passed.
	CodeDeadline = "deadline_exceeded"
	// CodeMemoryLimit: the guest asked for more linear memory than allowed.
	CodeMemoryLimit = "memory_limit_exceeded"
	// CodeHostCallLimit: the guest made more host calls than allowed.
	CodeHostCallLimit = "host_call_limit_exceeded"
	// CodeOutputTooLarge: stdout exceeded its limit.
	CodeOutputTooLarge = "output_too_large"
	// CodeTrap: the guest trapped (unreachable, out-of-bounds access, stack
	// overflow, ...).
	CodeTrap = "trap"
	// CodeExit: the guest exited with a non-zero status.
	CodeExit = "exit"
	// CodeBadResult: stdout was not exactly one valid [Result].
	CodeBadResult = "bad_result"
	// CodeUndeclaredImport: the module imports something not granted.
	CodeUndeclaredImport = "undeclared_import"
	// CodeCancelled: the run was cancelled (Ctrl-C, client went away).
	CodeCancelled = "cancelled"
	// CodeWorkerDied: the worker process ended without answering.
	CodeWorkerDied = "worker_died"
	// CodeInternal: a host failure that is not the connector's fault.
	CodeInternal = "internal"
)

// Codes the broker puts in [Error.Code] when it refuses a request, shared
// with sdktest so a connector's unit tests see the broker's answers.
const (
	// CodeHostNotDeclared: the request's host is not one the connector
	// may reach.
	CodeHostNotDeclared = "host_not_declared"
	// CodePlaceholderMisplaced: a placeholder outside a header value.
	CodePlaceholderMisplaced = "placeholder_misplaced"
	// CodeNoCredential: a placeholder, but no credential to put there.
	CodeNoCredential = "no_credential"
	// CodeConnectorError: the connector failed without a code of its own.
	CodeConnectorError = "connector_error"
)

// MisplacedPlaceholderMessage is the refusal of a placeholder in a URL or
// a body.
const MisplacedPlaceholderMessage = "credential placeholder outside a header value: the broker substitutes it only in headers"

// PlaceholderOutsideHeaders reports whether the URL or the body of a
// request carries a placeholder: the broker substitutes them only in
// header values, and refuses the request.
func PlaceholderOutsideHeaders(url string, body []byte) bool {
	for _, ph := range []string{CredentialPlaceholder, SignaturePlaceholder} {
		if strings.Contains(url, ph) || bytes.Contains(body, []byte(ph)) {
			return true
		}
	}
	return false
}
