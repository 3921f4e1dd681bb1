//go:build !wasip1

package sdk

import "aileron.dev/aileron/sdk/abi"

// Outside a wasip1 build there is no host to call: the SDK still compiles so
// that connector packages can be unit-tested with `go test`, and every host
// call reports that it is unavailable.

// errNoHost is an error variable, not a constant result, so that callers'
// nil checks stay meaningful to static analysis of the host build.
var errNoHost error = &abi.Error{Code: abi.ErrnoNotGranted.String(), Message: "aileron host functions exist only in a GOOS=wasip1 build run by the worker"}

func httpSend([]byte) ([]byte, error) { return nil, errNoHost }

func logRecord([]byte) error { return errNoHost }

func audit([]byte) error { return errNoHost }
