package manifest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		refs  []string // canonical references, in order
		lit   string   // literal parts joined with "|"
		whole bool
	}{
		{name: "plain", in: "hello", lit: "hello"},
		{name: "empty", in: ""},
		{name: "whole input", in: "${{ inputs.channel }}", refs: []string{"inputs.channel"}, whole: true},
		{name: "no spaces", in: "${{inputs.channel}}", refs: []string{"inputs.channel"}, whole: true},
		{name: "whole step output", in: "${{ steps.post.output }}", refs: []string{"steps.post.output"}, whole: true},
		{name: "path", in: "${{ steps.get-1.output.items[0].user_name.first-name }}", refs: []string{"steps.get-1.output.items[0].user_name.first-name"}, whole: true},
		{name: "nested indexes", in: "${{ steps.a.output[12][0] }}", refs: []string{"steps.a.output[12][0]"}, whole: true},
		{name: "interpolated", in: "Shipped ${{ inputs.version }}!", refs: []string{"inputs.version"}, lit: "Shipped |!"},
		{name: "two refs", in: "${{ inputs.a }}${{ inputs.b }}", refs: []string{"inputs.a", "inputs.b"}},
		{name: "whitespace around is text", in: " ${{ inputs.a }}", refs: []string{"inputs.a"}, lit: " "},
		{name: "escaped", in: "$${{ inputs.a }}", lit: "${{ inputs.a }}"},
		{name: "escaped then ref", in: "$${{ x }} ${{ inputs.a }}", refs: []string{"inputs.a"}, lit: "${{ x }} "},
		{name: "lone dollar", in: "$5 and $ {{ x }} and ${ x }", lit: "$5 and $ {{ x }} and ${ x }"},
		{name: "closing braces alone", in: "}} {{", lit: "}} {{"},
		{name: "triple dollar", in: "$$${{ inputs.a }}", lit: "$${{ inputs.a }}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, msg := parseTemplate(tc.in)
			require.Empty(t, msg)
			var refs, lits []string
			for _, p := range tpl.parts {
				if p.ref != nil {
					refs = append(refs, p.ref.String())
				} else {
					lits = append(lits, p.lit)
				}
			}
			require.Equal(t, tc.refs, refs)
			require.Equal(t, tc.lit, strings.Join(lits, "|"))
			require.Equal(t, tc.whole, tpl.whole())
		})
	}
}

func TestParseTemplate_Errors(t *testing.T) {
	usage := "write ${{ inputs.NAME }} or ${{ steps.ID.output }} followed by .key or [index] parts"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "unclosed", in: "${{ inputs.a", want: `unclosed "${{"; close it with "}}", or write "$${{" for a literal "${{"`},
		{name: "empty", in: "${{}}", want: "${{}}: empty template; " + usage},
		{name: "operator", in: "${{ inputs.a + 1 }}", want: `${{ inputs.a + 1 }}: invalid input name "a + 1": character ' ' is not allowed; use a-z, 0-9 and '_'`},
		{name: "function", in: "${{ toJSON(inputs.a) }}", want: "${{ toJSON(inputs.a) }}: unknown reference; " + usage},
		{name: "env", in: "${{ env.HOME }}", want: "${{ env.HOME }}: unknown reference; " + usage},
		{name: "secrets", in: "${{ secrets.token }}", want: "${{ secrets.token }}: unknown reference; " + usage},
		{name: "string literal", in: `${{ 'x' }}`, want: "${{ 'x' }}: unknown reference; " + usage},
		{name: "input field", in: "${{ inputs.a.b }}", want: "${{ inputs.a.b }}: inputs have no fields; write ${{ inputs.NAME }}"},
		{name: "input index", in: "${{ inputs.a[0] }}", want: "${{ inputs.a[0] }}: inputs have no fields; write ${{ inputs.NAME }}"},
		{name: "bad input name", in: "${{ inputs.A }}", want: `${{ inputs.A }}: invalid input name "A": must start with a lowercase letter`},
		{name: "step without output", in: "${{ steps.a }}", want: "${{ steps.a }}: a step has only an output; write ${{ steps.a.output }}"},
		{name: "step other field", in: "${{ steps.a.status }}", want: "${{ steps.a.status }}: a step has only an output; write ${{ steps.a.output }}"},
		{name: "bad step id", in: "${{ steps.A.output }}", want: `${{ steps.A.output }}: invalid step id "A": must start with a lowercase letter`},
		{name: "filter", in: "${{ steps.a.output | x }}", want: `${{ steps.a.output | x }}: unexpected " | x" after steps.a.output; ` + usage},
		{name: "leading zero index", in: "${{ steps.a.output[01] }}", want: "${{ steps.a.output[01] }}: index [01] must be a decimal number without leading zeros"},
		{name: "negative index", in: "${{ steps.a.output[-1] }}", want: "${{ steps.a.output[-1] }}: index [-1] must be a decimal number without leading zeros"},
		{name: "huge index", in: "${{ steps.a.output[9999999999] }}", want: "${{ steps.a.output[9999999999] }}: index [9999999999] must be a decimal number without leading zeros"},
		{name: "quoted key", in: `${{ steps.a.output["x"] }}`, want: `${{ steps.a.output["x"] }}: index ["x"] must be a decimal number without leading zeros`},
		{name: "unclosed index", in: "${{ steps.a.output[0 }}", want: `${{ steps.a.output[0 }}: unclosed "["`},
		{name: "empty key", in: "${{ steps.a.output. }}", want: "${{ steps.a.output. }}: empty key after '.'"},
		{name: "key starts with digit", in: "${{ steps.a.output.0 }}", want: `${{ steps.a.output.0 }}: key "0" must start with a letter or '_'`},
		{name: "key charset", in: "${{ steps.a.output.a$b }}", want: `${{ steps.a.output.a$b }}: key "a$b" has character '$'; keys use A-Z, a-z, 0-9, '_' and '-'`},
		{name: "too many parts", in: "${{ steps.a.output" + strings.Repeat(".x", 33) + " }}", want: "${{ steps.a.output" + strings.Repeat(".x", 33) + " }}: more than 32 path parts"},
		{name: "second template bad", in: "${{ inputs.a }} ${{ inputs. }}", want: `${{ inputs. }}: invalid input name "": must not be empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, msg := parseTemplate(tc.in)
			require.Equal(t, tc.want, msg)
		})
	}
}

func TestRender(t *testing.T) {
	inputs := map[string]any{"channel": "C01", "count": int64(3), "ratio": 0.25, "big": 1e21, "dry": true}
	outputs := map[string]json.RawMessage{
		"get": json.RawMessage(`{"ts":"1712.5","n":12345678901234567890,"ok":true,"user":{"name":"ada"},"items":[{"id":1},{"id":2}],"none":null}`),
	}
	tests := []struct {
		name string
		with map[string]any
		want map[string]any
	}{
		{name: "nil with", with: nil, want: map[string]any{}},
		{name: "literals pass through", with: map[string]any{"s": "text", "n": int64(1), "f": 1.5, "b": false}, want: map[string]any{"s": "text", "n": int64(1), "f": 1.5, "b": false}},
		{name: "whole input keeps type", with: map[string]any{"c": "${{ inputs.count }}", "d": "${{ inputs.dry }}"}, want: map[string]any{"c": int64(3), "d": true}},
		{name: "whole output object", with: map[string]any{"u": "${{ steps.get.output.user }}"}, want: map[string]any{"u": map[string]any{"name": "ada"}}},
		{name: "whole output null", with: map[string]any{"x": "${{ steps.get.output.none }}"}, want: map[string]any{"x": nil}},
		{name: "whole output number is exact", with: map[string]any{"n": "${{ steps.get.output.n }}"}, want: map[string]any{"n": json.Number("12345678901234567890")}},
		{name: "interpolation", with: map[string]any{"t": "#${{ inputs.channel }} x${{ inputs.count }} r=${{ inputs.ratio }} ${{ inputs.dry }} ${{ steps.get.output.items[1].id }} ${{ inputs.big }}"},
			want: map[string]any{"t": "#C01 x3 r=0.25 true 2 1e+21"}},
		{name: "escape", with: map[string]any{"t": "$${{ inputs.channel }} is ${{ inputs.channel }}"}, want: map[string]any{"t": "${{ inputs.channel }} is C01"}},
		{name: "nested", with: map[string]any{"a": []any{map[string]any{"b": "${{ steps.get.output.ts }}"}, int64(2)}}, want: map[string]any{"a": []any{map[string]any{"b": "1712.5"}, int64(2)}}},
		{name: "keys are not templates", with: map[string]any{"${{ inputs.channel }}": "x"}, want: map[string]any{"${{ inputs.channel }}": "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.with, inputs, outputs)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestRender_DoesNotModifyWith(t *testing.T) {
	with := map[string]any{"a": []any{"${{ inputs.x }}"}, "b": map[string]any{"c": "${{ inputs.x }}"}}
	_, err := Render(with, map[string]any{"x": "y"}, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": []any{"${{ inputs.x }}"}, "b": map[string]any{"c": "${{ inputs.x }}"}}, with)
}

func TestRender_Errors(t *testing.T) {
	inputs := map[string]any{"channel": "C01"}
	outputs := map[string]json.RawMessage{
		"get": json.RawMessage(`{"user":{"name":"ada"},"items":[1,2],"none":null}`),
		"bad": json.RawMessage(`{"unterminated`),
	}
	tests := []struct {
		name string
		with map[string]any
		want string
	}{
		{name: "missing input", with: map[string]any{"x": "${{ inputs.version }}"}, want: `with.x: ${{ inputs.version }}: input "version" has no value`},
		{name: "missing step", with: map[string]any{"x": "${{ steps.post.output }}"}, want: `with.x: ${{ steps.post.output }}: step "post" has no output`},
		{name: "missing key", with: map[string]any{"x": "${{ steps.get.output.user.email }}"}, want: `with.x: ${{ steps.get.output.user.email }}: steps.get.output.user has no key "email"`},
		{name: "index out of range", with: map[string]any{"x": "${{ steps.get.output.items[2] }}"}, want: `with.x: ${{ steps.get.output.items[2] }}: steps.get.output.items has 2 elements; index 2 is out of range`},
		{name: "index into object", with: map[string]any{"x": "${{ steps.get.output.user[0] }}"}, want: `with.x: ${{ steps.get.output.user[0] }}: steps.get.output.user is an object, not an array`},
		{name: "key into array", with: map[string]any{"x": "${{ steps.get.output.items.first }}"}, want: `with.x: ${{ steps.get.output.items.first }}: steps.get.output.items is an array, not an object`},
		{name: "key into null", with: map[string]any{"x": "${{ steps.get.output.none.a }}"}, want: `with.x: ${{ steps.get.output.none.a }}: steps.get.output.none is null, not an object`},
		{name: "object in text", with: map[string]any{"x": "user: ${{ steps.get.output.user }}"}, want: `with.x: ${{ steps.get.output.user }} is an object; only strings, numbers and booleans can be embedded in text (a template alone as the whole value keeps its type)`},
		{name: "array in text", with: map[string]any{"x": "${{ steps.get.output.items }}!"}, want: `with.x: ${{ steps.get.output.items }} is an array; only strings, numbers and booleans can be embedded in text (a template alone as the whole value keeps its type)`},
		{name: "null in text", with: map[string]any{"x": " ${{ steps.get.output.none }}"}, want: `with.x: ${{ steps.get.output.none }} is null; only strings, numbers and booleans can be embedded in text (a template alone as the whole value keeps its type)`},
		{name: "output not JSON", with: map[string]any{"x": "${{ steps.bad.output }}"}, want: `with.x: ${{ steps.bad.output }}: the output of step "bad" is not valid JSON: unexpected EOF`},
		{name: "bad template", with: map[string]any{"a": []any{"${{ nope }}"}}, want: "with.a[0]: ${{ nope }}: unknown reference; write ${{ inputs.NAME }} or ${{ steps.ID.output }} followed by .key or [index] parts"},
		{name: "every problem", with: map[string]any{"a": "${{ inputs.a }}", "b": "${{ inputs.b }}"}, want: "with.a: ${{ inputs.a }}: input \"a\" has no value\nwith.b: ${{ inputs.b }}: input \"b\" has no value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.with, inputs, outputs)
			require.Nil(t, got)
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrRender)
		})
	}
}

// TestRender_Errors_Deterministic: the same render fails with the same
// text every time, whatever order Go walks the `with` map in.
func TestRender_Errors_Deterministic(t *testing.T) {
	with := map[string]any{"c": "${{ inputs.c }}", "a": "${{ inputs.a }}", "b": map[string]any{"z": "${{ inputs.z }}", "y": "${{ inputs.y }}"}}
	want := "with.a: ${{ inputs.a }}: input \"a\" has no value\n" +
		"with.b.y: ${{ inputs.y }}: input \"y\" has no value\n" +
		"with.b.z: ${{ inputs.z }}: input \"z\" has no value\n" +
		"with.c: ${{ inputs.c }}: input \"c\" has no value"
	for range 50 {
		_, err := Render(with, nil, nil)
		require.EqualError(t, err, want)
	}
}

// TestRender_Amplification checks that repeating a large output many times
// is refused instead of building a huge input.
func TestRender_Amplification(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)
	outputs := map[string]json.RawMessage{"get": big}
	tests := []struct {
		name string
		tmpl string
	}{
		{name: "whole value", tmpl: "${{ steps.get.output }}"},
		{name: "interpolated", tmpl: "-${{ steps.get.output }}${{ steps.get.output }}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list := make([]any, 10)
			for i := range list {
				list[i] = tc.tmpl
			}
			_, err := Render(map[string]any{"x": list}, nil, outputs)
			require.ErrorIs(t, err, ErrRender)
			require.Contains(t, err.Error(), "the rendered input is larger than 4194304 bytes")
		})
	}
	// Just under the limit is fine.
	_, err := Render(map[string]any{"x": []any{"${{ steps.get.output }}", "${{ steps.get.output }}"}}, nil, outputs)
	require.NoError(t, err)
	require.Equal(t, abi.MaxInvocationBytes, 4<<20)
}

func TestCoerceInputs(t *testing.T) {
	decl := []Input{
		{Name: "channel", Type: InputString, Required: true},
		{Name: "count", Type: InputInteger, Default: int64(1)},
		{Name: "ratio", Type: InputNumber},
		{Name: "dry", Type: InputBoolean, Default: false},
	}
	tests := []struct {
		name  string
		given map[string]any
		want  map[string]any
	}{
		{name: "defaults", given: map[string]any{"channel": "C01"}, want: map[string]any{"channel": "C01", "count": int64(1), "dry": false}},
		{name: "from CLI strings", given: map[string]any{"channel": "C01", "count": "-42", "ratio": "1e-3", "dry": "true"}, want: map[string]any{"channel": "C01", "count": int64(-42), "ratio": 0.001, "dry": true}},
		{name: "from JSON", given: map[string]any{"channel": "", "count": float64(7), "ratio": float64(2), "dry": false}, want: map[string]any{"channel": "", "count": int64(7), "ratio": float64(2), "dry": false}},
		{name: "json.Number", given: map[string]any{"channel": "x", "count": json.Number("9007199254740993"), "ratio": json.Number("0.5")}, want: map[string]any{"channel": "x", "count": int64(9007199254740993), "ratio": 0.5, "dry": false}},
		{name: "Go ints", given: map[string]any{"channel": "x", "count": 5, "ratio": int64(3)}, want: map[string]any{"channel": "x", "count": int64(5), "ratio": float64(3), "dry": false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CoerceInputs(decl, tc.given)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCoerceInputs_Errors(t *testing.T) {
	decl := []Input{
		{Name: "channel", Type: InputString, Required: true},
		{Name: "count", Type: InputInteger},
		{Name: "ratio", Type: InputNumber},
		{Name: "dry", Type: InputBoolean},
	}
	tests := []struct {
		name  string
		decl  []Input
		given map[string]any
		want  string
	}{
		{name: "missing required", given: map[string]any{}, want: `inputs.channel: missing required input "channel" (string)`},
		{name: "unknown", given: map[string]any{"channel": "x", "chanel": "y"}, want: `inputs.chanel: unknown input "chanel"; declared inputs: channel, count, dry, ratio`},
		{name: "no inputs declared", decl: []Input{}, given: map[string]any{"x": "1"}, want: `inputs.x: unknown input "x"; this action takes no inputs`},
		{name: "string not a string", given: map[string]any{"channel": int64(1)}, want: `inputs.channel: must be a string, not a number`},
		{name: "integer word", given: map[string]any{"channel": "x", "count": "three"}, want: `inputs.count: "three" is not an integer`},
		{name: "integer plus sign", given: map[string]any{"channel": "x", "count": "+3"}, want: `inputs.count: "+3" is not an integer`},
		{name: "integer fraction", given: map[string]any{"channel": "x", "count": 1.5}, want: `inputs.count: 1.5 is not an integer`},
		{name: "integer overflow", given: map[string]any{"channel": "x", "count": "99999999999999999999"}, want: `inputs.count: "99999999999999999999" is not an integer`},
		{name: "integer imprecise float", given: map[string]any{"channel": "x", "count": 1e300}, want: `inputs.count: 1e+300 is not an integer`},
		{name: "integer bool", given: map[string]any{"channel": "x", "count": true}, want: `inputs.count: must be an integer, not a boolean`},
		{name: "number hex", given: map[string]any{"channel": "x", "ratio": "0x1p4"}, want: `inputs.ratio: "0x1p4" is not a number`},
		{name: "number inf", given: map[string]any{"channel": "x", "ratio": "Inf"}, want: `inputs.ratio: "Inf" is not a number`},
		{name: "number NaN", given: map[string]any{"channel": "x", "ratio": "NaN"}, want: `inputs.ratio: "NaN" is not a number`},
		{name: "number underscore", given: map[string]any{"channel": "x", "ratio": "1_000"}, want: `inputs.ratio: "1_000" is not a number`},
		{name: "number leading zero", given: map[string]any{"channel": "x", "ratio": "01"}, want: `inputs.ratio: "01" is not a number`},
		{name: "number overflow", given: map[string]any{"channel": "x", "ratio": "1e999"}, want: `inputs.ratio: "1e999" is not a number`},
		{name: "boolean word", given: map[string]any{"channel": "x", "dry": "yes"}, want: `inputs.dry: "yes" is not a boolean; write true or false`},
		{name: "boolean number", given: map[string]any{"channel": "x", "dry": float64(1)}, want: `inputs.dry: must be a boolean, not a number`},
		{name: "every problem", given: map[string]any{"count": "x", "zzz": "1"}, want: "inputs.zzz: unknown input \"zzz\"; declared inputs: channel, count, dry, ratio\ninputs.channel: missing required input \"channel\" (string)\ninputs.count: \"x\" is not an integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decl
			if tc.decl != nil {
				d = tc.decl
			}
			got, err := CoerceInputs(d, tc.given)
			require.Nil(t, got)
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrInput)
		})
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "1e5", "1E+5", "1.5e-3", "10"} {
		require.True(t, isJSONNumber(s), s)
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x10", "1_0", " 1", "1 ", "Inf", "NaN"} {
		require.False(t, isJSONNumber(s), s)
	}
}
