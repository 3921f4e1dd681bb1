package supervisor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/worker"
)

// TestKeepWarmArtifact: the supervisor takes a worker's compiled warm
// module only when it had none to give, and never replaces a cached one.
func TestKeepWarmArtifact(t *testing.T) {
	store, err := cas.Open(filepath.Join(t.TempDir(), "store"))
	require.NoError(t, err)
	s := &Supervisor{store: store, log: hclog.NewNullLogger()}
	name, id := s.warmArtifact()
	require.Empty(t, name+id, "nothing cached, no configuration seen")

	given := worker.SandboxArgs{Warm: true, WarmArtifact: "x.cwasm", WarmConfigID: "cfg"}
	s.keepWarmArtifact(given, worker.SandboxReply{ConfigID: "cfg", WarmArtifact: []byte("from a worker that was given one")})
	_, err = store.Compiled(warmModule, "cfg")
	require.ErrorIs(t, err, cas.ErrCompiledMissing, "taken although an artifact was given")

	none := worker.SandboxArgs{Warm: true}
	s.keepWarmArtifact(none, worker.SandboxReply{ConfigID: "cfg", WarmArtifact: []byte("first")})
	path, err := store.Compiled(warmModule, "cfg")
	require.NoError(t, err)
	name, id = s.warmArtifact()
	require.Equal(t, filepath.Base(path), name)
	require.Equal(t, "cfg", id)

	// A fresh supervisor (no configuration seen yet) whose first worker
	// compiled again keeps the cached artifact.
	s2 := &Supervisor{store: store, log: hclog.NewNullLogger()}
	s2.keepWarmArtifact(none, worker.SandboxReply{ConfigID: "cfg", WarmArtifact: []byte("second")})
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "first", string(b))
	name, _ = s2.warmArtifact()
	require.Equal(t, filepath.Base(path), name)
}
