//go:build wasip1

package sdk

import (
	"encoding/json"
	"unsafe"

	"aileron.dev/aileron/sdk/abi"
)

//go:wasmimport aileron_v1 http_send
func hostHTTPSend(reqPtr unsafe.Pointer, reqLen uint32, resultLenPtr unsafe.Pointer) uint32

//go:wasmimport aileron_v1 result_read
func hostResultRead(bufPtr unsafe.Pointer, bufLen uint32) uint32

//go:wasmimport aileron_v1 log
func hostLog(recPtr unsafe.Pointer, recLen uint32) uint32

//go:wasmimport aileron_v1 audit_emit
func hostAuditEmit(evPtr unsafe.Pointer, evLen uint32) uint32

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// httpSend calls http_send and fetches its pending result. On a non-zero
// errno the result, if any, is an abi.Error that is returned as the error.
func httpSend(payload []byte) ([]byte, error) {
	var n uint32
	e := abi.Errno(hostHTTPSend(bytesPtr(payload), uint32(len(payload)), unsafe.Pointer(&n)))
	var res []byte
	if e != abi.ErrnoFault && n > 0 {
		res = make([]byte, n)
		if re := abi.Errno(hostResultRead(unsafe.Pointer(&res[0]), n)); re != abi.ErrnoOK {
			return nil, &abi.Error{Code: re.String(), Message: "result_read failed"}
		}
	}
	if e == abi.ErrnoOK {
		return res, nil
	}
	herr := &abi.Error{Code: e.String(), Message: "http_send failed"}
	if len(res) > 0 {
		_ = json.Unmarshal(res, herr)
	}
	return nil, herr
}

func logRecord(rec []byte) error {
	if e := abi.Errno(hostLog(bytesPtr(rec), uint32(len(rec)))); e != abi.ErrnoOK {
		return &abi.Error{Code: e.String(), Message: "log failed"}
	}
	return nil
}

func audit(ev []byte) error {
	if e := abi.Errno(hostAuditEmit(bytesPtr(ev), uint32(len(ev)))); e != abi.ErrnoOK {
		return &abi.Error{Code: e.String(), Message: "audit_emit failed"}
	}
	return nil
}
