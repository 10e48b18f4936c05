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

// TestProofCheckRefusesEachMismatch is the oracle of FuzzVerifyDPoPProof
// and FuzzHandlerDPoP on proofs that differ from a good one in a single
// respect: it accepts the good proof and refuses each of the others, so
// that its silence on a proof the code under test accepted means something.
func TestProofCheckRefusesEachMismatch(t *testing.T) {
	const (
		uri = "https://rs.example/api"
		at  = "oracle-access-token"
	)
	now := time.Unix(1_750_000_000, 0)
	key := mustDPoPKey(t, "ES256")
	other := mustDPoPKey(t, "ES256")
	proof := func(k *identity.DPoPKey, method, u string, iat time.Time, token string) string {
		p, err := k.Proof(identity.DPoPProofOptions{Method: method, URI: u, AccessToken: token, IssuedAt: iat})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := identitytest.ProofCheck{
		Method: http.MethodGet, URI: uri, AccessToken: at, JKT: key.Thumbprint(),
		Algorithms: identity.DefaultAlgorithms(), Now: now,
		MaxAge: identity.DefaultDPoPMaxAge, ClockSkew: identity.DefaultDPoPClockSkew,
	}
	good := proof(key, http.MethodGet, uri, now, at)
	if err := check.Check(good); err != nil {
		t.Fatalf("good proof refused: %v", err)
	}
	normalized := check
	normalized.URI = "HTTPS://RS.EXAMPLE:443/api?q=1#f"
	if err := normalized.Check(good); err != nil {
		t.Errorf("good proof for the same URI spelled differently refused: %v", err)
	}
	for name, p := range map[string]string{
		"other key":       proof(other, http.MethodGet, uri, now, at),
		"htm":             proof(key, http.MethodPost, uri, now, at),
		"htu path":        proof(key, http.MethodGet, uri+"/x", now, at),
		"htu host":        proof(key, http.MethodGet, "https://evil.example/api", now, at),
		"htu scheme":      proof(key, http.MethodGet, "http://rs.example/api", now, at),
		"iat too old":     proof(key, http.MethodGet, uri, now.Add(-identity.DefaultDPoPMaxAge-2*time.Second), at),
		"iat future":      proof(key, http.MethodGet, uri, now.Add(identity.DefaultDPoPClockSkew+2*time.Second), at),
		"ath":             proof(key, http.MethodGet, uri, now, "another-token"),
		"no ath":          proof(key, http.MethodGet, uri, now, ""),
		"bad signature":   good[:len(good)-2] + "AA",
		"unsigned":        unsignedTestProof(testProofHeader(key), testProofClaims(http.MethodGet, uri, now)),
		"hmac":            signTestProof(t, []byte(strings.Repeat("s", 32)), "HS256", testProofHeader(key), testProofClaims(http.MethodGet, uri, now)),
		"typ missing":     signTestProof(t, key.PrivateJWK().Key, "ES256", map[string]any{"jwk": key.PublicJWK()}, testProofClaims(http.MethodGet, uri, now)),
		"not a JWS":       "a.b.c",
		"JSON serialized": `{"payload":"e30","signatures":[]}`,
	} {
		if err := check.Check(p); err == nil {
			t.Errorf("%s: the oracle accepts the proof", name)
		}
	}
}
