package server

import (
	"encoding/json"
	"fmt"
	"strings"

	"aileron.dev/aileron/worker"
)

// lockdown applies the in-process isolation layers. Until worker/sandbox
// lands, nothing is applied and strict mode refuses.
func lockdown(a worker.SandboxArgs) (worker.SandboxReply, error) {
	reply := worker.SandboxReply{Missing: []string{"landlock: not implemented", "seccomp: not implemented"}}
	if a.Strict && len(reply.Missing) > 0 {
		return reply, fmt.Errorf("strict isolation: layers unavailable: %s", strings.Join(reply.Missing, "; "))
	}
	return reply, nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
