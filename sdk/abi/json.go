package abi

import (
	"bytes"
	"encoding/json"
	"errors"
)

// ErrTrailingData is DecodeStrict's error for bytes after the document.
var ErrTrailingData = errors.New("more than one JSON document")

// DecodeStrict decodes raw, a document from the other side of a trust
// boundary, into v: exactly one JSON value, no unknown fields, nothing
// after it but white space.
func DecodeStrict(raw []byte, v any) error { return decodeStrict(raw, v, false) }

// DecodeStrictNumbers is DecodeStrict keeping numbers as json.Number.
func DecodeStrictNumbers(raw []byte, v any) error { return decodeStrict(raw, v, true) }

func decodeStrict(raw []byte, v any, numbers bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if numbers {
		dec.UseNumber()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Not dec.More: it reports false before a stray '}' or ']'.
	if len(bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n")) > 0 {
		return ErrTrailingData
	}
	return nil
}
