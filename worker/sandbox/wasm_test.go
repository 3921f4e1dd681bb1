//go:build linux && cgo

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/stretchr/testify/require"
)

// suiteWAT exercises what the worker's wasmtime does: compile, call, grow
// memory, and every trap kind the host must turn into an error.
const suiteWAT = `(module
  (memory (export "mem") 1)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "grow") (result i32) i32.const 10 memory.grow)
  (func (export "unreachable") unreachable)
  (func (export "oob") (result i32) i32.const 0x7ffffff0 i32.load)
  (func (export "div0") (result i32) i32.const 1 i32.const 0 i32.div_s)
  (func (export "spin") (loop br 0))
  (func $rec (export "recurse") (param i32) (result i32) local.get 0 i32.const 1 i32.add call $rec)
)`

// wasiWAT is a WASI preview 1 command that uses the calls a connector's
// runtime would (write, random, clock) and exits with status 7.
const wasiWAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $random_get (i32.const 32) (i32.const 16)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64)))
    (call $exit (i32.const 7)))
)`

func newSuiteEngine() *wasmtime.Engine {
	cfg := wasmtime.NewConfig()
	cfg.SetConsumeFuel(true)
	return wasmtime.NewEngineWithConfig(cfg)
}

// prepareWasmCache compiles the suite into dir, the way the supervisor
// fills the compiled-module cache. It runs before lockdown.
func prepareWasmCache(dir string) error {
	wasm, err := wasmtime.Wat2Wasm(suiteWAT)
	if err != nil {
		return err
	}
	m, err := wasmtime.NewModule(newSuiteEngine(), wasm)
	if err != nil {
		return err
	}
	b, err := m.Serialize()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "suite.cwasm"), b, 0o644)
}

// cacheDir makes a directory the worker's uid can fill before lockdown.
func cacheDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aileron-module-cache-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	return dir
}

// wantTrap checks that err is a wasmtime trap, not a crash or nil.
func wantTrap(err error) error {
	var trap *wasmtime.Trap
	if !errors.As(err, &trap) {
		return fmt.Errorf("want *wasmtime.Trap, got %T %v", err, err)
	}
	return nil
}

// runWasmSuite runs the suite after lockdown; cacheDir is read-only by then.
// It returns the names of the steps that passed.
func runWasmSuite(cacheDir string) ([]string, error) {
	var done []string
	engine := newSuiteEngine()
	wasm, err := wasmtime.Wat2Wasm(suiteWAT)
	if err != nil {
		return done, fmt.Errorf("wat2wasm: %w", err)
	}
	module, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		return done, fmt.Errorf("compile: %w", err)
	}
	done = append(done, "compile")
	store := wasmtime.NewStore(engine)
	if err := store.SetFuel(10_000_000); err != nil {
		return done, err
	}
	inst, err := wasmtime.NewInstance(store, module, nil)
	if err != nil {
		return done, fmt.Errorf("instantiate: %w", err)
	}
	done = append(done, "instantiate")

	call := func(name string, args ...any) (any, error) {
		return inst.GetFunc(store, name).Call(store, args...)
	}
	steps := []struct {
		name string
		f    func() error
	}{
		{"add", func() error {
			v, err := call("add", int32(2), int32(3))
			if err != nil || v.(int32) != 5 {
				return fmt.Errorf("add = %v, %v", v, err)
			}
			return nil
		}},
		{"memory.grow", func() error {
			v, err := call("grow")
			if err != nil || v.(int32) != 1 {
				return fmt.Errorf("grow = %v, %v", v, err)
			}
			return nil
		}},
		{"trap unreachable", func() error { _, err := call("unreachable"); return wantTrap(err) }},
		{"trap out of bounds", func() error { _, err := call("oob"); return wantTrap(err) }},
		{"trap divide by zero", func() error { _, err := call("div0"); return wantTrap(err) }},
		{"trap stack overflow", func() error { _, err := call("recurse", int32(0)); return wantTrap(err) }},
		{"trap out of fuel", func() error { _, err := call("spin"); return wantTrap(err) }},
		{"deserialize from read-only cache", func() error {
			m, err := wasmtime.NewModuleDeserializeFile(engine, filepath.Join(cacheDir, "suite.cwasm"))
			if err != nil {
				return err
			}
			s := wasmtime.NewStore(engine)
			s.SetFuel(1000)
			i, err := wasmtime.NewInstance(s, m, nil)
			if err != nil {
				return err
			}
			v, err := i.GetFunc(s, "add").Call(s, int32(40), int32(2))
			if err != nil || v.(int32) != 42 {
				return fmt.Errorf("add = %v, %v", v, err)
			}
			return nil
		}},
		{"cache stays read-only", func() error {
			err := os.WriteFile(filepath.Join(cacheDir, "evil.cwasm"), []byte("x"), 0o644)
			if !errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("write into cache: %v", err)
			}
			return nil
		}},
		{"wasi command", func() error {
			wasm, err := wasmtime.Wat2Wasm(wasiWAT)
			if err != nil {
				return err
			}
			m, err := wasmtime.NewModule(engine, wasm)
			if err != nil {
				return err
			}
			linker := wasmtime.NewLinker(engine)
			if err := linker.DefineWasi(); err != nil {
				return err
			}
			s := wasmtime.NewStore(engine)
			s.SetFuel(1_000_000)
			s.SetWasi(wasmtime.NewWasiConfig())
			i, err := linker.Instantiate(s, m)
			if err != nil {
				return err
			}
			_, err = i.GetFunc(s, "_start").Call(s)
			var werr *wasmtime.Error
			if !errors.As(err, &werr) {
				return fmt.Errorf("_start: want exit, got %T %v", err, err)
			}
			if code, ok := werr.ExitStatus(); !ok || code != 7 {
				return fmt.Errorf("exit status %d, %v", code, ok)
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := s.f(); err != nil {
			return done, fmt.Errorf("%s: %w", s.name, err)
		}
		done = append(done, s.name)
	}
	return done, nil
}

var wantWasmSteps = []string{"compile", "instantiate", "add", "memory.grow", "trap unreachable",
	"trap out of bounds", "trap divide by zero", "trap stack overflow", "trap out of fuel",
	"deserialize from read-only cache", "cache stays read-only", "wasi command"}

func init() {
	helpers["wasm"] = func(arg string) int {
		cache := arg
		if err := prepareWasmCache(cache); err != nil {
			return fail("cache: %v", err)
		}
		if err := Init(InitConfig{}); err != nil {
			return fail("Init: %v", err)
		}
		if _, err := Lockdown(LockdownConfig{ReadOnlyPaths: []string{cache}}); err != nil {
			return fail("Lockdown: %v", err)
		}
		done, err := runWasmSuite(cache)
		for _, d := range done {
			emit(d)
		}
		if err != nil {
			return fail("%v", err)
		}
		return 0
	}
}

func TestWasmtimeWorksAfterLockdown(t *testing.T) {
	requireNamespaces(t)
	requireSeccompArch(t)
	requireLandlock(t, MinLandlockABI)
	res, err := runHelper(t, "wasm", &SpawnConfig{Namespaces: true}, cacheDir(t))
	require.NoError(t, err, "signal %v", res.Signaled())
	require.Equal(t, wantWasmSteps, decodeLines[string](t, res.Stdout))
}
