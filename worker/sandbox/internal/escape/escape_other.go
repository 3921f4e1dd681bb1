//go:build !linux

package escape

// Run reports that no attack applies outside Linux.
func Run(t Targets) []Result {
	return []Result{{Name: "all", Skipped: true, Detail: "escape probes are Linux-only"}}
}

// Int80Socket reports that it does not apply outside Linux.
func Int80Socket() Result {
	return Result{Name: "int80 socketcall(AF_INET)", Skipped: true, Detail: "escape probes are Linux-only"}
}
