package manifest

import (
	"fmt"
	"time"
)

// Limits is an action's optional [limits] table: it narrows the operator's
// per-invocation limits for this action's steps and can never widen them
// (the runtime takes the smaller of the two). Zero fields narrow nothing.
type Limits struct {
	// Deadline bounds each step's invocation, e.g. "10s".
	Deadline time.Duration `json:"deadline,omitempty"`
	// MemoryMiB bounds each connector's linear memory.
	MemoryMiB int64 `json:"memory_mib,omitempty"`
	// HostCalls bounds the aileron_v1 calls of each invocation.
	HostCalls int64 `json:"host_calls,omitempty"`
}

// Bounds of the values an action may write.
const (
	maxDeadline  = time.Hour
	maxMemoryMiB = 64 << 10
	maxHostCalls = 1_000_000
)

func (d *decoder) limits(t tbl) Limits {
	var l Limits
	d.fields(t, "deadline", "memory_mib", "host_calls")
	if s, ok := d.str(t, "deadline"); ok {
		v, err := time.ParseDuration(s)
		switch {
		case err != nil:
			d.failVal(joinPath(t.path, "deadline"), ErrInvalid, "deadline %q is not a duration; write e.g. \"10s\" or \"500ms\"", s)
		case v <= 0 || v > maxDeadline:
			d.failVal(joinPath(t.path, "deadline"), ErrInvalid, "deadline %s is out of range; use more than 0 and at most %s", v, maxDeadline)
		default:
			l.Deadline = v
		}
	}
	l.MemoryMiB = d.boundedInt(t, "memory_mib", maxMemoryMiB)
	l.HostCalls = d.boundedInt(t, "host_calls", maxHostCalls)
	return l
}

// maxRetries bounds a step's retries.
const maxRetries = 5

// boundedInt reads an optional integer in 1..max.
func (d *decoder) boundedInt(t tbl, key string, max int64) int64 { return d.intIn(t, key, 1, max) }

// intIn reads an optional integer in lo..hi; absent is 0.
func (d *decoder) intIn(t tbl, key string, lo, hi int64) int64 {
	v, present := t.m[key]
	if !present {
		return 0
	}
	n, ok := v.(int64)
	if !ok {
		d.failVal(joinPath(t.path, key), ErrType, "must be an integer, not %s", typeName(v))
		return 0
	}
	if n < lo || n > hi {
		d.failVal(joinPath(t.path, key), ErrInvalid, "%d is out of range; use %d to %d", n, lo, hi)
		return 0
	}
	return n
}

// String returns the limits as they would be written in an action file.
func (l Limits) String() string {
	return fmt.Sprintf("deadline=%s memory_mib=%d host_calls=%d", l.Deadline, l.MemoryMiB, l.HostCalls)
}
