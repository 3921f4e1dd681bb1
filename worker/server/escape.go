package server

import "encoding/json"

// escapeHook is nil in production builds. Test builds of the worker
// (-tags aileron_escapetest) set it so an integration test can run the
// sandbox escape probes inside a real, locked-down worker started by the
// real supervisor. It sees the invocation and may answer instead of the
// module.
var escapeHook func(intent string, input json.RawMessage) ([]byte, bool)
