//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Lockdown applies the irreversible in-process layers: Landlock, then
// seccomp on every thread, last (the Landlock syscalls are not in the seccomp
// allowlist). Call it in the worker after the go-plugin listener exists and
// the broker fd is open, and before any untrusted module is compiled, loaded
// or run: at the start of the first RPC.
//
// The returned Report lists what is in force, read back from the process
// where possible, for the run's audit record. On error the process may be
// half locked down and must not run untrusted code; it should exit. Call it
// once: a second call fails, since the seccomp filter denies the Landlock
// and seccomp syscalls.
func Lockdown(c LockdownConfig) (Report, error) {
	var r Report
	if err := c.validate(); err != nil {
		return r, err
	}

	if c.Landlock == LandlockOff {
		r.set(LayerLandlock, false, "off by configuration")
	} else {
		active, detail, err := applyLandlock(c)
		if err != nil {
			return r, fmt.Errorf("lockdown: landlock: %w", err)
		}
		r.set(LayerLandlock, active, detail)
	}

	// Read back what Init did while prctl and getrlimit are still allowed
	// in every form.
	observeProcess(&r)

	if c.Seccomp == SeccompOff {
		r.set(LayerSeccomp, false, "off by configuration")
	} else {
		detail, err := loadSeccomp(c.Seccomp)
		if err != nil {
			return r, fmt.Errorf("lockdown: seccomp: %w", err)
		}
		r.set(LayerSeccomp, true, detail)
		r.set(LayerNoNewPrivs, true, "set on every thread by seccomp TSYNC")
	}
	return r, nil
}

// landlockABI returns the kernel's Landlock ABI version, 0 without Landlock,
// treating a kernel without the signal-scoping fix (errata bit 1) as ABI 5
// the way go-landlock does.
func landlockABI() int {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	if v >= 6 {
		if errata, err := llsys.LandlockGetErrata(); err != nil || errata&0x2 == 0 {
			v = 5
		}
	}
	return v
}

// landlockCovers describes what a Landlock ABI restricts in our ruleset.
func landlockCovers(abi int) string {
	parts := []string{"filesystem"}
	if abi >= 4 {
		parts = append(parts, "TCP bind/connect")
	}
	if abi >= 6 {
		parts = append(parts, "abstract unix sockets and signals scoped")
	}
	if abi >= 9 {
		parts = append(parts, "pathname unix sockets")
	}
	if abi >= 10 {
		parts = append(parts, "UDP")
	}
	return strings.Join(parts, ", ")
}

func applyLandlock(c LockdownConfig) (active bool, detail string, err error) {
	abi := landlockABI()
	if abi == 0 {
		if c.Landlock == LandlockRequired {
			return false, "", fmt.Errorf("%w: not supported by the kernel or not enabled at boot", ErrLandlockUnavailable)
		}
		return false, "not supported by the kernel or not enabled at boot", nil
	}
	if c.Landlock == LandlockRequired && abi < MinLandlockABI {
		return false, "", fmt.Errorf("%w: kernel has ABI %d, need %d", ErrLandlockUnavailable, abi, MinLandlockABI)
	}
	if abi < 8 && !procIsOurs() {
		// Below ABI 8 go-landlock enforces on every thread through libpsx,
		// which walks /proc/<getpid()>/task: in a PID namespace without
		// our own /proc that is the host init's, and it spins forever.
		return false, "", ErrForeignProc
	}
	var rules []landlock.Rule
	for _, p := range c.ReadOnlyPaths {
		st, err := os.Stat(p)
		if err != nil {
			return false, "", fmt.Errorf("read-only path: %w", err)
		}
		access := landlock.AccessFSSet(llsys.AccessFSReadFile)
		if st.IsDir() {
			access |= landlock.AccessFSSet(llsys.AccessFSReadDir)
		}
		// No execute right: nothing in the worker execs, and mmap of
		// compiled code is not an exec.
		rules = append(rules, landlock.PathAccess(access, p))
	}
	for _, p := range c.ReadWritePaths {
		st, err := os.Stat(p)
		if err != nil {
			return false, "", fmt.Errorf("read-write path: %w", err)
		}
		if !st.IsDir() {
			return false, "", fmt.Errorf("read-write path %s is not a directory", p)
		}
		// Regular files only, the streams of each invocation: no
		// directories made or removed, no listing.
		access := landlock.AccessFSSet(llsys.AccessFSReadFile | llsys.AccessFSWriteFile |
			llsys.AccessFSMakeReg | llsys.AccessFSRemoveFile | llsys.AccessFSTruncate)
		rules = append(rules, landlock.PathAccess(access, p))
	}
	// The newest preset go-landlock knows, downgraded to what the kernel
	// offers: a newer kernel then also restricts pathname unix sockets and
	// UDP without a code change. No network rule: every TCP bind and
	// connect is denied.
	if err := landlock.V11.BestEffort().Restrict(rules...); err != nil {
		return false, "", err
	}
	return true, fmt.Sprintf("ABI %d, %s (%s); read-only: %v; read-write: %v; nothing else", abi, c.Landlock, landlockCovers(abi), c.ReadOnlyPaths, c.ReadWritePaths), nil
}

// observeProcess records in r the process-wide state Init set up, read back
// from the kernel rather than assumed.
func observeProcess(r *Report) {
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil {
		r.set(LayerNoNewPrivs, v == 1, fmt.Sprintf("calling thread: %d", v))
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err == nil {
		r.set(LayerNotDumpable, v == 0, fmt.Sprintf("dumpable=%d", v))
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil {
		none := data[0].Effective|data[1].Effective|data[0].Permitted|data[1].Permitted == 0
		bnd, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, unix.CAP_SYS_ADMIN, 0, 0, 0)
		detail := "effective and permitted empty"
		if bnd != 0 {
			detail += "; bounding set not dropped"
		}
		r.set(LayerCapabilities, none, detail)
	}
	var parts []string
	ok := true
	for _, l := range rlimitTable {
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.resource, &cur); err != nil {
			ok = false
			continue
		}
		if cur.Max == unix.RLIM_INFINITY {
			ok = false
			parts = append(parts, l.name+"=unlimited")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%d", l.name, cur.Max))
	}
	r.set(LayerRlimits, ok, strings.Join(parts, " "))
}
