package linear

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file parses GraphQL documents (https://spec.graphql.org/October2021/
// section 2) far enough for the fake: operations with variables, fields
// with aliases, arguments and selection sets, and every kind of value.
// Fragments and directives are refused with a clear message; connectors
// that need them need a richer fake.

// Limits keep a hostile document from costing much.
const (
	maxDocumentBytes = 64 << 10
	maxDepth         = 24
)

type document struct {
	ops []*operation
}

type operation struct {
	kind string // "query", "mutation" or "subscription"
	name string
	vars []*varDef
	sel  []*field
}

type varDef struct {
	name string
	typ  *typeRef
	def  *value
	loc  location
}

// typeRef is a type reference: a named type, or a list of one, maybe
// non-null.
type typeRef struct {
	name    string
	elem    *typeRef
	nonNull bool
}

func (t *typeRef) String() string {
	s := t.name
	if t.elem != nil {
		s = "[" + t.elem.String() + "]"
	}
	if t.nonNull {
		s += "!"
	}
	return s
}

// named returns the innermost named type.
func (t *typeRef) named() string {
	for t.elem != nil {
		t = t.elem
	}
	return t.name
}

type field struct {
	alias, name string
	args        []*argument
	sel         []*field
	loc         location
}

// key is the field's name in the response.
func (f *field) key() string {
	if f.alias != "" {
		return f.alias
	}
	return f.name
}

type argument struct {
	name string
	val  *value
	loc  location
}

type valueKind int

const (
	kindVariable valueKind = iota
	kindInt
	kindFloat
	kindString
	kindBoolean
	kindNull
	kindEnum
	kindList
	kindObject
)

type value struct {
	kind   valueKind
	raw    string // variable name, literal text, or enum name
	list   []*value
	fields []*objectField
	loc    location
}

type objectField struct {
	name string
	val  *value
}

type location struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// gqlError is an error in GraphQL's response format.
type gqlError struct {
	Message    string         `json:"message"`
	Locations  []location     `json:"locations,omitempty"`
	Path       []any          `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func (e *gqlError) Error() string { return e.Message }

type tokKind int

const (
	tokEOF tokKind = iota
	tokPunct
	tokName
	tokInt
	tokFloat
	tokString
)

type token struct {
	kind tokKind
	text string // punctuator, name, number text, or decoded string
	loc  location
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "<EOF>"
	case tokString:
		return fmt.Sprintf("String %q", t.text)
	case tokName:
		return fmt.Sprintf("Name %q", t.text)
	case tokInt, tokFloat:
		return fmt.Sprintf("Number %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type parser struct {
	src       string
	pos       int
	line, col int
	tok       token
	depth     int
}

// parseDocument parses src, returning a syntax error in GraphQL's format.
func parseDocument(src string) (doc *document, err error) {
	if len(src) > maxDocumentBytes {
		return nil, &gqlError{Message: fmt.Sprintf("Document exceeds %d bytes.", maxDocumentBytes)}
	}
	if !utf8.ValidString(src) {
		return nil, &gqlError{Message: "Syntax Error: Invalid UTF-8."}
	}
	p := &parser{src: src, line: 1, col: 1}
	defer func() {
		if r := recover(); r != nil {
			ge, ok := r.(*gqlError)
			if !ok {
				panic(r)
			}
			doc, err = nil, ge
		}
	}()
	p.next()
	doc = &document{}
	for p.tok.kind != tokEOF {
		doc.ops = append(doc.ops, p.operation())
	}
	if len(doc.ops) == 0 {
		p.fail(p.tok.loc, "Syntax Error: Unexpected <EOF>.")
	}
	return doc, nil
}

func (p *parser) fail(loc location, format string, args ...any) {
	panic(&gqlError{Message: fmt.Sprintf(format, args...), Locations: []location{loc}})
}

func (p *parser) unexpected() {
	if p.tok.kind == tokPunct && (p.tok.text == "..." || p.tok.text == "@") {
		what := map[string]string{"...": "fragments", "@": "directives"}[p.tok.text]
		p.fail(p.tok.loc, "The fake Linear API does not support %s.", what)
	}
	p.fail(p.tok.loc, "Syntax Error: Unexpected %s.", p.tok.describe())
}

func (p *parser) peek(punct string) bool { return p.tok.kind == tokPunct && p.tok.text == punct }

func (p *parser) expect(punct string) location {
	if !p.peek(punct) {
		p.fail(p.tok.loc, "Syntax Error: Expected %q, found %s.", punct, p.tok.describe())
	}
	loc := p.tok.loc
	p.next()
	return loc
}

func (p *parser) name() (string, location) {
	if p.tok.kind != tokName {
		p.fail(p.tok.loc, "Syntax Error: Expected Name, found %s.", p.tok.describe())
	}
	n, loc := p.tok.text, p.tok.loc
	p.next()
	return n, loc
}

func (p *parser) enter() {
	if p.depth++; p.depth > maxDepth {
		p.fail(p.tok.loc, "Document is nested more than %d levels deep.", maxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) operation() *operation {
	op := &operation{kind: "query"}
	if p.peek("{") {
		op.sel = p.selectionSet()
		return op
	}
	if p.tok.kind == tokName && p.tok.text == "fragment" {
		p.fail(p.tok.loc, "The fake Linear API does not support fragments.")
	}
	kind, loc := p.name()
	if kind != "query" && kind != "mutation" && kind != "subscription" {
		p.fail(loc, "Syntax Error: Unexpected Name %q.", kind)
	}
	op.kind = kind
	if p.tok.kind == tokName {
		op.name, _ = p.name()
	}
	if p.peek("(") {
		p.next()
		for !p.peek(")") {
			v := &varDef{loc: p.expect("$")}
			v.name, _ = p.name()
			p.expect(":")
			v.typ = p.typeRef()
			if p.peek("=") {
				p.next()
				v.def = p.value(true)
			}
			op.vars = append(op.vars, v)
		}
		p.next()
	}
	if p.peek("@") {
		p.unexpected()
	}
	op.sel = p.selectionSet()
	return op
}

func (p *parser) typeRef() *typeRef {
	p.enter()
	defer p.leave()
	var t *typeRef
	if p.peek("[") {
		p.next()
		t = &typeRef{elem: p.typeRef()}
		p.expect("]")
	} else {
		n, _ := p.name()
		t = &typeRef{name: n}
	}
	if p.peek("!") {
		p.next()
		t.nonNull = true
	}
	return t
}

func (p *parser) selectionSet() []*field {
	p.enter()
	defer p.leave()
	p.expect("{")
	var out []*field
	for !p.peek("}") {
		if p.peek("...") {
			p.unexpected()
		}
		f := &field{loc: p.tok.loc}
		f.name, _ = p.name()
		if p.peek(":") {
			p.next()
			f.alias = f.name
			f.name, _ = p.name()
		}
		if p.peek("(") {
			p.next()
			for !p.peek(")") {
				a := &argument{loc: p.tok.loc}
				a.name, _ = p.name()
				p.expect(":")
				a.val = p.value(false)
				f.args = append(f.args, a)
			}
			p.next()
		}
		if p.peek("@") {
			p.unexpected()
		}
		if p.peek("{") {
			f.sel = p.selectionSet()
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		p.fail(p.tok.loc, "Syntax Error: Expected Name, found \"}\".")
	}
	p.next()
	return out
}

// value parses a value; const forbids variables (default values).
func (p *parser) value(isConst bool) *value {
	p.enter()
	defer p.leave()
	t := p.tok
	v := &value{loc: t.loc, raw: t.text}
	switch {
	case t.kind == tokPunct && t.text == "$" && !isConst:
		p.next()
		v.kind = kindVariable
		v.raw, _ = p.name()
		return v
	case t.kind == tokInt:
		v.kind = kindInt
	case t.kind == tokFloat:
		v.kind = kindFloat
	case t.kind == tokString:
		v.kind = kindString
	case t.kind == tokName && (t.text == "true" || t.text == "false"):
		v.kind = kindBoolean
	case t.kind == tokName && t.text == "null":
		v.kind = kindNull
	case t.kind == tokName:
		v.kind = kindEnum
	case t.kind == tokPunct && t.text == "[":
		p.next()
		v.kind = kindList
		for !p.peek("]") {
			v.list = append(v.list, p.value(isConst))
		}
	case t.kind == tokPunct && t.text == "{":
		p.next()
		v.kind = kindObject
		for !p.peek("}") {
			n, _ := p.name()
			p.expect(":")
			v.fields = append(v.fields, &objectField{name: n, val: p.value(isConst)})
		}
	default:
		p.unexpected()
	}
	p.next()
	return v
}

// next reads the next token into p.tok.
func (p *parser) next() {
	p.skipIgnored()
	loc := location{p.line, p.col}
	if p.pos >= len(p.src) {
		p.tok = token{kind: tokEOF, loc: loc}
		return
	}
	c := p.src[p.pos]
	switch {
	case strings.HasPrefix(p.src[p.pos:], "..."):
		p.advance(3)
		p.tok = token{kind: tokPunct, text: "...", loc: loc}
	case strings.IndexByte("!$&():=@[]{|}", c) >= 0:
		p.advance(1)
		p.tok = token{kind: tokPunct, text: string(c), loc: loc}
	case c == '_' || isLetter(c):
		start := p.pos
		for p.pos < len(p.src) && (p.src[p.pos] == '_' || isLetter(p.src[p.pos]) || isDigit(p.src[p.pos])) {
			p.advance(1)
		}
		p.tok = token{kind: tokName, text: p.src[start:p.pos], loc: loc}
	case c == '-' || isDigit(c):
		p.number(loc)
	case strings.HasPrefix(p.src[p.pos:], `"""`):
		p.advance(3)
		end := strings.Index(p.src[p.pos:], `"""`)
		if end < 0 {
			p.fail(loc, "Syntax Error: Unterminated string.")
		}
		s := p.src[p.pos : p.pos+end]
		p.advance(end + 3)
		p.tok = token{kind: tokString, text: strings.TrimSpace(s), loc: loc}
	case c == '"':
		p.str(loc)
	default:
		r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
		p.fail(loc, "Syntax Error: Unexpected character: %q.", r)
	}
}

func (p *parser) advance(n int) {
	for i := 0; i < n && p.pos < len(p.src); i++ {
		if p.src[p.pos] == '\n' {
			p.line, p.col = p.line+1, 1
		} else {
			p.col++
		}
		p.pos++
	}
}

func (p *parser) skipIgnored() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			p.advance(1)
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.advance(1)
			}
		case strings.HasPrefix(p.src[p.pos:], "\uFEFF"):
			p.pos += 3
		default:
			return
		}
	}
}

func (p *parser) number(loc location) {
	start := p.pos
	if p.src[p.pos] == '-' {
		p.advance(1)
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.src) && isDigit(p.src[p.pos]) {
			p.advance(1)
			n++
		}
		return n
	}
	if digits() == 0 {
		p.fail(loc, "Syntax Error: Invalid number, expected digit.")
	}
	kind := tokInt
	if p.pos < len(p.src) && p.src[p.pos] == '.' {
		p.advance(1)
		kind = tokFloat
		if digits() == 0 {
			p.fail(loc, "Syntax Error: Invalid number, expected digit.")
		}
	}
	if p.pos < len(p.src) && (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
		p.advance(1)
		kind = tokFloat
		if p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') {
			p.advance(1)
		}
		if digits() == 0 {
			p.fail(loc, "Syntax Error: Invalid number, expected digit.")
		}
	}
	if p.pos < len(p.src) && (p.src[p.pos] == '_' || isLetter(p.src[p.pos]) || p.src[p.pos] == '.') {
		p.fail(loc, "Syntax Error: Invalid number, expected digit.")
	}
	p.tok = token{kind: kind, text: p.src[start:p.pos], loc: loc}
}

func (p *parser) str(loc location) {
	p.advance(1)
	var b strings.Builder
	for {
		if p.pos >= len(p.src) || p.src[p.pos] == '\n' {
			p.fail(loc, "Syntax Error: Unterminated string.")
		}
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.advance(1)
			p.tok = token{kind: tokString, text: b.String(), loc: loc}
			return
		case c == '\\':
			if p.pos+1 >= len(p.src) {
				p.fail(loc, "Syntax Error: Unterminated string.")
			}
			esc := p.src[p.pos+1]
			if r, ok := map[byte]rune{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}[esc]; ok {
				b.WriteRune(r)
				p.advance(2)
				continue
			}
			if esc == 'u' && p.pos+6 <= len(p.src) {
				hex := p.src[p.pos+2 : p.pos+6]
				if r, err := strconv.ParseUint(hex, 16, 32); err == nil && !strings.ContainsAny(hex, "+-_") {
					b.WriteRune(rune(r))
					p.advance(6)
					continue
				}
			}
			p.fail(location{p.line, p.col}, "Syntax Error: Invalid character escape sequence.")
		default:
			b.WriteByte(c)
			p.advance(1)
		}
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
