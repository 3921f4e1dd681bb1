// Package kit builds what the demo and the integration tests run: the
// aileron binaries, connector modules (stock Go, GOOS=wasip1), connector
// packages, and action files pinned to the connectors just built. It uses
// the same library code as `aileron connector pack`.
package kit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
)

// RepoRoot finds the module root from this source file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// GoBuild runs `go build -trimpath -o out pkg` in the repository with env
// added to the environment.
func GoBuild(ctx context.Context, out, pkg string, env ...string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
	}
	return nil
}

// How aileron-worker is built; the Makefile's WORKER_FLAGS and
// STATIC_LINK_NOTICES say the same (a test keeps them equal). The worker is
// linked statically: one starts per connector per run, and without the
// dynamic loader's work each costs ~1 ms less CPU (docs/PERFORMANCE.md).
// netgo and osusergo keep Go's own resolvers out.
const (
	WorkerTags    = "netgo,osusergo"
	WorkerLDFlags = "-linkmode external -extldflags '-static'"
)

// StaticLinkNotices matches the lines of the three warnings ld prints when
// it links the worker statically: wasmtime's Rust code links glibc's
// getpwuid_r (its cache directory), getaddrinfo (std's name lookup) and
// dlopen (the VTune profiling hook), which a static binary could only use
// with the host's libraries at run time. The worker calls none of them (no
// cache configuration, no name lookup in WASI preview 1, no profiler).
// Any other linker output is shown, and fails BuildWorker.
const StaticLinkNotices = `^# aileron.dev/aileron/cmd/aileron-worker$|in function .(directories_next::ProjectDirs::from|<std::sys::net::connection::socket::LookupHost as |loadiJIT_Funcs)|warning: Using '(getpwuid_r|getaddrinfo|dlopen)' in statically linked applications`

var staticLinkNotices = regexp.MustCompile(StaticLinkNotices)

// BuildWorker builds aileron-worker to out as `make build` does, with
// extraTags added to its build tags. Linker output other than
// StaticLinkNotices is an error: a new static-linking warning must be read
// by a person.
func BuildWorker(ctx context.Context, out string, extraTags ...string) error {
	tags := strings.Join(append([]string{WorkerTags}, extraTags...), ",")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", tags, "-ldflags", WorkerLDFlags, "-o", out, "./cmd/aileron-worker")
	cmd.Dir = RepoRoot()
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/aileron-worker: %w\n%s", err, b)
	}
	var unexpected []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" && !staticLinkNotices.MatchString(line) {
			unexpected = append(unexpected, line)
		}
	}
	if len(unexpected) > 0 {
		return fmt.Errorf("go build ./cmd/aileron-worker: unexpected linker output:\n%s", strings.Join(unexpected, "\n"))
	}
	return nil
}

// BuildBinaries builds aileron-worker and then aileron into dir, embedding
// the worker's sha256 in aileron as `make build` does.
func BuildBinaries(ctx context.Context, dir string) error {
	worker := filepath.Join(dir, "aileron-worker")
	if err := BuildWorker(ctx, worker); err != nil {
		return err
	}
	b, err := os.ReadFile(worker)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags",
		"-X aileron.dev/aileron/supervisor.workerSHA256="+hex.EncodeToString(sum[:]), "-o", filepath.Join(dir, "aileron"), "./cmd/aileron")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/aileron: %w\n%s", err, out)
	}
	return nil
}

// BuildConnector compiles the Go connector in pkg (e.g.
// "./examples/connectors/notes") to out with GOOS=wasip1 GOARCH=wasm.
func BuildConnector(ctx context.Context, pkg, out string) error {
	return GoBuild(ctx, out, pkg, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

// PackConnector builds the connector in srcDir (relative to the repository,
// holding main.go and manifest.toml) and packs it into outDir.
func PackConnector(ctx context.Context, srcDir, outDir string) (*manifest.Manifest, error) {
	wasm := filepath.Join(outDir, "build.wasm")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	if err := BuildConnector(ctx, "./"+filepath.ToSlash(srcDir), wasm); err != nil {
		return nil, err
	}
	defer os.Remove(wasm)
	return cas.Pack(filepath.Join(RepoRoot(), srcDir, cas.ManifestFile), wasm, outDir)
}

var hashLine = regexp.MustCompile(`(?m)^(\s*hash\s*=\s*)"[^"]*"`)

// PinAction writes src to dst with each [[requires.connectors]] hash set to
// the provenance hash of the packed manifest of the same name and version.
func PinAction(src, dst string, packed ...*manifest.Manifest) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	a, err := manifest.ParseAction(src, b)
	if err != nil {
		return err
	}
	blocks := strings.Split(string(b), "[[requires.connectors]]")
	if len(blocks)-1 != len(a.Requires) {
		return fmt.Errorf("%s: cannot pin: expected one [[requires.connectors]] header per requirement", src)
	}
	for i, req := range a.Requires {
		var hash string
		for _, m := range packed {
			if m.Connector.Name == req.Name && m.Connector.Version == req.Version {
				hash = m.Connector.ProvenanceHash
			}
		}
		if hash == "" {
			return fmt.Errorf("%s: no packed connector %s@%s", src, req.Name, req.Version)
		}
		blocks[i+1] = hashLine.ReplaceAllString(blocks[i+1], `${1}"`+hash+`"`)
	}
	out := []byte(strings.Join(blocks, "[[requires.connectors]]"))
	if _, err := manifest.ParseAction(dst, out); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, out, 0o644)
}
