package identity_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// FuzzVerifyDPoPProof checks that VerifyDPoPProof never panics, fails only
// with a *DPoPProofError, and accepts a proof only when it fits the request
// it is checked against: htm is the method, the key thumbprint is the
// bound one and ath is the token's hash.
func FuzzVerifyDPoPProof(f *testing.F) {
	const (
		uri = "https://rs.example/api"
		at  = "fuzz-access-token"
	)
	now := time.Unix(1_750_000_000, 0)
	key := mustDPoPKey(f, "ES256")
	rsaKey := mustDPoPKey(f, "RS256")
	good, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, AccessToken: at, IssuedAt: now, Nonce: "n"})
	if err != nil {
		f.Fatal(err)
	}
	goodRSA, err := rsaKey.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, AccessToken: at, IssuedAt: now})
	if err != nil {
		f.Fatal(err)
	}
	claims := testProofClaims(http.MethodGet, uri, now)
	for _, seed := range []string{
		good,
		goodRSA,
		good[:len(good)-4],
		strings.Replace(good, ".", "..", 1),
		unsignedTestProof(testProofHeader(key), claims),
		signTestProof(f, []byte(strings.Repeat("s", 32)), "HS256", testProofHeader(key), claims),
		signTestProof(f, key.PrivateJWK().Key, "ES256", map[string]any{"typ": identity.JWTTypeDPoPProof}, claims),
		signTestProof(f, key.PrivateJWK().Key, "ES256", testProofHeader(key), []byte(`{"jti":"x","htm":"GET","htu":"https://rs.example/%zz","iat":1e400}`)),
		"",
		"a.b.c",
	} {
		f.Add(seed, http.MethodGet, uri, key.Thumbprint())
	}
	f.Add(goodRSA, http.MethodGet, "HTTPS://RS.EXAMPLE:443/api?x#y", rsaKey.Thumbprint())
	f.Fuzz(func(t *testing.T, proof, method, requestURI, jkt string) {
		p, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
			Method: method, URI: requestURI, AccessToken: at, BoundJKT: jkt, Now: now,
		})
		if err != nil {
			var pe *identity.DPoPProofError
			if !errors.Is(err, identity.ErrDPoPProof) || !errors.As(err, &pe) || pe.Check == "" {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if p.Method != method || p.Thumbprint != jkt || p.AccessTokenHash != identity.DPoPAccessTokenHash(at) || p.ID == "" {
			t.Fatalf("accepted a proof that does not fit: %+v", p)
		}
	})
}
