package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadAtMost: the bound applies to the bytes read, so a FIFO (whose
// stat size is 0) cannot feed more than it.
func TestReadAtMost(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(strings.Repeat("x", n)), 0o600))
		return p
	}
	b, err := readAtMost(write("at", 16), 16)
	require.NoError(t, err)
	require.Len(t, b, 16)
	over := write("over", 17)
	_, err = readAtMost(over, 16)
	require.EqualError(t, err, over+": file is larger than 16 bytes")

	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = f.Write([]byte(strings.Repeat("x", 1<<16))) // EPIPE once the reader gives up
	}()
	_, err = readAtMost(fifo, 16)
	require.EqualError(t, err, fifo+": file is larger than 16 bytes")
}
