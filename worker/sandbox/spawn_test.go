//go:build linux

package sandbox

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestApplySysProcAttr(t *testing.T) {
	requireRoot(t)
	bin := helperBinary(t)
	cmd := exec.Command(bin)
	require.NoError(t, SpawnConfig{Namespaces: true, HostUID: 61000, HostGID: 61001}.Apply(cmd))
	a := cmd.SysProcAttr
	require.Equal(t, uintptr(syscall.CLONE_NEWUSER|syscall.CLONE_NEWNET|syscall.CLONE_NEWPID|
		syscall.CLONE_NEWIPC|syscall.CLONE_NEWUTS|syscall.CLONE_NEWNS), a.Cloneflags)
	require.Equal(t, []syscall.SysProcIDMap{{ContainerID: 0, HostID: 61000, Size: 1}}, a.UidMappings)
	require.Equal(t, []syscall.SysProcIDMap{{ContainerID: 0, HostID: 61001, Size: 1}}, a.GidMappings)
	// Security: without a Credential the worker keeps host uid 0.
	require.Equal(t, &syscall.Credential{Uid: 0, Gid: 0}, a.Credential)
	require.True(t, a.GidMappingsEnableSetgroups, "so that Go's setgroups(0) drops the supervisor's groups")
	require.Equal(t, syscall.SIGKILL, a.Pdeathsig)
	require.True(t, a.Setsid)
	require.False(t, a.UseCgroupFD)

	cmd = exec.Command(bin)
	require.NoError(t, SpawnConfig{}.Apply(cmd))
	require.Zero(t, cmd.SysProcAttr.Cloneflags)
	require.Equal(t, &syscall.Credential{Uid: DefaultHostID, Gid: DefaultHostID}, cmd.SysProcAttr.Credential,
		"a root supervisor drops the worker to the host id even without namespaces")
}

func TestApply_Errors(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir() // 0700, owned by root
	bin := filepath.Join(dir, "worker")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755))
	open, err := os.MkdirTemp("", "aileron-apply-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(open) })
	require.NoError(t, os.Chmod(open, 0o755))
	private := filepath.Join(open, "worker")
	require.NoError(t, os.WriteFile(private, []byte("#!/bin/true\n"), 0o700))

	tests := []struct {
		name, path string
		want       string
	}{
		{"directory not searchable", bin, "spawn config: worker binary " + bin + ": directory " + filepath.Dir(dir) +
			" (mode 700, owner 0:0) is not searchable by uid 65534 gid 65534: not accessible to the worker's host uid"},
		{"file not executable", private, "spawn config: " + private +
			" (mode 700, owner 0:0) for uid 65534 gid 65534: not accessible to the worker's host uid"},
		{"missing", filepath.Join(open, "nope"), "spawn config: worker binary: lstat " + filepath.Join(open, "nope") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SpawnConfig{Namespaces: true}.Apply(exec.Command(tt.path))
			require.EqualError(t, err, tt.want)
		})
	}
	err = SpawnConfig{Namespaces: true}.Apply(exec.Command(bin))
	require.True(t, errors.Is(err, ErrNotAccessible))
}

func TestPrepareSocketDir(t *testing.T) {
	requireRoot(t)
	parent, err := os.MkdirTemp("", "aileron-socketdir-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(parent) })
	require.NoError(t, os.Chmod(parent, 0o755))
	dir := filepath.Join(parent, "plugin-dir123")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, PrepareSocketDir(dir, SpawnConfig{Namespaces: true, HostUID: 61000, HostGID: 61001}))
	var st unix.Stat_t
	require.NoError(t, unix.Stat(dir, &st))
	require.Equal(t, uint32(61000), st.Uid)
	require.Equal(t, uint32(61001), st.Gid)
	require.Equal(t, uint32(0o700), st.Mode&0o7777)

	// Security: a symlink put in the directory's place is not followed:
	// the file it names keeps its owner and mode.
	target := filepath.Join(parent, "setuid-binary")
	require.NoError(t, os.WriteFile(target, nil, 0o755))
	require.NoError(t, os.Chmod(target, 0o755|os.ModeSetuid))
	link := filepath.Join(parent, "plugin-dir456")
	require.NoError(t, os.Symlink(target, link))
	require.Error(t, PrepareSocketDir(link, SpawnConfig{Namespaces: true, HostUID: 61000, HostGID: 61001}))
	require.NoError(t, unix.Stat(target, &st))
	require.Equal(t, uint32(0), st.Uid)
	require.Equal(t, uint32(0o4755), st.Mode&0o7777)

	// A parent the worker cannot traverse is reported, not discovered at
	// handshake time.
	require.NoError(t, os.Chmod(parent, 0o700))
	err = PrepareSocketDir(dir, SpawnConfig{Namespaces: true})
	require.ErrorIs(t, err, ErrNotAccessible)
}

func init() {
	helpers["fdleak"] = func(arg string) int {
		// An fd opened without O_CLOEXEC, as a careless library would.
		if _, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0); err != nil {
			return fail("open: %v", err)
		}
		if arg == "mark" {
			if err := MarkInheritedFDsCloseOnExec(); err != nil {
				return fail("mark: %v", err)
			}
		}
		r, w, err := os.Pipe()
		if err != nil {
			return fail("pipe: %v", err)
		}
		defer r.Close()
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = []string{helperEnv + "=listfds"}
		cmd.ExtraFiles = []*os.File{w} // the broker fd: fd 3
		out, err := cmd.Output()
		if err != nil {
			return fail("child: %v", err)
		}
		os.Stdout.Write(out)
		return 0
	}
	helpers["listfds"] = func(string) int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return fail("%v", err)
		}
		fds := map[int]string{}
		for _, e := range entries {
			fd, _ := strconv.Atoi(e.Name())
			fds[fd], _ = os.Readlink("/proc/self/fd/" + e.Name())
		}
		emit(fds)
		return 0
	}
}

func TestMarkInheritedFDsCloseOnExec(t *testing.T) {
	inherited := func(mode string) map[int]string {
		res, err := runHelper(t, "fdleak", nil, mode)
		require.NoError(t, err)
		var fds map[int]string
		require.NoError(t, json.Unmarshal([]byte(res.Stdout), &fds))
		return fds
	}
	fds := inherited("mark")
	require.Regexp(t, `^pipe:`, fds[3], "ExtraFiles[0] arrives as fd 3")
	for fd, target := range fds {
		require.NotEqual(t, "/etc/hostname", target, "fd %d leaked into the child", fd)
	}

	// Control: without it the careless fd leaks into the child.
	leaked := false
	for _, target := range inherited("") {
		leaked = leaked || target == "/etc/hostname"
	}
	require.True(t, leaked, "control: the fd should leak without MarkInheritedFDsCloseOnExec")
}
