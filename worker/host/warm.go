package host

import (
	"context"
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
)

// warmWAT is the text of [worker.WarmModule]: a WASI command that writes a
// result, like a real connector does, through the same imports.
const warmWAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{\22ok\22:true,\22output\22:{}}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (i32.const 256))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 23))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`

// Warm runs [worker.WarmModule] once through the whole invocation path
// (store, WASI files, linker, instantiate, _start), so that a worker kept
// in the warm pool answers its first real invocation without wasmtime's
// first-time costs. It reaches nothing: the module only reads its stdin and
// writes its stdout.
//
// artifact is the path of the module's verified compiled form for this
// engine configuration, which is mapped; if it is "" or cannot be loaded,
// the module is compiled (Cranelift: ~1.5 ms of CPU, a sixth of a cold
// run's) and its serialized form returned for the caller to cache.
func Warm(engine *wasmtime.Engine, scratch, artifact string) (compiled []byte, err error) {
	var m *wasmtime.Module
	if artifact != "" {
		m, err = Load(engine, artifact)
	}
	if artifact == "" || err != nil {
		if m, err = wasmtime.NewModule(engine, []byte(worker.WarmModule)); err != nil {
			return nil, fmt.Errorf("warm: %w", err)
		}
		if compiled, err = m.Serialize(); err != nil {
			compiled = nil
		}
	}
	defer m.Close()
	r, err := NewRunner(engine, m, nil, worker.Limits{}, warmServices{}, scratch)
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	defer r.Close()
	out, err := r.Invoke(context.Background(), []byte(`{"abi":"aileron_v1","intent":"warm"}`))
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	if !out.Result.OK {
		return nil, fmt.Errorf("warm: module failed: %v", out.Result.Error)
	}
	return compiled, nil
}

type warmServices struct{}

func (warmServices) HTTP(context.Context, *abi.HTTPRequest) (*abi.HTTPResponse, error) {
	return nil, &CallError{Errno: abi.ErrnoNotGranted}
}
func (warmServices) Audit(context.Context, *abi.AuditEvent) error { return nil }
func (warmServices) Log(abi.LogRecord)                            {}
