package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
)

// invocation_ is the per-store state the host functions see through
// Caller.Data. The trailing underscore keeps it apart from the
// "invocation" parameter names used elsewhere.
type invocation_ struct {
	ctx      context.Context
	svc      Services
	calls    int
	maxCalls int
	// pending is the result of the last call, waiting for result_read.
	pending []byte
	// abort, when set, ends the run with this failure (via a trap).
	abort *worker.Failure
}

// defineHostFuncs links the aileron_v1 functions. Whether a module may
// import them is decided before instantiation by [CheckImports]; the linker
// itself defines them all.
func defineHostFuncs(l *wasmtime.Linker) error {
	funcs := []struct {
		name string
		fn   any
	}{
		{abi.FuncHTTPSend, hostHTTPSend},
		{abi.FuncResultRead, hostResultRead},
		{abi.FuncLog, hostLog},
		{abi.FuncAuditEmit, hostAuditEmit},
	}
	for _, f := range funcs {
		if err := l.FuncWrap(abi.ModuleName, f.name, f.fn); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// enter is the common prologue of every host function: it finds the
// invocation state, counts the call against the budget, and turns a panic
// in host code into ErrnoInternal instead of a crash of the worker.
func enter(c *wasmtime.Caller) (*invocation_, guestMemory, abi.Errno, *wasmtime.Trap) {
	inv, ok := c.Data().(*invocation_)
	if !ok {
		return nil, guestMemory{}, abi.ErrnoInternal, wasmtime.NewTrap("BUG(aileron): host function called without invocation state")
	}
	if inv.abort != nil {
		return nil, guestMemory{}, abi.ErrnoLimit, wasmtime.NewTrap(inv.abort.Message)
	}
	inv.calls++
	if inv.calls > inv.maxCalls {
		// Security: a guest that ignores errors and keeps calling would
		// otherwise spin until its deadline; end the run instead.
		inv.abort = failf(abi.CodeHostCallLimit, "host call limit %d exceeded", inv.maxCalls)
		return nil, guestMemory{}, abi.ErrnoLimit, wasmtime.NewTrap(inv.abort.Message)
	}
	if err := inv.ctx.Err(); err != nil {
		return nil, guestMemory{}, abi.ErrnoLimit, wasmtime.NewTrap("invocation " + err.Error())
	}
	mem, ok := memoryOf(c)
	if !ok {
		return inv, guestMemory{}, abi.ErrnoFault, nil
	}
	return inv, mem, abi.ErrnoOK, nil
}

func recoverErrno(ret *int32, inv **invocation_) {
	if r := recover(); r != nil {
		*ret = int32(abi.ErrnoInternal)
		if *inv != nil {
			(*inv).pending = nil
		}
	}
}

// hostHTTPSend implements http_send(req_ptr, req_len, result_len_ptr).
//
// # Parameters
//
//   - req_ptr, req_len: a JSON [abi.HTTPRequest] in guest memory.
//   - result_len_ptr: where the host stores the length (u32 LE) of the
//     pending result, 0 if there is none.
//
// # Result (Errno)
//
//   - ok: the pending result is an [abi.HTTPResponse].
//   - fault: a pointer/length is outside memory; nothing was written.
//   - too_large, invalid, denied, unavailable, limit, internal: the pending
//     result is an [abi.Error] explaining why.
func hostHTTPSend(c *wasmtime.Caller, reqPtr, reqLen, resultLenPtr int32) (ret int32, trap *wasmtime.Trap) {
	var inv *invocation_
	defer recoverErrno(&ret, &inv)
	inv, mem, e, trap := enter(c)
	if trap != nil || e != abi.ErrnoOK {
		return int32(e), trap
	}
	inv.pending = nil
	// Validate the output slot first: if it is bad we cannot report anything.
	if !mem.writeU32(uint32(resultLenPtr), 0) {
		return int32(abi.ErrnoFault), nil
	}
	setErr := func(e abi.Errno, msg string) int32 {
		b, _ := json.Marshal(abi.Error{Code: e.String(), Message: msg})
		inv.pending = b
		mem.writeU32(uint32(resultLenPtr), uint32(len(b)))
		return int32(e)
	}
	if uint32(reqLen) > abi.MaxRequestBytes {
		return setErr(abi.ErrnoTooLarge, fmt.Sprintf("request is %d bytes; the limit is %d", uint32(reqLen), abi.MaxRequestBytes)), nil
	}
	raw, ok := mem.read(uint32(reqPtr), uint32(reqLen))
	if !ok {
		return int32(abi.ErrnoFault), nil
	}
	var req abi.HTTPRequest
	if err := abi.DecodeStrict(raw, &req); err != nil {
		return setErr(abi.ErrnoInvalid, "request is not an HTTP request document: "+err.Error()), nil
	}
	resp, err := inv.svc.HTTP(inv.ctx, &req)
	if err != nil {
		var ce *CallError
		if errors.As(err, &ce) {
			b, _ := json.Marshal(ce.Err)
			inv.pending = b
			// No guest code ran during the call, so memory cannot have
			// grown and the slot validated above is still valid.
			mem.writeU32(uint32(resultLenPtr), uint32(len(b)))
			return int32(ce.Errno), nil
		}
		return setErr(abi.ErrnoInternal, "broker call failed"), nil
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return setErr(abi.ErrnoInternal, "encode response"), nil
	}
	inv.pending = b
	mem.writeU32(uint32(resultLenPtr), uint32(len(b)))
	return int32(abi.ErrnoOK), nil
}

// hostResultRead implements result_read(buf_ptr, buf_len): it copies the
// pending result into the guest and clears it.
//
// # Result (Errno)
//
//   - ok: buf holds the result; buf_len must be at least its length.
//   - no_result: nothing is pending.
//   - buffer_too_small: buf_len is shorter than the result; it stays pending.
//   - fault: the buffer is outside memory; the result stays pending.
func hostResultRead(c *wasmtime.Caller, bufPtr, bufLen int32) (ret int32, trap *wasmtime.Trap) {
	var inv *invocation_
	defer recoverErrno(&ret, &inv)
	inv, mem, e, trap := enter(c)
	if trap != nil || e != abi.ErrnoOK {
		return int32(e), trap
	}
	if inv.pending == nil {
		return int32(abi.ErrnoNoResult), nil
	}
	if uint32(bufLen) < uint32(len(inv.pending)) {
		return int32(abi.ErrnoBufferTooSmall), nil
	}
	if !mem.write(uint32(bufPtr), inv.pending) {
		return int32(abi.ErrnoFault), nil
	}
	inv.pending = nil
	return int32(abi.ErrnoOK), nil
}

// hostLog implements log(rec_ptr, rec_len): one JSON [abi.LogRecord].
//
// # Result (Errno)
//
//   - ok, fault, too_large (over abi.MaxLogRecordBytes), invalid (not a
//     log record).
func hostLog(c *wasmtime.Caller, recPtr, recLen int32) (ret int32, trap *wasmtime.Trap) {
	var inv *invocation_
	defer recoverErrno(&ret, &inv)
	inv, mem, e, trap := enter(c)
	if trap != nil || e != abi.ErrnoOK {
		return int32(e), trap
	}
	raw, e := readRecord(mem, recPtr, recLen)
	if e != abi.ErrnoOK {
		return int32(e), nil
	}
	var rec abi.LogRecord
	if err := abi.DecodeStrict(raw, &rec); err != nil {
		return int32(abi.ErrnoInvalid), nil
	}
	switch rec.Level {
	case "debug", "info", "warn", "error":
	default:
		return int32(abi.ErrnoInvalid), nil
	}
	inv.svc.Log(rec)
	return int32(abi.ErrnoOK), nil
}

// hostAuditEmit implements audit_emit(ev_ptr, ev_len): one JSON
// [abi.AuditEvent], appended to the audit log by the broker.
//
// # Result (Errno)
//
//   - ok, fault, too_large, invalid, unavailable (the broker refused or
//     could not write it).
func hostAuditEmit(c *wasmtime.Caller, evPtr, evLen int32) (ret int32, trap *wasmtime.Trap) {
	var inv *invocation_
	defer recoverErrno(&ret, &inv)
	inv, mem, e, trap := enter(c)
	if trap != nil || e != abi.ErrnoOK {
		return int32(e), trap
	}
	raw, e := readRecord(mem, evPtr, evLen)
	if e != abi.ErrnoOK {
		return int32(e), nil
	}
	var ev abi.AuditEvent
	if err := abi.DecodeStrict(raw, &ev); err != nil || ev.Event == "" {
		return int32(abi.ErrnoInvalid), nil
	}
	if err := inv.svc.Audit(inv.ctx, &ev); err != nil {
		return int32(abi.ErrnoUnavailable), nil
	}
	return int32(abi.ErrnoOK), nil
}

func readRecord(mem guestMemory, ptr, n int32) ([]byte, abi.Errno) {
	if uint32(n) > abi.MaxLogRecordBytes {
		return nil, abi.ErrnoTooLarge
	}
	raw, ok := mem.read(uint32(ptr), uint32(n))
	if !ok {
		return nil, abi.ErrnoFault
	}
	return raw, abi.ErrnoOK
}
