//go:build !linux || !cgo

package preinit

// Done reports that nothing was done: the pre-init exists on Linux with cgo
// only, and sandbox.Init then does all the work itself.
func Done() (bool, error) { return false, nil }
