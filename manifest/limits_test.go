package manifest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const limitsAction = `[action]
name = "a"
version = "1.0.0"
%s
[[requires.connectors]]
name = "github://acme/x"
version = "1.0.0"
hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
capabilities = []

[[steps]]
id = "s"
connector = "github://acme/x"
intent = "go"
`

func TestActionLimits(t *testing.T) {
	a, err := ParseAction("a.toml", []byte(strings.Replace(limitsAction, "%s", "[limits]\ndeadline = \"2s\"\nmemory_mib = 64\nhost_calls = 10\n", 1)))
	require.NoError(t, err)
	require.Equal(t, Limits{Deadline: 2 * time.Second, MemoryMiB: 64, HostCalls: 10}, a.Limits)
	back, err := ParseAction("a.toml", a.Encode())
	require.NoError(t, err)
	require.Equal(t, a.Limits, back.Limits)
}

func TestActionLimits_Errors(t *testing.T) {
	tests := []struct{ name, limits, want string }{
		{"not_a_duration", `deadline = "soon"`, `a.toml:6:12: limits.deadline: deadline "soon" is not a duration; write e.g. "10s" or "500ms"`},
		{"negative_deadline", `deadline = "-1s"`, `a.toml:6:12: limits.deadline: deadline -1s is out of range; use more than 0 and at most 1h0m0s`},
		{"memory_string", `memory_mib = "64"`, `a.toml:6:14: limits.memory_mib: must be an integer, not a string`},
		{"memory_zero", `memory_mib = 0`, `a.toml:6:14: limits.memory_mib: 0 is out of range; use 1 to 65536`},
		{"unknown_field", `fuel = 10`, `a.toml:6:1: limits.fuel: unknown field "fuel" in [limits]; known fields: deadline, host_calls, memory_mib`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAction("a.toml", []byte(strings.Replace(limitsAction, "%s", "\n[limits]\n"+tt.limits+"\n", 1)))
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestStepRetries(t *testing.T) {
	src := strings.Replace(limitsAction, "%s", "", 1) + "retries = 2\n"
	a, err := ParseAction("a.toml", []byte(src))
	require.NoError(t, err)
	require.Equal(t, 2, a.Steps[0].Retries)
	back, err := ParseAction("a.toml", a.Encode())
	require.NoError(t, err)
	require.Equal(t, 2, back.Steps[0].Retries)

	_, err = ParseAction("a.toml", []byte(strings.Replace(limitsAction, "%s", "", 1)+"retries = 9\n"))
	require.EqualError(t, err, "a.toml:15:11: steps[0].retries: 9 is out of range; use 0 to 5")
}
