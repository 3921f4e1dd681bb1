package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
)

// procSpec says how to start a child process (broker or worker). It is what
// our go-plugin RunnerFunc builds the command from: go-plugin's own runner
// would set Stdin to our stdin and offers no way to add descriptors,
// namespaces or a cgroup.
type procSpec struct {
	// Path and Args start the binary.
	Path string
	Args []string
	// Env is added to go-plugin's handshake variables; nothing else of the
	// supervisor's environment reaches the child.
	Env []string
	// ExtraFiles become descriptors 3, 4, ...
	ExtraFiles []*os.File
	// Prepare may adjust the command (namespaces, credentials) just
	// before it starts.
	Prepare func(cmd *exec.Cmd, socketDir string) error
	// Started runs right after the process started (cgroup placement).
	Started func(pid int) error
}

// newPluginClient returns the go-plugin client that starts spec (net/rpc,
// none of the supervisor's environment, its socket directory made in
// sockDir) and hands the started process to started.
func newPluginClient(spec procSpec, hs plugin.HandshakeConfig, plugins map[string]plugin.Plugin, sockDir string, log hclog.Logger, started func(*procRunner)) *plugin.Client {
	rf := runnerFunc(spec)
	return plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: hs,
		Plugins:         plugins,
		RunnerFunc: func(l hclog.Logger, cmd *exec.Cmd, dir string) (runner.Runner, error) {
			r, err := rf(l, cmd, dir)
			if err == nil {
				started(r.(*procRunner))
			}
			return r, err
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC},
		SkipHostEnv:      true,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: sockDir},
		StartTimeout:     10 * time.Second,
		Logger:           quietKills(log),
	})
}

// runnerFunc returns a go-plugin RunnerFunc that starts spec.
func runnerFunc(spec procSpec) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(log hclog.Logger, pluginCmd *exec.Cmd, socketDir string) (runner.Runner, error) {
		cmd := exec.Command(spec.Path, spec.Args...)
		// go-plugin's spec carries the handshake variables and
		// PLUGIN_UNIX_SOCKET_DIR; SkipHostEnv keeps ours out of it.
		cmd.Env = append(append([]string{}, pluginCmd.Env...), spec.Env...)
		cmd.Stdin = nil // /dev/null: a child never reads our terminal
		cmd.Dir = "/"
		cmd.ExtraFiles = spec.ExtraFiles
		cmd.SysProcAttr = &syscall.SysProcAttr{
			// Security: the child dies with us, even on SIGKILL of the
			// supervisor, and is in its own process group so a kill
			// reaches anything it started.
			Pdeathsig: syscall.SIGKILL,
			Setpgid:   true,
		}
		if spec.Prepare != nil {
			if err := spec.Prepare(cmd, socketDir); err != nil {
				return nil, err
			}
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, err
		}
		return &procRunner{cmd: cmd, stdout: stdout, stderr: stderr, started: spec.Started, log: log, done: make(chan struct{})}, nil
	}
}

// procRunner implements go-plugin's runner.Runner over our own exec.Cmd.
type procRunner struct {
	cmd     *exec.Cmd
	stdout  io.ReadCloser
	stderr  io.ReadCloser
	started func(pid int) error
	log     hclog.Logger

	// done is closed once the process has been reaped; waitErr is its
	// wait status then.
	done     chan struct{}
	doneOnce sync.Once

	mu      sync.Mutex
	pid     int
	waitErr error
}

var _ runner.Runner = (*procRunner)(nil)

func (r *procRunner) Start(context.Context) error {
	// go-plugin calls Wait only after a successful Start: on failure the
	// runner ends its own process, so that nothing waits for an exit
	// that is never reported.
	if err := r.cmd.Start(); err != nil {
		r.doneOnce.Do(func() { close(r.done) })
		return fmt.Errorf("start %s: %w", r.cmd.Path, err)
	}
	r.mu.Lock()
	r.pid = r.cmd.Process.Pid
	r.mu.Unlock()
	// The child's copies of the passed descriptors are its own now.
	for _, f := range r.cmd.ExtraFiles {
		f.Close()
	}
	if r.started != nil {
		if err := r.started(r.pid); err != nil {
			_ = r.Kill(context.Background())
			_ = r.Wait(context.Background())
			return err
		}
	}
	return nil
}

func (r *procRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.mu.Lock()
	r.waitErr = err
	r.mu.Unlock()
	r.doneOnce.Do(func() { close(r.done) })
	return err
}

// waitExit waits up to d for the process to be reaped and reports whether
// it was (go-plugin calls Wait as soon as the process has started).
func (r *procRunner) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.done:
		return true
	case <-t.C:
		return false
	}
}

// exitDetail describes how the process ended, once it has been reaped
// (waiting up to half a second for that); empty if it has not been.
func (r *procRunner) exitDetail() string {
	if r == nil || !r.waitExit(500*time.Millisecond) {
		return ""
	}
	r.mu.Lock()
	err := r.waitErr
	r.mu.Unlock()
	if err == nil {
		return " (it exited with status 0)"
	}
	return " (" + err.Error() + ")"
}

// Kill sends SIGKILL to the child's process group at once: a worker gets no
// grace period, it holds nothing worth saving.
func (r *procRunner) Kill(context.Context) error {
	r.mu.Lock()
	pid := r.pid
	r.mu.Unlock()
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		err = nil
	}
	if err != nil {
		if perr := r.cmd.Process.Kill(); perr != nil && !errors.Is(perr, os.ErrProcessDone) {
			return perr
		}
	}
	return nil
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.cmd.Path }

func (r *procRunner) ID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strconv.Itoa(r.pid)
}

// Pid returns the child's process id (0 before Start).
func (r *procRunner) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

func (r *procRunner) Diagnose(context.Context) string {
	return "the child failed the go-plugin handshake; is " + r.cmd.Path + " an aileron binary of the same version?"
}

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
