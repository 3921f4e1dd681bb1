package manifest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

// A tiny WebAssembly binary builder for hand-written test modules.

var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

func uleb(n uint64) []byte {
	var out []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, c|0x80)
			continue
		}
		return append(out, c)
	}
}

func wname(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func section(id byte, content []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(content)))...), content...)
}

func importEntry(mod, name string, kind byte, desc ...byte) []byte {
	b := append(wname(mod), wname(name)...)
	return append(append(b, kind), desc...)
}

func importSection(entries ...[]byte) []byte {
	content := uleb(uint64(len(entries)))
	for _, e := range entries {
		content = append(content, e...)
	}
	return section(2, content)
}

func module(sections ...[]byte) []byte {
	out := append([]byte(nil), wasmHeader...)
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

func fn(mod, name string) ModuleImport {
	return ModuleImport{Import: abi.Import{Module: mod, Name: name}, Kind: ExternFunc}
}

func TestModuleImports(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
		want []ModuleImport
	}{
		{name: "empty module", wasm: module()},
		{name: "no import section", wasm: module(section(1, []byte{0}), section(3, []byte{0}))},
		{name: "empty import section", wasm: module(importSection())},
		{
			name: "functions",
			wasm: module(section(1, []byte{0}), importSection(
				importEntry("wasi_snapshot_preview1", "fd_write", 0, 0),
				importEntry("aileron_v1", "http_send", 0, 0x81, 0x01), // type index 129
			), section(3, []byte{0})),
			want: []ModuleImport{fn("wasi_snapshot_preview1", "fd_write"), fn("aileron_v1", "http_send")},
		},
		{
			name: "every kind",
			wasm: module(importSection(
				importEntry("env", "table", 1, 0x70, 0x00, 0x01),          // funcref, min 1
				importEntry("env", "memory", 2, 0x01, 0x01, 0x02),         // min 1 max 2
				importEntry("env", "memory64", 2, 0x04, 0x80, 0x80, 0x04), // 64-bit min
				importEntry("env", "shared", 2, 0x03, 0x01, 0x10),         // shared, min 1 max 16
				importEntry("env", "global", 3, 0x7f, 0x01),               // mutable i32
				importEntry("env", "tag", 4, 0x00, 0x00),                  // exception tag
				importEntry("unicodé", "naïve", 0, 0),                     // UTF-8 names
			)),
			want: []ModuleImport{
				{Import: abi.Import{Module: "env", Name: "table"}, Kind: ExternTable},
				{Import: abi.Import{Module: "env", Name: "memory"}, Kind: ExternMemory},
				{Import: abi.Import{Module: "env", Name: "memory64"}, Kind: ExternMemory},
				{Import: abi.Import{Module: "env", Name: "shared"}, Kind: ExternMemory},
				{Import: abi.Import{Module: "env", Name: "global"}, Kind: ExternGlobal},
				{Import: abi.Import{Module: "env", Name: "tag"}, Kind: ExternTag},
				fn("unicodé", "naïve"),
			},
		},
		{
			name: "custom sections anywhere and repeated",
			wasm: module(section(0, wname("name")), importSection(importEntry("m", "f", 0, 0)), section(0, append(wname("producers"), 1, 2, 3))),
			want: []ModuleImport{fn("m", "f")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ModuleImports(tc.wasm)
			require.NoError(t, err)
			if tc.want == nil {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestModuleImports_Errors(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{name: "empty", wasm: nil, want: "wasm: offset 0x0: not a WebAssembly module (bad magic number)"},
		{name: "short", wasm: []byte("\x00asm\x01"), want: "wasm: offset 0x0: not a WebAssembly module (bad magic number)"},
		{name: "bad magic", wasm: []byte("\x7fELF\x01\x00\x00\x00"), want: "wasm: offset 0x0: not a WebAssembly module (bad magic number)"},
		{name: "version 2", wasm: []byte("\x00asm\x02\x00\x00\x00"), want: "wasm: offset 0x4: unsupported binary version 2"},
		// A component (wasi preview 2) is a different format; we run core modules.
		{name: "component", wasm: []byte("\x00asm\x0d\x00\x01\x00"), want: "wasm: offset 0x4: a component-model binary, not a core module; connectors are WASI preview 1 command modules"},
		{name: "truncated section size", wasm: append(module(), 2, 0x80), want: "wasm: offset 0x9: truncated LEB128 number"},
		{name: "section size too long", wasm: append(module(), 2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), want: "wasm: offset 0x9: LEB128 number is too long"},
		{name: "section size overflows u32", wasm: append(module(), 2, 0xff, 0xff, 0xff, 0xff, 0x7f), want: "wasm: offset 0x9: LEB128 number overflows"},
		{name: "section beyond end", wasm: append(module(), 2, 0x10, 0x00), want: "wasm: offset 0x8: section 2 has length 16 beyond the end of the module"},
		{name: "unknown section", wasm: module(section(14, nil)), want: "wasm: offset 0x8: unknown section id 14"},
		// A reader that stops at the first import section would miss the second.
		{name: "second import section", wasm: module(importSection(importEntry("a", "b", 0, 0)), importSection(importEntry("evil", "x", 0, 0))), want: "wasm: offset 0x11: section 2 appears twice"},
		{name: "too many imports", wasm: module(section(2, uleb(MaxModuleImports+1))), want: "wasm: offset 0xa: 1025 imports; at most 1024 are allowed"},
		{name: "count beyond section", wasm: module(section(2, []byte{100, 0, 0, 0})), want: "wasm: offset 0xa: 100 imports cannot fit in the section"},
		{name: "name beyond section", wasm: module(section(2, []byte{1, 50, 'a', 'b', 'c'})), want: "wasm: offset 0xb: name runs past the end of the section"},
		{name: "name too long", wasm: module(section(2, append(append([]byte{1}, uleb(2000)...), make([]byte, 8)...))), want: "wasm: offset 0xb: name is 2000 bytes long; at most 1024 are allowed"},
		{name: "name not UTF-8", wasm: module(importSection(importEntry("\xff\xfe", "x", 0, 0))), want: "wasm: offset 0xb: name is not valid UTF-8"},
		{name: "unknown kind", wasm: module(importSection(importEntry("m", "f", 9))), want: "wasm: offset 0xb: import m.f has unknown kind 0x9"},
		{name: "truncated type index", wasm: module(section(2, []byte{1, 1, 'm', 1, 'f', 0, 0x80})), want: "wasm: offset 0x10: truncated LEB128 number"},
		{name: "bad limits", wasm: module(importSection(importEntry("m", "mem", 2, 0x08, 0x01))), want: "wasm: offset 0x12: bad limits flags 0x8"},
		{name: "shared table", wasm: module(importSection(importEntry("m", "t", 1, 0x70, 0x02, 0x01))), want: "wasm: offset 0x11: bad limits flags 0x2"},
		{name: "bad reftype", wasm: module(importSection(importEntry("m", "t", 1, 0x7f, 0x00, 0x01))), want: "wasm: offset 0x10: unsupported reference type 0x7f"},
		{name: "bad valtype", wasm: module(importSection(importEntry("m", "g", 3, 0x40, 0x00))), want: "wasm: offset 0x10: unsupported value type 0x40"},
		{name: "bad mutability", wasm: module(importSection(importEntry("m", "g", 3, 0x7f, 0x02))), want: "wasm: offset 0x11: bad global mutability 0x2"},
		{name: "bad tag attribute", wasm: module(importSection(importEntry("m", "t", 4, 0x01, 0x00))), want: "wasm: offset 0x10: bad tag attribute 0x1"},
		{name: "trailing bytes", wasm: module(section(2, append(importSection(importEntry("m", "f", 0, 0))[2:], 0xff))), want: "wasm: offset 0x11: import section has 1 bytes left over"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ModuleImports(tc.wasm)
			require.Nil(t, got)
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrWasm)
		})
	}
}

func manifestImporting(caps ...string) *Manifest {
	return &Manifest{Capabilities: Capabilities{Runtime: Runtime{Imports: caps}}}
}

func TestCheckImports(t *testing.T) {
	base := []ModuleImport{fn(abi.WASIModule, "fd_write"), fn(abi.WASIModule, "proc_exit"), fn(abi.WASIModule, "fd_write")}
	tests := []struct {
		name string
		m    *Manifest
		imps []ModuleImport
		want string
	}{
		{name: "base imports need no declaration", m: manifestImporting(), imps: base},
		{name: "declared", m: manifestImporting(abi.CapHTTP, abi.CapRandom), imps: append(base, fn(abi.ModuleName, "http_send"), fn(abi.ModuleName, "result_read"), fn(abi.WASIModule, "random_get"))},
		{
			name: "undeclared with a capability",
			m:    manifestImporting(abi.CapLog),
			imps: append(base, fn(abi.ModuleName, "http_send"), fn(abi.ModuleName, "log"), fn(abi.WASIModule, "clock_time_get")),
			want: "import aileron_v1.http_send is not granted: declare \"wasi:http/outgoing-handler\" in [capabilities.runtime] imports\n" +
				"import wasi_snapshot_preview1.clock_time_get is not granted: declare \"wasi:clocks\" in [capabilities.runtime] imports",
		},
		{
			// Filesystem and socket calls exist in WASI but no capability grants them.
			name: "no capability grants it",
			m:    manifestImporting(abi.CapHTTP),
			imps: []ModuleImport{fn(abi.WASIModule, "path_open"), fn(abi.WASIModule, "sock_accept"), fn("env", "system"), fn(abi.WASIModule, "path_open")},
			want: "import wasi_snapshot_preview1.path_open is not granted: no capability provides it\n" +
				"import wasi_snapshot_preview1.sock_accept is not granted: no capability provides it\n" +
				"import env.system is not granted: no capability provides it",
		},
		{
			// The runtime links functions only; a same-named non-function
			// import must not pass as the function.
			name: "non-function imports",
			m:    manifestImporting(abi.CapHTTP),
			imps: []ModuleImport{{Import: abi.Import{Module: "env", Name: "memory"}, Kind: ExternMemory}, {Import: abi.Import{Module: abi.ModuleName, Name: "http_send"}, Kind: ExternGlobal}},
			want: "import env.memory (memory) is not granted: connectors may import only functions\n" +
				"import aileron_v1.http_send (global) is not granted: connectors may import only functions",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckImports(tc.m, tc.imps)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrUndeclaredImport)
		})
	}
}

// TestModuleImports_GoWasip1 builds the example notes connector with the
// stock Go toolchain and checks its real import list against manifests.
func TestModuleImports_GoWasip1(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("AILERON_STRICT_TESTS") == "1" {
			t.Fatalf("the go tool is needed to build a wasip1 module: %v", err)
		}
		t.Skipf("skipping: the go tool is needed to build a wasip1 module: %v", err)
	}
	out := filepath.Join(t.TempDir(), "notes.wasm")
	cmd := exec.Command(goTool, "build", "-o", out, "./examples/connectors/notes")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", msg)
	wasm, err := os.ReadFile(out)
	require.NoError(t, err)

	imps, err := ModuleImports(wasm)
	require.NoError(t, err)
	require.Contains(t, imps, fn(abi.ModuleName, abi.FuncHTTPSend))
	for _, imp := range imps {
		require.Equal(t, ExternFunc, imp.Kind, "%s", imp.Import)
	}

	// Go's wasip1 runtime always imports clock_time_get and random_get, so
	// a Go connector must declare wasi:clocks and wasi:random.
	full := manifestImporting(abi.CapHTTP, abi.CapLog, abi.CapClocks, abi.CapRandom)
	require.NoError(t, CheckImports(full, imps))

	err = CheckImports(manifestImporting(abi.CapLog, abi.CapClocks, abi.CapRandom), imps)
	require.EqualError(t, err, "import aileron_v1.http_send is not granted: declare \"wasi:http/outgoing-handler\" in [capabilities.runtime] imports\n"+
		"import aileron_v1.result_read is not granted: declare \"wasi:http/outgoing-handler\" in [capabilities.runtime] imports")

	// Any flipped byte is either parsed or refused, never a panic.
	for i := 0; i < len(wasm); i += len(wasm)/512 + 1 {
		b := bytes.Clone(wasm)
		b[i] ^= 0xff
		if _, err := ModuleImports(b); err != nil {
			require.ErrorIs(t, err, ErrWasm)
		}
	}
	// Every truncation of the module is refused or parsed cleanly.
	for _, n := range []int{9, 10, 11, 20, 100, 1000, len(wasm) / 2, len(wasm) - 1} {
		_, err := ModuleImports(wasm[:n])
		if err != nil {
			require.True(t, errors.Is(err, ErrWasm), "%v", err)
			require.True(t, strings.HasPrefix(err.Error(), "wasm: offset "))
		}
	}
}

// FuzzModuleImports checks that the parser never panics, that it fails only
// with ErrWasm, and that every name it returns is UTF-8 within bounds.
func FuzzModuleImports(f *testing.F) {
	f.Add([]byte{})
	f.Add(module())
	f.Add(module(importSection(importEntry("wasi_snapshot_preview1", "fd_write", 0, 0), importEntry("aileron_v1", "http_send", 0, 1))))
	f.Add(module(importSection(importEntry("env", "memory", 2, 0x01, 0x01, 0x02), importEntry("env", "g", 3, 0x7f, 0x01), importEntry("env", "t", 1, 0x70, 0x00, 0x01))))
	f.Add(module(section(0, wname("name")), section(1, []byte{0}), importSection(importEntry("m", "f", 0, 0)), section(3, []byte{0})))
	f.Add(append(module(), 2, 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		imps, err := ModuleImports(wasm)
		if err != nil {
			require.ErrorIs(t, err, ErrWasm)
			require.Nil(t, imps)
			return
		}
		require.LessOrEqual(t, len(imps), MaxModuleImports)
		for _, imp := range imps {
			require.LessOrEqual(t, len(imp.Module), maxImportName)
			require.LessOrEqual(t, len(imp.Name), maxImportName)
			require.LessOrEqual(t, imp.Kind, ExternTag)
		}
		_ = CheckImports(manifestImporting(abi.CapabilityIDs()...), imps)
	})
}
