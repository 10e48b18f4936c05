package identity_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// FuzzVerifyDPoPProof checks that VerifyDPoPProof never panics, fails only
// with a *DPoPProofError, and accepts a proof only when it fits the request
// it is checked against under the independent check of
// identitytest.ProofCheck: go-jose verifies it with its jwk, whose
// thumbprint is the bound one, htm is the method, htu the URI, iat inside
// the window and ath the token's hash.
func FuzzVerifyDPoPProof(f *testing.F) {
	const (
		uri = "https://rs.example/api"
		at  = "fuzz-access-token"
	)
	now := time.Unix(1_750_000_000, 0)
	key := mustDPoPKey(f, "ES256")
	rsaKey := mustDPoPKey(f, "RS256")
	proof := func(k *identity.DPoPKey, method, u string, iat time.Time, token string) string {
		p, err := k.Proof(identity.DPoPProofOptions{Method: method, URI: u, AccessToken: token, IssuedAt: iat, Nonce: "n"})
		if err != nil {
			f.Fatal(err)
		}
		return p
	}
	good := proof(key, http.MethodGet, uri, now, at)
	goodRSA := proof(rsaKey, http.MethodGet, uri, now, at)
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
		// Each fits the request but for one claim: htu, iat (too old, in
		// the future), ath.
		proof(key, http.MethodGet, "https://rs.example/other", now, at),
		proof(key, http.MethodGet, "https://evil.example/api", now, at),
		proof(key, http.MethodGet, uri, now.Add(-identity.DefaultDPoPMaxAge-time.Minute), at),
		proof(key, http.MethodGet, uri, now.Add(identity.DefaultDPoPClockSkew+time.Minute), at),
		proof(key, http.MethodGet, uri, now, "another-token"),
		"",
		"a.b.c",
	} {
		f.Add(seed, http.MethodGet, uri, key.Thumbprint())
	}
	f.Add(goodRSA, http.MethodGet, "HTTPS://RS.EXAMPLE:443/api?x#y", rsaKey.Thumbprint())
	f.Add(good, http.MethodGet, uri, rsaKey.Thumbprint())
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
		check := identitytest.ProofCheck{
			Method: method, URI: requestURI, AccessToken: at, JKT: jkt,
			Algorithms: identity.DefaultAlgorithms(), Now: now,
			MaxAge: identity.DefaultDPoPMaxAge, ClockSkew: identity.DefaultDPoPClockSkew,
		}
		if err := check.Check(proof); err != nil {
			t.Fatalf("accepted a proof the independent check refuses: %v", err)
		}
		if p.Method != method || p.Thumbprint != jkt || p.ID == "" {
			t.Fatalf("accepted proof reported as %+v", p)
		}
	})
}
