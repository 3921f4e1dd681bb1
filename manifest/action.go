package manifest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Limits on action contents.
const (
	maxInputs   = 64
	maxRequires = 32
	maxSteps    = 256
)

// Action is a parsed, validated action file. Inputs and steps keep their
// file order. The JSON encoding (for --json output) is flat: the [action]
// table's fields are at the top level.
type Action struct {
	// Name is [a-z][a-z0-9-]{0,63}.
	Name string `json:"name"`
	// Version is a semantic version without a leading "v".
	Version string `json:"version"`
	// Description is one line of plain text; may be empty.
	Description string `json:"description,omitempty"`
	// Inputs are the [inputs.NAME] tables in file order.
	Inputs []Input `json:"inputs,omitempty"`
	// Requires are the [[requires.connectors]] entries in file order.
	Requires []Requirement `json:"requires"`
	// Steps run in order.
	Steps []Step `json:"steps"`
	// Limits narrows the operator's per-invocation limits; see [Limits].
	Limits Limits `json:"limits,omitzero"`

	// src locates fields for errors found after parsing ([CheckAction]).
	src *source
}

// source is where an Action came from.
type source struct {
	file string
	ix   *posIndex
}

// Input is one [inputs.NAME] table.
type Input struct {
	// Name is [a-z][a-z0-9_]{0,63}; templates refer to it as inputs.NAME.
	Name string `json:"name"`
	// Type is the value's type.
	Type InputType `json:"type"`
	// Required inputs must be given; they have no default.
	Required bool `json:"required,omitempty"`
	// Default is used when the input is not given: a string, int64
	// (integer), float64 (number) or bool, matching Type. Nil if none.
	Default any `json:"default,omitempty"`
	// Description is one line of plain text; may be empty.
	Description string `json:"description,omitempty"`
}

// InputType is the type of an action input.
type InputType string

// Input types, as written in action files.
const (
	// InputString is any string.
	InputString InputType = "string"
	// InputNumber is a finite JSON number, held as float64.
	InputNumber InputType = "number"
	// InputInteger is a 64-bit integer, held as int64.
	InputInteger InputType = "integer"
	// InputBoolean is true or false.
	InputBoolean InputType = "boolean"
)

// inputTypes is the allowlist of input types, one per line.
var inputTypes = []InputType{InputString, InputNumber, InputInteger, InputBoolean}

func (t InputType) article() string {
	if t == InputInteger {
		return "an integer"
	}
	return "a " + string(t)
}

// Requirement is one [[requires.connectors]] entry: a pinned connector and
// the part of its capabilities this action may use.
type Requirement struct {
	// Name is the connector's FQN.
	Name FQN `json:"name"`
	// Version must equal the installed manifest's version.
	Version string `json:"version"`
	// Hash must equal the installed manifest's provenance_hash.
	Hash string `json:"hash"`
	// Capabilities are the credential scopes this action may use, a
	// subset of the connector's. Nil when none.
	Capabilities []string `json:"capabilities"`
	// Hosts, when not nil, narrows the connector's hosts for this action;
	// each must be covered by a manifest host.
	Hosts []HostPort `json:"hosts,omitempty"`
}

// Ref is the connector version the requirement names.
func (r Requirement) Ref() Ref { return Ref{FQN: r.Name, Version: r.Version} }

// Step is one [[steps]] entry: a call of one connector intent.
type Step struct {
	// ID is [a-z][a-z0-9_-]{0,63}, unique in the action; later steps use
	// its output as steps.ID.output.
	ID string `json:"id"`
	// Connector is one of the action's requirements.
	Connector FQN `json:"connector"`
	// Intent is one of the connector's provided intents.
	Intent string `json:"intent"`
	// Retries is how many times the runtime may run the step again, with
	// the same invocation id and the next attempt number, after a transient
	// failure (0 to 5; default 0). Connectors derive idempotency keys from
	// the id, so a retried step does not repeat a side effect.
	Retries int `json:"retries,omitempty"`
	// With is the intent's input before template substitution ([Render]).
	// Values are strings, int64, float64, bools, []any and
	// map[string]any. Nil when empty.
	With map[string]any `json:"with,omitempty"`
}

// ParseAction parses and validates an action file. filename is used only in
// error messages. On failure the error is an [ErrorList] with every
// problem found, each an [*Error] with its position.
func ParseAction(filename string, data []byte) (*Action, error) {
	doc, ix, err := parseTOML(filename, data)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: filename, ix: ix}
	a := d.action(doc)
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	a.src = &source{file: filename, ix: ix}
	return a, nil
}

// LoadAction reads and parses the action file at path.
func LoadAction(path string) (*Action, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAction(path, data)
}

func (d *decoder) action(doc map[string]any) *Action {
	a := &Action{}
	root := tbl{where: "at the top level", m: doc}
	d.fields(root, "action", "inputs", "requires", "steps", "limits")
	if t, _, ok := d.child(root, "limits"); ok {
		a.Limits = d.limits(t)
	}

	if t, present, ok := d.child(root, "action"); !present {
		d.missing(root, "action", "add an [action] table with name and version")
	} else if ok {
		d.fields(t, "name", "version", "description")
		if s, ok := d.reqStr(t, "name", `e.g. "ship-update"`); ok {
			if msg := nameProblem(s, "-"); msg != "" {
				d.failVal(joinPath(t.path, "name"), ErrInvalid, "invalid action name %q: %s", s, msg)
			} else {
				a.Name = s
			}
		}
		a.Version, _ = d.version(t, "version")
		a.Description, _ = d.text(t, "description")
	}

	if t, _, ok := d.child(root, "inputs"); ok {
		keys := d.sortedKeys(t)
		if len(keys) > maxInputs {
			d.failKey(t.path, ErrTooLarge, "has %d inputs; at most %d are allowed", len(keys), maxInputs)
			keys = nil
		}
		for _, name := range keys {
			if in, ok := d.input(t, name); ok {
				a.Inputs = append(a.Inputs, in)
			}
		}
	}

	// The names of requirements, inputs and steps are collected even when
	// other fields of their tables are invalid, so one mistake does not
	// cascade into "not declared" errors elsewhere.
	required := map[FQN]bool{}
	nameBroken := false
	if t, present, ok := d.child(root, "requires"); !present {
		d.missing(root, "requires", "add a [[requires.connectors]] entry for each connector the steps use")
	} else if ok {
		d.fields(t, "connectors")
		entries := d.tableArray(t, "connectors")
		if _, present := t.m["connectors"]; !present {
			d.missing(t, "connectors", "add a [[requires.connectors]] entry for each connector the steps use")
		}
		if len(entries) > maxRequires {
			d.failKey(joinPath(t.path, "connectors"), ErrTooLarge, "has %d entries; at most %d are allowed", len(entries), maxRequires)
			entries = nil
		}
		seen := map[FQN]string{}
		for _, e := range entries {
			r, nameOK, ok := d.requirement(e)
			if nameOK {
				required[r.Name] = true
			} else {
				nameBroken = true
			}
			if !ok {
				continue
			}
			if first, dup := seen[r.Name]; dup {
				d.failVal(joinPath(e.path, "name"), ErrDuplicate, "connector %s is already required at line %d; keep one entry per connector", r.Name, d.ix.key(first).line)
				continue
			}
			seen[r.Name] = e.path
			a.Requires = append(a.Requires, r)
		}
	}

	steps := d.tableArray(root, "steps")
	if _, present := root.m["steps"]; !present {
		d.missing(root, "steps", "add at least one [[steps]] entry")
	}
	if len(steps) > maxSteps {
		d.failKey("steps", ErrTooLarge, "has %d steps; at most %d are allowed", len(steps), maxSteps)
		steps = nil
	}
	inputs := map[string]bool{}
	if t, ok := doc["inputs"].(map[string]any); ok {
		for name := range t {
			inputs[name] = identProblem(name) == ""
		}
	}
	if nameBroken {
		required = nil // cannot tell which connectors are required
	}
	used := map[FQN]bool{}
	earlier := map[string]bool{}
	all := map[string]bool{}
	for _, t := range steps {
		if id, ok := t.m["id"].(string); ok {
			all[id] = true
		}
	}
	for _, t := range steps {
		s, ok := d.step(t, required, inputs, earlier, all)
		if ok {
			a.Steps = append(a.Steps, s)
			used[s.Connector] = true
		}
	}
	// An unused requirement would show a grant at consent that nothing
	// uses; least privilege says remove it.
	if len(d.errs) == 0 {
		for i, r := range a.Requires {
			if !used[r.Name] {
				d.failVal(joinPath(d.requirePath(i), "name"), ErrInvalid, "no step uses connector %s; remove this [[requires.connectors]] entry", r.Name)
			}
		}
	}
	return a
}

func (d *decoder) requirePath(i int) string { return indexPath("requires.connectors", i) }

func (d *decoder) input(t tbl, name string) (Input, bool) {
	c, _, ok := d.child(t, name)
	if !ok {
		return Input{}, false
	}
	if msg := identProblem(name); msg != "" {
		d.failKey(c.path, ErrInvalid, "invalid input name %q: %s", name, msg)
		return Input{}, false
	}
	d.fields(c, "type", "required", "default", "description")
	in := Input{Name: name}
	ok = true
	if s, found := d.reqStr(c, "type", "one of boolean, integer, number, string"); !found {
		ok = false
	} else if !slices.Contains(inputTypes, InputType(s)) {
		d.failVal(joinPath(c.path, "type"), ErrInvalid, "unknown input type %q; known types: boolean, integer, number, string", s)
		ok = false
	} else {
		in.Type = InputType(s)
	}
	in.Required, _ = d.boolean(c, "required")
	in.Description, _ = d.text(c, "description")
	if v, present := c.m["default"]; present && in.Type != "" {
		path := joinPath(c.path, "default")
		switch {
		case in.Required:
			d.failVal(path, ErrInvalid, "a required input cannot have a default; remove required = true or the default")
			ok = false
		default:
			def, msg := defaultValue(in.Type, v)
			if msg != "" {
				d.failVal(path, ErrType, "%s", msg)
				ok = false
			}
			in.Default = def
		}
	}
	return in, ok
}

// defaultValue checks a default against its input's type. Number defaults
// are held as float64, like coerced number inputs.
func defaultValue(t InputType, v any) (any, string) {
	switch t {
	case InputString:
		if s, ok := v.(string); ok {
			return s, ""
		}
	case InputBoolean:
		if b, ok := v.(bool); ok {
			return b, ""
		}
	case InputInteger:
		if n, ok := v.(int64); ok {
			return n, ""
		}
	case InputNumber:
		switch n := v.(type) {
		case int64:
			return float64(n), ""
		case float64:
			if math.IsInf(n, 0) || math.IsNaN(n) {
				return nil, "must be a finite number"
			}
			return n, ""
		}
	}
	return nil, fmt.Sprintf("the default of %s input must be %s, not %s", t.article(), t.article(), typeName(v))
}

// requirement decodes one [[requires.connectors]] entry. nameOK reports a
// valid name, ok a valid entry.
func (d *decoder) requirement(t tbl) (r Requirement, nameOK, ok bool) {
	d.fields(t, "name", "version", "hash", "capabilities", "hosts")
	n := len(d.errs)
	r.Name, nameOK = d.fqn(t, "name")
	r.Version, _ = d.version(t, "version")
	r.Hash, _ = d.hash(t, "hash")
	list, idx, _ := d.strs(t, "capabilities", maxScopes)
	seen := map[string]bool{}
	for i, s := range list {
		p := indexPath(joinPath(t.path, "capabilities"), idx[i])
		switch msg := scopeProblem(s); {
		case msg != "":
			d.failVal(p, ErrInvalid, "%s", msg)
		case seen[s]:
			d.failVal(p, ErrDuplicate, "duplicate capability %q", s)
		default:
			seen[s] = true
			r.Capabilities = append(r.Capabilities, s)
		}
	}
	if _, present := t.m["hosts"]; present {
		r.Hosts = d.hosts(t, "hosts")
		if r.Hosts == nil {
			r.Hosts = []HostPort{} // declared empty: this action may reach no host
		}
	}
	return r, nameOK, len(d.errs) == n
}

// stepIDProblem checks a step ID: [a-z][a-z0-9_-]{0,63}.
func stepIDProblem(s string) string { return nameProblem(s, "_-") }

func (d *decoder) step(t tbl, required map[FQN]bool, inputs, earlier, all map[string]bool) (Step, bool) {
	d.fields(t, "id", "connector", "intent", "with", "retries")
	n := len(d.errs)
	var s Step
	s.Retries = int(d.intIn(t, "retries", 0, maxRetries))
	if id, ok := d.reqStr(t, "id", `e.g. "post"`); ok {
		switch msg := stepIDProblem(id); {
		case msg != "":
			d.failVal(joinPath(t.path, "id"), ErrInvalid, "invalid step id %q: %s", id, msg)
		case earlier[id]:
			d.failVal(joinPath(t.path, "id"), ErrDuplicate, "duplicate step id %q", id)
		default:
			s.ID = id
		}
	}
	if f, ok := d.fqn(t, "connector"); ok {
		s.Connector = f
		if required != nil && !required[f] {
			d.failVal(joinPath(t.path, "connector"), ErrInvalid, "step %q uses connector %s, which is not required; add a [[requires.connectors]] entry with its name, version, hash and capabilities", s.ID, f)
		}
	}
	if in, ok := d.reqStr(t, "intent", `e.g. "post_message"`); ok {
		if msg := identProblem(in); msg != "" {
			d.failVal(joinPath(t.path, "intent"), ErrInvalid, "invalid intent name %q: %s", in, msg)
		} else {
			s.Intent = in
		}
	}
	if v, present := t.m["with"]; present {
		path := joinPath(t.path, "with")
		if m, ok := v.(map[string]any); !ok {
			d.failVal(path, ErrType, "must be a table, not %s", typeName(v))
		} else if len(m) > 0 {
			tc := templateScope{step: s.ID, inputs: inputs, earlier: earlier, all: all}
			w, _ := d.withValue(path, m, 0, tc).(map[string]any)
			s.With = w
		}
	}
	if s.ID != "" {
		earlier[s.ID] = true
	}
	return s, len(d.errs) == n
}

// templateScope is what a step's templates may refer to.
type templateScope struct {
	step    string
	inputs  map[string]bool // declared inputs
	earlier map[string]bool // steps before this one
	all     map[string]bool // every step id in the file
}

// withValue checks one value of a `with` table and its templates, and
// returns it in canonical form.
func (d *decoder) withValue(path string, v any, depth int, tc templateScope) any {
	if depth > maxWithDepth {
		d.failVal(path, ErrTooLarge, "nested more than %d levels deep", maxWithDepth)
		return nil
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := joinPath(path, k)
			if strings.Contains(k, "${{") {
				d.failKey(p, ErrTemplate, "templates are not allowed in keys")
				continue
			}
			out[k] = d.withValue(p, v[k], depth+1, tc)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = d.withValue(indexPath(path, i), e, depth+1, tc)
		}
		return out
	case string:
		d.templateRefs(path, v, tc)
		return v
	case int64, bool:
		return v
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			d.failVal(path, ErrInvalid, "%v cannot be represented in JSON", v)
		}
		return v
	case time.Time, toml.LocalDate, toml.LocalDateTime, toml.LocalTime:
		d.failVal(path, ErrType, "dates and times are not supported in with; write the value as a string")
		return nil
	default:
		d.failVal(path, ErrType, "unsupported value %s", typeName(v))
		return nil
	}
}

// templateRefs checks that every template in s parses and refers to a
// declared input or an earlier step.
func (d *decoder) templateRefs(path, s string, tc templateScope) {
	t, msg := parseTemplate(s)
	if msg != "" {
		d.failVal(path, ErrTemplate, "%s", msg)
		return
	}
	for _, p := range t.parts {
		r := p.ref
		switch {
		case r == nil:
		case r.step == "" && !tc.inputs[r.input]:
			d.failVal(path, ErrTemplate, "${{ %s }}: input %q is not declared; add an [inputs.%s] table", r, r.input, r.input)
		case r.step == "":
		case r.step == tc.step:
			d.failVal(path, ErrTemplate, "${{ %s }}: a step cannot use its own output", r)
		case tc.earlier[r.step]:
		case tc.all[r.step]:
			d.failVal(path, ErrTemplate, "${{ %s }}: step %q runs after step %q; a step can only use outputs of earlier steps", r, r.step, tc.step)
		default:
			d.failVal(path, ErrTemplate, "${{ %s }}: there is no step %q", r, r.step)
		}
	}
}

// requirement returns the requirement for connector f and its index.
func (a *Action) requirement(f FQN) (*Requirement, int) {
	for i := range a.Requires {
		if a.Requires[i].Name == f {
			return &a.Requires[i], i
		}
	}
	return nil, -1
}

// errAt builds an error located at an action field (key or value).
func (a *Action) errAt(path string, sentinel error, format string, args ...any) *Error {
	e := &Error{Field: path, Msg: fmt.Sprintf(format, args...), Err: sentinel}
	if a.src != nil {
		p := a.src.ix.val(path)
		e.File, e.Line, e.Col = a.src.file, p.line, p.col
	}
	return e
}

// Encode returns the action as canonical TOML: fixed table and key order,
// inputs, requirements and steps in their order, `with` tables inline with
// sorted keys. ParseAction of the result gives an Action equal to a (apart
// from positions).
func (a *Action) Encode() []byte {
	var w tomlWriter
	w.table("action")
	w.kv("name", quote(a.Name))
	w.kv("version", quote(a.Version))
	if a.Description != "" {
		w.kv("description", quote(a.Description))
	}
	for _, in := range a.Inputs {
		w.table("inputs." + in.Name)
		w.kv("type", quote(string(in.Type)))
		if in.Required {
			w.kv("required", "true")
		}
		if in.Default != nil {
			w.kv("default", encodeValue(in.Default))
		}
		if in.Description != "" {
			w.kv("description", quote(in.Description))
		}
	}
	if a.Limits != (Limits{}) {
		w.table("limits")
		if a.Limits.Deadline > 0 {
			w.kv("deadline", quote(a.Limits.Deadline.String()))
		}
		if a.Limits.MemoryMiB > 0 {
			w.kv("memory_mib", strconv.FormatInt(a.Limits.MemoryMiB, 10))
		}
		if a.Limits.HostCalls > 0 {
			w.kv("host_calls", strconv.FormatInt(a.Limits.HostCalls, 10))
		}
	}
	for _, r := range a.Requires {
		w.arrayTable("requires.connectors")
		w.kv("name", quote(r.Name.String()))
		w.kv("version", quote(r.Version))
		w.kv("hash", quote(r.Hash))
		if len(r.Capabilities) > 0 {
			w.kv("capabilities", quoteList(r.Capabilities))
		}
		if r.Hosts != nil {
			hosts := make([]string, len(r.Hosts))
			for i, h := range r.Hosts {
				hosts[i] = h.String()
			}
			w.kv("hosts", quoteList(hosts))
		}
	}
	for _, s := range a.Steps {
		w.arrayTable("steps")
		w.kv("id", quote(s.ID))
		w.kv("connector", quote(s.Connector.String()))
		w.kv("intent", quote(s.Intent))
		if s.Retries > 0 {
			w.kv("retries", strconv.Itoa(s.Retries))
		}
		if len(s.With) > 0 {
			w.kv("with", encodeValue(s.With))
		}
	}
	return w.bytes()
}
