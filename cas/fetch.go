package cas

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"
)

// SourceConfig configures where packages come from and how they are
// downloaded. The zero value downloads from the public sources with the
// system's roots and the default limits.
type SourceConfig struct {
	// Bases are the remote sources' base URLs.
	Bases Bases
	// ExtraRootCAs is PEM of CAs trusted in addition to the system's,
	// for a private mirror (and the tests' loopback server).
	// Verification is never skipped.
	ExtraRootCAs []byte
	// Timeout bounds one attempt at one file, headers and body
	// (default 2 minutes).
	Timeout time.Duration
	// Attempts is how often a transient failure (a network error, a cut
	// transfer, 5xx, 429) is tried in all (default 3). 4xx and bad
	// content are not retried.
	Attempts int
	// Backoff is the wait before the second attempt, doubled after each
	// (default 500ms).
	Backoff time.Duration
	// Progress, when set, is called as each download starts with the
	// file's name and size (-1 if unknown); the bytes are written to the
	// returned writer as they arrive, and it is closed at the end.
	Progress func(name string, size int64) io.WriteCloser
}

// Download errors.
var (
	// ErrDownload is returned (wrapped) when a file could not be
	// downloaded after every attempt.
	ErrDownload = errors.New("download failed")
	// ErrNotPublished is returned when the source answers 404: no such
	// connector, version or file.
	ErrNotPublished = errors.New("not published at the source")
	// ErrBadContent is returned when a download is not the file it
	// should be: an HTML page, a module without the wasm magic, a
	// manifest that does not parse.
	ErrBadContent = errors.New("downloaded content is not a package file")
)

// Fetcher downloads package files over verified HTTPS.
type Fetcher struct {
	cfg    SourceConfig
	client *http.Client
}

// maxRedirects bounds redirects (GitHub's release assets take one).
const maxRedirects = 5

// NewFetcher validates cfg and returns a Fetcher.
func NewFetcher(cfg SourceConfig) (*Fetcher, error) {
	if err := cfg.Bases.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if len(cfg.ExtraRootCAs) > 0 && !roots.AppendCertsFromPEM(cfg.ExtraRootCAs) {
		return nil, fmt.Errorf("%w: extra_root_cas holds no PEM certificate", ErrBadSource)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			// Security: a redirect must not downgrade to plain HTTP.
			if req.URL.Scheme != "https" {
				return redirectError{fmt.Sprintf("refusing a redirect to %s: not https", req.URL.Redacted())}
			}
			if len(via) >= maxRedirects {
				return redirectError{fmt.Sprintf("more than %d redirects", maxRedirects)}
			}
			return nil
		},
	}
	return &Fetcher{cfg: cfg, client: client}, nil
}

// Bases returns the configured base URLs.
func (f *Fetcher) Bases() Bases { return f.cfg.Bases }

// Close releases idle connections.
func (f *Fetcher) Close() { f.client.CloseIdleConnections() }

// permanentError marks a failure that another attempt would not change.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// Get downloads url: at most max bytes, refused if it looks like an HTML
// page or check rejects it. name is the file's name for progress and
// errors. Nothing is returned unless the whole body arrived.
func (f *Fetcher) Get(ctx context.Context, url, name string, max int64, check func([]byte) error) ([]byte, error) {
	wait := f.cfg.Backoff
	var last error
	for attempt := 1; attempt <= f.cfg.Attempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("download %s: %w", url, ctx.Err())
			case <-t.C:
			}
			wait *= 2
		}
		b, err := f.get(ctx, url, name, max)
		if err == nil {
			if err = sniff(name, b); err == nil && check != nil {
				if cerr := check(b); cerr != nil {
					err = permanentError{fmt.Errorf("%w: %s: %w", ErrBadContent, name, cerr)}
				}
			}
			if err == nil {
				return b, nil
			}
		}
		last = err
		var pe permanentError
		if errors.As(err, &pe) || ctx.Err() != nil {
			break
		}
	}
	var pe permanentError
	if errors.As(last, &pe) {
		return nil, fmt.Errorf("download %s: %w", url, pe.error)
	}
	return nil, fmt.Errorf("download %s: %w: %w", url, ErrDownload, last)
}

func (f *Fetcher) get(ctx context.Context, url, name string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, permanentError{err}
	}
	req.Header.Set("User-Agent", "aileron")
	resp, err := f.client.Do(req)
	if err != nil {
		// A refused redirect or a certificate error will not change.
		var cv *tls.CertificateVerificationError
		var re redirectError
		if errors.As(err, &cv) || errors.As(err, &re) {
			return nil, permanentError{err}
		}
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		return nil, permanentError{fmt.Errorf("%w: %s answered 404 Not Found", ErrNotPublished, resp.Request.URL.Host)}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, fmt.Errorf("server answered %s", resp.Status)
	default:
		return nil, permanentError{fmt.Errorf("server answered %s", resp.Status)}
	}
	if resp.ContentLength > max {
		return nil, permanentError{fmt.Errorf("%s is %d bytes: %w (%d)", name, resp.ContentLength, ErrTooLarge, max)}
	}
	// Security: a login page or an error page served with 200 is not a
	// package file, whatever its name.
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" {
		return nil, permanentError{fmt.Errorf("%w: %s: the server sent an HTML page (check the source's base URL)", ErrBadContent, name)}
	}
	var body io.Reader = io.LimitReader(resp.Body, max+1)
	if f.cfg.Progress != nil {
		w := f.cfg.Progress(name, resp.ContentLength)
		defer w.Close()
		body = io.TeeReader(body, w)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		// A transfer cut short (the body ended before Content-Length, or
		// the connection dropped) is worth another attempt.
		return nil, fmt.Errorf("%s: transfer cut short after %d bytes: %w", name, len(b), err)
	}
	if int64(len(b)) > max {
		return nil, permanentError{fmt.Errorf("%s: %w (%d bytes)", name, ErrTooLarge, max)}
	}
	return b, nil
}

// redirectError is a redirect the client refused to follow.
type redirectError struct{ msg string }

func (e redirectError) Error() string { return e.msg }

// sniff refuses an HTML page whatever its Content-Type said.
func sniff(name string, b []byte) error {
	if mt, _, _ := mime.ParseMediaType(http.DetectContentType(b)); mt == "text/html" {
		return permanentError{fmt.Errorf("%w: %s: the server sent an HTML page (check the source's base URL)", ErrBadContent, name)}
	}
	return nil
}

// wasmMagic starts every WebAssembly binary module, version 1.
var wasmMagic = []byte("\x00asm\x01\x00\x00\x00")

func checkWasm(b []byte) error {
	if !bytes.HasPrefix(b, wasmMagic) {
		return errors.New("not a WebAssembly module (no \\0asm version 1 header)")
	}
	return nil
}
