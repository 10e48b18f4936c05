package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// benchAlgorithms are the algorithms benchmarked against raw go-jose.
var benchAlgorithms = [...]string{"RS256", "ES256", "EdDSA"}

// benchToken returns a warm key set and a valid token signed with alg.
func benchToken(b *testing.B, alg string) (valKey, *identity.KeySet, string) {
	b.Helper()
	k := valNewKey(b, alg, "bench-"+alg, false)
	claims := valClaims(map[string]any{"scope": "read write", "jti": "0f9c3e1a-bench"})
	return k, valKeySet(b, k), valMint(b, k, map[string]any{"typ": "at+jwt"}, claims)
}

// BenchmarkValidate measures Validator.Validate with warm static keys: the
// full pipeline (size cap, header and payload decoding with duplicate
// checks, allow-list, key lookup, signature, typed claims and checks).
func BenchmarkValidate(b *testing.B) {
	for _, alg := range benchAlgorithms {
		_, ks, tok := benchToken(b, alg)
		v := valValidator(b, valConfig(ks))
		ctx := context.Background()
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawGoJOSE is the baseline: what a go-jose user does for the
// same token with the key already in hand (jwt.ParseSigned, Claims with
// the key, ValidateWithLeeway).
func BenchmarkRawGoJOSE(b *testing.B) {
	for _, alg := range benchAlgorithms {
		k, _, tok := benchToken(b, alg)
		key := k.pub.Key
		algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
		expected := jwt.Expected{Issuer: valIssuer, AnyAudience: jwt.Audience{valAudience}, Time: valNow}
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				t, err := jwt.ParseSigned(tok, algs)
				if err != nil {
					b.Fatal(err)
				}
				var c jwt.Claims
				if err := t.Claims(key, &c); err != nil {
					b.Fatal(err)
				}
				if err := c.ValidateWithLeeway(expected, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkColdPaired times Validator.Validate and the raw go-jose path of
// BenchmarkRawGoJOSE on the same token in one loop, alternating which goes
// first, so that a shared machine's changing speed falls on both alike, and
// reports the median time of each (validate-ns/op, gojose-ns/op: medians
// are not moved by the long preemptions of a busy machine) and their ratio.
// verify-ns/op is the median of the signature check alone (crypto/rsa,
// crypto/ecdsa or crypto/ed25519 on the decoded signature), the floor of
// any cold validation.
func BenchmarkColdPaired(b *testing.B) {
	for _, alg := range benchAlgorithms {
		k, ks, tok := benchToken(b, alg)
		v := valValidator(b, valConfig(ks))
		ctx := context.Background()
		key := k.pub.Key
		algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
		expected := jwt.Expected{Issuer: valIssuer, AnyAudience: jwt.Audience{valAudience}, Time: valNow}
		raw := func() {
			t, err := jwt.ParseSigned(tok, algs)
			if err != nil {
				b.Fatal(err)
			}
			var c jwt.Claims
			if err := t.Claims(key, &c); err != nil {
				b.Fatal(err)
			}
			if err := c.ValidateWithLeeway(expected, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		ours := func() {
			if _, err := v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		verify := benchVerifier(b, alg, key, tok)
		b.Run(alg, func(b *testing.B) {
			var dOurs, dRaw, dVerify []time.Duration
			timed := func(f func()) time.Duration {
				t0 := time.Now()
				f()
				return time.Since(t0)
			}
			first := false
			for b.Loop() {
				if first = !first; first {
					dOurs = append(dOurs, timed(ours))
					dRaw = append(dRaw, timed(raw))
				} else {
					dRaw = append(dRaw, timed(raw))
					dOurs = append(dOurs, timed(ours))
				}
				dVerify = append(dVerify, timed(verify))
			}
			mOurs, mRaw := benchMedian(dOurs), benchMedian(dRaw)
			b.ReportMetric(float64(mOurs.Nanoseconds()), "validate-ns/op")
			b.ReportMetric(float64(mRaw.Nanoseconds()), "gojose-ns/op")
			b.ReportMetric(float64(benchMedian(dVerify).Nanoseconds()), "verify-ns/op")
			b.ReportMetric(float64(mOurs)/float64(mRaw), "ratio")
		})
	}
}

// benchMedian returns the median of d, which it sorts.
func benchMedian(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// benchVerifier returns the standard library's verification of tok's
// signature with key, its input already decoded.
func benchVerifier(b *testing.B, alg string, key any, tok string) func() {
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(tok[:i])
	return func() {
		ok := false
		switch alg {
		case "RS256":
			h := sha256.Sum256(input)
			ok = rsa.VerifyPKCS1v15(key.(*rsa.PublicKey), crypto.SHA256, h[:], sig) == nil
		case "ES256":
			h := sha256.Sum256(input)
			ok = ecdsaVerifyRaw(key.(*ecdsa.PublicKey), h[:], sig)
		case "EdDSA":
			ok = ed25519.Verify(key.(ed25519.PublicKey), input, sig)
		}
		if !ok {
			b.Fatal("signature does not verify")
		}
	}
}

// BenchmarkValidateBadSignature measures the refusal of well-formed tokens
// with a published kid and a wrong signature, through a Provider (a source
// that refreshes): after the first, nothing but the parse and the
// signature check is paid — no fetch within the cooldown, no goroutine, no
// log record. Compare its allocs/op with BenchmarkValidate's.
func BenchmarkValidateBadSignature(b *testing.B) {
	for _, alg := range benchAlgorithms {
		iss := identitytest.NewIssuer(b, identitytest.WithAlgorithms(alg))
		p, err := identity.NewProvider(iss.URL, identity.ProviderOptions{HTTPClient: iss.Client()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Close() })
		v, err := identity.NewValidator([]identity.IssuerConfig{{
			Issuer: iss.URL, Keys: p, Audiences: []string{identitytest.DefaultAudience},
		}}, identity.ValidatorOptions{})
		if err != nil {
			b.Fatal(err)
		}
		tok := iss.Token(b, "alice", nil)
		ctx := context.Background()
		if _, err := v.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
		bad := tok[:len(tok)-8] + strings.Repeat("A", 4) + tok[len(tok)-4:]
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			before := iss.JWKSFetches()
			for b.Loop() {
				if _, err := v.Validate(ctx, bad); !errors.Is(err, identity.ErrSignature) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(iss.JWKSFetches()-before), "fetches")
		})
	}
}

// ecdsaVerifyRaw verifies a JWS ECDSA signature (R || S) as go-jose does.
func ecdsaVerifyRaw(pub *ecdsa.PublicKey, hash, sig []byte) bool {
	n := len(sig) / 2
	return ecdsa.Verify(pub, hash, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:]))
}

// benchKeycloakClaims are the claims of a Keycloak access token (about
// thirty, with realm and client roles nested), of which a validation's
// checks read seven.
func benchKeycloakClaims() map[string]any {
	return valClaims(map[string]any{
		"jti": "onrtac:6e0bd1b0-6a5e-4c0e-9f5c-1d2f3a4b5c6d", "typ": "Bearer", "azp": "web-app",
		"sid": "9a8b7c6d-5e4f-3a2b-1c0d-ef0123456789", "acr": "1", "auth_time": valNow.Add(-time.Hour).Unix(),
		"session_state":      "9a8b7c6d-5e4f-3a2b-1c0d-ef0123456789",
		"allowed-origins":    []string{"https://app.example.com", "https://admin.example.com"},
		"realm_access":       map[string]any{"roles": []string{"offline_access", "uma_authorization", "default-roles-demo", "user"}},
		"resource_access":    map[string]any{"account": map[string]any{"roles": []string{"manage-account", "manage-account-links", "view-profile"}}, "web-app": map[string]any{"roles": []string{"reader", "writer"}}},
		"scope":              "openid profile email",
		"email_verified":     true,
		"name":               "Alice Example",
		"preferred_username": "alice",
		"given_name":         "Alice",
		"family_name":        "Example",
		"email":              "alice@example.com",
		"locale":             "en",
		"groups":             []string{"/staff", "/staff/engineering"},
		"tenant":             map[string]any{"id": "t-42", "region": "eu-west-1", "plan": "enterprise"},
	})
}

// BenchmarkValidateKeycloakToken validates a token shaped like Keycloak's
// (see benchKeycloakClaims): every member is checked, only those the checks
// read are decoded.
func BenchmarkValidateKeycloakToken(b *testing.B) {
	for _, alg := range [...]string{"RS256", "EdDSA"} {
		k := valNewKey(b, alg, "kc-"+alg, false)
		tok := valMint(b, k, map[string]any{"typ": "JWT"}, benchKeycloakClaims())
		v := valValidator(b, valConfig(valKeySet(b, k)))
		ctx := context.Background()
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
