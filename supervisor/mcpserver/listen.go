package mcpserver

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ErrNotLoopback is returned by [ListenAddr] for an address other hosts
// could reach.
var ErrNotLoopback = errors.New("not a loopback address; the MCP endpoint has no authentication of its own, so it listens on loopback only")

// ListenAddr checks and completes an HTTP listen address "HOST:PORT". An
// empty host and "localhost" mean 127.0.0.1; any other host must be a
// loopback IP literal (127.0.0.0/8, ::1), else the error wraps
// [ErrNotLoopback]. PORT 0 picks a free port.
func ListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: want HOST:PORT, e.g. 127.0.0.1:8808", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(p, 10) != port {
		return "", fmt.Errorf("listen address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	switch host {
	case "", "localhost":
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("listen address %q: host %q is not an IP address or localhost", addr, host)
	}
	// Security: an endpoint that runs actions with the person's
	// credentials must not be reachable from the network.
	if !ip.IsLoopback() {
		return "", fmt.Errorf("listen address %q: %w", addr, ErrNotLoopback)
	}
	return net.JoinHostPort(host, port), nil
}
