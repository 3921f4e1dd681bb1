package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"aileron.dev/aileron/sdk/abi"
)

// VerifyError names the first record that does not verify.
type VerifyError struct {
	// Line is the 1-based line number, or 0 when unknown (while [Open]
	// checks only the tail of a file).
	Line int
	// Seq is the sequence number the record at that line should have, or
	// 0 when unknown.
	Seq uint64
	// Reason says what is wrong.
	Reason string
}

// Error returns "audit: line L (record S): reason".
func (e *VerifyError) Error() string {
	s := "audit: "
	if e.Line > 0 {
		s += "line " + strconv.Itoa(e.Line) + " "
	}
	if e.Seq > 0 {
		s += "(record " + strconv.FormatUint(e.Seq, 10) + ") "
	}
	if len(s) > len("audit: ") {
		s = s[:len(s)-1] + ": "
	}
	return s + e.Reason
}

// Verify reads a whole log and checks every record: its own hash, its
// canonical form, that seq counts up from 1 without gaps, and that prev is
// the hash of the record before. It returns how many records verified; err
// is a [*VerifyError] naming the first one that did not, or a read error.
// Any edited byte, deleted, inserted or reordered record, or a last line cut
// short, is detected; records cut from the end are not (compare the last
// hash with an anchored copy of the head).
func Verify(r io.Reader) (int, error) {
	s := &scanner{anchored: true, prev: Genesis}
	return s.all(r, nil)
}

// Tail verifies a whole log like [Verify] and returns its last n records
// (fewer if the log is shorter). It returns an error, and no records, if
// the log does not verify: never show records that cannot be trusted.
func Tail(r io.Reader, n int) ([]Record, error) {
	if n <= 0 {
		_, err := Verify(r)
		return nil, err
	}
	ring := make([]Record, 0, min(n, 1024))
	start := 0
	s := &scanner{anchored: true, prev: Genesis}
	_, err := s.all(r, func(rec Record) {
		if len(ring) < n {
			ring = append(ring, rec)
			return
		}
		ring[start] = rec
		start = (start + 1) % n
	})
	if err != nil {
		return nil, err
	}
	return append(ring[start:], ring[:start]...), nil
}

// scanner checks records in order.
type scanner struct {
	anchored bool   // the first record must be seq 1 after Genesis
	line     int    // lines read so far; negative when unknown
	n        int    // records verified
	seq      uint64 // seq of the last verified record
	prev     string // hash of the last verified record
}

func (s *scanner) fail(reason string) *VerifyError {
	e := &VerifyError{Reason: reason}
	if s.line > 0 {
		e.Line = s.line
	}
	if s.anchored || s.n > 0 {
		e.Seq = s.seq + 1
	}
	return e
}

func (s *scanner) all(r io.Reader, fn func(Record)) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if len(line) == 0 && err == io.EOF {
			return s.n, nil
		}
		if s.line >= 0 {
			s.line++
		}
		switch {
		case errors.Is(err, errLineTooLong):
			return s.n, s.fail(fmt.Sprintf("record longer than %d bytes", MaxRecordBytes))
		case err == io.EOF:
			return s.n, s.fail("the last record is truncated (no newline at end of file)")
		case err != nil:
			return s.n, fmt.Errorf("audit: read: %w", err)
		}
		rec, reason := s.check(line[:len(line)-1])
		if reason != "" {
			return s.n, s.fail(reason)
		}
		s.n++
		s.seq, s.prev = rec.Seq, rec.Hash
		if fn != nil {
			fn(rec)
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line including its '\n', or what is left at
// EOF with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > MaxRecordBytes {
			return buf, errLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return buf, err
	}
}

// check verifies one line (without its newline) against the chain so far.
func (s *scanner) check(line []byte) (Record, string) {
	n := len(line)
	tail := len(hashKey) + 64 + 2 // ,"hash":"<64 hex>"}
	if n < tail+2 || !bytes.HasSuffix(line, []byte(`"}`)) || !bytes.Equal(line[n-tail:n-tail+len(hashKey)], []byte(hashKey)) {
		return Record{}, "missing or malformed hash"
	}
	h := line[n-66 : n-2]
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return Record{}, "missing or malformed hash"
		}
	}
	body := append(line[:n-tail:n-tail], '}')
	if sha256hex(body) != string(h) {
		return Record{}, "hash mismatch: the record was modified"
	}
	var r Record
	if err := abi.DecodeStrictNumbers(body, &r); err != nil {
		return Record{}, "malformed record: " + err.Error()
	}
	// Security: one byte sequence per record. Duplicate keys or other
	// spellings would let a reader and a verifier see different values.
	if again, err := marshal(r); err != nil || !bytes.Equal(again, body) {
		return Record{}, "record is not in canonical form"
	}
	if r.Kind == "" {
		return Record{}, "record has no kind"
	}
	if s.anchored || s.n > 0 {
		if want := s.seq + 1; r.Seq != want {
			return Record{}, fmt.Sprintf("out of sequence: expected record %d, found %d", want, r.Seq)
		}
		if r.Prev != s.prev {
			return Record{}, "chain broken: prev is not the hash of the record before"
		}
	}
	r.Hash = string(h)
	return r, ""
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
