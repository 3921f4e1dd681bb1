package manifest

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"aileron.dev/aileron/sdk/abi"
)

// Limits of the import parser.
const (
	// MaxModuleImports bounds the import section. A Go wasip1 module has
	// about twenty imports.
	MaxModuleImports = 1024
	// maxImportName bounds a module or field name.
	maxImportName = 1024
)

// ExternKind is the kind of a module import, as encoded in the binary
// format (WebAssembly core spec 5.5.5).
type ExternKind byte

// Import kinds. Only function imports can ever be granted.
const (
	// ExternFunc is a function import.
	ExternFunc ExternKind = 0x00
	// ExternTable is a table import.
	ExternTable ExternKind = 0x01
	// ExternMemory is a memory import.
	ExternMemory ExternKind = 0x02
	// ExternGlobal is a global import.
	ExternGlobal ExternKind = 0x03
	// ExternTag is an exception tag import (exception-handling proposal).
	ExternTag ExternKind = 0x04
)

// String returns "func", "table", "memory", "global" or "tag".
func (k ExternKind) String() string {
	switch k {
	case ExternFunc:
		return "func"
	case ExternTable:
		return "table"
	case ExternMemory:
		return "memory"
	case ExternGlobal:
		return "global"
	case ExternTag:
		return "tag"
	}
	return fmt.Sprintf("kind(%#x)", byte(k))
}

// ModuleImport is one entry of a module's import section. abi.Import has
// no kind, because the ABI only ever links functions; the kind is kept
// here so a non-function import is reported, not mistaken for a function.
type ModuleImport struct {
	abi.Import
	// Kind is what is imported.
	Kind ExternKind `json:"kind"`
}

// ModuleImports returns the import section of a WebAssembly core module, in
// order. It reads only the module header and section framing, and parses
// only the import section; it never panics and never allocates more than
// the input justifies. It rejects: a wrong magic or version (including
// component-model binaries), truncated or over-long LEB128 numbers,
// lengths beyond the buffer, unknown or repeated sections (Security: a
// second import section could hide imports from a reader that stops at the
// first), names that are not UTF-8, more than [MaxModuleImports] imports,
// and unknown import encodings.
//
// Errors are [*Error]s wrapping [ErrWasm], with the byte offset in Msg.
func ModuleImports(wasm []byte) ([]ModuleImport, error) {
	r := &wasmReader{b: wasm}
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, wasmErr(0, "not a WebAssembly module (bad magic number)")
	}
	if !bytes.Equal(wasm[4:8], []byte{1, 0, 0, 0}) {
		if wasm[6] != 0 || wasm[7] != 0 {
			return nil, wasmErr(4, "a component-model binary, not a core module; connectors are WASI preview 1 command modules")
		}
		return nil, wasmErr(4, fmt.Sprintf("unsupported binary version %d", wasm[4]))
	}
	r.off = 8
	var imports []ModuleImport
	seen := map[byte]bool{}
	for r.off < len(r.b) {
		start := r.off
		id := r.b[r.off]
		r.off++
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if int(size) > len(r.b)-r.off {
			return nil, wasmErr(start, fmt.Sprintf("section %d has length %d beyond the end of the module", id, size))
		}
		if id > 13 {
			return nil, wasmErr(start, fmt.Sprintf("unknown section id %d", id))
		}
		if id != 0 {
			if seen[id] {
				return nil, wasmErr(start, fmt.Sprintf("section %d appears twice", id))
			}
			seen[id] = true
		}
		end := r.off + int(size)
		if id == 2 {
			sec := &wasmReader{b: r.b[:end], off: r.off}
			imports, err = sec.importSection()
			if err != nil {
				return nil, err
			}
			if sec.off != end {
				return nil, wasmErr(sec.off, fmt.Sprintf("import section has %d bytes left over", end-sec.off))
			}
		}
		r.off = end
	}
	return imports, nil
}

func wasmErr(off int, msg string) error {
	return &Error{Msg: fmt.Sprintf("wasm: offset %#x: %s", off, msg), Err: ErrWasm}
}

// wasmReader reads b from off; every read checks the bound first.
type wasmReader struct {
	b   []byte
	off int
}

func (r *wasmReader) byte1() (byte, error) {
	if r.off >= len(r.b) {
		return 0, wasmErr(r.off, "unexpected end")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// u32 reads an unsigned LEB128 number of at most 5 bytes whose unused
// high bits are zero.
func (r *wasmReader) u32() (uint32, error) {
	v, err := r.leb(5, 32)
	return uint32(v), err
}

// leb reads an unsigned LEB128 number of at most maxBytes bytes, with a
// value below 2^bits.
func (r *wasmReader) leb(maxBytes int, bits uint) (uint64, error) {
	start := r.off
	var v uint64
	for i := 0; ; i++ {
		if i == maxBytes {
			return 0, wasmErr(start, "LEB128 number is too long")
		}
		c, err := r.byte1()
		if err != nil {
			return 0, wasmErr(start, "truncated LEB128 number")
		}
		shift := uint(7 * i)
		payload := uint64(c & 0x7f)
		if shift+7 > bits && payload>>(bits-shift) != 0 {
			return 0, wasmErr(start, "LEB128 number overflows")
		}
		v |= payload << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

func (r *wasmReader) name() (string, error) {
	start := r.off
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	if n > maxImportName {
		return "", wasmErr(start, fmt.Sprintf("name is %d bytes long; at most %d are allowed", n, maxImportName))
	}
	if int(n) > len(r.b)-r.off {
		return "", wasmErr(start, "name runs past the end of the section")
	}
	s := r.b[r.off : r.off+int(n)]
	if !utf8.Valid(s) {
		return "", wasmErr(start, "name is not valid UTF-8")
	}
	r.off += int(n)
	return string(s), nil
}

func (r *wasmReader) importSection() ([]ModuleImport, error) {
	start := r.off
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if n > MaxModuleImports {
		return nil, wasmErr(start, fmt.Sprintf("%d imports; at most %d are allowed", n, MaxModuleImports))
	}
	// Each import takes at least 4 bytes; do not trust n for allocation
	// beyond what the section can hold.
	if int(n) > (len(r.b)-r.off)/4 {
		return nil, wasmErr(start, fmt.Sprintf("%d imports cannot fit in the section", n))
	}
	out := make([]ModuleImport, 0, n)
	for i := uint32(0); i < n; i++ {
		at := r.off
		mod, err := r.name()
		if err != nil {
			return nil, err
		}
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		k, err := r.byte1()
		if err != nil {
			return nil, err
		}
		kind := ExternKind(k)
		switch kind {
		case ExternFunc:
			_, err = r.u32() // type index
		case ExternTable:
			if err = r.refType(); err == nil {
				err = r.limits(true)
			}
		case ExternMemory:
			err = r.limits(false)
		case ExternGlobal:
			if err = r.valType(); err == nil {
				var mut byte
				if mut, err = r.byte1(); err == nil && mut > 1 {
					err = wasmErr(r.off-1, fmt.Sprintf("bad global mutability %#x", mut))
				}
			}
		case ExternTag:
			var attr byte
			if attr, err = r.byte1(); err == nil && attr != 0 {
				err = wasmErr(r.off-1, fmt.Sprintf("bad tag attribute %#x", attr))
			}
			if err == nil {
				_, err = r.u32()
			}
		default:
			err = wasmErr(at, fmt.Sprintf("import %s.%s has unknown kind %#x", mod, name, k))
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ModuleImport{Import: abi.Import{Module: mod, Name: name}, Kind: kind})
	}
	return out, nil
}

// limits reads table or memory limits: a flags byte, a minimum and an
// optional maximum (64-bit with memory64/table64, shared with threads).
func (r *wasmReader) limits(table bool) error {
	at := r.off
	flags, err := r.byte1()
	if err != nil {
		return err
	}
	allowed := byte(0x07) // max present | shared | 64-bit
	if table {
		allowed = 0x05 // tables cannot be shared
	}
	if flags&^allowed != 0 {
		return wasmErr(at, fmt.Sprintf("bad limits flags %#x", flags))
	}
	maxBytes, bits := 5, uint(32)
	if flags&0x04 != 0 {
		maxBytes, bits = 10, 64
	}
	if _, err := r.leb(maxBytes, bits); err != nil {
		return err
	}
	if flags&0x01 != 0 {
		_, err = r.leb(maxBytes, bits)
	}
	return err
}

// refType reads a table's element type: funcref or externref.
func (r *wasmReader) refType() error {
	c, err := r.byte1()
	if err != nil {
		return err
	}
	if c != 0x70 && c != 0x6f {
		return wasmErr(r.off-1, fmt.Sprintf("unsupported reference type %#x", c))
	}
	return nil
}

// valType reads a number, vector or reference type.
func (r *wasmReader) valType() error {
	c, err := r.byte1()
	if err != nil {
		return err
	}
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return nil
	}
	return wasmErr(r.off-1, fmt.Sprintf("unsupported value type %#x", c))
}

// CheckImports checks a module's imports against a manifest: every import
// must be a function that [abi.BaseImports] or one of the manifest's
// runtime imports grants. It returns an [ErrorList] with one [*Error] per
// undeclared import (each wrapping [ErrUndeclaredImport]) that says which
// capability to declare when one would grant it.
func CheckImports(m *Manifest, imps []ModuleImport) error {
	granted := abi.Granted(m.Capabilities.Runtime.Imports)
	var errs ErrorList
	reported := map[ModuleImport]bool{}
	for _, imp := range imps {
		if reported[imp] {
			continue
		}
		fail := func(format string, args ...any) {
			reported[imp] = true
			errs = append(errs, &Error{Msg: fmt.Sprintf(format, args...), Err: ErrUndeclaredImport})
		}
		if imp.Kind != ExternFunc {
			// Security: the runtime links functions only; a module asking
			// the host for a memory, table or global gets nothing.
			fail("import %s (%s) is not granted: connectors may import only functions", imp.Import, imp.Kind)
			continue
		}
		if _, ok := granted[imp.Import]; ok {
			continue
		}
		if c, ok := abi.CapabilityFor(imp.Import); ok {
			fail("import %s is not granted: declare %q in [capabilities.runtime] imports", imp.Import, c)
		} else {
			fail("import %s is not granted: no capability provides it", imp.Import)
		}
	}
	return errs.err()
}
