package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"aileron.dev/aileron/cas"
)

// Authentication errors. Each is answered with 401 and code
// "unauthenticated"; none says whether a tenant exists.
var (
	// ErrUnauthenticated is returned when a request carries nothing that
	// names a tenant.
	ErrUnauthenticated = errors.New("authentication required: connect to the unix socket as a user the server maps to a tenant, present a client certificate it maps to one, or send Authorization: Bearer <token>")
	// ErrBadToken is returned for a bearer token that matches no tenant.
	ErrBadToken = errors.New("the bearer token is not valid")
	// ErrBadAuthorization is returned for an Authorization header that is
	// not "Bearer <token>".
	ErrBadAuthorization = errors.New(`the Authorization header must be "Bearer <token>"`)
	// ErrConflictingIdentity is returned when a bearer token names one
	// tenant and the connection (peer uid, client certificate) another.
	ErrConflictingIdentity = errors.New("the bearer token and the connection's identity belong to different tenants")
)

// MaxTokenBytes bounds a bearer token: a longer one is refused unhashed,
// and `aileron serve hash-token` refuses to hash one.
const MaxTokenBytes = 512

// authTable maps what a caller presents to a tenant name. It is built from
// a checked Config and never changed: a reload builds a new one.
type authTable struct {
	names  map[string]bool
	byUID  map[uint32]string
	bySPKI map[string]string // "sha256:<hex>" of the certificate's SPKI
	tokens []tokenEntry
}

type tokenEntry struct {
	hash   [32]byte
	tenant string
}

func newAuthTable() *authTable {
	return &authTable{names: map[string]bool{}, byUID: map[uint32]string{}, bySPKI: map[string]string{}}
}

// identity is what one request presents.
type identity struct {
	// authorization is the Authorization header ("" if absent).
	authorization string
	// uid is the unix socket peer's uid, if hasUID.
	uid    uint32
	hasUID bool
	// cert is the verified client certificate (TCP), or nil.
	cert *x509.Certificate
}

// authenticate is the authentication decision: a pure function of the table
// and what the request presents. A bearer token, if sent, must match; the
// connection's own identity (peer uid or certificate key), if it maps to a
// tenant, must agree with the token's. Either alone suffices.
func (a *authTable) authenticate(id identity) (string, error) {
	var byToken string
	if id.authorization != "" {
		tok, ok := strings.CutPrefix(id.authorization, "Bearer ")
		if !ok || tok == "" || len(tok) > MaxTokenBytes {
			return "", ErrBadAuthorization
		}
		sum := sha256.Sum256([]byte(tok))
		// Security: compare against every hash, in constant time each,
		// so timing says nothing about which tenant (if any) matched.
		for _, e := range a.tokens {
			if subtle.ConstantTimeCompare(sum[:], e.hash[:]) == 1 {
				byToken = e.tenant
			}
		}
		if byToken == "" {
			return "", ErrBadToken
		}
	}
	var byConn string
	if id.hasUID {
		byConn = a.byUID[id.uid]
	}
	if id.cert != nil {
		byConn = a.bySPKI[SPKIFingerprint(id.cert)]
	}
	switch {
	case byToken != "" && byConn != "" && byToken != byConn:
		return "", ErrConflictingIdentity
	case byToken != "":
		return byToken, nil
	case byConn != "":
		return byConn, nil
	}
	return "", ErrUnauthenticated
}

// HashToken returns the "sha256:<hex>" form of a bearer token that the
// configuration stores.
func HashToken(token string) string { return string(cas.Sum([]byte(token))) }

// SPKIFingerprint returns "sha256:<hex>" of a certificate's public key
// (its SubjectPublicKeyInfo), which is how tenants name their client
// certificates.
func SPKIFingerprint(c *x509.Certificate) string { return string(cas.Sum(c.RawSubjectPublicKeyInfo)) }

// lookupGroup resolves a group name or numeric gid.
func lookupGroup(g string) (int, error) {
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		return int(n), nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", g, err)
	}
	n, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q is not a number", g, grp.Gid)
	}
	return n, nil
}
