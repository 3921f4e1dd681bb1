package channel

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/sdk/abi"
)

func TestFrame_RoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := &Request{Op: OpHTTP, HTTP: &abi.HTTPRequest{Method: "GET", URL: "https://a.example/x", Body: []byte{0, 1, 2}}}
	require.NoError(t, WriteFrame(&buf, req))
	var got Request
	require.NoError(t, ReadFrame(&buf, &got))
	require.Equal(t, req, &got)
	require.ErrorIs(t, ReadFrame(&buf, &got), io.EOF)
}

func TestReadFrame_Errors(t *testing.T) {
	frame := func(n uint32, body string) []byte {
		b := make([]byte, 4, 4+len(body))
		binary.BigEndian.PutUint32(b, n)
		return append(b, body...)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"announces_too_much", frame(MaxFrame+1, ""), ErrFrameTooLarge.Error()},
		{"truncated_body", frame(10, "{}"), "read frame body: unexpected EOF"},
		{"truncated_header", []byte{0, 0}, "unexpected EOF"},
		{"not_json", frame(3, "abc"), "decode frame: invalid character 'a' looking for beginning of value"},
		{"unknown_field", frame(27, `{"op":"http","tenant":"x"}`+" "), `decode frame: json: unknown field "tenant"`},
		{"trailing_data", frame(14, `{"op":"x"} {}`+" "), "decode frame: trailing data"},
		// json.Decoder.More reports false before a stray '}' or ']'.
		{"stray_brace", frame(11, `{"op":"x"}}`), "decode frame: trailing data"},
		{"stray_bracket", frame(11, `{"op":"x"}]`), "decode frame: trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := ReadFrame(bytes.NewReader(tt.in), &r)
			require.EqualError(t, err, tt.want)
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteFrame(&buf, &Request{Op: OpAudit, Audit: &abi.AuditEvent{Event: "x"}})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := ReadFrame(bytes.NewReader(b), &r); err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same value.
		var out bytes.Buffer
		require.NoError(t, WriteFrame(&out, &r))
		var r2 Request
		require.NoError(t, ReadFrame(&out, &r2))
		require.Equal(t, r, r2)
	})
}
