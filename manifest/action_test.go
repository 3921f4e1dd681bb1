package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var slackFQN = FQN{Scheme: "github", Namespace: "aileron", Name: "slack"}

func TestParseAction(t *testing.T) {
	got, err := LoadAction("testdata/good/action_ship_update.toml")
	require.NoError(t, err)
	want := Action{
		Name:        "ship-update",
		Version:     "0.1.0",
		Description: "Post a release note to a Slack channel",
		Inputs: []Input{
			{Name: "channel", Type: InputString, Required: true, Description: "Channel ID, e.g. C0123"},
			{Name: "version", Type: InputString, Required: true},
			{Name: "dry_run", Type: InputBoolean, Default: false},
		},
		Requires: []Requirement{{
			Name:         slackFQN,
			Version:      "1.2.3",
			Hash:         testHash,
			Capabilities: []string{"chat:write", "channels:read"},
			Hosts:        []HostPort{{Host: "slack.com", Port: 443}},
		}},
		Steps: []Step{
			{ID: "channels", Connector: slackFQN, Intent: "list_channels"},
			{ID: "post", Connector: slackFQN, Intent: "post_message", With: map[string]any{
				"channel": "${{ inputs.channel }}",
				"text":    "Shipped ${{ inputs.version }} ($${{ literal }})",
				"first":   "${{ steps.channels.output.channels[0].name }}",
				"dry":     "${{ inputs.dry_run }}",
			}},
		},
	}
	require.Equal(t, want, withoutSource(got))
}

// actionWith returns a valid action with its steps replaced.
func actionWith(inputs, steps string) string {
	return `[action]
name = "a"
version = "1.0.0"
` + inputs + `
[[requires.connectors]]
name = "github://aileron/slack"
version = "1.2.3"
hash = "` + testHash + `"
` + steps
}

func TestParseAction_Values(t *testing.T) {
	tests := []struct {
		name   string
		inputs string
		with   string
		want   map[string]any
		input  Input
	}{
		{
			name: "nested with values",
			with: `{ n = 1, f = 1.5, b = true, list = [1, "two", { three = 3 }], obj = { "quoted key" = "v" } }`,
			want: map[string]any{"n": int64(1), "f": 1.5, "b": true, "list": []any{int64(1), "two", map[string]any{"three": int64(3)}}, "obj": map[string]any{"quoted key": "v"}},
		},
		{
			name: "empty with is nil",
			with: `{}`,
		},
		{
			name:   "number default is a float",
			inputs: "[inputs.ratio]\ntype = \"number\"\ndefault = 2\n",
			with:   `{ r = "${{ inputs.ratio }}" }`,
			want:   map[string]any{"r": "${{ inputs.ratio }}"},
			input:  Input{Name: "ratio", Type: InputNumber, Default: float64(2)},
		},
		{
			name:   "integer default",
			inputs: "[inputs.count]\ntype = \"integer\"\ndefault = -3\ndescription = \"How many\"\n",
			with:   `{ c = "${{ inputs.count }}" }`,
			want:   map[string]any{"c": "${{ inputs.count }}"},
			input:  Input{Name: "count", Type: InputInteger, Default: int64(-3), Description: "How many"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAction("a.toml", []byte(actionWith(tc.inputs, "[[steps]]\nid = \"s\"\nconnector = \"github://aileron/slack\"\nintent = \"x\"\nwith = "+tc.with+"\n")))
			require.NoError(t, err)
			require.Equal(t, tc.want, a.Steps[0].With)
			if tc.input.Name != "" {
				require.Equal(t, []Input{tc.input}, a.Inputs)
			}
			again, err := ParseAction("again.toml", a.Encode())
			require.NoError(t, err)
			require.Equal(t, withoutSource(a), withoutSource(again))
		})
	}
}

func TestParseAction_Errors(t *testing.T) {
	step := func(with string) string {
		return "[[steps]]\nid = \"s\"\nconnector = \"github://aileron/slack\"\nintent = \"x\"\nwith = " + with + "\n"
	}
	tests := []struct {
		name     string
		in       string
		want     string
		sentinel error
	}{
		{
			name:     "with not a table",
			in:       actionWith("", step(`"text"`)),
			want:     `a.toml:13:8: steps[0].with: must be a table, not a string`,
			sentinel: ErrType,
		},
		{
			name:     "steps not an array of tables",
			in:       "steps = 3\n" + actionWith("", ""),
			want:     `a.toml:1:9: steps: must be an array of tables ([[steps]]), not an integer`,
			sentinel: ErrType,
		},
		{
			name:     "template in nested array",
			in:       actionWith("", step(`{ a = [{ b = ["${{ inputs.nope }}"] }] }`)),
			want:     `a.toml:13:22: steps[0].with.a[0].b[0]: ${{ inputs.nope }}: input "nope" is not declared; add an [inputs.nope] table`,
			sentinel: ErrTemplate,
		},
		{
			name:     "with nested too deep",
			in:       actionWith("", step(`{ a = `+strings.Repeat("[", 40)+strings.Repeat("]", 40)+` }`)),
			want:     `a.toml:13:10: steps[0].with.a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more than 32 levels deep`,
			sentinel: ErrTooLarge,
		},
		{
			name:     "inputs in a path",
			in:       actionWith("[inputs.a]\ntype = \"string\"\n", step(`{ x = "${{ inputs.a.b }}" }`)),
			want:     `a.toml:15:14: steps[0].with.x: ${{ inputs.a.b }}: inputs have no fields; write ${{ inputs.NAME }}`,
			sentinel: ErrTemplate,
		},
		{
			name:     "too many steps",
			in:       actionWith("", strings.Repeat(step("{}"), 257)),
			want:     `a.toml:9:3: steps: has 257 steps; at most 256 are allowed`,
			sentinel: ErrTooLarge,
		},
		{
			name:     "infinite default",
			in:       actionWith("[inputs.a]\ntype = \"number\"\ndefault = inf\n", step(`{}`)),
			want:     `a.toml:6:11: inputs.a.default: must be a finite number`,
			sentinel: ErrType,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAction("a.toml", []byte(tc.in))
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, tc.sentinel)
		})
	}
}

func TestAction_JSON(t *testing.T) {
	a, err := LoadAction("testdata/good/action_ship_update.toml")
	require.NoError(t, err)
	b, err := json.MarshalIndent(a, "", "  ")
	require.NoError(t, err)
	golden(t, "testdata/json/action_ship_update.json.golden", string(b)+"\n")
}

func TestAction_Encode(t *testing.T) {
	a, err := LoadAction("testdata/good/action_ship_update.toml")
	require.NoError(t, err)
	golden(t, "testdata/encode/action_ship_update.toml.golden", string(a.Encode()))
}

// FuzzParseAction checks that ParseAction never panics, that errors are
// ErrorLists, and that every action it accepts survives Encode →
// ParseAction unchanged.
func FuzzParseAction(f *testing.F) {
	for _, dir := range []string{"testdata/good/action*.toml", "testdata/bad/action*.toml"} {
		files, _ := filepath.Glob(dir)
		for _, path := range files {
			data, err := os.ReadFile(path)
			require.NoError(f, err)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAction("fuzz.toml", data)
		if err != nil {
			var list ErrorList
			require.True(t, errors.As(err, &list), "%T: %v", err, err)
			return
		}
		enc := a.Encode()
		again, err := ParseAction("encoded.toml", enc)
		require.NoError(t, err, "encoded:\n%s", enc)
		require.Equal(t, withoutSource(a), withoutSource(again))
		require.Equal(t, string(enc), string(again.Encode()))
	})
}
