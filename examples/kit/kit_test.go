package kit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The Makefile and BuildWorker must build the same worker: the integration
// tests' fallback build and the escape-probe worker use BuildWorker.
func TestMakefileBuildsWorkerLikeBuildWorker(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "Makefile"))
	require.NoError(t, err)
	want := `WORKER_FLAGS := -tags ` + WorkerTags + ` -ldflags "` + WorkerLDFlags + `"`
	var got string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "WORKER_FLAGS :=") {
			got = line
		}
	}
	require.Equal(t, want, got)
	require.Contains(t, string(b), "$(WORKER_FLAGS) -o $(BIN)/aileron-worker ./cmd/aileron-worker")
}
