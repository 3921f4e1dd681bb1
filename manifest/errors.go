package manifest

import (
	"errors"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors. Every [*Error] this package returns wraps exactly one of
// them, so callers can classify a problem with [errors.Is] without parsing
// messages.
var (
	// ErrSyntax is returned when a file is not valid TOML (including TOML's
	// own rules: duplicate keys, redefined tables).
	ErrSyntax = errors.New("syntax error")
	// ErrTooLarge is returned when a file, a list or a rendered value
	// exceeds one of the package's size limits.
	ErrTooLarge = errors.New("too large")
	// ErrUnknownField is returned for a key the format does not define.
	// Unknown fields are errors, never ignored, so a typo cannot silently
	// drop a restriction.
	ErrUnknownField = errors.New("unknown field")
	// ErrType is returned when a value has the wrong TOML type.
	ErrType = errors.New("wrong type")
	// ErrMissing is returned when a required field is absent or empty.
	ErrMissing = errors.New("missing field")
	// ErrInvalid is returned when a value has the right type but is not
	// allowed (bad FQN, version, hash, host, identifier, ...).
	ErrInvalid = errors.New("invalid value")
	// ErrDuplicate is returned when a list or table names the same thing
	// twice.
	ErrDuplicate = errors.New("duplicate")
	// ErrTemplate is returned when a ${{ }} template does not parse or
	// refers to something that does not exist at that point of the action.
	ErrTemplate = errors.New("bad template")
	// ErrRender is returned by [Render] when a template cannot be filled in
	// from the run's inputs and step outputs.
	ErrRender = errors.New("cannot render template")
	// ErrInput is returned by [CoerceInputs] for a missing, unknown or
	// badly typed action input.
	ErrInput = errors.New("bad input")
	// ErrNotInstalled is returned by [CheckAction] and [StepGrant] when a
	// required connector's manifest was not supplied.
	ErrNotInstalled = errors.New("connector not installed")
	// ErrPinMismatch is returned when an installed connector's version or
	// provenance hash differs from the action's pin.
	ErrPinMismatch = errors.New("pin mismatch")
	// ErrNotGranted is returned when an action asks for a scope, host or
	// intent that the connector's manifest (or the action's own
	// requirement) does not grant.
	ErrNotGranted = errors.New("not granted")
	// ErrUndeclaredImport is returned by [CheckImports] for each module
	// import the manifest does not grant.
	ErrUndeclaredImport = errors.New("undeclared import")
	// ErrWasm is returned by [ModuleImports] when the bytes are not a
	// well-formed WebAssembly core module.
	ErrWasm = errors.New("malformed wasm module")
)

// maxErrors bounds how many problems one parse reports, so a hostile file
// cannot make the error itself huge.
const maxErrors = 50

// Error is one problem, located as precisely as the package knows. Use
// [errors.As] to get it from any error this package returns, and
// [errors.Is] with a sentinel such as [ErrUnknownField] to classify it.
type Error struct {
	// File is the file name given to the parser; empty if unknown.
	File string
	// Line and Col are 1-based; zero when there is no position (for
	// example a field that is missing altogether).
	Line, Col int
	// Field is the dotted path of the field, e.g.
	// "capabilities.network.hosts[1]" or "steps[0].with.text".
	Field string
	// Msg says what is wrong and, where possible, what to write instead.
	Msg string
	// Err is the sentinel this problem is an instance of.
	Err error
}

// Error formats the problem as "file:line:col: field: msg", leaving out the
// parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		if e.Col > 0 {
			b.WriteString(strconv.Itoa(e.Col))
			b.WriteByte(':')
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel, for [errors.Is].
func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem found in one pass, sorted by position, so a
// person can fix them all at once. It is returned as an error only when it
// is not empty.
type ErrorList []*Error

// Error returns one problem per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the problems, so [errors.Is] and [errors.As] see each one.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// err returns l sorted by position as an error, or nil when l is empty.
// Problems without a line come first: they concern the file as a whole.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Col < l[j].Col
	})
	if len(l) > maxErrors {
		extra := len(l) - maxErrors
		l = append(l[:maxErrors:maxErrors], &Error{File: l[0].File, Msg: strconv.Itoa(extra) + " more problems not shown", Err: ErrTooLarge})
	}
	return l
}

// bug marks a path that cannot happen. If it does, the message says so
// plainly rather than blaming the user's file.
func bug(msg string) *Error {
	return &Error{Msg: "BUG(aileron/manifest): " + msg, Err: ErrInvalid}
}
