package mcpserver

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestToolName(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name, action, want string
	}{
		{"valid action name unchanged", "add-note", "add-note"},
		{"underscore and upper case kept", "Add_Note", "Add_Note"},
		{"dot replaced", "notes.add", "notes_add"},
		{"space and slash replaced", "a b/c", "a_b_c"},
		{"non-ASCII rune becomes one underscore", "café", "caf_"},
		{"cut to 64", long, long[:64]},
		{"cut after replacing", strings.Repeat("é", 70), strings.Repeat("_", 64)},
		{"empty", "", "action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToolName(tt.action)
			require.Equal(t, tt.want, got)
			require.LessOrEqual(t, len(got), MaxToolNameLen)
			require.Regexp(t, `^[a-zA-Z0-9_-]+$`, got)
		})
	}
}

func TestAssignToolNames(t *testing.T) {
	long := strings.Repeat("x", 64)
	tests := []struct {
		name  string
		files map[string]string
		want  map[string]string
	}{
		{
			name:  "distinct names",
			files: map[string]string{"add-note.toml": "add-note", "list.toml": "list"},
			want:  map[string]string{"add-note.toml": "add-note", "list.toml": "list"},
		},
		{
			name: "same action name: the installed file keeps it",
			// The CLI installs an action as NAME.toml; a copy under
			// another file name gets the suffix, even if it sorts first.
			files: map[string]string{"add-note.toml": "add-note", "a-copy.toml": "add-note"},
			want:  map[string]string{"add-note.toml": "add-note", "a-copy.toml": "add-note-" + sha8("a-copy.toml")},
		},
		{
			name:  "same action name, none installed: first file keeps it",
			files: map[string]string{"b.toml": "x", "a.toml": "x"},
			want:  map[string]string{"a.toml": "x", "b.toml": "x-" + sha8("b.toml")},
		},
		{
			name:  "names equal after sanitizing",
			files: map[string]string{"one.toml": "a.b", "two.toml": "a_b"},
			want:  map[string]string{"one.toml": "a_b", "two.toml": "a_b-" + sha8("two.toml")},
		},
		{
			name:  "long names cut to fit the suffix",
			files: map[string]string{"p.toml": long + "-p", "q.toml": long + "-q"},
			want:  map[string]string{"p.toml": long, "q.toml": long[:55] + "-" + sha8("q.toml")},
		},
		{
			name:  "a suffixed name taken by another action steps on",
			files: map[string]string{"x.toml": "x", "y.toml": "x", "z.toml": "x-" + sha8("y.toml")},
			want: map[string]string{
				"x.toml": "x",
				"y.toml": "x-" + sha8("y.toml\x001"),
				"z.toml": "x-" + sha8("y.toml"),
			},
		},
		{
			name: "empty",
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, AssignToolNames(tt.files))
			// Map iteration order must not matter.
			for i := 0; i < 20; i++ {
				require.Equal(t, tt.want, AssignToolNames(tt.files))
			}
		})
	}
}

func sha8(s string) string { return suffixed("", s)[1:] }
