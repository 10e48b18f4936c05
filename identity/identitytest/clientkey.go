package identitytest

import (
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clientAssertionType is the client_assertion_type of RFC 7523 §2.2.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// WithClientKey registers a confidential client that authenticates with
// private_key_jwt (RFC 7523 §2.2): a client assertion signed by the private
// half of key (an *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey),
// with iss and sub the client ID, aud the issuer URL or the URL of the
// endpoint called, an exp in the future and a jti not seen before. The
// client has no secret: Basic or form credentials do not authenticate it.
func WithClientKey(id string, key crypto.PublicKey) Option {
	return func(c *config) {
		if c.clientKeys == nil {
			c.clientKeys = map[string]crypto.PublicKey{}
		}
		c.clientKeys[id] = key
	}
}

// assertionClient authenticates r by its client assertion, when it has
// one: it reports the client and whether an assertion was presented at
// all; id is "" when the assertion does not authenticate a key client.
func (i *Issuer) assertionClient(r *http.Request) (id string, presented bool) {
	f := r.PostForm
	assertion := f.Get("client_assertion")
	if assertion == "" && f.Get("client_assertion_type") == "" {
		return "", false
	}
	if f.Get("client_assertion_type") != clientAssertionType {
		return "", true
	}
	jws, err := jose.ParseSignedCompact(assertion, dpopProofAlgorithms)
	if err != nil {
		return "", true
	}
	var claims struct {
		Issuer   string          `json:"iss"`
		Subject  string          `json:"sub"`
		Audience json.RawMessage `json:"aud"`
		Expiry   int64           `json:"exp"`
		ID       string          `json:"jti"`
	}
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims) != nil {
		return "", true
	}
	key, ok := i.cfg.clientKeys[claims.Issuer]
	if !ok || claims.Subject != claims.Issuer || (f.Has("client_id") && f.Get("client_id") != claims.Issuer) {
		return "", true
	}
	if _, err := jws.Verify(key); err != nil {
		return "", true
	}
	endpoint := i.srv.URL + r.URL.Path
	if !assertionAudience(claims.Audience, i.URL, endpoint) || claims.ID == "" || !time.Now().Before(time.Unix(claims.Expiry, 0)) {
		return "", true
	}
	if err := i.useAssertionID(claims.Issuer + "\x00" + claims.ID); err != nil {
		return "", true
	}
	return claims.Issuer, true
}

// assertionAudience reports whether aud (a string or an array) names one
// of accepted.
func assertionAudience(aud json.RawMessage, accepted ...string) bool {
	var one string
	if json.Unmarshal(aud, &one) == nil {
		return slices.Contains(accepted, one)
	}
	var many []string
	if json.Unmarshal(aud, &many) != nil {
		return false
	}
	return slices.ContainsFunc(many, func(a string) bool { return slices.Contains(accepted, a) })
}

// useAssertionID records the jti of a client assertion, refusing one seen
// before (RFC 7523 §3: a replayed assertion is not an authentication).
func (i *Issuer) useAssertionID(key string) error {
	s := i.lockOAuth()
	defer s.mu.Unlock()
	if s.assertions == nil {
		s.assertions = map[string]bool{}
	}
	if s.assertions[key] {
		return errors.New("identitytest: client assertion replayed")
	}
	s.assertions[key] = true
	return nil
}
