package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"aileron.dev/aileron/sdk/abi"
)

// Limits on templates.
const (
	maxPathSegments = 32
	maxPathKeyLen   = 128
	maxWithDepth    = 32
)

// template is one parsed string of a step's `with` table.
type template struct {
	parts []tmplPart
}

// tmplPart is literal text or one reference.
type tmplPart struct {
	lit string
	ref *reference
}

// whole reports a string that is exactly one ${{ }}: it keeps the JSON type
// of the value it refers to.
func (t template) whole() bool { return len(t.parts) == 1 && t.parts[0].ref != nil }

// reference is the inside of ${{ }}:
//
//	ref   = "inputs." name
//	      | "steps." id ".output" { "." key | "[" index "]" }
//	name  = [a-z][a-z0-9_]{0,63}
//	id    = [a-z][a-z0-9_-]{0,63}
//	key   = [A-Za-z_][A-Za-z0-9_-]{0,127}
//	index = "0" | [1-9][0-9]{0,8}
//
// Spaces may surround ref. There are no operators, functions, filters or
// literals: a reference names a value, nothing is evaluated.
type reference struct {
	input string    // set for inputs.NAME
	step  string    // set for steps.ID.output...
	path  []pathSeg // after .output
}

type pathSeg struct {
	key   string
	index int
	isIdx bool
}

// String returns the canonical spelling, e.g. "steps.get.output.items[0]".
func (r reference) String() string {
	if r.step == "" {
		return "inputs." + r.input
	}
	var b strings.Builder
	b.WriteString("steps." + r.step + ".output")
	for _, s := range r.path {
		if s.isIdx {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		} else {
			b.WriteString("." + s.key)
		}
	}
	return b.String()
}

// parseTemplate splits s into literal text and references. "$${{" is an
// escaped "${{" and renders as the literal text "${{"; any other "$" is
// literal.
func parseTemplate(s string) (template, string) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tmplPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${{"):
			lit.WriteString("${{")
			i += 4
		case strings.HasPrefix(s[i:], "${{"):
			end := strings.Index(s[i+3:], "}}")
			if end < 0 {
				return template{}, `unclosed "${{"; close it with "}}", or write "$${{" for a literal "${{"`
			}
			expr := s[i+3 : i+3+end]
			ref, msg := parseReference(strings.Trim(expr, " "))
			if msg != "" {
				return template{}, fmt.Sprintf("${{%s}}: %s", expr, msg)
			}
			flush()
			t.parts = append(t.parts, tmplPart{ref: &ref})
			i += 3 + end + 2
		default:
			lit.WriteByte(s[i])
			i++
		}
	}
	flush()
	return t, ""
}

func parseReference(expr string) (reference, string) {
	const usage = "write ${{ inputs.NAME }} or ${{ steps.ID.output }} followed by .key or [index] parts"
	if rest, ok := strings.CutPrefix(expr, "inputs."); ok {
		if strings.ContainsAny(rest, ".[") {
			return reference{}, "inputs have no fields; write ${{ inputs.NAME }}"
		}
		if msg := identProblem(rest); msg != "" {
			return reference{}, fmt.Sprintf("invalid input name %q: %s", rest, msg)
		}
		return reference{input: rest}, ""
	}
	rest, ok := strings.CutPrefix(expr, "steps.")
	if !ok {
		if expr == "" {
			return reference{}, "empty template; " + usage
		}
		return reference{}, "unknown reference; " + usage
	}
	id, rest, _ := strings.Cut(rest, ".")
	if msg := stepIDProblem(id); msg != "" {
		return reference{}, fmt.Sprintf("invalid step id %q: %s", id, msg)
	}
	r := reference{step: id}
	rest, ok = strings.CutPrefix(rest, "output")
	if !ok {
		return reference{}, fmt.Sprintf("a step has only an output; write ${{ steps.%s.output }}", id)
	}
	for rest != "" {
		if len(r.path) == maxPathSegments {
			return reference{}, fmt.Sprintf("more than %d path parts", maxPathSegments)
		}
		switch rest[0] {
		case '.':
			n := 1
			for n < len(rest) && rest[n] != '.' && rest[n] != '[' {
				n++
			}
			key := rest[1:n]
			if msg := pathKeyProblem(key); msg != "" {
				return reference{}, msg
			}
			r.path = append(r.path, pathSeg{key: key})
			rest = rest[n:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return reference{}, `unclosed "["`
			}
			digits := rest[1:end]
			if digits == "" || len(digits) > 9 || digits[0] == '0' && digits != "0" || strings.Trim(digits, "0123456789") != "" {
				return reference{}, fmt.Sprintf("index [%s] must be a decimal number without leading zeros", digits)
			}
			n, _ := strconv.Atoi(digits)
			r.path = append(r.path, pathSeg{index: n, isIdx: true})
			rest = rest[end+1:]
		default:
			return reference{}, fmt.Sprintf("unexpected %q after %s; %s", rest, r.String(), usage)
		}
	}
	return r, ""
}

func pathKeyProblem(k string) string {
	if k == "" {
		return "empty key after '.'"
	}
	if len(k) > maxPathKeyLen {
		return fmt.Sprintf("key is longer than %d bytes", maxPathKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if i == 0 && !letter {
			return fmt.Sprintf("key %q must start with a letter or '_'", k)
		}
		if !letter && !(c >= '0' && c <= '9') && c != '-' {
			return fmt.Sprintf("key %q has character %q; keys use A-Z, a-z, 0-9, '_' and '-'", k, rune(c))
		}
	}
	return ""
}

// Render fills in the templates of a step's `with` table. inputs are the
// action's coerced inputs ([CoerceInputs]); outputs maps each finished
// step's ID to its JSON output.
//
// A string that is exactly one ${{ }} becomes the referenced value with its
// JSON type (object, array, number, ...). A string with text around its
// templates becomes a string; only strings, numbers and booleans can be
// embedded in text. "$${{" renders as a literal "${{". Keys are never
// templates. with is not modified.
//
// On failure the error is an [ErrorList] of [*Error]s wrapping
// [ErrRender], each naming the field and the reference, in key order.
func Render(with map[string]any, inputs map[string]any, outputs map[string]json.RawMessage) (map[string]any, error) {
	r := &renderer{inputs: inputs, outputs: outputs, decoded: map[string]any{}, budget: abi.MaxInvocationBytes}
	out, _ := r.value("with", with, 0).(map[string]any)
	if err := r.errs.err(); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

type renderer struct {
	inputs  map[string]any
	outputs map[string]json.RawMessage
	decoded map[string]any
	budget  int // bytes left before the rendered input is too large
	errs    ErrorList
}

func (r *renderer) fail(field, format string, args ...any) {
	r.errs = append(r.errs, &Error{Field: field, Msg: fmt.Sprintf(format, args...), Err: ErrRender})
}

// spend charges n bytes of output. Security: a template can repeat a large
// step output many times; the budget stops that from growing without
// bound (the result could never be sent anyway).
func (r *renderer) spend(field string, n int) bool {
	if r.budget < 0 {
		return false
	}
	r.budget -= n
	if r.budget < 0 {
		r.fail(field, "the rendered input is larger than %d bytes", abi.MaxInvocationBytes)
		return false
	}
	return true
}

func (r *renderer) value(field string, v any, depth int) any {
	if depth > maxWithDepth {
		r.fail(field, "nested more than %d levels deep", maxWithDepth)
		return nil
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		// Keys in order, so the errors (and which field runs out of
		// budget) are the same on every run.
		for _, k := range slices.Sorted(maps.Keys(v)) {
			r.spend(field, len(k))
			out[k] = r.value(joinPath(field, k), v[k], depth+1)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = r.value(indexPath(field, i), e, depth+1)
		}
		return out
	case string:
		return r.str(field, v)
	default:
		r.spend(field, 8)
		return v
	}
}

func (r *renderer) str(field, s string) any {
	t, msg := parseTemplate(s)
	if msg != "" {
		r.fail(field, "%s", msg)
		return nil
	}
	if r.budget < 0 {
		return nil
	}
	if t.whole() {
		v, ok := r.resolve(field, *t.parts[0].ref)
		if !ok {
			return nil
		}
		if s, isStr := v.(string); isStr {
			r.spend(field, len(s))
		} else {
			b, _ := json.Marshal(v)
			r.spend(field, len(b))
		}
		return v
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref == nil {
			b.WriteString(p.lit)
			continue
		}
		v, ok := r.resolve(field, *p.ref)
		if !ok {
			return nil
		}
		text, ok := scalarText(v)
		if !ok {
			r.fail(field, "${{ %s }} is %s; only strings, numbers and booleans can be embedded in text (a template alone as the whole value keeps its type)", p.ref, jsonTypeName(v))
			return nil
		}
		if !r.spend(field, len(text)) {
			return nil
		}
		b.WriteString(text)
	}
	return b.String()
}

// resolve looks up a reference's value.
func (r *renderer) resolve(field string, ref reference) (any, bool) {
	if ref.step == "" {
		v, ok := r.inputs[ref.input]
		if !ok {
			r.fail(field, "${{ %s }}: input %q has no value", ref, ref.input)
		}
		return v, ok
	}
	v, ok := r.decoded[ref.step]
	if !ok {
		raw, found := r.outputs[ref.step]
		if !found {
			r.fail(field, "${{ %s }}: step %q has no output", ref, ref.step)
			return nil, false
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			r.fail(field, "${{ %s }}: the output of step %q is not valid JSON: %v", ref, ref.step, err)
			return nil, false
		}
		r.decoded[ref.step] = v
	}
	at := reference{step: ref.step}
	for _, seg := range ref.path {
		if seg.isIdx {
			arr, ok := v.([]any)
			if !ok {
				r.fail(field, "${{ %s }}: %s is %s, not an array", ref, at, jsonTypeName(v))
				return nil, false
			}
			if seg.index >= len(arr) {
				r.fail(field, "${{ %s }}: %s has %d elements; index %d is out of range", ref, at, len(arr), seg.index)
				return nil, false
			}
			v = arr[seg.index]
		} else {
			obj, ok := v.(map[string]any)
			if !ok {
				r.fail(field, "${{ %s }}: %s is %s, not an object", ref, at, jsonTypeName(v))
				return nil, false
			}
			e, ok := obj[seg.key]
			if !ok {
				r.fail(field, "${{ %s }}: %s has no key %q", ref, at, seg.key)
				return nil, false
			}
			v = e
		}
		at.path = append(at.path, seg)
	}
	return v, true
}

// scalarText formats a string, number or boolean for embedding in text.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case int:
		return strconv.Itoa(v), true
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return "", false
		}
		// Like encoding/json: plain digits unless the exponent is extreme.
		if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
			return strconv.FormatFloat(v, 'e', -1, 64), true
		}
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	default:
		return "", false
	}
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// CoerceInputs checks the values given for an action's inputs against their
// declarations and converts them to their declared types: string, int64
// (integer), float64 (number) or bool. Values may be strings, as from
// "--input k=v" on the command line, or already typed, as from JSON
// (float64 or json.Number for numbers). Defaults fill in inputs that were
// not given; a required input must be given; an input that is not declared
// is an error. An optional input without a default stays absent.
//
// On failure the error is an [ErrorList] of [*Error]s wrapping [ErrInput].
func CoerceInputs(decl []Input, given map[string]any) (map[string]any, error) {
	var errs ErrorList
	fail := func(name, format string, args ...any) {
		errs = append(errs, &Error{Field: "inputs." + name, Msg: fmt.Sprintf(format, args...), Err: ErrInput})
	}
	known := map[string]bool{}
	names := make([]string, len(decl))
	for i, in := range decl {
		known[in.Name] = true
		names[i] = in.Name
	}
	sort.Strings(names)
	var unknown []string
	for k := range given {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		if len(names) == 0 {
			fail(k, "unknown input %q; this action takes no inputs", k)
		} else {
			fail(k, "unknown input %q; declared inputs: %s", k, strings.Join(names, ", "))
		}
	}
	out := make(map[string]any, len(decl))
	for _, in := range decl {
		v, ok := given[in.Name]
		if !ok {
			switch {
			case in.Default != nil:
				out[in.Name] = in.Default
			case in.Required:
				fail(in.Name, "missing required input %q (%s)", in.Name, in.Type)
			}
			continue
		}
		c, msg := coerce(in.Type, v)
		if msg != "" {
			fail(in.Name, "%s", msg)
			continue
		}
		out[in.Name] = c
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// coerce converts one input value to its declared type.
func coerce(t InputType, v any) (any, string) {
	switch t {
	case InputString:
		if s, ok := v.(string); ok {
			return s, ""
		}
	case InputBoolean:
		switch v := v.(type) {
		case bool:
			return v, ""
		case string:
			if v == "true" || v == "false" {
				return v == "true", ""
			}
			return nil, fmt.Sprintf("%q is not a boolean; write true or false", v)
		}
	case InputInteger:
		switch v := v.(type) {
		case int64:
			return v, ""
		case int:
			return int64(v), ""
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
				return int64(v), ""
			}
			return nil, fmt.Sprintf("%v is not an integer", v)
		case json.Number:
			return coerce(t, string(v))
		case string:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || strings.HasPrefix(v, "+") {
				return nil, fmt.Sprintf("%q is not an integer", v)
			}
			return n, ""
		}
	case InputNumber:
		switch v := v.(type) {
		case int64:
			return float64(v), ""
		case int:
			return float64(v), ""
		case float64:
			if !math.IsInf(v, 0) && !math.IsNaN(v) {
				return v, ""
			}
			return nil, fmt.Sprintf("%v is not a finite number", v)
		case json.Number:
			return coerce(t, string(v))
		case string:
			// Only JSON number syntax: no hex, no "Inf", no underscores.
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !isJSONNumber(v) {
				return nil, fmt.Sprintf("%q is not a number", v)
			}
			return f, ""
		}
	default:
		return nil, fmt.Sprintf("unknown input type %q", t)
	}
	return nil, fmt.Sprintf("must be %s, not %s", t.article(), jsonTypeName(v))
}

// isJSONNumber reports whether s is a number in JSON syntax (RFC 8259 §6).
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	if n := digits(); n == 0 || n > 1 && s[start] == '0' {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
