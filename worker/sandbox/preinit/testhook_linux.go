//go:build linux && cgo && aileron_escapetest

package preinit

// Test builds only: compile the constructor's forced-failure hook
// (aileron_forced_failure). The directive applies to every file's C code in
// the package.

// #cgo CFLAGS: -DAILERON_PREINIT_TESTHOOK
import "C"
