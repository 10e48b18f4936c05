package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
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
