package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

// abiProbeWAT re-exports each aileron_v1 function so a test can call it
// with any arguments, the way a hostile guest would.
const abiProbeWAT = `(module
  (import "aileron_v1" "http_send" (func $send (param i32 i32 i32) (result i32)))
  (import "aileron_v1" "result_read" (func $read (param i32 i32) (result i32)))
  (import "aileron_v1" "log" (func $log (param i32 i32) (result i32)))
  (import "aileron_v1" "audit_emit" (func $audit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "send") (param i32 i32 i32) (result i32) (call $send (local.get 0) (local.get 1) (local.get 2)))
  (func (export "read") (param i32 i32) (result i32) (call $read (local.get 0) (local.get 1)))
  (func (export "log") (param i32 i32) (result i32) (call $log (local.get 0) (local.get 1)))
  (func (export "audit") (param i32 i32) (result i32) (call $audit (local.get 0) (local.get 1))))`

var (
	probeOnce   sync.Once
	probeModule *wasmtime.Module
	probeLinker *wasmtime.Linker
)

// abiProbe is one instance of abiProbeWAT with fresh invocation state.
type abiProbe struct {
	store *wasmtime.Store
	inst  *wasmtime.Instance
	mem   *wasmtime.Memory
	inv   *invocation_
}

func newABIProbe(t testing.TB, svc Services) *abiProbe {
	t.Helper()
	probeOnce.Do(func() {
		wasm, err := wasmtime.Wat2Wasm(abiProbeWAT)
		require.NoError(t, err)
		probeModule, err = wasmtime.NewModule(testEngine(), wasm)
		require.NoError(t, err)
		probeLinker = wasmtime.NewLinker(testEngine())
		require.NoError(t, defineHostFuncs(probeLinker))
	})
	inv := &invocation_{ctx: context.Background(), svc: svc, maxCalls: 1 << 30}
	store := wasmtime.NewStoreWithData(testEngine(), inv)
	store.SetEpochDeadline(1 << 40) // the engine's epoch is shared with other tests
	inst, err := probeLinker.Instantiate(store, probeModule)
	require.NoError(t, err)
	return &abiProbe{store: store, inst: inst, mem: inst.GetExport(store, "memory").Memory(), inv: inv}
}

func (p *abiProbe) call(t testing.TB, fn string, args ...int32) (abi.Errno, error) {
	t.Helper()
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a
	}
	r, err := p.inst.GetFunc(p.store, fn).Call(p.store, vals...)
	if err != nil {
		return 0, err
	}
	return abi.Errno(r.(int32)), nil
}

func (p *abiProbe) data() []byte { return p.mem.UnsafeData(p.store) }

func TestHostFunctions_BadPointers(t *testing.T) {
	svc := &fakeServices{resp: &abi.HTTPResponse{Status: 200, Body: []byte("ok")}}
	p := newABIProbe(t, svc)
	size := int32(len(p.data()))
	req := []byte(`{"method":"GET","url":"https://a.example/"}`)
	copy(p.data()[100:], req)
	tests := []struct {
		name string
		fn   string
		args []int32
		want abi.Errno
	}{
		{"read_nothing_pending", "read", []int32{0, 10}, abi.ErrnoNoResult},
		{"send_req_past_end", "send", []int32{size - 2, 10, 0}, abi.ErrnoFault},
		{"send_req_wraps_u32", "send", []int32{-1, 2, 0}, abi.ErrnoFault},
		{"send_len_huge", "send", []int32{100, -1, 0}, abi.ErrnoTooLarge},
		{"send_result_slot_past_end", "send", []int32{100, int32(len(req)), size - 3}, abi.ErrnoFault},
		{"send_result_slot_negative", "send", []int32{100, int32(len(req)), -4}, abi.ErrnoFault},
		{"send_garbage_json", "send", []int32{0, 50, 200}, abi.ErrnoInvalid},
		{"log_past_end", "log", []int32{size - 1, 100}, abi.ErrnoFault},
		{"log_too_large", "log", []int32{0, abi.MaxLogRecordBytes + 1}, abi.ErrnoTooLarge},
		{"log_garbage", "log", []int32{0, 8}, abi.ErrnoInvalid},
		{"audit_garbage", "audit", []int32{0, 8}, abi.ErrnoInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := p.call(t, tt.fn, tt.args...)
			require.NoError(t, err)
			require.Equal(t, tt.want, e)
		})
	}

	// The happy path: send, learn the length, read it back.
	e, err := p.call(t, "send", 100, int32(len(req)), 8)
	require.NoError(t, err)
	require.Equal(t, abi.ErrnoOK, e)
	n := int32(binary.LittleEndian.Uint32(p.data()[8:]))
	e, err = p.call(t, "read", 1000, n-1)
	require.NoError(t, err)
	require.Equal(t, abi.ErrnoBufferTooSmall, e, "a short buffer keeps the result pending")
	e, err = p.call(t, "read", size-n+1, n)
	require.NoError(t, err)
	require.Equal(t, abi.ErrnoFault, e, "an out-of-bounds buffer keeps the result pending")
	e, err = p.call(t, "read", 1000, n)
	require.NoError(t, err)
	require.Equal(t, abi.ErrnoOK, e)
	require.Contains(t, string(p.data()[1000:1000+n]), `"status":200`)
}

func TestHostFunctions_CallBudget(t *testing.T) {
	p := newABIProbe(t, &fakeServices{})
	p.inv.maxCalls = 3
	for i := 0; i < 3; i++ {
		_, err := p.call(t, "log", 0, 0)
		require.NoError(t, err)
	}
	_, err := p.call(t, "log", 0, 0)
	require.ErrorContains(t, err, "host call limit 3 exceeded")
}

// FuzzHostFunctions drives the host functions with arbitrary pointers,
// lengths and payloads. Whatever the guest passes, the host must not
// panic, must answer with a known errno, and must not write guest memory
// outside the one output region each function owns.
func FuzzHostFunctions(f *testing.F) {
	f.Add(uint8(0), int32(100), int32(40), int32(8), uint32(100), []byte(`{"method":"GET","url":"https://a.example/"}`))
	f.Add(uint8(1), int32(0), int32(10), int32(0), uint32(0), []byte{})
	f.Add(uint8(2), int32(0), int32(30), int32(0), uint32(0), []byte(`{"level":"info","msg":"hi"}`))
	f.Add(uint8(3), int32(0), int32(30), int32(0), uint32(0), []byte(`{"event":"e","fields":{"a":1}}`))
	f.Add(uint8(0), int32(-1), int32(-1), int32(-4), uint32(65535), []byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, which uint8, a, b, c int32, off uint32, payload []byte) {
		svc := &fakeServices{resp: &abi.HTTPResponse{Status: 201, Headers: map[string][]string{"X": {"y"}}, Body: []byte("body")}}
		p := newABIProbe(t, svc)
		mem := p.data()
		if int(off) < len(mem) {
			copy(mem[off:], payload)
		}
		// Prime a pending result so result_read has something to copy.
		if which%4 == 1 && len(payload) > 0 {
			p.inv.pending = append([]byte(nil), payload...)
		}
		before := append([]byte(nil), p.data()...)
		var fn string
		var args []int32
		switch which % 4 {
		case 0:
			fn, args = "send", []int32{a, b, c}
		case 1:
			fn, args = "read", []int32{a, b}
		case 2:
			fn, args = "log", []int32{a, b}
		default:
			fn, args = "audit", []int32{a, b}
		}
		e, err := p.call(t, fn, args...)
		require.NoError(t, err, "a host function trapped or panicked")
		require.GreaterOrEqual(t, int(e), 0)
		require.LessOrEqual(t, int(e), int(abi.ErrnoInternal))
		after := p.data()
		// Allowed output regions, clipped to memory.
		lo, hi := 0, 0
		switch fn {
		case "send":
			lo, hi = int(uint32(c)), int(uint32(c))+4
		case "read":
			lo, hi = int(uint32(a)), int(uint32(a))+len(payload)
		}
		for i := range after {
			if (i < lo || i >= hi) && after[i] != before[i] {
				t.Fatalf("%s(%v) wrote guest memory at %d, outside [%d,%d)", fn, args, i, lo, hi)
			}
		}
		if fn == "read" && e != abi.ErrnoOK {
			require.True(t, bytes.Equal(before, after), "a failed result_read changed memory")
		}
	})
}

// TestHostFunctions_TrailingData: every host function takes exactly one
// JSON document; anything after it makes the call invalid, and the service
// is not called.
func TestHostFunctions_TrailingData(t *testing.T) {
	svc := &fakeServices{resp: &abi.HTTPResponse{Status: 200}}
	p := newABIProbe(t, svc)
	docs := map[string]string{
		"send":  `{"method":"GET","url":"https://a.example/"}`,
		"log":   `{"level":"info","msg":"hi"}`,
		"audit": `{"event":"x"}`,
	}
	for fn, doc := range docs {
		for _, tail := range []string{" {}", "}", "]", " garbage", `{"method":"POST"}`} {
			t.Run(fn+"_"+tail, func(t *testing.T) {
				b := []byte(doc + tail)
				copy(p.data()[100:], b)
				args := []int32{100, int32(len(b))}
				if fn == "send" {
					args = append(args, 8)
				}
				e, err := p.call(t, fn, args...)
				require.NoError(t, err)
				require.Equal(t, abi.ErrnoInvalid, e)
			})
		}
	}
	require.Empty(t, svc.reqs, "no request may reach the broker")
	require.Empty(t, svc.logs)
	require.Empty(t, svc.audits)
	e, err := p.call(t, "read", 1000, 1000)
	require.NoError(t, err)
	require.Equal(t, abi.ErrnoOK, e)
	require.Contains(t, string(p.data()[1000:1200]), "request is not an HTTP request document: more than one JSON document")
}
