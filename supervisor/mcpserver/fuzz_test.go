package mcpserver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/manifest"
)

// FuzzActionSchema: for any action the parser accepts, ActionSchema either
// fails or returns a schema the SDK registers without panicking.
func FuzzActionSchema(f *testing.F) {
	for _, seed := range []string{
		"",
		noteInputs,
		"[inputs.n]\ntype = \"integer\"\ndefault = 9007199254740993\n",
		"[inputs.r]\ntype = \"number\"\ndefault = 1e308\n",
		"[inputs.b]\ntype = \"boolean\"\ndefault = true\ndescription = \"a \\\"quoted\\\" flag\"\n",
		"[inputs.s]\ntype = \"string\"\ndefault = \"\\u0000\"\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, inputs string) {
		a, err := manifest.ParseAction("fuzz.toml", []byte(action("fuzz", inputs)))
		if err != nil {
			return
		}
		s, err := ActionSchema(a)
		if err != nil {
			return
		}
		_, err = json.Marshal(s)
		require.NoError(t, err)
		srv := mcp.NewServer(&mcp.Implementation{Name: "fuzz"}, nil)
		mcp.AddTool(srv, &mcp.Tool{Name: "fuzz", InputSchema: s}, func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
			return nil, nil, nil
		})
	})
}

// FuzzAssignToolNames: names are valid, short and distinct, whatever the
// action names.
func FuzzAssignToolNames(f *testing.F) {
	f.Add("add-note", "add-note", "x.y")
	f.Add("", "é", strings.Repeat("a", 100))
	f.Fuzz(func(t *testing.T, a, b, c string) {
		files := map[string]string{"a.toml": a, "b.toml": b, "c.toml": c, a + ".toml": b}
		got := AssignToolNames(files)
		require.Len(t, got, len(files))
		seen := map[string]bool{}
		for _, name := range got {
			require.False(t, seen[name], "duplicate %q in %v", name, got)
			seen[name] = true
			require.True(t, utf8.ValidString(name))
			require.LessOrEqual(t, len(name), MaxToolNameLen)
			require.Regexp(t, `^[a-zA-Z0-9_-]+$`, name)
		}
	})
}
