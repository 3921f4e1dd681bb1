package host

import (
	"encoding/binary"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// guestMemory is the one door through which host functions touch guest
// memory. Every access is bounds-checked in uint64 so ptr+len cannot wrap,
// and reads return copies: the guest may grow its memory on the next call,
// which makes earlier views of UnsafeData stale.
type guestMemory struct {
	data []byte
}

// memoryOf returns the caller's exported "memory", or false if the module
// exports none (then every pointer argument is a fault).
func memoryOf(c *wasmtime.Caller) (guestMemory, bool) {
	ext := c.GetExport("memory")
	if ext == nil {
		return guestMemory{}, false
	}
	mem := ext.Memory()
	if mem == nil {
		return guestMemory{}, false
	}
	return guestMemory{data: mem.UnsafeData(c)}, true
}

// view returns the n bytes at ptr as a capped sub-slice of guest memory, or
// false when any of them lies outside it.
func (m guestMemory) view(ptr, n uint32) ([]byte, bool) {
	end := uint64(ptr) + uint64(n)
	if end > uint64(len(m.data)) {
		return nil, false
	}
	return m.data[ptr:end:end], true
}

// read copies the n bytes at ptr out of guest memory.
func (m guestMemory) read(ptr, n uint32) ([]byte, bool) {
	v, ok := m.view(ptr, n)
	if !ok {
		return nil, false
	}
	out := make([]byte, n)
	copy(out, v)
	return out, true
}

// write copies b into guest memory at ptr, all or nothing.
func (m guestMemory) write(ptr uint32, b []byte) bool {
	if uint64(len(b)) > uint64(^uint32(0)) {
		return false
	}
	v, ok := m.view(ptr, uint32(len(b)))
	if !ok {
		return false
	}
	copy(v, b)
	return true
}

// writeU32 stores v little-endian at ptr.
func (m guestMemory) writeU32(ptr, v uint32) bool {
	dst, ok := m.view(ptr, 4)
	if !ok {
		return false
	}
	binary.LittleEndian.PutUint32(dst, v)
	return true
}
