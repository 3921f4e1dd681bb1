//go:build linux && cgo

// Package preinit does the part of the worker's hardening that is cheapest,
// or only possible, while the process still has one thread: a C
// constructor, run by the C runtime before the Go runtime starts any thread,
//
//   - with AILERON_SANDBOX_UNSHARE=1, creates the worker's namespaces: a user
//     namespace mapping the process's own (unprivileged) uid and gid to root,
//     then network, IPC, UTS, mount and PID namespaces, and forks once so the
//     worker proper is PID 1 of the new PID namespace while the first
//     process only waits for it and passes on its exit status (see
//     sandbox.SpawnConfig.UnshareInChild);
//   - as PID 1 of its own namespaces, makes mounts private and mounts a
//     fresh /proc;
//   - sets no_new_privs and drops every capability.
//
// A failed step is recorded and does not stop the independent ones after it
// ([Done] reports each); only a failure to wait for the cgroup placement or
// to fork into the new PID namespace ends the process.
//
// Threads the Go runtime creates afterwards inherit that state, so
// [sandbox.Init] need not broadcast it to every thread with libpsx (about
// 2.5 ms saved per worker) and only verifies it.
//
// It acts only when the supervisor set AILERON_SANDBOX_PREINIT=1 in the
// worker's environment; everything it does only reduces what the process may
// do. Import it from the worker's main package only.
package preinit

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>

// aileron_preinit_state: 0 not asked, 1 ran. A failed step does not stop
// the independent ones after it: each failure is recorded, in order, in
// aileron_preinit_failed (step numbers) and aileron_preinit_errno.
int aileron_preinit_state = 0;
// aileron_preinit_hardened is 1 when no_new_privs is set and every
// capability is dropped.
int aileron_preinit_hardened = 0;
#define AILERON_MAX_FAILED 8
int aileron_preinit_failed[AILERON_MAX_FAILED];
int aileron_preinit_errno[AILERON_MAX_FAILED];
int aileron_preinit_nfailed = 0;

static void aileron_fail(int step) {
	if (aileron_preinit_nfailed < AILERON_MAX_FAILED) {
		aileron_preinit_failed[aileron_preinit_nfailed] = step;
		aileron_preinit_errno[aileron_preinit_nfailed] = errno;
		aileron_preinit_nfailed++;
	}
}

// aileron_die ends a process that cannot start the way the supervisor
// asked; the supervisor reports the worker failing to start.
static void aileron_die(int step) {
	fprintf(stderr, "aileron-worker: preinit step %d failed: %s\n", step, strerror(errno));
	_exit(125);
}

#ifdef AILERON_PREINIT_TESTHOOK
// Test builds only (-tags aileron_escapetest, see testhook_linux.go): a
// worker binary whose file name ends in "-failpreinit-N" fails step N with
// EPERM, so that integration tests can see what the worker and the
// supervisor report when a hardening step fails on some host.
static int aileron_forced_failure(int step) {
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		return 0;
	}
	exe[n] = 0;
	const char *m = strstr(exe, "-failpreinit-");
	if (m == NULL || atoi(m + strlen("-failpreinit-")) != step) {
		return 0;
	}
	errno = EPERM;
	return 1;
}
#else
#define aileron_forced_failure(step) 0
#endif

static int aileron_write_file(const char *path, const char *data) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	size_t n = strlen(data);
	ssize_t w = write(fd, data, n);
	int saved = errno;
	close(fd);
	errno = saved;
	return w == (ssize_t)n ? 0 : -1;
}

// aileron_unshare makes the namespaces. It returns 0 when it made them all,
// -1 (the failure recorded) when the user namespace could not be made or
// mapped, or the others could not be made; the process then stays in what
// it has.
static int aileron_unshare(void) {
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64];
	if (aileron_forced_failure(10) || unshare(CLONE_NEWUSER) != 0) {
		aileron_fail(10);
		return -1;
	}
	// Security: setgroups must be denied before an unprivileged process may
	// write its gid_map; the supervisor already cleared our groups.
	if (aileron_write_file("/proc/self/setgroups", "deny") != 0) {
		aileron_fail(11);
		return -1;
	}
	snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
	if (aileron_write_file("/proc/self/uid_map", map) != 0) {
		aileron_fail(12);
		return -1;
	}
	snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
	if (aileron_write_file("/proc/self/gid_map", map) != 0) {
		aileron_fail(13);
		return -1;
	}
	if (aileron_forced_failure(14) || unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS | CLONE_NEWPID) != 0) {
		aileron_fail(14);
		return -1;
	}
	return 0;
}

// aileron_wait_placed waits for the supervisor's byte on
// AILERON_SANDBOX_SYNC_FD: it has placed this process in its cgroup. A
// process that cannot know that must not go on to run the worker.
static void aileron_wait_placed(void) {
	const char *sync = getenv("AILERON_SANDBOX_SYNC_FD");
	if (sync == NULL) {
		return;
	}
	int fd = atoi(sync);
	char b;
	ssize_t r;
	do {
		r = read(fd, &b, 1);
	} while (r < 0 && errno == EINTR);
	close(fd);
	if (r != 1) {
		errno = EPIPE;
		aileron_die(15);
	}
}

// aileron_fork forks into the new PID namespace: it returns in the child
// (the worker proper, PID 1) and never returns in the first process. A
// failed fork ends the process: unforked, it would look to the supervisor
// as if its worker were in the PID namespace it made for its children.
static void aileron_fork(void) {
	pid_t child = fork();
	if (child < 0) {
		aileron_die(16);
	}
	if (child > 0) {
		// The first process: hold no descriptor of the worker's, wait for
		// it, and end the way it ended. It runs nothing else.
		if (syscall(SYS_close_range, 0, ~0U, 0) != 0) {
			for (int fd = 0; fd < 1024; fd++) {
				close(fd);
			}
		}
		int status;
		while (waitpid(child, &status, 0) < 0) {
			if (errno != EINTR) {
				_exit(125);
			}
		}
		if (WIFEXITED(status)) {
			_exit(WEXITSTATUS(status));
		}
		// Die of the same signal, so the supervisor sees how the worker
		// ended (SIGSYS from seccomp, SIGKILL from the OOM killer), without
		// a core file.
		int sig = WTERMSIG(status);
		struct rlimit nocore = {0, 0};
		setrlimit(RLIMIT_CORE, &nocore);
		signal(sig, SIG_DFL);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), sig);
		_exit(128 + sig);
	}
	// The worker proper dies with the first process, which dies with the
	// supervisor (Pdeathsig) or with its process group.
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
		aileron_fail(17);
	}
}

// aileron_drop_caps empties every capability set. It returns 0 on success.
static int aileron_drop_caps(void) {
	int ok = 0;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
		aileron_fail(4);
		ok = -1;
	}
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
			if (errno == EINVAL) {
				break; // past the last capability
			}
			if (errno == EPERM) {
				break; // no CAP_SETPCAP: nothing is permitted either
			}
			aileron_fail(5);
			ok = -1;
			break;
		}
	}
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &hdr, data) != 0) {
		aileron_fail(6);
		ok = -1;
	}
	return ok;
}

// The steps are independent layers: a failure is recorded and the others
// are still applied (sandbox.Init then retries what it can and the worker
// reports each missing layer). Only a process that cannot tell whether it
// is in its cgroup, or that made a PID namespace it cannot enter, exits.
__attribute__((constructor)) static void aileron_preinit(void) {
	const char *v = getenv("AILERON_SANDBOX_PREINIT");
	if (v == NULL || strcmp(v, "1") != 0) {
		return;
	}
	aileron_preinit_state = 1;
	const char *u = getenv("AILERON_SANDBOX_UNSHARE");
	if (u != NULL && strcmp(u, "1") == 0) {
		int unshared = aileron_unshare();
		aileron_wait_placed();
		if (unshared == 0) {
			aileron_fork();
		}
	}
	if (getpid() == 1) {
		// Security: private first, so nothing we mount propagates anywhere.
		unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC;
		if (aileron_forced_failure(1) || mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
			aileron_fail(1);
		} else if (mount("proc", "/proc", "proc", fl, "subset=pid") != 0 &&
		           mount("proc", "/proc", "proc", fl, NULL) != 0) {
			aileron_fail(2);
		}
	}
	int nnp = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
	if (!nnp) {
		aileron_fail(3);
	}
	int caps = aileron_drop_caps() == 0;
	aileron_preinit_hardened = nnp && caps;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
)

var steps = map[int]string{
	1: "make mounts private", 2: "mount /proc", 3: "no_new_privs", 4: "clear ambient capabilities",
	5: "drop bounding set", 6: "capset",
	10: "unshare user namespace", 11: "deny setgroups", 12: "write uid_map", 13: "write gid_map",
	14: "unshare namespaces", 15: "wait for cgroup placement", 16: "fork into the pid namespace", 17: "set parent-death signal",
}

// Done reports whether the constructor set no_new_privs and dropped every
// capability (then sandbox.Init only verifies them), and joins an error for
// each step that failed. false and nil mean it was not asked to run.
func Done() (bool, error) {
	if C.aileron_preinit_state == 0 {
		return false, nil
	}
	var errs []error
	for i := 0; i < int(C.aileron_preinit_nfailed); i++ {
		step := int(C.aileron_preinit_failed[i])
		name, ok := steps[step]
		if !ok {
			name = fmt.Sprintf("step %d", step)
		}
		errs = append(errs, fmt.Errorf("sandbox preinit: %s: %w", name, syscall.Errno(C.aileron_preinit_errno[i])))
	}
	return C.aileron_preinit_hardened == 1, errors.Join(errs...)
}
