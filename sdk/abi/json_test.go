package abi

import (
	"encoding/json"
	"testing"
)

func TestDecodeStrict(t *testing.T) {
	type doc struct {
		A int `json:"a"`
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"a":1}`, true},
		{" {\"a\":1} \n", true},
		{`{"a":1}}`, false}, // dec.More() says false here
		{`{"a":1}]`, false},
		{`{"a":1}{"a":2}`, false},
		{`{"a":1,"b":2}`, false},
		{`{"a":`, false},
	} {
		var d doc
		if err := DecodeStrict([]byte(tc.in), &d); (err == nil) != tc.ok {
			t.Errorf("DecodeStrict(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
	var m map[string]any
	if err := DecodeStrictNumbers([]byte(`{"n":12345678901234567890}`), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["n"].(json.Number); !ok {
		t.Errorf("n is %T, want json.Number", m["n"])
	}
	if err := DecodeStrictNumbers([]byte(`{"n":1}]`), &m); err != ErrTrailingData {
		t.Errorf("trailing ]: %v", err)
	}
}
