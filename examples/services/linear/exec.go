package linear

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// This file validates an operation against the fake's schema (a subset of
// Linear's, in schema.go), coerces its variables, and executes it, with
// graphql-js's error messages, so a connector that asks for a field that
// does not exist, passes a variable of the wrong type or forgets a
// required argument fails here as it would against Linear.

// typeKind classifies a named type.
func typeKind(name string) string {
	switch {
	case scalarTypes[name]:
		return "scalar"
	case enumTypes[name] != nil:
		return "enum"
	case inputTypes[name] != nil:
		return "input"
	case objectTypes[name] != nil:
		return "object"
	}
	return ""
}

// parseType parses a type written in the schema tables, e.g. "[Issue!]!".
func parseType(s string) *typeRef {
	p := &parser{src: s, line: 1, col: 1}
	p.next()
	return p.typeRef()
}

type validator struct {
	op   *operation
	vars map[string]*varDef
	used map[string]bool
	errs []*gqlError
}

func (v *validator) errorf(loc location, format string, args ...any) {
	v.errs = append(v.errs, &gqlError{Message: fmt.Sprintf(format, args...), Locations: []location{loc}})
}

// validate checks op against the schema and returns every problem.
func validate(op *operation) []*gqlError {
	v := &validator{op: op, vars: map[string]*varDef{}, used: map[string]bool{}}
	for _, d := range op.vars {
		if _, dup := v.vars[d.name]; dup {
			v.errorf(d.loc, "There can be only one variable named \"$%s\".", d.name)
			continue
		}
		v.vars[d.name] = d
		switch typeKind(d.typ.named()) {
		case "":
			v.errorf(d.loc, "Unknown type \"%s\".", d.typ.named())
		case "object":
			v.errorf(d.loc, "Variable \"$%s\" cannot be non-input type \"%s\".", d.name, d.typ)
		default:
			if d.def != nil {
				v.value(d.def, d.typ)
			}
		}
	}
	root := map[string]string{"query": "Query", "mutation": "Mutation"}[op.kind]
	if root == "" {
		return []*gqlError{{Message: "Schema is not configured to execute " + op.kind + " operation."}}
	}
	v.selection(root, op.sel)
	for _, d := range op.vars {
		if !v.used[d.name] {
			v.errorf(d.loc, "Variable \"$%s\" is never used%s.", d.name, v.inOp())
		}
	}
	return v.errs
}

func (v *validator) inOp() string {
	if v.op.name == "" {
		return ""
	}
	return fmt.Sprintf(" in operation \"%s\"", v.op.name)
}

func (v *validator) selection(typeName string, sel []*field) {
	for _, f := range sel {
		if f.name == "__typename" {
			if f.sel != nil {
				v.errorf(f.loc, "Field \"__typename\" must not have a selection since type \"String!\" has no subfields.")
			}
			continue
		}
		fd, ok := objectTypes[typeName][f.name]
		if !ok {
			v.errorf(f.loc, "Cannot query field \"%s\" on type \"%s\".", f.name, typeName)
			continue
		}
		for _, a := range f.args {
			at, ok := fd.args[a.name]
			if !ok {
				v.errorf(a.loc, "Unknown argument \"%s\" on field \"%s.%s\".", a.name, typeName, f.name)
				continue
			}
			v.value(a.val, parseType(at))
		}
		for _, name := range sortedKeys(fd.args) {
			if t := parseType(fd.args[name]); t.nonNull && !slices.ContainsFunc(f.args, func(a *argument) bool { return a.name == name }) {
				v.errorf(f.loc, "Field \"%s\" argument \"%s\" of type \"%s\" is required, but it was not provided.", f.name, name, t)
			}
		}
		ft := parseType(fd.typ)
		switch {
		case typeKind(ft.named()) == "object" && f.sel == nil:
			v.errorf(f.loc, "Field \"%s\" of type \"%s\" must have a selection of subfields. Did you mean \"%s { ... }\"?", f.name, ft, f.name)
		case typeKind(ft.named()) == "object":
			v.selection(ft.named(), f.sel)
		case f.sel != nil:
			v.errorf(f.loc, "Field \"%s\" must not have a selection since type \"%s\" has no subfields.", f.name, ft)
		}
	}
}

// value checks a literal, or a variable's declared type, against t.
func (v *validator) value(val *value, t *typeRef) {
	if val.kind == kindVariable {
		v.used[val.raw] = true
		d, ok := v.vars[val.raw]
		if !ok {
			if v.op.name == "" {
				v.errorf(val.loc, "Variable \"$%s\" is not defined.", val.raw)
			} else {
				v.errorf(val.loc, "Variable \"$%s\" is not defined by operation \"%s\".", val.raw, v.op.name)
			}
			return
		}
		if !allowedVariable(d.typ, d.def != nil, t) {
			v.errorf(val.loc, "Variable \"$%s\" of type \"%s\" used in position expecting type \"%s\".", val.raw, d.typ, t)
		}
		return
	}
	if val.kind == kindNull {
		if t.nonNull {
			v.errorf(val.loc, "Expected value of type \"%s\", found null.", t)
		}
		return
	}
	if t.elem != nil {
		if val.kind != kindList {
			v.value(val, t.elem) // a single value coerces to a list of one
			return
		}
		for _, e := range val.list {
			v.value(e, t.elem)
		}
		return
	}
	switch typeKind(t.name) {
	case "scalar":
		if msg := literalProblem(t.name, val); msg != "" {
			v.errorf(val.loc, "%s", msg)
		}
	case "enum":
		switch {
		case val.kind != kindEnum:
			v.errorf(val.loc, "Enum \"%s\" cannot represent non-enum value: %s.", t.name, printValue(val))
		case !slices.Contains(enumTypes[t.name], val.raw):
			v.errorf(val.loc, "Value \"%s\" does not exist in \"%s\" enum.", val.raw, t.name)
		}
	case "input":
		if val.kind != kindObject {
			v.errorf(val.loc, "Expected value of type \"%s\", found %s.", t, printValue(val))
			return
		}
		def := inputTypes[t.name]
		for _, f := range val.fields {
			ft, ok := def[f.name]
			if !ok {
				v.errorf(f.val.loc, "Field \"%s\" is not defined by type \"%s\".", f.name, t.name)
				continue
			}
			v.value(f.val, parseType(ft))
		}
		for _, name := range sortedKeys(def) {
			if ft := parseType(def[name]); ft.nonNull && !slices.ContainsFunc(val.fields, func(f *objectField) bool { return f.name == name }) {
				v.errorf(val.loc, "Field \"%s.%s\" of required type \"%s\" was not provided.", t.name, name, ft)
			}
		}
	}
}

// allowedVariable reports whether a variable of type vt (with a default
// or not) may be used where lt is expected.
func allowedVariable(vt *typeRef, hasDefault bool, lt *typeRef) bool {
	if lt.nonNull && !vt.nonNull {
		if !hasDefault {
			return false
		}
		l := *lt
		l.nonNull = false
		lt = &l
	}
	return subType(vt, lt)
}

func subType(vt, lt *typeRef) bool {
	if lt.nonNull {
		if !vt.nonNull {
			return false
		}
		a, b := *vt, *lt
		a.nonNull, b.nonNull = false, false
		return subType(&a, &b)
	}
	if vt.nonNull {
		a := *vt
		a.nonNull = false
		return subType(&a, lt)
	}
	if lt.elem != nil || vt.elem != nil {
		return lt.elem != nil && vt.elem != nil && subType(vt.elem, lt.elem)
	}
	return vt.name == lt.name
}

func literalProblem(scalar string, val *value) string {
	ok := map[string]bool{
		"String":   val.kind == kindString,
		"DateTime": val.kind == kindString,
		"ID":       val.kind == kindString || val.kind == kindInt,
		"Float":    val.kind == kindInt || val.kind == kindFloat,
		"Boolean":  val.kind == kindBoolean,
		"Int":      val.kind == kindInt,
	}[scalar]
	if ok && scalar == "Int" {
		var n float64
		if _, err := fmt.Sscan(val.raw, &n); err != nil || n > math.MaxInt32 || n < math.MinInt32 {
			return "Int cannot represent non 32-bit signed integer value: " + printValue(val)
		}
	}
	if ok {
		return ""
	}
	return map[string]string{
		"String":   "String cannot represent a non string value: ",
		"DateTime": "DateTime cannot represent a non string value: ",
		"ID":       "ID cannot represent a non-string and non-integer value: ",
		"Float":    "Float cannot represent non numeric value: ",
		"Boolean":  "Boolean cannot represent a non boolean value: ",
		"Int":      "Int cannot represent non-integer value: ",
	}[scalar] + printValue(val)
}

// printValue prints a literal as GraphQL source.
func printValue(v *value) string {
	switch v.kind {
	case kindVariable:
		return "$" + v.raw
	case kindString:
		b, _ := json.Marshal(v.raw)
		return string(b)
	case kindList:
		parts := make([]string, len(v.list))
		for i, e := range v.list {
			parts[i] = printValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case kindObject:
		parts := make([]string, len(v.fields))
		for i, f := range v.fields {
			parts[i] = f.name + ": " + printValue(f.val)
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return v.raw
}

// coerceVariables types the request's variables by their definitions.
func coerceVariables(op *operation, given map[string]any) (map[string]any, []*gqlError) {
	out := map[string]any{}
	var errs []*gqlError
	fail := func(d *varDef, format string, args ...any) {
		errs = append(errs, &gqlError{Message: fmt.Sprintf(format, args...), Locations: []location{d.loc}})
	}
	for _, d := range op.vars {
		raw, present := given[d.name]
		switch {
		case !present && d.def != nil:
			out[d.name], _ = literalValue(d.def, nil)
		case !present && d.typ.nonNull:
			fail(d, "Variable \"$%s\" of required type \"%s\" was not provided.", d.name, d.typ)
		case !present:
		case raw == nil && d.typ.nonNull:
			fail(d, "Variable \"$%s\" of non-null type \"%s\" must not be null.", d.name, d.typ)
		default:
			v, path, msg := coerceInput(raw, d.typ, d.name)
			if msg != "" {
				b, _ := json.Marshal(raw)
				at := ""
				if path != d.name {
					at = fmt.Sprintf(" at \"%s\"", path)
				}
				fail(d, "Variable \"$%s\" got invalid value %s%s; %s", d.name, b, at, msg)
				continue
			}
			out[d.name] = v
		}
	}
	return out, errs
}

// coerceInput types a JSON value (numbers as json.Number) as t. On failure
// it returns the path of the bad value and why.
func coerceInput(v any, t *typeRef, path string) (any, string, string) {
	if v == nil {
		if t.nonNull {
			return nil, path, fmt.Sprintf("Expected non-nullable type \"%s\" not to be null.", t)
		}
		return nil, "", ""
	}
	if t.elem != nil {
		list, ok := v.([]any)
		if !ok {
			e, p, msg := coerceInput(v, t.elem, path)
			return []any{e}, p, msg
		}
		out := make([]any, len(list))
		for i, e := range list {
			var p, msg string
			if out[i], p, msg = coerceInput(e, t.elem, fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return nil, p, msg
			}
		}
		return out, "", ""
	}
	printed := func() string { b, _ := json.Marshal(v); return string(b) }
	switch typeKind(t.name) {
	case "scalar":
		switch t.name {
		case "String", "DateTime":
			if s, ok := v.(string); ok {
				return s, "", ""
			}
			return nil, path, t.name + " cannot represent a non string value: " + printed()
		case "ID":
			if s, ok := v.(string); ok {
				return s, "", ""
			}
			if n, ok := v.(json.Number); ok {
				if _, err := n.Int64(); err == nil {
					return n.String(), "", ""
				}
			}
			return nil, path, "ID cannot represent value: " + printed()
		case "Int":
			if n, ok := v.(json.Number); ok {
				if i, err := n.Int64(); err == nil && i <= math.MaxInt32 && i >= math.MinInt32 {
					return i, "", ""
				}
			}
			return nil, path, "Int cannot represent non-integer value: " + printed()
		case "Float":
			if n, ok := v.(json.Number); ok {
				if f, err := n.Float64(); err == nil {
					return f, "", ""
				}
			}
			return nil, path, "Float cannot represent non numeric value: " + printed()
		case "Boolean":
			if b, ok := v.(bool); ok {
				return b, "", ""
			}
			return nil, path, "Boolean cannot represent a non boolean value: " + printed()
		}
	case "enum":
		if s, ok := v.(string); ok && slices.Contains(enumTypes[t.name], s) {
			return s, "", ""
		}
		return nil, path, fmt.Sprintf("Value %s does not exist in \"%s\" enum.", printed(), t.name)
	case "input":
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, path, fmt.Sprintf("Expected type \"%s\" to be an object.", t.name)
		}
		def := inputTypes[t.name]
		out := map[string]any{}
		for _, k := range sortedKeys(obj) {
			ft, ok := def[k]
			if !ok {
				return nil, path, fmt.Sprintf("Field \"%s\" is not defined by type \"%s\".", k, t.name)
			}
			var p, msg string
			if out[k], p, msg = coerceInput(obj[k], parseType(ft), path+"."+k); msg != "" {
				return nil, p, msg
			}
		}
		for _, k := range sortedKeys(def) {
			if ft := parseType(def[k]); ft.nonNull && obj[k] == nil {
				return nil, path, fmt.Sprintf("Field \"%s\" of required type \"%s\" was not provided.", k, ft)
			}
		}
		return out, "", ""
	}
	return nil, path, fmt.Sprintf("Unknown type \"%s\".", t.name)
}

// literalValue turns a validated literal into a Go value, substituting
// variables; present is false for a variable that was not provided.
func literalValue(v *value, vars map[string]any) (out any, present bool) {
	switch v.kind {
	case kindVariable:
		out, present = vars[v.raw]
		return out, present
	case kindInt:
		var n int64
		fmt.Sscan(v.raw, &n)
		return n, true
	case kindFloat:
		var f float64
		fmt.Sscan(v.raw, &f)
		return f, true
	case kindBoolean:
		return v.raw == "true", true
	case kindNull:
		return nil, true
	case kindList:
		list := []any{}
		for _, e := range v.list {
			if x, ok := literalValue(e, vars); ok {
				list = append(list, x)
			}
		}
		return list, true
	case kindObject:
		obj := map[string]any{}
		for _, f := range v.fields {
			if x, ok := literalValue(f.val, vars); ok {
				obj[f.name] = x
			}
		}
		return obj, true
	}
	return v.raw, true // strings and enum values
}

// ordered is a JSON object that keeps the order of the selection set.
type ordered []kv

type kv struct {
	k string
	v any
}

// MarshalJSON implements json.Marshaler.
func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// resolver answers the root fields; other fields are read from the parent
// object (a map).
type resolver interface {
	root(typeName, field string, args map[string]any) (any, error)
}

type executor struct {
	r    resolver
	vars map[string]any
	errs []*gqlError
}

// execute runs a validated operation with coerced variables.
func execute(r resolver, op *operation, vars map[string]any) (any, []*gqlError) {
	x := &executor{r: r, vars: vars}
	root := map[string]string{"query": "Query", "mutation": "Mutation"}[op.kind]
	data, ok := x.selectSet(root, nil, op.sel, nil)
	if !ok {
		return nil, x.errs
	}
	return data, x.errs
}

func (x *executor) selectSet(typeName string, parent any, sel []*field, path []any) (ordered, bool) {
	out := ordered{}
	for _, f := range sel {
		p := append(slices.Clone(path), f.key())
		if f.name == "__typename" {
			out = append(out, kv{f.key(), typeName})
			continue
		}
		fd := objectTypes[typeName][f.name]
		t := parseType(fd.typ)
		var v any
		var err error
		if typeName == "Query" || typeName == "Mutation" {
			args := map[string]any{}
			for _, a := range f.args {
				if av, ok := literalValue(a.val, x.vars); ok {
					args[a.name] = av
				}
			}
			v, err = x.r.root(typeName, f.name, args)
		} else if m, ok := parent.(map[string]any); ok {
			v = m[f.name]
		}
		if err != nil {
			ge, ok := err.(*gqlError)
			if !ok {
				ge = &gqlError{Message: err.Error(), Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR"}}
			}
			ge.Locations, ge.Path = []location{f.loc}, p
			x.errs = append(x.errs, ge)
		}
		cv, ok := x.complete(t, v, f, p, err != nil)
		if !ok {
			return nil, false
		}
		out = append(out, kv{f.key(), cv})
	}
	return out, true
}

// complete shapes a resolved value by its type; false propagates a null
// into a non-null position upward.
func (x *executor) complete(t *typeRef, v any, f *field, path []any, failed bool) (any, bool) {
	if v == nil {
		if t.nonNull {
			if !failed {
				x.errs = append(x.errs, &gqlError{Message: fmt.Sprintf("Cannot return null for non-nullable field %s.", f.name), Locations: []location{f.loc}, Path: path})
			}
			return nil, false
		}
		return nil, true
	}
	if t.elem != nil {
		list, _ := v.([]any)
		out := make([]any, len(list))
		for i, e := range list {
			cv, ok := x.complete(t.elem, e, f, append(slices.Clone(path), i), false)
			if !ok {
				return x.complete(t, nil, f, path, true)
			}
			out[i] = cv
		}
		return out, true
	}
	if typeKind(t.name) == "object" {
		o, ok := x.selectSet(t.name, v, f.sel, path)
		if !ok {
			return x.complete(t, nil, f, path, true)
		}
		return o, true
	}
	return v, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
