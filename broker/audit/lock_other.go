//go:build !unix

package audit

import "os"

// lockFile is a no-op where flock(2) does not exist; one broker per log is
// then the operator's responsibility.
func lockFile(*os.File) (func(), error) { return func() {}, nil }
