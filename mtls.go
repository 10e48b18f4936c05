package caddyidentity

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/caddy-identity/caddy-identity/identity"
)

// cnfCertThumbprint is the cnf member of a certificate-bound access token
// (RFC 8705 §3.1): the base64url SHA-256 of the DER client certificate the
// token was issued to.
const cnfCertThumbprint = "x5t#S256"

// certBinding is the certificate-binding stage (RFC 8705 §3): it reads the
// binding of verified claims when their cache entry is built, and checks
// it against the request's client certificate on every request, whatever
// the scheme. It holds no state beyond its mode, so it has nothing to
// clean up.
type certBinding struct {
	// off is cert_binding off: cnf.x5t#S256 is not read.
	off bool
}

// newCertBinding compiles the checked cert_binding option; empty is the
// default, check.
func newCertBinding(mode string) certBinding {
	return certBinding{off: mode == "off"}
}

// checkCertBinding checks the cert_binding option.
func checkCertBinding(mode string) error {
	switch mode {
	case "", "check", "off":
		return nil
	}
	return fmt.Errorf("cert_binding must be check or off, not %q", mode)
}

// thumbprint returns the certificate binding of verified claims whose cnf
// object is cnf (see confirmation), cnf.x5t#S256, or "" when the token is
// not bound or the check is off. A member that is not a non-empty string
// is a malformed claim: it names no certificate, and accepting the token
// as unbound would drop a binding its issuer meant to set.
func (cb certBinding) thumbprint(cnf map[string]any) (string, error) {
	if cb.off {
		return "", nil
	}
	v, ok := cnf[cnfCertThumbprint]
	if !ok {
		return "", nil
	}
	if s, _ := v.(string); s != "" {
		return s, nil
	}
	return "", &identity.ClaimError{Claim: identity.ClaimConfirmation + "." + cnfCertThumbprint, Reason: "malformed"}
}

// check refuses a request that does not satisfy the certificate binding
// of the token of entry e: a bound token needs its certificate, whatever
// the scheme (with DPoP both bindings must hold). The entry has no
// thumbprint when the binding is off.
// thumbprint when the binding is off. The unbound case inlines.
func (*certBinding) check(r *http.Request, c *credential, e *cacheEntry) *rejection {
	if e.certThumbprint == "" {
		return nil
	}
	return checkPresented(r, c, e)
}

// checkPresented is check for a bound token.
func checkPresented(r *http.Request, c *credential, e *cacheEntry) *rejection {
	if certPresented(r, e.certThumbprint) {
		return nil
	}
	return &rejection{reason: reasonCertBinding, dpop: c.dpop(), token: c.token}
}

// certPresented reports whether the TLS connection of r presented a client
// certificate whose thumbprint is the token's cnf.x5t#S256 (RFC 8705 §3):
// the proof that the sender holds the certificate's key, since the TLS
// handshake checked the client's signature with it. Only the end-entity
// certificate counts. The thumbprint is no secret (it is in the token, and
// the certificate is the client's own), so a plain comparison does.
func certPresented(r *http.Request, thumbprint string) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	var enc [43]byte // base64.RawURLEncoding.EncodedLen(sha256.Size)
	base64.RawURLEncoding.Encode(enc[:], sum[:])
	return string(enc[:]) == thumbprint
}
