// Package host runs one connector module in wasmtime: it owns the engine
// configuration, turns a .wasm into cached machine code, checks a module's
// imports against its grant, and runs one invocation with limits and the
// bounds-checked aileron_v1 host functions.
//
// # Compile once, load many
//
// [Compile] runs Cranelift (about 2 s for a 3 MiB Go guest) and returns the
// serialized machine code. [Load] maps such an artifact with
// NewModuleDeserializeFile (about 0.15 ms). The artifact is only safe to load
// when this engine configuration produced it, so callers key it by [ConfigID]
// and check its sha256 before calling Load.
//
// # Running
//
// [Runner] binds one module to its granted capabilities; [Runner.Invoke] runs
// one _start with a fresh Store, so nothing survives from one invocation to
// the next.
package host

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"aileron.dev/aileron/sdk/abi"
)

// engineSettings are the settings of every engine the project creates. They
// are part of [ConfigID]: change one, change the ID, and every cached
// artifact is rebuilt instead of loaded.
const engineSettings = "epoch=1 fuel=0 stack=512KiB simd=1 threads=0 opt=speed"

// wasmStackBytes bounds the wasm stack of a guest (wasmtime's default is the
// same; it is set explicitly so the value is part of the config ID).
const wasmStackBytes = 512 << 10

// NewEngine returns an engine with the project's fixed configuration: epoch
// interruption on (deadlines), no fuel, no wasm threads.
func NewEngine() *wasmtime.Engine {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	cfg.SetConsumeFuel(false)
	cfg.SetMaxWasmStack(wasmStackBytes)
	cfg.SetWasmThreads(false)
	cfg.SetCraneliftOptLevel(wasmtime.OptLevelSpeed)
	return wasmtime.NewEngineWithConfig(cfg)
}

var configIDOnce = sync.OnceValue(func() string {
	v := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/bytecodealliance/wasmtime-go/v39" {
				v = d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
			}
		}
	}
	return "wasmtime-go/v39@" + v + ";" + engineSettings
})

// ConfigID identifies the wasmtime version and engine configuration that
// compiled an artifact. Cache keys include it.
func ConfigID() string { return configIDOnce() }

// Compile validates and compiles wasm and returns the serialized machine
// code for this engine configuration.
func Compile(engine *wasmtime.Engine, wasm []byte) ([]byte, error) {
	m, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile module: %w", err)
	}
	defer m.Close()
	out, err := m.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serialize module: %w", err)
	}
	return out, nil
}

// Load maps a compiled artifact produced by [Compile] with the same
// [ConfigID]. Security: deserializing runs no checks on the machine code;
// the caller must have verified the artifact's hash first.
func Load(engine *wasmtime.Engine, path string) (*wasmtime.Module, error) {
	m, err := wasmtime.NewModuleDeserializeFile(engine, path)
	if err != nil {
		return nil, fmt.Errorf("load compiled module: %w", err)
	}
	return m, nil
}

// ErrUndeclaredImport is returned (wrapped) when a module imports something
// its grant does not cover.
var ErrUndeclaredImport = errors.New("module imports what its manifest does not declare")

// CheckImports checks every import of m against the capabilities granted.
// Non-function imports (memories, tables, globals) are never granted.
func CheckImports(m *wasmtime.Module, caps []string) error {
	granted := abi.Granted(caps)
	var bad []string
	for _, it := range m.Imports() {
		name := ""
		if n := it.Name(); n != nil {
			name = *n
		}
		imp := abi.Import{Module: it.Module(), Name: name}
		_, ok := granted[imp]
		if ok && it.Type().FuncType() == nil {
			ok = false
		}
		if !ok {
			msg := imp.String()
			if c, known := abi.CapabilityFor(imp); known {
				msg += fmt.Sprintf(" (declare %q in [capabilities.runtime] imports)", c)
			}
			bad = append(bad, msg)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrUndeclaredImport, bad)
	}
	return nil
}
