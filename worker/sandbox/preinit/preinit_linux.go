//go:build linux && cgo

// Package preinit does the part of the worker's hardening that is cheapest
// while the process still has one thread: a C constructor, run by the C
// runtime before the Go runtime starts any thread, mounts a fresh /proc
// (when the worker is pid 1 of its own namespaces), sets no_new_privs and
// drops every capability. Threads the Go runtime creates afterwards inherit
// that state, so [sandbox.Init] need not broadcast it to every thread with
// libpsx (about 2.5 ms saved per worker) and only verifies it.
//
// It acts only when the supervisor set AILERON_SANDBOX_PREINIT=1 in the
// worker's environment; the constructor only ever reduces what the process
// may do. Import it from the worker's main package only.
package preinit

/*
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>

// aileron_preinit_state: 0 not asked, 1 done, -N failed at step N.
int aileron_preinit_state = 0;
int aileron_preinit_errno = 0;

static void aileron_fail(int step) {
	aileron_preinit_state = -step;
	aileron_preinit_errno = errno;
}

__attribute__((constructor)) static void aileron_preinit(void) {
	const char *v = getenv("AILERON_SANDBOX_PREINIT");
	if (v == NULL || strcmp(v, "1") != 0) {
		return;
	}
	if (getpid() == 1) {
		// Security: private first, so nothing we mount propagates anywhere.
		if (mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
			aileron_fail(1);
			return;
		}
		unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC;
		if (mount("proc", "/proc", "proc", fl, "subset=pid") != 0 &&
		    mount("proc", "/proc", "proc", fl, NULL) != 0) {
			aileron_fail(2);
			return;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		aileron_fail(3);
		return;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
		aileron_fail(4);
		return;
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
			return;
		}
	}
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &hdr, data) != 0) {
		aileron_fail(6);
		return;
	}
	aileron_preinit_state = 1;
}
*/
import "C"

import (
	"fmt"
	"syscall"
)

var steps = [...]string{1: "make mounts private", 2: "mount /proc", 3: "no_new_privs", 4: "clear ambient capabilities", 5: "drop bounding set", 6: "capset"}

// Done reports whether the constructor ran and succeeded. A nil error with
// false means it was not asked to run.
func Done() (bool, error) {
	switch st := int(C.aileron_preinit_state); {
	case st == 1:
		return true, nil
	case st == 0:
		return false, nil
	default:
		name := "unknown step"
		if -st < len(steps) {
			name = steps[-st]
		}
		return false, fmt.Errorf("sandbox preinit: %s: %w", name, syscall.Errno(C.aileron_preinit_errno))
	}
}
