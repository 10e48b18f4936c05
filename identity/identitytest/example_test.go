package identitytest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Example starts an issuer, mints a token and verifies it against the
// published key set, as a relying party would.
func Example() {
	iss, err := identitytest.Start(identitytest.WithAlgorithms("ES256"))
	if err != nil {
		panic(err)
	}
	defer iss.Close()

	token, err := iss.MintToken(map[string]any{"sub": "alice", "scope": "read"})
	if err != nil {
		panic(err)
	}

	resp, err := http.Get(iss.JWKSURL())
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		panic(err)
	}

	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		panic(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	payload, err := jws.Verify(set.Key(kid)[0])
	if err != nil {
		panic(err)
	}
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	fmt.Println("kid:", kid)
	fmt.Println("sub:", claims["sub"], "aud:", claims["aud"], "scope:", claims["scope"])
	fmt.Println("JWKS fetches:", iss.JWKSFetches())
	// Output:
	// kid: es256-1
	// sub: alice aud: api scope: read
	// JWKS fetches: 1
}

// ExampleIssuer_RotateKey shows a rotation: the new key becomes current and
// the old one stays published until it is removed.
func ExampleIssuer_RotateKey() {
	iss, err := identitytest.Start(identitytest.WithAlgorithms("EdDSA"))
	if err != nil {
		panic(err)
	}
	defer iss.Close()

	old := iss.CurrentKeyID("EdDSA")
	next := iss.RotateKey("EdDSA")
	fmt.Println(old, "->", next, iss.KeyIDs())
	iss.RemoveKey(old)
	fmt.Println(iss.KeyIDs())
	// Output:
	// eddsa-1 -> eddsa-2 [eddsa-1 eddsa-2]
	// [eddsa-2]
}
