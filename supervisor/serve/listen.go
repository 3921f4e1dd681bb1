package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// listenUnix opens the API's unix socket at path with the given mode and
// group (gid -1: unchanged). A stale socket left by a server that died is
// replaced; a live one is an error.
func listenUnix(path string, mode os.FileMode, gid int) (net.Listener, error) {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&fs.ModeSocket == 0:
		return nil, fmt.Errorf("listen.unix %s: exists and is not a socket", path)
	case err == nil:
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("listen.unix %s: another server is listening there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen.unix %s: remove stale socket: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("listen.unix: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen.unix: %w", err)
	}
	// The socket is created with the umask's (narrower) bits; widen it to
	// the configured mode only once its group is right.
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen.unix %s: set group: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen.unix %s: set mode: %w", path, err)
	}
	return ln, nil
}

// serverTLS is the TCP listener's TLS configuration: TLS 1.3, and a client
// certificate signed by the configured CA is required.
func serverTLS(l ListenConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(l.TLSCert, l.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("listen.tls_cert/tls_key: %w", err)
	}
	pem, err := os.ReadFile(l.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("listen.client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("listen.client_ca %s: no PEM certificate in it", l.ClientCA)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// Security: no certificate, no connection; the tenant is then
		// chosen by the certificate's key (or a token).
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
	}, nil
}

// limitListener bounds the connections open at once. Past the limit a new
// connection is closed at once rather than queued, so a caller sees an
// error instead of waiting behind slow clients. On a unix socket it also
// records each peer's credentials.
type limitListener struct {
	net.Listener
	sem    chan struct{}
	unix   bool
	reject func()
}

func newLimitListener(ln net.Listener, max int, isUnix bool, reject func()) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), unix: isUnix, reject: reject}
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.reject()
			c.Close()
			continue
		}
		pc := &peerConn{Conn: c, release: func() { <-l.sem }}
		if l.unix {
			cred, err := peerCred(c)
			if err != nil {
				// Without the peer's uid the connection could only be
				// anonymous; refuse it rather than guess.
				pc.Close()
				continue
			}
			pc.uid, pc.hasUID = cred.Uid, true
		}
		return pc, nil
	}
}

// peerConn is an accepted connection that frees its slot when closed.
type peerConn struct {
	net.Conn
	release func()
	once    sync.Once
	// uid is the unix socket peer's uid (SO_PEERCRED: the credentials at
	// connect time, which the peer cannot change afterwards).
	uid    uint32
	hasUID bool
}

// Close implements net.Conn.
func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// peerCred reads SO_PEERCRED from a unix socket connection.
func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("not a unix socket: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// peerKey is the context key of the unix socket peer's uid.
type peerKey struct{}

// connContext puts the unix socket peer's uid into the connection's
// context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*peerConn); ok && pc.hasUID {
		return context.WithValue(ctx, peerKey{}, pc.uid)
	}
	return ctx
}
