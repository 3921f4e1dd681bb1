// Command aileron runs actions that call external services through
// sandboxed connectors, without ever handing a connector a credential.
//
// It is the supervisor; started with the hidden "broker" argument it is the
// broker process. See README.md and `aileron help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
