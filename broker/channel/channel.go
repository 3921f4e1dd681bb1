// Package channel is the wire protocol between a worker and the broker.
//
// Each worker gets one end of a socketpair that the supervisor created for
// it; the broker holds the other end together with the grant the supervisor
// registered for it. The broker therefore knows which invocation a request
// belongs to by the socket it arrived on: nothing in a message names the
// connector, the run or the credential.
//
// # Framing
//
// A frame is a 4-byte big-endian length followed by that many bytes of JSON.
// The worker sends a [Request] and waits for the [Response]; there is one
// request in flight per channel. Frames over [MaxFrame] end the channel.
//
// The package imports only the standard library and sdk/abi so the worker
// binary stays lean.
package channel

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"aileron.dev/aileron/sdk/abi"
)

// MaxFrame bounds one frame: the largest request or response body plus
// JSON and base64 overhead.
const MaxFrame = abi.MaxRequestBytes*4/3 + 64<<10

// Operations a worker may request.
const (
	// OpHTTP sends Request.HTTP through the egress policy.
	OpHTTP = "http"
	// OpAudit appends Request.Audit to the audit log.
	OpAudit = "audit"
)

// Request is one worker-to-broker message.
type Request struct {
	Op    string           `json:"op"`
	HTTP  *abi.HTTPRequest `json:"http,omitempty"`
	Audit *abi.AuditEvent  `json:"audit,omitempty"`
}

// Response answers one Request. Errno is abi.ErrnoOK with HTTP set for a
// successful OpHTTP; otherwise Error says why.
type Response struct {
	Errno abi.Errno         `json:"errno"`
	HTTP  *abi.HTTPResponse `json:"http,omitempty"`
	Error *abi.Error        `json:"error,omitempty"`
}

// ErrFrameTooLarge is returned when a peer announces a frame over MaxFrame.
var ErrFrameTooLarge = errors.New("channel frame exceeds the size limit")

// WriteFrame encodes v as one frame.
func WriteFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	if len(b) > MaxFrame {
		return ErrFrameTooLarge
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// ReadFrame reads one frame and decodes it strictly (unknown fields are an
// error) into v. io.EOF means the peer closed the channel between frames.
func ReadFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return ErrFrameTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read frame body: %w", err)
	}
	switch err := abi.DecodeStrict(b, v); {
	case errors.Is(err, abi.ErrTrailingData):
		return errors.New("decode frame: trailing data")
	case err != nil:
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}
