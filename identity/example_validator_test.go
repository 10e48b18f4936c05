package identity_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
)

// ExampleValidator_Validate validates access tokens of one issuer with a
// static key set. In a server, Keys would be an [identity.Provider] or
// [identity.RemoteKeySet] that fetches and refreshes the issuer's JWKS.
func ExampleValidator_Validate() {
	// The issuer's signing key and the JWKS it publishes.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
	keys, err := identity.ParseKeySet(jwks)
	if err != nil {
		log.Fatal(err)
	}

	v, err := identity.NewValidator([]identity.IssuerConfig{{
		Issuer:    "https://login.example.com",
		Keys:      keys,
		Audiences: []string{"orders-api"},
		Types:     []string{"at+jwt"}, // RFC 9068 access tokens only
	}}, identity.ValidatorOptions{
		// Read from every token below: decoded with the checks. Other
		// claims would be decoded on first use.
		DecodeClaims: []string{"realm_access.roles"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// What the issuer would hand a client.
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	mint := func(lifetime time.Duration) string {
		now := time.Now()
		tok, err := jwt.Signed(signer).Claims(map[string]any{
			"iss": "https://login.example.com", "sub": "alice", "aud": "orders-api",
			"iat": now.Unix(), "exp": now.Add(lifetime).Unix(),
			"scope": "orders:read orders:write", "realm_access": map[string]any{"roles": []string{"clerk"}},
		}).Serialize()
		if err != nil {
			log.Fatal(err)
		}
		return tok
	}

	tok, err := v.Validate(context.Background(), mint(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	p := identity.ClaimsPrincipal{Claims: tok.Claims, RoleClaimType: "realm_access.roles"}
	fmt.Println("subject:", p.Name(), "roles:", p.Roles())
	fmt.Println("scopes:", tok.Claims.Scopes, "can write:", tok.Claims.HasScope("orders:write"))
	fmt.Println("algorithm:", tok.Algorithm, "kid:", tok.KeyID)

	// A token that expired ten minutes ago (beyond the 60 s leeway).
	_, err = v.Validate(context.Background(), mint(-10*time.Minute))
	var ce *identity.ClaimError
	if errors.As(err, &ce) {
		fmt.Println("rejected:", ce.Claim, ce.Reason)
	}

	// Unsigned tokens never pass.
	_, err = v.Validate(context.Background(), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.")
	fmt.Println("alg none:", errors.Is(err, identity.ErrAlgNone))
	// Output:
	// subject: alice roles: [clerk]
	// scopes: [orders:read orders:write] can write: true
	// algorithm: EdDSA kid: k1
	// rejected: exp token expired
	// alg none: true
}
