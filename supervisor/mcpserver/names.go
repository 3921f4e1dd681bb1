package mcpserver

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
)

// MaxToolNameLen is the longest tool name we give out. MCP allows 128;
// several clients truncate or refuse names past 64.
const MaxToolNameLen = 64

// hashLen is how many hex digits of a hash disambiguate a colliding name.
const hashLen = 8

// ToolName derives a tool name from an action name: every character
// outside [a-zA-Z0-9_-] becomes "_", and the result is cut to
// [MaxToolNameLen] bytes. An empty name becomes "action". A valid action
// name ([a-z][a-z0-9-]{0,63}) is its own tool name.
func ToolName(action string) string {
	b := make([]byte, 0, len(action))
	for _, r := range action {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b = append(b, byte(r))
		default:
			b = append(b, '_')
		}
		if len(b) == MaxToolNameLen {
			break
		}
	}
	if len(b) == 0 {
		return "action"
	}
	return string(b)
}

// AssignToolNames gives every action file a distinct tool name. files maps
// each file's base name in the actions directory (unique) to the name of
// the action it holds. The result maps the same files to tool names.
//
// Each file gets [ToolName] of its action's name. When several files share
// a tool name, one keeps it: the file the CLI installs that action as
// (NAME.toml), else the first file in byte order. Every other one gets the
// name cut to fit, a "-" and the first 8 hex digits of the SHA-256 of its
// file name. The result depends only on the input, never on map order or
// on when files appeared.
func AssignToolNames(files map[string]string) map[string]string {
	type entry struct {
		file, base string
		canonical  bool
	}
	entries := make([]entry, 0, len(files))
	for f, action := range files {
		entries = append(entries, entry{file: f, base: ToolName(action), canonical: f == action+".toml"})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.base != b.base {
			return a.base < b.base
		}
		if a.canonical != b.canonical {
			return a.canonical
		}
		return a.file < b.file
	})
	out := make(map[string]string, len(entries))
	taken := map[string]bool{}
	var rest []entry
	for i, e := range entries {
		if i > 0 && entries[i-1].base == e.base {
			rest = append(rest, e)
			continue
		}
		out[e.file] = e.base
		taken[e.base] = true
	}
	for _, e := range rest {
		for n := 0; ; n++ {
			seed := e.file
			if n > 0 {
				// A suffixed name that equals another tool's name needs a
				// hash collision in 32 bits; step on deterministically.
				seed += "\x00" + strconv.Itoa(n)
			}
			name := suffixed(e.base, seed)
			if !taken[name] {
				out[e.file] = name
				taken[name] = true
				break
			}
		}
	}
	return out
}

// suffixed returns base cut to leave room for "-" and a short hash of seed.
func suffixed(base, seed string) string {
	h := sha256.Sum256([]byte(seed))
	keep := min(len(base), MaxToolNameLen-1-hashLen)
	return base[:keep] + "-" + hex.EncodeToString(h[:])[:hashLen]
}
