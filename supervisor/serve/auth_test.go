package serve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func testCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	return &x509.Certificate{RawSubjectPublicKeyInfo: spki}
}

func TestAuthenticate(t *testing.T) {
	certA, certX := testCert(t), testCert(t)
	c := &Config{DataDir: "/d", Listen: ListenConfig{Unix: "/s"}, Tenants: []TenantConfig{
		{Name: "a", UIDs: []uint32{1000}, Tokens: []string{HashToken("token-a")}, Certs: []string{SPKIFingerprint(certA)}},
		{Name: "b", UIDs: []uint32{1001}, Tokens: []string{HashToken("token-b")}},
	}}
	set, err := c.check()
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		id   identity
		want string
		err  error
	}{
		{"nothing", identity{}, "", ErrUnauthenticated},
		{"token", identity{authorization: "Bearer token-a"}, "a", nil},
		{"wrong token", identity{authorization: "Bearer token-c"}, "", ErrBadToken},
		{"token prefix", identity{authorization: "Bearer token-"}, "", ErrBadToken},
		{"empty bearer", identity{authorization: "Bearer "}, "", ErrBadAuthorization},
		{"basic auth", identity{authorization: "Basic dG9rZW4tYQ=="}, "", ErrBadAuthorization},
		{"lower-case scheme", identity{authorization: "bearer token-a"}, "", ErrBadAuthorization},
		{"huge token", identity{authorization: "Bearer " + strings.Repeat("x", 513)}, "", ErrBadAuthorization},
		{"mapped uid", identity{uid: 1001, hasUID: true}, "b", nil},
		{"unmapped uid", identity{uid: 0, hasUID: true}, "", ErrUnauthenticated},
		{"unmapped uid with token", identity{uid: 0, hasUID: true, authorization: "Bearer token-b"}, "b", nil},
		{"uid and token agree", identity{uid: 1000, hasUID: true, authorization: "Bearer token-a"}, "a", nil},
		// Security: a token of b used from a's account is refused, so a
		// stolen token cannot be used by another tenant's users.
		{"uid and token disagree", identity{uid: 1000, hasUID: true, authorization: "Bearer token-b"}, "", ErrConflictingIdentity},
		{"bad token wins over uid", identity{uid: 1000, hasUID: true, authorization: "Bearer nope"}, "", ErrBadToken},
		{"mapped cert", identity{cert: certA}, "a", nil},
		{"unmapped cert", identity{cert: certX}, "", ErrUnauthenticated},
		{"unmapped cert with token", identity{cert: certX, authorization: "Bearer token-b"}, "b", nil},
		{"cert and token disagree", identity{cert: certA, authorization: "Bearer token-b"}, "", ErrConflictingIdentity},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := set.auth.authenticate(tt.id)
			require.Equal(t, tt.err, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestHashToken(t *testing.T) {
	// sha256("abc"), FIPS 180-2 appendix B.1.
	require.Equal(t, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", HashToken("abc"))
}
