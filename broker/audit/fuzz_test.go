package audit

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzVerify(f *testing.F) {
	// Seed with a real log, its pieces and near misses.
	path := filepath.Join(f.TempDir(), "seed.jsonl")
	l, err := Open(path)
	if err != nil {
		f.Fatal(err)
	}
	var good bytes.Buffer
	for i := 0; i < 3; i++ {
		rec := sample(i)
		if err := l.Append(rec); err != nil {
			f.Fatal(err)
		}
	}
	l.Close()
	b, _ := readFile(path)
	good.Write(b)
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:good.Len()/2])
	f.Add([]byte(strings.SplitAfter(good.String(), "\n")[1]))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"hash":"` + strings.Repeat("0", 64) + `"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Verify(bytes.NewReader(data))
		recs, terr := Tail(bytes.NewReader(data), 2)
		if (err == nil) != (terr == nil) {
			t.Fatalf("Verify %v, Tail %v", err, terr)
		}
		if err != nil {
			if _, ok := err.(*VerifyError); !ok {
				t.Fatalf("not a VerifyError: %v", err)
			}
			return
		}
		if len(recs) != min(n, 2) {
			t.Fatalf("Tail returned %d of %d", len(recs), n)
		}
		// A log that verifies re-encodes to itself, record by record.
		var again bytes.Buffer
		all, _ := Tail(bytes.NewReader(data), n+1)
		for _, r := range all {
			line, h, err := encodeLine(r)
			if err != nil || h != r.Hash {
				t.Fatalf("re-encoding record %d: %v", r.Seq, err)
			}
			again.Write(line)
		}
		if !bytes.Equal(again.Bytes(), data) {
			t.Fatalf("verified log does not re-encode to itself")
		}
	})
}

// BenchmarkAppend measures one record per Append, with the fsync the Log
// always does and, for comparison, without it.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "fsync"
		if !sync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) {
			l, err := Open(filepath.Join(b.TempDir(), "bench.jsonl"))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			l.sync = sync
			rec := sample(0)
			for b.Loop() {
				if err := l.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendParallel shows group commit: concurrent appenders share
// fsyncs.
func BenchmarkAppendParallel(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "bench.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := sample(0)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// FuzzAppend appends records with arbitrary text and checks that they
// verify: canonical encoding must be a fixed point for any input.
func FuzzAppend(f *testing.F) {
	f.Add("reason", "\xff\xfe", "key", "value", 1.5)
	f.Add("<&>\u2028", "\\ufffd", "", "\x00", math.Copysign(0, -1))
	f.Fuzz(func(t *testing.T, reason, host, key, val string, num float64) {
		l, err := Open(filepath.Join(t.TempDir(), "f.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.sync = false
		recs := []Record{
			{Kind: KindEgress, Reason: reason, Host: host, DurationMS: num},
			{Kind: KindConnectorEvent, Event: val, Fields: map[string]any{key: val, "n": num, "l": []any{reason, num}}},
		}
		for _, r := range recs {
			if err := l.Append(r); err != nil {
				if strings.Contains(err.Error(), "unsupported value") { // NaN, Inf
					return
				}
				t.Fatal(err)
			}
		}
		b, _ := readFile(l.path)
		if n, err := Verify(bytes.NewReader(b)); err != nil || n != 2 {
			t.Fatalf("appended log does not verify: %d, %v\n%s", n, err, b)
		}
	})
}
