package supervisor

import (
	"errors"
	"fmt"
	"path/filepath"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/worker"
)

// compiled returns the path of the verified compiled artifact of inst for
// w's engine configuration, compiling it in w (a sandboxed worker: compiling
// is processing untrusted input) when the cache has none or a corrupt one.
//
// Concurrent runs that miss the cache for the same module share one compile
// (Cranelift takes seconds; a cold server hit by N requests must not compile
// N times); tenants that share a worker source share it too.
func (s *Supervisor) compiled(w *workerProc, inst *cas.Installed) (string, error) {
	id := w.configID
	if id == "" {
		return "", errors.New("worker reported no engine configuration")
	}
	path, err := s.store.Compiled(inst.Entry.Wasm, id)
	if err == nil {
		return path, nil
	}
	if errors.Is(err, cas.ErrCorrupt) {
		// Compiled removed it; the compile below rebuilds it.
		s.log.Warn("compiled module failed verification; removed and rebuilding", "connector", inst.Entry.Ref, "error", err)
	}
	group := &s.compiles
	if s.cfg.WorkerSource != nil {
		group = &s.cfg.WorkerSource.compiles
	}
	v, err, _ := group.Do(string(inst.Entry.Wasm)+" "+id, func() (any, error) {
		return s.compile(w, inst, id)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// compile compiles inst in w and stores the artifact, unless another
// compile stored it meanwhile.
func (s *Supervisor) compile(w *workerProc, inst *cas.Installed, id string) (string, error) {
	path, err := s.store.Compiled(inst.Entry.Wasm, id)
	if err == nil {
		return path, nil
	}
	if !errors.Is(err, cas.ErrCompiledMissing) {
		return "", err
	}
	// The wasm blob is re-hashed as it is read.
	wasm, err := s.store.Read(inst.Entry.Wasm, cas.MaxWasmBytes)
	if err != nil {
		return "", err
	}
	reply, err := w.rpc.Compile(worker.CompileArgs{Wasm: wasm})
	if err != nil {
		return "", err
	}
	if reply.ConfigID != id {
		return "", fmt.Errorf("worker compiled for %q but reported %q", reply.ConfigID, id)
	}
	return s.store.PutCompiled(inst.Entry.Wasm, id, reply.Artifact)
}

// warmModule is the cache key of worker.WarmModule.
var warmModule = cas.Sum([]byte(worker.WarmModule))

// warmArtifact returns the name in the compiled-module cache of the
// verified compiled warm module for the configuration pooled workers last
// reported, and that configuration; "" when there is none yet (the worker
// then compiles it).
func (s *Supervisor) warmArtifact() (name, configID string) {
	id := s.warmConfigID.Load()
	if id == nil {
		return "", ""
	}
	path, err := s.store.Compiled(warmModule, *id)
	if err != nil {
		return "", ""
	}
	return filepath.Base(path), *id
}

// keepWarmArtifact caches the warm module a pooled worker compiled, for
// the next ones, when the supervisor had none to give it: a cached one is
// never replaced by a worker's. The worker was spawned for the pool, ran
// nothing but the built-in module and passed its isolation check. A
// failure costs only the next workers' compile.
func (s *Supervisor) keepWarmArtifact(args worker.SandboxArgs, reply worker.SandboxReply) {
	if args.WarmArtifact != "" || len(reply.WarmArtifact) == 0 || reply.ConfigID == "" {
		return
	}
	if _, err := s.store.Compiled(warmModule, reply.ConfigID); err == nil {
		s.warmConfigID.Store(&reply.ConfigID) // an earlier supervisor cached it
		return
	}
	if _, err := s.store.PutCompiled(warmModule, reply.ConfigID, reply.WarmArtifact); err != nil {
		s.log.Warn("warm pool: cannot cache the compiled warm module", "error", err)
		return
	}
	s.warmConfigID.Store(&reply.ConfigID)
}
