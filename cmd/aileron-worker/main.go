// Command aileron-worker runs one connector for one action run. The
// supervisor (aileron) starts it through go-plugin; it is not meant to be
// run by hand. It is a separate, lean binary so that each worker process
// starts fast and links only what running a module needs.
package main

import (
	"os"

	"aileron.dev/aileron/worker/server"
)

func main() { os.Exit(server.Main()) }
