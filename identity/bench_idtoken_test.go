package identity_test

import (
	"context"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// BenchmarkValidateIDToken measures Validator.ValidateIDToken with warm
// static keys on an ES256 ID token with nonce and at_hash: the cost of the
// per-login checks over BenchmarkValidate/ES256.
func BenchmarkValidateIDToken(b *testing.B) {
	k := valNewKey(b, "ES256", "bench-id", false)
	atHash, err := identity.TokenHash("ES256", "access-token")
	if err != nil {
		b.Fatal(err)
	}
	tok := valMint(b, k, nil, valClaims(map[string]any{"nonce": "n-bench", "at_hash": atHash, "azp": valAudience}))
	v := valValidator(b, valConfig(valKeySet(b, k)))
	check := identity.IDTokenCheck{ClientID: valAudience, Nonce: "n-bench", AccessToken: "access-token"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.ValidateIDToken(ctx, tok, check); err != nil {
			b.Fatal(err)
		}
	}
}
