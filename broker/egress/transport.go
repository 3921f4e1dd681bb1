package egress

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Transport defaults, used when a [TransportConfig] field is zero.
const (
	// DefaultTLSHandshakeTimeout bounds a TLS handshake.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for response headers.
	DefaultResponseHeaderTimeout = 30 * time.Second
	// DefaultMaxResponseHeaderBytes bounds response headers.
	DefaultMaxResponseHeaderBytes = 64 << 10
	// DefaultIdleConnTimeout closes idle keep-alive connections.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultMaxIdleConnsPerHost bounds idle connections per host.
	DefaultMaxIdleConnsPerHost = 8
)

// TransportConfig configures [NewTransport] and [NewClient]. The zero value
// is a safe configuration: system roots, public addresses only.
type TransportConfig struct {
	// Dialer dials every connection, for http and https alike. Nil means
	// &Dialer{}: the system resolver and public addresses only.
	Dialer *Dialer
	// ExtraRootCAsPEM holds PEM certificates trusted in addition to the
	// system roots, for an operator's private CA or a test server.
	// Verification itself can never be turned off.
	ExtraRootCAsPEM []byte
	// TLSHandshakeTimeout bounds the TLS handshake; zero means
	// DefaultTLSHandshakeTimeout.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request is written; zero means DefaultResponseHeaderTimeout.
	ResponseHeaderTimeout time.Duration
	// MaxResponseHeaderBytes bounds the response headers; zero means
	// DefaultMaxResponseHeaderBytes.
	MaxResponseHeaderBytes int64
	// IdleConnTimeout closes idle keep-alive connections; zero means
	// DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds idle connections kept per host; zero
	// means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
}

// NewTransport returns an http.Transport for egress:
//
//   - every connection goes through the pinned [Dialer], so the address is
//     vetted and pinned for http and https alike;
//   - Proxy is nil: HTTP_PROXY and friends in the environment are never
//     honoured (a proxy would do its own DNS, outside the policy);
//   - TLS is verified against the system roots plus ExtraRootCAsPEM, at
//     least TLS 1.2, with the server name taken from the request URL, which
//     [Client.Send] builds from the vetted [Decision.URL];
//   - HTTP/2 only over TLS, never cleartext h2c;
//   - DisableCompression, so response sizes and limits are honest.
func NewTransport(cfg TransportConfig) (*http.Transport, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("egress: system roots: %w", err)
	}
	if len(cfg.ExtraRootCAsPEM) > 0 && !roots.AppendCertsFromPEM(cfg.ExtraRootCAsPEM) {
		return nil, errors.New("egress: ExtraRootCAsPEM holds no PEM certificate")
	}
	if cfg.TLSHandshakeTimeout < 0 || cfg.ResponseHeaderTimeout < 0 || cfg.MaxResponseHeaderBytes < 0 ||
		cfg.IdleConnTimeout < 0 || cfg.MaxIdleConnsPerHost < 0 {
		return nil, errors.New("egress: negative timeout or limit in TransportConfig")
	}
	d := cfg.Dialer
	if d == nil {
		d = &Dialer{}
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // over TLS only; UnencryptedHTTP2 stays off
	return &http.Transport{
		// Security: never a proxy from the environment.
		Proxy:       nil,
		DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
			// ServerName stays empty: net/http then uses the host of
			// each request's URL, which Send takes from the vetted
			// Decision, so SNI and verification follow the policy.
		},
		TLSHandshakeTimeout:    orDuration(cfg.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		ResponseHeaderTimeout:  orDuration(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		MaxResponseHeaderBytes: orInt64(cfg.MaxResponseHeaderBytes, DefaultMaxResponseHeaderBytes),
		IdleConnTimeout:        orDuration(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
		MaxIdleConnsPerHost:    int(orInt64(int64(cfg.MaxIdleConnsPerHost), DefaultMaxIdleConnsPerHost)),
		DisableCompression:     true,
		Protocols:              protocols,
	}, nil
}

func orDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

func orInt64(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}
