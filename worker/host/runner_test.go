package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/worker"
)

// fakeServices records what the host functions passed on.
type fakeServices struct {
	mu     sync.Mutex
	reqs   []*abi.HTTPRequest
	audits []*abi.AuditEvent
	logs   []abi.LogRecord
	resp   *abi.HTTPResponse
	err    error
}

func (f *fakeServices) HTTP(_ context.Context, req *abi.HTTPRequest) (*abi.HTTPResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.err != nil {
		return nil, f.err
	}
	if f.resp != nil {
		return f.resp, nil
	}
	return &abi.HTTPResponse{Status: 200, Body: []byte("pong")}, nil
}

func (f *fakeServices) Audit(_ context.Context, ev *abi.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audits = append(f.audits, ev)
	return nil
}

func (f *fakeServices) Log(rec abi.LogRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, rec)
}

var testEngine = sync.OnceValue(NewEngine)

// writeStdout returns WAT that writes s to fd 1 from offset 1024.
func watCommand(body string, data string) string {
	return fmt.Sprintf(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) %q)
  (func $print
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const %d))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") %s))`, data, len(data), body)
}

func compileWAT(t testing.TB, wat string) *wasmtime.Module {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(wat)
	require.NoError(t, err)
	art, err := Compile(testEngine(), wasm)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "m.cwasm")
	require.NoError(t, os.WriteFile(path, art, 0o600))
	m, err := Load(testEngine(), path)
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

func newRunner(t testing.TB, wat string, caps []string, lim worker.Limits, svc Services) *Runner {
	t.Helper()
	r, err := NewRunner(testEngine(), compileWAT(t, wat), caps, lim, svc, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

func invocation(t testing.TB) []byte {
	b, err := json.Marshal(abi.Invocation{ABI: abi.Version, ID: "run1/step1", Attempt: 1, Intent: "x", Input: json.RawMessage(`{}`)})
	require.NoError(t, err)
	return b
}

func TestInvoke_OK(t *testing.T) {
	r := newRunner(t, watCommand("(call $print)", `{"ok":true,"output":{"hi":1}}`), nil, worker.Limits{}, &fakeServices{})
	out, err := r.Invoke(context.Background(), invocation(t))
	require.NoError(t, err)
	require.True(t, out.Result.OK)
	require.JSONEq(t, `{"hi":1}`, string(out.Result.Output))
}

func TestInvoke_Failures(t *testing.T) {
	const forever = "(loop $l (br $l))"
	tests := []struct {
		name     string
		wat      string
		caps     []string
		lim      worker.Limits
		code     string
		contains string
	}{
		{name: "unreachable", wat: watCommand("unreachable", ""), code: abi.CodeTrap, contains: "connector trapped (unreachable)"},
		{name: "loops_forever", wat: watCommand(forever, ""), lim: worker.Limits{DeadlineMS: 200}, code: abi.CodeDeadline, contains: "deadline exceeded: the invocation ran longer than 200ms"},
		{name: "memory_bomb", wat: watCommand("(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable", ""), lim: worker.Limits{MemoryBytes: 2 << 20}, code: abi.CodeMemoryLimit, contains: "memory limit 2 MiB exceeded"},
		{name: "garbage_stdout", wat: watCommand("(call $print)", "{not json"), code: abi.CodeBadResult, contains: "connector stdout is not a result document"},
		{name: "no_stdout", wat: watCommand("nop", ""), code: abi.CodeBadResult, contains: "connector wrote no result to stdout"},
		{name: "trailing_bracket", wat: watCommand("(call $print)", `{"ok":true,"output":1}]`), code: abi.CodeBadResult, contains: "connector stdout is not a result document: more than one JSON document"},
		{name: "two_documents", wat: watCommand("(call $print)", `{"ok":true,"output":1}{"ok":true,"output":2}`), code: abi.CodeBadResult, contains: "more than one JSON document"},
		{name: "ok_and_error", wat: watCommand("(call $print)", `{"ok":true,"error":{"code":"x","message":"y"}}`), code: abi.CodeBadResult, contains: `"ok":true with "output"`},
		{name: "unknown_result_field", wat: watCommand("(call $print)", `{"ok":true,"output":1,"credential":"x"}`), code: abi.CodeBadResult, contains: "unknown field"},
		{name: "output_too_large", wat: watCommand("(call $print)", `{"ok":true,"output":"`+strings.Repeat("a", 200)+`"}`), lim: worker.Limits{StdoutBytes: 100}, code: abi.CodeOutputTooLarge, contains: "connector output exceeds 100 bytes"},
		{name: "stack_overflow", wat: `(module (memory (export "memory") 1) (func $f (call $f)) (func (export "_start") (call $f)))`, code: abi.CodeTrap, contains: "stack overflow"},
		{name: "no_start", wat: `(module (memory (export "memory") 1))`, code: abi.CodeBadResult, contains: "no _start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunner(t, tt.wat, tt.caps, tt.lim, &fakeServices{})
			start := time.Now()
			_, err := r.Invoke(context.Background(), invocation(t))
			var f *worker.Failure
			require.ErrorAs(t, err, &f)
			require.Equal(t, tt.code, f.Code, f.Message)
			require.Contains(t, f.Message, tt.contains)
			if tt.lim.DeadlineMS > 0 {
				// Generous bound: the point is "stopped", not a timing claim.
				require.Less(t, time.Since(start), tt.lim.Deadline()+2*time.Second)
			}
		})
	}
}

func TestInvoke_FreshStorePerInvocation(t *testing.T) {
	// A global incremented by each _start must start from zero every time:
	// nothing survives between invocations.
	wat := `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  (func (export "_start")
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (call $exit (global.get $g))))`
	r := newRunner(t, wat, nil, worker.Limits{}, &fakeServices{})
	for i := 0; i < 3; i++ {
		_, err := r.Invoke(context.Background(), invocation(t))
		var f *worker.Failure
		require.ErrorAs(t, err, &f)
		require.Equal(t, abi.CodeExit, f.Code)
		require.Contains(t, f.Message, "status 1", "invocation %d saw state from an earlier one", i)
	}
}

func TestNewRunner_UndeclaredImport(t *testing.T) {
	wat := `(module
  (import "aileron_v1" "http_send" (func (param i32 i32 i32) (result i32)))
  (import "aileron_v1" "result_read" (func (param i32 i32) (result i32)))
  (import "env" "mystery" (func))
  (memory (export "memory") 1)
  (func (export "_start")))`
	_, err := NewRunner(testEngine(), compileWAT(t, wat), []string{abi.CapLog}, worker.Limits{}, &fakeServices{}, t.TempDir())
	var f *worker.Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, abi.CodeUndeclaredImport, f.Code)
	require.Equal(t, `module imports what its manifest does not declare: [aileron_v1.http_send (declare "wasi:http/outgoing-handler" in [capabilities.runtime] imports) aileron_v1.result_read (declare "wasi:http/outgoing-handler" in [capabilities.runtime] imports) env.mystery]`, f.Message)

	_, err = NewRunner(testEngine(), compileWAT(t, strings.Replace(wat, `(import "env" "mystery" (func))`, "", 1)), []string{abi.CapHTTP}, worker.Limits{}, &fakeServices{}, t.TempDir())
	require.NoError(t, err)
}

func TestNewRunner_ImportedMemoryIsNeverGranted(t *testing.T) {
	wat := `(module (import "wasi_snapshot_preview1" "fd_write" (memory 1)) (func (export "_start")))`
	_, err := NewRunner(testEngine(), compileWAT(t, wat), nil, worker.Limits{}, &fakeServices{}, t.TempDir())
	var f *worker.Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, abi.CodeUndeclaredImport, f.Code)
}

func TestWarmModuleIsItsText(t *testing.T) {
	wasm, err := wasmtime.Wat2Wasm(warmWAT)
	require.NoError(t, err)
	require.Equal(t, []byte(worker.WarmModule), wasm)
}

// TestWarm: without an artifact the worker compiles the warm module and
// returns it; with it, it maps it and compiles nothing; with one it cannot
// load, it compiles again rather than fail the worker.
func TestWarm(t *testing.T) {
	engine := testEngine()
	compiled, err := Warm(engine, t.TempDir(), "")
	require.NoError(t, err)
	require.NotEmpty(t, compiled)

	art := filepath.Join(t.TempDir(), "warm.cwasm")
	require.NoError(t, os.WriteFile(art, compiled, 0o444))
	again, err := Warm(engine, t.TempDir(), art)
	require.NoError(t, err)
	require.Nil(t, again, "a loaded artifact is not compiled again")

	bad := filepath.Join(t.TempDir(), "bad.cwasm")
	require.NoError(t, os.WriteFile(bad, []byte("not machine code"), 0o444))
	fresh, err := Warm(engine, t.TempDir(), bad)
	require.NoError(t, err)
	require.NotEmpty(t, fresh)
}

// TestInvoke_StderrCapped: a connector that floods its log keeps running;
// the captured log stops at the limit and says it was cut.
func TestInvoke_StderrCapped(t *testing.T) {
	const line = "0123456789012345678901234567890123456789\n" // 41 bytes
	const result = `{"ok":true,"output":"done"}`
	wat := fmt.Sprintf(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) %q)
  (data (i32.const 2048) %q)
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (local $i i32)
    (loop $l
      (call $write (i32.const 2) (i32.const 1024) (i32.const %d))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
    (call $write (i32.const 1) (i32.const 2048) (i32.const %d))))`, line, result, len(line), len(result))
	r := newRunner(t, wat, nil, worker.Limits{StderrBytes: 100}, &fakeServices{})
	out, err := r.Invoke(context.Background(), invocation(t))
	require.NoError(t, err)
	require.True(t, out.Result.OK)
	require.Equal(t, strings.Repeat(line, 3)[:100], string(out.Stderr))
	require.True(t, out.StderrTruncated)

	r = newRunner(t, wat, nil, worker.Limits{StderrBytes: 100 * int64(len(line))}, &fakeServices{})
	out, err = r.Invoke(context.Background(), invocation(t))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat(line, 100), string(out.Stderr))
	require.False(t, out.StderrTruncated)
}
