package identitytest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

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
	// Key IDs end in a tag that is random per issuer.
	fmt.Println("kid:", strings.TrimSuffix(kid, "."+iss.KeyIDTag()), strings.HasSuffix(kid, iss.KeyIDTag()))
	fmt.Println("sub:", claims["sub"], "aud:", claims["aud"], "scope:", claims["scope"])
	fmt.Println("JWKS fetches:", iss.JWKSFetches())
	// Output:
	// kid: es256-1 true
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
	// Key IDs read "<alg>-<n>.<tag>"; the tag is random per issuer.
	untag := strings.NewReplacer("."+iss.KeyIDTag(), "")
	fmt.Println(untag.Replace(old), "->", untag.Replace(next), untag.Replace(fmt.Sprint(iss.KeyIDs())))
	iss.RemoveKey(old)
	fmt.Println(untag.Replace(fmt.Sprint(iss.KeyIDs())))
	// Output:
	// eddsa-1 -> eddsa-2 [eddsa-1 eddsa-2]
	// [eddsa-2]
}

// ExampleWithLoginPage makes the authorization endpoint show a login form
// instead of signing in at once; the form is POSTed back to it.
func ExampleWithLoginPage() {
	iss, err := identitytest.Start(identitytest.WithLoginPage(map[string]string{"alice": "wonderland"}))
	if err != nil {
		panic(err)
	}
	defer iss.Close()

	q := url.Values{
		"response_type": {"code"}, "client_id": {identitytest.DefaultClientID},
		"redirect_uri": {"https://app.example/callback"}, "scope": {"openid"}, "state": {"xyz"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}
	resp, err := http.Get(iss.URL + identitytest.AuthorizePath + "?" + q.Encode())
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Println(strings.Contains(string(body), `name="`+identitytest.LoginFieldPassword+`"`))
	// Output:
	// 200 text/html; charset=utf-8
	// true
}
