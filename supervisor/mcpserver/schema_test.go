package mcpserver

import (
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
)

func TestActionSchema(t *testing.T) {
	tests := []struct {
		name   string
		inputs []manifest.Input
		want   string
	}{
		{
			name: "no inputs",
			want: `{"type":"object","properties":{},"additionalProperties":false}`,
		},
		{
			name: "every type, in file order",
			inputs: []manifest.Input{
				{Name: "title", Type: manifest.InputString, Required: true, Description: "Title of the note"},
				{Name: "count", Type: manifest.InputInteger, Default: int64(3)},
				{Name: "ratio", Type: manifest.InputNumber, Default: 0.5, Description: "A ratio"},
				{Name: "dry_run", Type: manifest.InputBoolean, Default: false},
				{Name: "body", Type: manifest.InputString, Default: ""},
			},
			want: `{"type":"object","required":["title"],"properties":{
				"title":{"type":"string","description":"Title of the note"},
				"count":{"type":"integer","default":3,"minimum":-9007199254740991,"maximum":9007199254740991},
				"ratio":{"type":"number","description":"A ratio","default":0.5},
				"dry_run":{"type":"boolean","default":false},
				"body":{"type":"string","default":""}
			},"additionalProperties":false}`,
		},
		{
			name:   "optional without default",
			inputs: []manifest.Input{{Name: "tag", Type: manifest.InputString}},
			want:   `{"type":"object","properties":{"tag":{"type":"string"}},"additionalProperties":false}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ActionSchema(&manifest.Action{Name: "a", Inputs: tt.inputs})
			require.NoError(t, err)
			b, err := json.Marshal(s)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(b))
		})
	}
}

func TestActionSchema_Example(t *testing.T) {
	a, err := manifest.LoadAction(filepath.Join("..", "..", "examples", "actions", "add-note.toml"))
	require.NoError(t, err)
	s, err := ActionSchema(a)
	require.NoError(t, err)
	b, err := json.Marshal(s)
	require.NoError(t, err)
	// Properties keep the file's order: agents read them top to bottom.
	require.Equal(t, `{"type":"object","properties":{"title":{"type":"string","description":"Title of the note"},"body":{"type":"string","description":"Text of the note","default":""}},"required":["title"],"additionalProperties":false}`, string(b))
}

func TestActionSchema_Validates(t *testing.T) {
	s, err := ActionSchema(&manifest.Action{Inputs: []manifest.Input{
		{Name: "title", Type: manifest.InputString, Required: true},
		{Name: "n", Type: manifest.InputInteger},
		{Name: "on", Type: manifest.InputBoolean},
	}})
	require.NoError(t, err)
	rs, err := s.Resolve(nil)
	require.NoError(t, err)
	tests := []struct {
		name string
		args string
		ok   bool
	}{
		{"valid", `{"title":"x","n":2,"on":true}`, true},
		{"only required", `{"title":"x"}`, true},
		{"missing required", `{}`, false},
		{"wrong type", `{"title":1}`, false},
		{"fraction for integer", `{"title":"x","n":1.5}`, false},
		{"integer past 2^53", `{"title":"x","n":9007199254740993}`, false},
		{"string for boolean", `{"title":"x","on":"true"}`, false},
		{"extra field", `{"title":"x","sneaky":"y"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v map[string]any
			require.NoError(t, json.Unmarshal([]byte(tt.args), &v))
			err := rs.Validate(v)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestActionSchema_Errors(t *testing.T) {
	tests := []struct {
		name   string
		inputs []manifest.Input
		want   string
	}{
		{
			name:   "unknown_type",
			inputs: []manifest.Input{{Name: "x", Type: "object"}},
			want:   `input "x": type "object" is not string, number, integer or boolean`,
		},
		{
			name:   "duplicate_name",
			inputs: []manifest.Input{{Name: "x", Type: manifest.InputString}, {Name: "x", Type: manifest.InputBoolean}},
			want:   `input "x" is declared twice`,
		},
		{
			name:   "required_with_default",
			inputs: []manifest.Input{{Name: "x", Type: manifest.InputString, Required: true, Default: "d"}},
			want:   `input "x" is required and has a default`,
		},
		{
			name:   "default_not_finite",
			inputs: []manifest.Input{{Name: "x", Type: manifest.InputNumber, Default: math.NaN()}},
			want:   `input "x": default: json: unsupported value: NaN`,
		},
		{
			name:   "default_wrong_type",
			inputs: []manifest.Input{{Name: "x", Type: manifest.InputInteger, Default: "three"}},
			want:   `input schema: validating /properties/x: type: three has type "string", want "integer"`,
		},
		{
			name:   "default_past_2^53",
			inputs: []manifest.Input{{Name: "x", Type: manifest.InputInteger, Default: int64(1) << 60}},
			want:   `input "x": default 1152921504606846976 is outside ±(2^53-1)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ActionSchema(&manifest.Action{Name: "a", Inputs: tt.inputs})
			require.Nil(t, s)
			require.EqualError(t, err, tt.want)
		})
	}
}
