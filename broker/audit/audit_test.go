package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)

func sample(i int) Record {
	switch i % 3 {
	case 0:
		return Record{Time: t0.Add(time.Duration(i) * time.Second), Kind: KindEgress, Decision: DecisionAllow, Code: "allowed",
			Reason: "host slack.com:443 matches rule slack.com:443", Tenant: "t1", Action: "ship-update", RunID: "r1",
			Connector: "github://aileron/slack@1.2.3", Intent: "post_message", Method: "POST", Host: "slack.com", Port: 443,
			Path: "/api/chat.postMessage", Status: 200, RequestBytes: 42, Bytes: 1234, CredentialID: "slack-bot", DurationMS: 12.5}
	case 1:
		return Record{Time: t0.Add(time.Duration(i) * time.Second), Kind: KindEgress, Decision: DecisionDeny, Code: "host_not_declared",
			Reason: "host evil.example.com:443 is not declared in the connector manifest", Connector: "github://aileron/slack@1.2.3",
			Method: "GET", Host: "evil.example.com", Port: 443}
	default:
		return Record{Time: t0.Add(time.Duration(i) * time.Second), Kind: KindConnectorEvent, Event: "message_posted",
			Fields: map[string]any{"channel": "C1", "n": 3, "big": uint64(1) << 62, "f": 0.1, "html": "<a&b>", "bad": "\xff", "nested": map[string]any{"z": 1, "a": []any{true, nil}}}}
	}
}

func openTemp(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l, path
}

func writeLog(t *testing.T, n int) (string, []byte) {
	t.Helper()
	l, path := openTemp(t)
	for i := 0; i < n; i++ {
		require.NoError(t, l.Append(sample(i)))
	}
	require.NoError(t, l.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, b
}

func TestAppendVerifyReopen(t *testing.T) {
	l, path := openTemp(t)
	seq, head := chainHead(l)
	require.Equal(t, uint64(0), seq)
	require.Equal(t, Genesis, head)
	for i := 0; i < 5; i++ {
		require.NoError(t, l.Append(sample(i)))
	}
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n, err := Verify(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Len(t, lines, 5)
	require.True(t, strings.HasPrefix(lines[0], `{"seq":1,"time":"2025-01-02T03:04:05.0000006Z","prev":"`+Genesis+`","kind":"egress","decision":"allow"`), lines[0])
	require.Contains(t, lines[2], `"html":"<a&b>"`, "no HTML escaping")
	require.NotContains(t, lines[0], "secret")

	recs, err := Tail(bytes.NewReader(b), 2)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, uint64(4), recs[0].Seq)
	require.Equal(t, uint64(5), recs[1].Seq)
	seq, head = chainHead(l)
	require.Equal(t, uint64(5), seq)
	require.Equal(t, recs[1].Hash, head)
	require.Equal(t, recs[0].Hash, recs[1].Prev)

	// The chain continues across a reopen.
	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Append(sample(0)), ErrClosed)
	l2, err := Open(path)
	require.NoError(t, err)
	defer l2.Close()
	seq2, head2 := chainHead(l2)
	require.Equal(t, seq, seq2)
	require.Equal(t, head, head2)
	require.NoError(t, l2.Append(Record{Kind: KindRun, RunID: "r2"}))
	b, _ = os.ReadFile(path)
	n, err = Verify(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 6, n)

	// Fields read back with numbers as json.Number.
	recs, err = Tail(bytes.NewReader(b), 10)
	require.NoError(t, err)
	require.Len(t, recs, 6)
	require.Equal(t, json.Number("4611686018427387904"), recs[2].Fields["big"])
	require.Equal(t, "\ufffd", recs[2].Fields["bad"])
	require.False(t, recs[5].Time.IsZero())
}

func TestAppend_Errors(t *testing.T) {
	l, _ := openTemp(t)
	require.EqualError(t, l.Append(Record{}), "audit: append: record has no kind")
	require.EqualError(t, l.Append(Record{Kind: "x", Fields: map[string]any{"c": make(chan int)}}),
		"audit: append x record: json: unsupported type: chan int")
	require.ErrorContains(t, l.Append(Record{Kind: "x", Reason: strings.Repeat("a", MaxRecordBytes)}),
		fmt.Sprintf("bytes, over the limit of %d", MaxRecordBytes))
	seq, _ := chainHead(l)
	require.Equal(t, uint64(0), seq, "failed appends do not advance the chain")
}

func TestOpen_Errors(t *testing.T) {
	dir := t.TempDir()

	loose := filepath.Join(dir, "loose.jsonl")
	require.NoError(t, os.WriteFile(loose, nil, 0o600))
	require.NoError(t, os.Chmod(loose, 0o644))
	_, err := Open(loose)
	require.EqualError(t, err, "audit: open "+loose+": mode 0644 gives access to group or others; want 0600")

	_, err = Open(dir)
	require.Error(t, err)

	_, good := writeLog(t, 3)
	for _, tc := range []struct{ name, content, err string }{
		{"torn last record", string(good[:len(good)-10]), "audit: open %s: audit: the last record is truncated (no newline at end of file)"},
		{"edited last record", strings.Replace(string(good), "message_posted", "message_pasted", 1), "audit: open %s: audit: line 3 (record 3): hash mismatch: the record was modified"},
		{"garbage", "hello\n", "audit: open %s: audit: line 1 (record 1): missing or malformed hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			require.NoError(t, os.WriteFile(p, []byte(tc.content), 0o600))
			_, err := Open(p)
			require.EqualError(t, err, fmt.Sprintf(tc.err, p))
			var ve *VerifyError
			require.ErrorAs(t, err, &ve)
		})
	}
}

func TestOpen_RecoversHeadOfLargeLog(t *testing.T) {
	l, path := openTemp(t)
	l.sync = false
	pad := strings.Repeat("x", 1000)
	for i := 0; i < 700; i++ { // > 2*MaxRecordBytes, so only the tail is read
		require.NoError(t, l.Append(Record{Kind: KindRun, Reason: pad}))
	}
	seq, head := chainHead(l)
	require.NoError(t, l.Close())
	fi, _ := os.Stat(path)
	require.Greater(t, fi.Size(), int64(2*MaxRecordBytes+2))
	l2, err := Open(path)
	require.NoError(t, err)
	defer l2.Close()
	seq2, head2 := chainHead(l2)
	require.Equal(t, seq, seq2)
	require.Equal(t, head, head2)
}

// lineOf returns the 1-based line holding byte i; a newline belongs to the
// line it ends.
func lineOf(b []byte, i int) int { return bytes.Count(b[:i], []byte("\n")) + 1 }

func TestVerify_EveryByteFlipped(t *testing.T) {
	_, b := writeLog(t, 4)
	n, err := Verify(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 4, n)
	for i := range b {
		for _, x := range []byte{0x01, 0x20, 0x80} {
			m := bytes.Clone(b)
			m[i] ^= x
			n, err := Verify(bytes.NewReader(m))
			var ve *VerifyError
			require.ErrorAs(t, err, &ve, "byte %d ^ %#x went undetected", i, x)
			want := lineOf(b, i)
			require.Equal(t, want, ve.Line, "byte %d ^ %#x: %v", i, x, err)
			require.Equal(t, uint64(want), ve.Seq)
			require.Equal(t, want-1, n)
		}
	}
}

func TestVerify_Errors(t *testing.T) {
	_, b := writeLog(t, 4)
	lines := strings.SplitAfter(string(b), "\n")[:4]
	join := func(idx ...int) string {
		var s strings.Builder
		for _, i := range idx {
			s.WriteString(lines[i])
		}
		return s.String()
	}
	tests := []struct {
		name, log, err string
		n              int
	}{
		{"first deleted", join(1, 2, 3), "audit: line 1 (record 1): out of sequence: expected record 1, found 2", 0},
		{"middle deleted", join(0, 2, 3), "audit: line 2 (record 2): out of sequence: expected record 2, found 3", 1},
		{"reordered", join(0, 2, 1, 3), "audit: line 2 (record 2): out of sequence: expected record 2, found 3", 1},
		{"duplicated", join(0, 1, 1, 2, 3), "audit: line 3 (record 3): out of sequence: expected record 3, found 2", 2},
		{"last line cut mid-record", join(0, 1, 2) + lines[3][:40], "audit: line 4 (record 4): the last record is truncated (no newline at end of file)", 3},
		{"newline dropped", strings.TrimSuffix(join(0, 1, 2, 3), "\n"), "audit: line 4 (record 4): the last record is truncated (no newline at end of file)", 3},
		{"empty line", join(0) + "\n" + join(1), "audit: line 2 (record 2): missing or malformed hash", 1},
		{"blank", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Verify(strings.NewReader(tc.log))
			require.Equal(t, tc.n, n)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
			_, err = Tail(strings.NewReader(tc.log), 10)
			require.EqualError(t, err, tc.err, "Tail verifies too")
		})
	}

	// Records cut from the end leave a consistent chain: only the anchored
	// head shows it.
	n, err := Verify(strings.NewReader(join(0, 1, 2)))
	require.NoError(t, err)
	require.Equal(t, 3, n)
}

// forge rewrites a line's body and recomputes its own hash, as someone who
// can write the file could; the chain still catches it downstream, and the
// canonical-form check catches spellings a reader would misread.
func forge(body string) string {
	h := sha256hex([]byte(body))
	return body[:len(body)-1] + hashKey + h + "\"}\n"
}

func TestVerify_ForgedLines(t *testing.T) {
	_, b := writeLog(t, 2)
	lines := strings.SplitAfter(string(b), "\n")[:2]
	body0 := lines[0][:strings.LastIndex(lines[0], hashKey)] + "}"

	// Rehashed edit of record 1: record 1 verifies, record 2's prev breaks.
	edited := forge(strings.Replace(body0, `"status":200`, `"status":201`, 1))
	_, err := Verify(strings.NewReader(edited + lines[1]))
	require.EqualError(t, err, "audit: line 2 (record 2): chain broken: prev is not the hash of the record before")

	// Duplicate keys hashed correctly: a reader might see status 200, the
	// decoder 500.
	dup := forge(strings.Replace(body0, `"status":200`, `"status":200,"status":500`, 1))
	_, err = Verify(strings.NewReader(dup))
	require.EqualError(t, err, "audit: line 1 (record 1): record is not in canonical form")

	spaced := forge(strings.Replace(body0, `"seq":1`, `"seq": 1`, 1))
	_, err = Verify(strings.NewReader(spaced))
	require.EqualError(t, err, "audit: line 1 (record 1): record is not in canonical form")

	unknown := forge(strings.Replace(body0, `"seq":1`, `"seq":1,"x":1`, 1))
	_, err = Verify(strings.NewReader(unknown))
	require.EqualError(t, err, `audit: line 1 (record 1): malformed record: json: unknown field "x"`)

	upper := strings.Replace(lines[0], hashKey+lines[0][len(lines[0])-67:len(lines[0])-3], hashKey+strings.ToUpper(lines[0][len(lines[0])-67:len(lines[0])-3]), 1)
	_, err = Verify(strings.NewReader(upper))
	require.EqualError(t, err, "audit: line 1 (record 1): missing or malformed hash")
}

func TestAppend_Hammer(t *testing.T) {
	l, path := openTemp(t)
	const workers, each = 8, 40
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Append(sample(w*each + i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n, err := Verify(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, workers*each, n)
}

func TestAppend_StickyWriteError(t *testing.T) {
	l, _ := openTemp(t)
	require.NoError(t, l.f.Close()) // make the next write fail
	err := l.Append(Record{Kind: KindRun})
	require.Error(t, err)
	err = l.Append(Record{Kind: KindRun})
	require.ErrorContains(t, err, "audit: append: an earlier write failed, the log may be torn")
	require.False(t, errors.Is(err, ErrClosed))
}

func TestVerifyError(t *testing.T) {
	require.Equal(t, "audit: line 3 (record 3): x", (&VerifyError{Line: 3, Seq: 3, Reason: "x"}).Error())
	require.Equal(t, "audit: line 3: x", (&VerifyError{Line: 3, Reason: "x"}).Error())
	require.Equal(t, "audit: x", (&VerifyError{Reason: "x"}).Error())
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

func TestOpen_RefusesTailWithoutCompleteRecord(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.jsonl")
	huge := strings.Repeat("x", 2*MaxRecordBytes+10) + "\n"
	require.NoError(t, os.WriteFile(p, []byte(huge), 0o600))
	_, err := Open(p)
	require.EqualError(t, err, fmt.Sprintf("audit: open %s: audit: no complete record in the last %d bytes", p, 2*MaxRecordBytes+2))
}

func TestAppend_TwoWriters(t *testing.T) {
	// Two Logs on one file stand for two broker processes: their records
	// interleave into one valid chain.
	l1, path := openTemp(t)
	l2, err := Open(path)
	require.NoError(t, err)
	defer l2.Close()
	for i := 0; i < 10; i++ {
		require.NoError(t, l1.Append(Record{Kind: KindEgress, Reason: "from one"}))
		require.NoError(t, l2.Append(Record{Kind: KindEgress, Reason: "from two"}))
	}
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	n, err := Verify(f)
	require.NoError(t, err)
	require.Equal(t, 20, n)
}

// chainHead returns the seq and hash of the last record l wrote or read.
func chainHead(l *Log) (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}
