//go:build linux && !amd64

package escape

// Int80Socket reports that there is no i386 compat gate on this GOARCH.
func Int80Socket() Result {
	return Result{Name: "int80 socketcall(AF_INET)", Errno: 0, Detail: "not applicable on this GOARCH", Skipped: true}
}
