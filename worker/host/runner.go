package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
)

// CallError is how [Services] report a failed call: the errno the guest gets
// and the error it can read as the pending result.
type CallError struct {
	Errno abi.Errno
	Err   abi.Error
}

func (e *CallError) Error() string { return e.Err.Code + ": " + e.Err.Message }

// Services are what host functions reach beyond the instance. The worker
// implements them over its channel to the broker.
type Services interface {
	// HTTP sends req through the broker. A refusal or failure is a
	// *CallError.
	HTTP(ctx context.Context, req *abi.HTTPRequest) (*abi.HTTPResponse, error)
	// Audit appends a connector event to the audit log.
	Audit(ctx context.Context, ev *abi.AuditEvent) error
	// Log receives the connector's structured log records.
	Log(rec abi.LogRecord)
}

// failf returns the failure of an invocation, or of binding a module, that
// did not produce a result: code is one of the abi.Code* values.
func failf(code, format string, args ...any) *worker.Failure {
	return &worker.Failure{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Runner runs invocations of one module. It is not safe for concurrent use:
// the engine's epoch is shared, so invocations run one at a time.
type Runner struct {
	engine  *wasmtime.Engine
	module  *wasmtime.Module
	linker  *wasmtime.Linker
	limits  worker.Limits
	svc     Services
	scratch string
}

// NewRunner checks module's imports against caps and prepares a linker with
// WASI and the aileron_v1 functions. Zero fields of limits take
// [worker.DefaultLimits]. scratch is a private directory for the
// stdin/stdout/stderr files of each invocation.
func NewRunner(engine *wasmtime.Engine, module *wasmtime.Module, caps []string, limits worker.Limits, svc Services, scratch string) (*Runner, error) {
	if err := CheckImports(module, caps); err != nil {
		return nil, &worker.Failure{Code: abi.CodeUndeclaredImport, Message: err.Error()}
	}
	linker := wasmtime.NewLinker(engine)
	if err := linker.DefineWasi(); err != nil {
		return nil, fmt.Errorf("define wasi: %w", err)
	}
	if err := defineHostFuncs(linker); err != nil {
		return nil, fmt.Errorf("define %s: %w", abi.ModuleName, err)
	}
	return &Runner{engine: engine, module: module, linker: linker, limits: limits.WithDefaults(), svc: svc, scratch: scratch}, nil
}

// Close releases the linker. The module and engine belong to the caller.
func (r *Runner) Close() { r.linker.Close() }

// Outcome is what one invocation produced.
type Outcome struct {
	// Result is the connector's result document.
	Result abi.Result
	// Stderr is the captured log, at most Limits.StderrBytes.
	Stderr []byte
	// StderrTruncated says bytes were dropped.
	StderrTruncated bool
	// HostCalls counts aileron_v1 calls.
	HostCalls int
	// Duration is the time spent in instantiate + _start.
	Duration time.Duration
}

// Invoke runs one _start with invocation as stdin in a fresh store. The
// error is a *worker.Failure for every way the guest can fail; other errors are
// host faults.
func (r *Runner) Invoke(ctx context.Context, invocation []byte) (*Outcome, error) {
	if len(invocation) > abi.MaxInvocationBytes {
		return nil, failf(abi.CodeInternal, "invocation is %d bytes, over the ABI limit of %d", len(invocation), abi.MaxInvocationBytes)
	}
	lim := r.limits
	ctx, cancel := context.WithTimeout(ctx, lim.Deadline())
	defer cancel()

	// Three fresh files in the scratch directory (no subdirectory: the
	// sandbox allows creating and removing files there, not directories).
	stdin, stdout, stderr, err := r.streamFiles(invocation)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, p := range []string{stdin, stdout, stderr} {
			os.Remove(p)
		}
	}()

	wasi := wasmtime.NewWasiConfig()
	// Security: no args, no environment, no preopened directories: the
	// only files the guest can reach are its three standard streams.
	if err := wasi.SetStdinFile(stdin); err != nil {
		return nil, fmt.Errorf("wasi stdin: %w", err)
	}
	if err := wasi.SetStdoutFile(stdout); err != nil {
		return nil, fmt.Errorf("wasi stdout: %w", err)
	}
	if err := wasi.SetStderrFile(stderr); err != nil {
		return nil, fmt.Errorf("wasi stderr: %w", err)
	}

	inv := &invocation_{ctx: ctx, svc: r.svc, maxCalls: lim.HostCalls}
	store := wasmtime.NewStoreWithData(r.engine, inv)
	defer store.Close()
	store.SetWasi(wasi)
	// Security: the limiter bounds linear memory and tables; one instance,
	// one memory, a few tables are all a connector needs.
	store.Limiter(lim.MemoryBytes, lim.TableElements, 1, 4, 1)
	// Interrupt at the next epoch tick; the tick fires at the deadline.
	store.SetEpochDeadline(1)
	stop := context.AfterFunc(ctx, r.engine.IncrementEpoch)
	defer stop()

	start := time.Now()
	memSize, runErr := r.run(store)
	out := &Outcome{Duration: time.Since(start), HostCalls: inv.calls}
	out.Stderr, out.StderrTruncated = readCapped(stderr, lim.StderrBytes)

	if runErr != nil {
		return out, r.classify(ctx, inv, runErr, memSize, out.Stderr)
	}
	res, f := readResult(stdout, lim.StdoutBytes)
	if f != nil {
		return out, f
	}
	out.Result = res
	return out, nil
}

// run instantiates the module and calls _start. It returns the guest's
// linear memory size at the end, for attributing failures to the limit.
// streamFiles creates the invocation's stdin (holding inv), stdout and
// stderr files.
func (r *Runner) streamFiles(inv []byte) (stdin, stdout, stderr string, err error) {
	var names [3]string
	for i, kind := range []string{"stdin", "stdout", "stderr"} {
		f, err := os.CreateTemp(r.scratch, kind+"-*")
		if err != nil {
			for _, n := range names[:i] {
				os.Remove(n)
			}
			return "", "", "", fmt.Errorf("scratch %s: %w", kind, err)
		}
		names[i] = f.Name()
		if kind == "stdin" {
			_, err = f.Write(inv)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			for _, n := range names[:i+1] {
				os.Remove(n)
			}
			return "", "", "", fmt.Errorf("scratch %s: %w", kind, err)
		}
	}
	return names[0], names[1], names[2], nil
}

func (r *Runner) run(store *wasmtime.Store) (int64, error) {
	instance, err := r.linker.Instantiate(store, r.module)
	if err != nil {
		return 0, err
	}
	start := instance.GetFunc(store, "_start")
	if start == nil {
		return 0, failf(abi.CodeBadResult, "module exports no _start function: it is not a WASI command")
	}
	_, err = start.Call(store)
	var memSize int64
	if ext := instance.GetExport(store, "memory"); ext != nil && ext.Memory() != nil {
		memSize = int64(ext.Memory().DataSize(store))
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if status, ok := werr.ExitStatus(); ok && status == 0 {
			return memSize, nil // proc_exit(0), which Go's wasip1 runtime always calls
		}
	}
	return memSize, err
}

// classify turns a failed run into the Failure a person can act on.
func (r *Runner) classify(ctx context.Context, inv *invocation_, err error, memSize int64, stderr []byte) error {
	var f *worker.Failure
	if errors.As(err, &f) {
		return f
	}
	if inv.abort != nil {
		return inv.abort
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return failf(abi.CodeDeadline, "deadline exceeded: the invocation ran longer than %s", r.limits.Deadline())
	case errors.Is(ctx.Err(), context.Canceled):
		return failf(abi.CodeCancelled, "invocation cancelled")
	}
	if r.memoryExhausted(err, memSize, stderr) {
		return failf(abi.CodeMemoryLimit, "memory limit %s exceeded", formatBytes(r.limits.MemoryBytes))
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if status, ok := werr.ExitStatus(); ok {
			return failf(abi.CodeExit, "connector exited with status %d%s", status, lastLine(stderr))
		}
		return failf(abi.CodeTrap, "connector failed: %s", firstLine(werr.Error()))
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		code := "unknown"
		if c := trap.Code(); c != nil {
			code = trapName(*c)
		}
		return failf(abi.CodeTrap, "connector trapped (%s): %s", code, firstLine(trap.Message()))
	}
	return failf(abi.CodeInternal, "run connector: %v", err)
}

// memoryExhausted attributes a failure to the memory limit. wasmtime's
// limiter makes memory.grow return -1 rather than trap, so the guest dies
// its own way (Go prints "out of memory" and exits 2, Rust aborts with
// unreachable). The limit itself is enforced exactly; only the message is
// inferred: from Go's runtime message, or from an exit or unreachable trap
// with memory within one growth step (4 MiB, Go's wasm arena) of the limit.
func (r *Runner) memoryExhausted(err error, memSize int64, stderr []byte) bool {
	if bytes.Contains(stderr, []byte("out of memory")) {
		return true
	}
	if memSize+growthStep < r.limits.MemoryBytes {
		return false
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		_, isExit := werr.ExitStatus()
		return isExit
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		c := trap.Code()
		return c != nil && *c == wasmtime.UnreachableCodeReached
	}
	return false
}

const growthStep = 4<<20 + 64<<10

func readCapped(path string, limit int64) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, limit+1))
	if int64(len(b)) > limit {
		return b[:limit], true
	}
	return b, false
}

func readResult(path string, limit int64) (abi.Result, *worker.Failure) {
	b, truncated := readCapped(path, limit)
	if truncated {
		return abi.Result{}, failf(abi.CodeOutputTooLarge, "connector output exceeds %s", formatBytes(limit))
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return abi.Result{}, failf(abi.CodeBadResult, "connector wrote no result to stdout")
	}
	var res abi.Result
	if err := abi.DecodeStrict(b, &res); err != nil {
		return abi.Result{}, failf(abi.CodeBadResult, "connector stdout is not a result document: %v", err)
	}
	if res.OK && res.Error != nil || !res.OK && res.Error == nil {
		return abi.Result{}, failf(abi.CodeBadResult, `connector result must have "ok":true with "output", or "ok":false with "error"`)
	}
	if !res.OK && res.Error.Code == "" {
		res.Error.Code = abi.CodeConnectorError
	}
	return res, nil
}

func trapName(c wasmtime.TrapCode) string {
	switch c {
	case wasmtime.StackOverflow:
		return "stack overflow"
	case wasmtime.MemoryOutOfBounds:
		return "out-of-bounds memory access"
	case wasmtime.HeapMisaligned:
		return "misaligned memory access"
	case wasmtime.TableOutOfBounds:
		return "out-of-bounds table access"
	case wasmtime.IndirectCallToNull:
		return "indirect call to null"
	case wasmtime.BadSignature:
		return "bad signature"
	case wasmtime.IntegerOverflow:
		return "integer overflow"
	case wasmtime.IntegerDivisionByZero:
		return "integer division by zero"
	case wasmtime.BadConversionToInteger:
		return "bad conversion to integer"
	case wasmtime.UnreachableCodeReached:
		return "unreachable"
	case wasmtime.Interrupt:
		return "interrupted"
	case wasmtime.OutOfFuel:
		return "out of fuel"
	}
	return "unknown"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLine(stderr []byte) string {
	s := strings.TrimSpace(string(stderr))
	if s == "" {
		return ""
	}
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
