package serve

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAuditTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(`{"kind":"egress","decision":"deny","code":"before_start"}`+"\n"), 0o600))
	tail := newAuditTail(p)
	var got []string
	deny := func(code string) { got = append(got, code) }
	appendTo := func(s string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString(s)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	tail.poll(deny)
	require.Empty(t, got, "records from before the server started are not counted")

	appendTo(`{"kind":"egress","decision":"allow"}` + "\n" + `{"kind":"egress","decision":"deny","code":"host_not_declared"}` + "\n" + `{"kind":"egress","decision":"deny","co`)
	tail.poll(deny)
	require.Equal(t, []string{"host_not_declared"}, got)
	appendTo(`de":"egress_quota_exceeded"}` + "\n" + `{"kind":"connector_event","decision":"deny","code":"x"}` + "\n" +
		`{"kind":"egress","decision":"deny","code":"Weird Code <script>"}` + "\n" + "not json\n")
	tail.poll(deny)
	require.Equal(t, []string{"host_not_declared", "egress_quota_exceeded", "other"}, got)

	// A log replaced by a shorter one is read from its start.
	require.NoError(t, os.WriteFile(p, []byte(`{"kind":"egress","decision":"deny","code":"again"}`+"\n"), 0o600))
	tail.poll(deny)
	require.Equal(t, "again", got[len(got)-1])

	missing := newAuditTail(filepath.Join(t.TempDir(), "none.jsonl"))
	missing.poll(deny) // no log yet: nothing happens
}
