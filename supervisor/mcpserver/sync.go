package mcpserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
)

// tool is one action ready to register.
type tool struct {
	def    *mcp.Tool
	action *manifest.Action
	// fingerprint changes whenever the tool or the action behind it does.
	fingerprint string
}

// Sync brings the tool list in line with the actions directory and the
// store: it adds tools for new action files, replaces those whose file or
// description changed and removes those whose file is gone. Connected
// clients are told through notifications/tools/list_changed. When nothing
// changed since the last Sync (names, sizes and modification times of both
// directories), it reads no file.
//
// An action file that does not parse or whose inputs cannot become a
// schema is skipped with a warning in the log. Sync fails only if a
// directory cannot be read.
func (s *Server) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := snapshot(s.cfg.ActionsDir, s.indexDir())
	if err != nil {
		return err
	}
	if snap == s.snap {
		return nil
	}
	want, err := s.scan()
	if err != nil {
		return err
	}
	var gone []string
	for name := range s.tools {
		if _, ok := want[name]; !ok {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	if len(gone) > 0 {
		s.mcp.RemoveTools(gone...)
		for _, name := range gone {
			delete(s.tools, name)
			s.log.Info("tool removed", logTool, name)
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := want[name]
		if s.tools[name] == t.fingerprint {
			continue
		}
		if err := s.addTool(t); err != nil {
			s.log.Error("action skipped", logTool, name, logAction, t.action.Name, logReason, err)
			s.mcp.RemoveTools(name)
			delete(s.tools, name)
			continue
		}
		s.tools[name] = t.fingerprint
		s.log.Info("tool added", logTool, name, logAction, t.action.Name)
	}
	s.snap = snap
	return nil
}

// addTool registers t with the SDK, which validates each call's arguments
// against t's input schema before our handler runs.
func (s *Server) addTool(t *tool) (err error) {
	// ActionSchema resolved the schema, so the SDK cannot refuse it; if it
	// ever does, it panics, and one bad action must not take the server
	// down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("BUG(aileron): the MCP SDK refused the tool: %v", r)
		}
	}()
	mcp.AddTool(s.mcp, t.def, s.handler(t.def.Name, t.action))
	return nil
}

// indexDir is the store's index of installed connectors: a connector
// installed or removed changes tool descriptions.
func (s *Server) indexDir() string {
	if st := s.cfg.Runner.Store(); st != nil {
		return st.IndexDir()
	}
	return ""
}

// scan reads every action file and builds the tools they define.
func (s *Server) scan() (map[string]*tool, error) {
	ents, err := os.ReadDir(s.cfg.ActionsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read actions: %w", err)
	}
	type parsed struct {
		action *manifest.Action
		sum    string
	}
	files := map[string]parsed{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".toml") {
			continue
		}
		path := filepath.Join(s.cfg.ActionsDir, e.Name())
		a, sum, err := readAction(path)
		if err != nil {
			s.log.Warn("action skipped", logFile, path, logReason, err)
			continue
		}
		files[e.Name()] = parsed{a, sum}
	}
	actionNames := make(map[string]string, len(files))
	for f, p := range files {
		actionNames[f] = p.action.Name
	}
	toolNames := AssignToolNames(actionNames)
	installed := s.installed()
	out := make(map[string]*tool, len(files))
	for f, p := range files {
		schema, err := ActionSchema(p.action)
		if err != nil {
			s.log.Warn("action skipped", logFile, filepath.Join(s.cfg.ActionsDir, f), logAction, p.action.Name, logReason, err)
			continue
		}
		def := &mcp.Tool{
			Name:        toolNames[f],
			Title:       p.action.Name,
			Description: Description(p.action, installed(p.action)),
			InputSchema: schema,
			// The tool reaches external services; nothing says it is
			// read-only or idempotent, so the defaults (may change
			// things) stand.
			Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(true)},
		}
		b, err := json.Marshal(def)
		if err != nil {
			s.log.Warn("action skipped", logFile, filepath.Join(s.cfg.ActionsDir, f), logReason, err)
			continue
		}
		h := sha256.Sum256(append(b, p.sum...))
		out[def.Name] = &tool{def: def, action: p.action, fingerprint: hex.EncodeToString(h[:])}
	}
	return out, nil
}

// installed returns a function giving the installed manifests of an
// action's connectors, reading each one from the store once per scan.
func (s *Server) installed() func(a *manifest.Action) map[string]*manifest.Manifest {
	st := s.cfg.Runner.Store()
	cache := map[string]*manifest.Manifest{}
	return func(a *manifest.Action) map[string]*manifest.Manifest {
		out := map[string]*manifest.Manifest{}
		if st == nil {
			return out
		}
		for _, req := range a.Requires {
			ref := req.Ref().String()
			m, ok := cache[ref]
			if !ok {
				if inst, err := st.Connector(ref); err == nil {
					m = inst.Manifest
				} else if !errors.Is(err, cas.ErrNotFound) {
					s.log.Warn("cannot read installed connector", "ref", ref, logError, err)
				}
				cache[ref] = m
			}
			if m != nil {
				out[req.Name.String()] = m
			}
		}
		return out
	}
}

// readAction reads and parses one action file; sum is the hash of its
// bytes.
func readAction(path string) (*manifest.Action, string, error) {
	b, err := manifest.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	a, err := manifest.ParseAction(path, b)
	if err != nil {
		return nil, "", err
	}
	h := sha256.Sum256(b)
	return a, hex.EncodeToString(h[:]), nil
}

// snapshot fingerprints directories by the name, size, mode and
// modification time of each entry. A directory that does not exist (or
// "") counts as empty.
func snapshot(dirs ...string) (string, error) {
	var b strings.Builder
	for _, dir := range dirs {
		fmt.Fprintf(&b, "%q\n", dir)
		if dir == "" {
			continue
		}
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", dir, err)
		}
		for _, e := range ents {
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since ReadDir
			}
			if err != nil {
				return "", fmt.Errorf("stat %s: %w", filepath.Join(dir, e.Name()), err)
			}
			fmt.Fprintf(&b, "%q %d %v %d\n", e.Name(), info.Size(), info.Mode(), info.ModTime().UnixNano())
		}
	}
	return b.String(), nil
}
