package manifest

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// tomlWriter writes the canonical TOML of manifests and actions. It writes
// only what those formats contain: tables, array tables and key = value
// lines whose values are already encoded.
type tomlWriter struct {
	b strings.Builder
}

func (w *tomlWriter) table(name string) {
	if w.b.Len() > 0 {
		w.b.WriteByte('\n')
	}
	w.b.WriteString("[" + name + "]\n")
}

func (w *tomlWriter) arrayTable(name string) {
	if w.b.Len() > 0 {
		w.b.WriteByte('\n')
	}
	w.b.WriteString("[[" + name + "]]\n")
}

func (w *tomlWriter) kv(key, value string) {
	w.b.WriteString(key + " = " + value + "\n")
}

func (w *tomlWriter) bytes() []byte { return []byte(w.b.String()) }

// quote returns s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// quoteKey returns k as a TOML key: bare when possible.
func quoteKey(k string) string {
	if isBareKey(k) {
		return k
	}
	return quote(k)
}

// encodeValue writes a value of a step's `with` table or an input default:
// strings, int64, finite float64, bools, arrays and tables (as inline
// tables with sorted keys). The parser admits nothing else.
func encodeValue(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			panic(bug("encode: non-finite float").Msg)
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0" // an integer-looking float would come back as an integer
		}
		return s
	case bool:
		return strconv.FormatBool(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = encodeValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = quoteKey(k) + " = " + encodeValue(v[k])
		}
		if len(parts) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	default:
		panic(bug(fmt.Sprintf("encode: unexpected %T", v)).Msg)
	}
}
