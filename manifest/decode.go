package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// MaxFileBytes bounds a manifest or action file. Real files are a few
// kilobytes; the bound keeps hostile input cheap to reject.
const MaxFileBytes = 1 << 20

// ReadFile reads a manifest or action file, refusing one over MaxFileBytes
// (an error wrapping ErrTooLarge). The bound applies to the bytes read, not
// to what stat says: a FIFO, /dev/stdin or a file still growing have no
// size up front.
func ReadFile(path string) ([]byte, error) { return readAtMost(path, MaxFileBytes) }

func readAtMost(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > max {
		return nil, tooLarge(path, max)
	}
	return data, nil
}

func tooLarge(file string, max int) error {
	return ErrorList{{File: file, Msg: fmt.Sprintf("file is larger than %d bytes", max), Err: ErrTooLarge}}.err()
}

// parseTOML decodes data into a generic tree (enforcing TOML's own rules:
// syntax, duplicate keys, redefined tables) and indexes the position of every
// key and value, so later checks can point at the exact spot.
func parseTOML(file string, data []byte) (map[string]any, *posIndex, error) {
	if len(data) > MaxFileBytes {
		return nil, nil, tooLarge(file, MaxFileBytes)
	}
	// Security: go-toml's duplicate-key check is quadratic in the number of
	// keys of a table (130k keys take ~17s). The position index is a
	// linear walk, so it runs first and refuses documents with more keys
	// or deeper paths than any real manifest or action has.
	ix, shapeErr := indexPositions(data)
	if shapeErr != nil {
		shapeErr.File = file
		return nil, nil, ErrorList{shapeErr}.err()
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: ErrSyntax}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			// de.Key() is relative to the enclosing table, so it is not
			// used as Field: the position says where.
			e.Line, e.Col = de.Position()
		}
		return nil, nil, ErrorList{e}.err()
	}
	if doc == nil {
		doc = map[string]any{}
	}
	return doc, ix, nil
}

// position is a 1-based line and column plus the byte offset (for ordering).
type position struct{ line, col, off int }

// Shape limits, far above what real files need.
const (
	// maxKeys bounds the key parts in a document (each part of a dotted
	// key and of a table header counts).
	maxKeys = 4096
	// maxDepth bounds how many parts a path has, counting tables, keys
	// and array indexes.
	maxDepth = 48
)

// posIndex maps a display path ("steps[0].with.text") to where its key and
// its value start.
type posIndex struct {
	lines []int // byte offset of the start of each line
	keys  map[string]position
	vals  map[string]position
	nkeys int    // key parts seen so far
	err   *Error // first shape limit exceeded
}

// count charges one key part at depth and reports whether the walk may go
// on.
func (ix *posIndex) count(depth int, r unstable.Range) bool {
	if ix.err != nil {
		return false
	}
	ix.nkeys++
	switch {
	case ix.nkeys > maxKeys:
		ix.err = &Error{Msg: fmt.Sprintf("more than %d keys", maxKeys), Err: ErrTooLarge}
	case depth > maxDepth:
		ix.err = &Error{Msg: fmt.Sprintf("keys are nested more than %d levels deep", maxDepth), Err: ErrTooLarge}
	default:
		return true
	}
	p := ix.at(r)
	ix.err.Line, ix.err.Col = p.line, p.col
	return false
}

func (ix *posIndex) at(r unstable.Range) position {
	off := int(r.Offset)
	i := sort.Search(len(ix.lines), func(i int) bool { return ix.lines[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	return position{line: i + 1, col: off - ix.lines[i] + 1, off: off}
}

func (ix *posIndex) setKey(path string, r unstable.Range) {
	if _, ok := ix.keys[path]; !ok {
		ix.keys[path] = ix.at(r)
	}
}

func (ix *posIndex) setVal(path string, r unstable.Range) {
	if _, ok := ix.vals[path]; !ok {
		ix.vals[path] = ix.at(r)
	}
}

// key returns the position of path's key, or of its nearest ancestor that
// has one.
func (ix *posIndex) key(path string) position {
	if ix == nil {
		return position{}
	}
	for {
		if p, ok := ix.keys[path]; ok || path == "" {
			return p
		}
		path = parentPath(path)
	}
}

// val returns the position of path's value, falling back to its key (arrays
// carry no position of their own) and then to its ancestors.
func (ix *posIndex) val(path string) position {
	if ix == nil {
		return position{}
	}
	if p, ok := ix.vals[path]; ok {
		return p
	}
	return ix.key(path)
}

// parentPath drops the last part of a display path. With a quoted key that
// contains '.' or '[' it may drop less than a whole part; the result is then
// not in the index and the next call drops more, so lookups still end at
// an ancestor.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// indexPositions walks the document with go-toml's low-level parser,
// recording positions and enforcing the shape limits. A syntax error just
// ends the walk: toml.Unmarshal reports it properly afterwards.
func indexPositions(data []byte) (*posIndex, *Error) {
	ix := &posIndex{lines: []int{0}, keys: map[string]position{}, vals: map[string]position{}}
	for i, c := range data {
		if c == '\n' {
			ix.lines = append(ix.lines, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	arrays := map[string]int{} // array-table path -> elements seen so far
	current, depth := "", 0
	for ix.err == nil && p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var parts []*unstable.Node
			it := e.Key()
			for it.Next() {
				parts = append(parts, it.Node())
			}
			path := ""
			depth = 0
			for i, k := range parts {
				depth++
				if !ix.count(depth, k.Raw) {
					break
				}
				path = joinPath(path, string(k.Data))
				ix.setKey(path, k.Raw)
				if i < len(parts)-1 || e.Kind == unstable.Table {
					// A prefix naming an array of tables refers to its
					// last element, as in TOML.
					if n := arrays[path]; n > 0 {
						path = indexPath(path, n-1)
						depth++
					}
				}
			}
			if e.Kind == unstable.ArrayTable && len(parts) > 0 {
				n := arrays[path]
				arrays[path] = n + 1
				path = indexPath(path, n)
				depth++
				ix.setKey(path, parts[0].Raw)
			}
			current = path
		case unstable.KeyValue:
			ix.keyValue(current, depth, e)
		}
	}
	return ix, ix.err
}

func (ix *posIndex) keyValue(base string, depth int, kv *unstable.Node) {
	path := base
	it := kv.Key()
	for it.Next() {
		k := it.Node()
		depth++
		if !ix.count(depth, k.Raw) {
			return
		}
		path = joinPath(path, string(k.Data))
		ix.setKey(path, k.Raw)
	}
	ix.value(path, depth, kv.Value())
}

func (ix *posIndex) value(path string, depth int, v *unstable.Node) {
	if v == nil || ix.err != nil {
		return
	}
	switch v.Kind {
	case unstable.Array:
		if depth+1 > maxDepth {
			// Arrays carry no range of their own: point at the key.
			p := ix.key(path)
			ix.err = &Error{Line: p.line, Col: p.col, Msg: fmt.Sprintf("keys are nested more than %d levels deep", maxDepth), Err: ErrTooLarge}
			return
		}
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			ix.value(indexPath(path, i), depth+1, c)
			i++
		}
	case unstable.InlineTable:
		ix.setVal(path, v.Raw)
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ix.keyValue(path, depth, c)
			}
		}
	default:
		ix.setVal(path, v.Raw)
	}
}

// joinPath appends a key to a display path. Bare-key-safe names are written
// as is, others quoted, so a path is never ambiguous.
func joinPath(parent, key string) string {
	k := key
	if !isBareKey(key) {
		k = strconv.Quote(key)
	}
	if parent == "" {
		return k
	}
	return parent + "." + k
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// decoder checks a generic TOML tree against the schema, collecting every
// problem with its position.
type decoder struct {
	file string
	ix   *posIndex
	errs ErrorList
}

// tbl is a TOML table being decoded.
type tbl struct {
	path  string         // display path, "" at the top level
	where string         // how messages name it: "[connector]", "[[steps]]"
	name  string         // dotted name without indices, for child tables
	m     map[string]any // contents
}

// failAt records a problem at an explicit position.
func (d *decoder) failAt(field string, p position, sentinel error, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Col: p.col, Field: field, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

// failVal records a problem with the value at path.
func (d *decoder) failVal(path string, sentinel error, format string, args ...any) {
	d.failAt(path, d.ix.val(path), sentinel, format, args...)
}

// failKey records a problem with the key at path.
func (d *decoder) failKey(path string, sentinel error, format string, args ...any) {
	d.failAt(path, d.ix.key(path), sentinel, format, args...)
}

// fields reports each key of t that is not in known, in file order.
func (d *decoder) fields(t tbl, known ...string) {
	var unknown []string
	for _, k := range d.sortedKeys(t) {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	for _, k := range unknown {
		d.failKey(joinPath(t.path, k), ErrUnknownField, "unknown field %q %s; known fields: %s", k, t.where, strings.Join(slices.Sorted(slices.Values(known)), ", "))
	}
}

// sortedKeys returns t's keys in file order.
func (d *decoder) sortedKeys(t tbl) []string {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, pj := d.ix.key(joinPath(t.path, keys[i])), d.ix.key(joinPath(t.path, keys[j]))
		if pi.off != pj.off {
			return pi.off < pj.off
		}
		return keys[i] < keys[j]
	})
	return keys
}

// missing reports a required field that is absent from t.
func (d *decoder) missing(t tbl, key, hint string) {
	field := joinPath(t.path, key)
	msg := fmt.Sprintf("missing required field %q %s", key, t.where)
	if hint != "" {
		msg += "; " + hint
	}
	d.failAt(field, d.ix.key(t.path), ErrMissing, "%s", msg)
}

// child returns the sub-table t[key]. present reports whether the key
// exists; ok whether it is a table.
func (d *decoder) child(t tbl, key string) (c tbl, present, ok bool) {
	v, present := t.m[key]
	if !present {
		return tbl{}, false, false
	}
	name := key
	if t.name != "" {
		name = t.name + "." + key
	}
	c = tbl{path: joinPath(t.path, key), where: "in [" + name + "]", name: name}
	m, ok := v.(map[string]any)
	if !ok {
		d.failVal(c.path, ErrType, "must be a table, not %s", typeName(v))
		return tbl{}, true, false
	}
	c.m = m
	return c, true, true
}

// tableArray returns the array of tables t[key] ([[name]] entries).
func (d *decoder) tableArray(t tbl, key string) []tbl {
	v, present := t.m[key]
	if !present {
		return nil
	}
	path := joinPath(t.path, key)
	name := key
	if t.name != "" {
		name = t.name + "." + key
	}
	arr, ok := v.([]any)
	if !ok {
		d.failVal(path, ErrType, "must be an array of tables ([[%s]]), not %s", name, typeName(v))
		return nil
	}
	out := make([]tbl, 0, len(arr))
	for i, e := range arr {
		p := indexPath(path, i)
		m, ok := e.(map[string]any)
		if !ok {
			d.failVal(p, ErrType, "must be a table, not %s", typeName(e))
			continue
		}
		out = append(out, tbl{path: p, where: "in [[" + name + "]]", name: name, m: m})
	}
	return out
}

// str returns t[key] as a string. present reports whether the key exists
// with the right type.
func (d *decoder) str(t tbl, key string) (string, bool) {
	v, ok := t.m[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		d.failVal(joinPath(t.path, key), ErrType, "must be a string, not %s", typeName(v))
		return "", false
	}
	return s, true
}

// reqStr is str for a required, non-empty field.
func (d *decoder) reqStr(t tbl, key, hint string) (string, bool) {
	if _, ok := t.m[key]; !ok {
		d.missing(t, key, hint)
		return "", false
	}
	s, ok := d.str(t, key)
	if ok && s == "" {
		d.failVal(joinPath(t.path, key), ErrMissing, "must not be empty")
		return "", false
	}
	return s, ok
}

// boolean returns t[key] as a bool.
func (d *decoder) boolean(t tbl, key string) (bool, bool) {
	v, ok := t.m[key]
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		d.failVal(joinPath(t.path, key), ErrType, "must be a boolean (true or false), not %s", typeName(v))
		return false, false
	}
	return b, true
}

// strs returns t[key] as a list of strings. Elements of the wrong type are
// reported and left out. present reports whether the key exists as an
// array.
func (d *decoder) strs(t tbl, key string, max int) (out []string, idx []int, present bool) {
	v, ok := t.m[key]
	if !ok {
		return nil, nil, false
	}
	path := joinPath(t.path, key)
	arr, ok := v.([]any)
	if !ok {
		d.failVal(path, ErrType, "must be an array of strings, not %s", typeName(v))
		return nil, nil, false
	}
	if len(arr) > max {
		d.failVal(path, ErrTooLarge, "has %d entries; at most %d are allowed", len(arr), max)
		return nil, nil, false
	}
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			d.failVal(indexPath(path, i), ErrType, "must be a string, not %s", typeName(e))
			continue
		}
		out = append(out, s)
		idx = append(idx, i)
	}
	return out, idx, true
}

// typeName names a decoded TOML value's type for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalDateTime, toml.LocalTime:
		return "a date-time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
