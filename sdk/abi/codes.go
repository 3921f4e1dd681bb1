package abi

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
