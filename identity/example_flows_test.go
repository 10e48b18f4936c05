package identity_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// startIssuer starts the in-process test provider the examples run
// against; in real code the issuer is your provider's URL.
func startIssuer() *identitytest.Issuer {
	iss, err := identitytest.Start(identitytest.WithAlgorithms("ES256"))
	if err != nil {
		log.Fatal(err)
	}
	return iss
}

// The whole sign-in of a web application (OpenID Connect authorization
// code flow with PKCE): discovery, the authorization URL, the callback,
// the code exchange, ID token validation for this login, and userinfo.
func Example_authorizationCodeFlow() {
	iss := startIssuer()
	defer iss.Close()
	ctx := context.Background()

	// Once, at start-up: the provider's metadata and keys, cached.
	provider, err := identity.NewProvider(iss.URL, identity.ProviderOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer provider.Close()
	doc, err := provider.Discovery(ctx)
	if err != nil {
		log.Fatal(err)
	}
	validator, err := identity.NewValidator([]identity.IssuerConfig{{
		Issuer: doc.Issuer, Keys: provider, Audiences: []string{"client"},
	}}, identity.ValidatorOptions{})
	if err != nil {
		log.Fatal(err)
	}

	// 1. Per login: PKCE, state and nonce, kept in the user's session.
	pkce, state, nonce := identity.NewPKCE(), identity.GenerateState(), identity.GenerateNonce()
	authURL, err := identity.AuthorizationRequest{
		Address: doc.AuthorizationEndpoint, ClientID: "client", RedirectURI: "https://app.example/cb",
		Scopes: []string{"openid", "email"}, State: state, Nonce: nonce,
		CodeChallenge: pkce.Challenge, LoginHint: "alice",
	}.URL()
	if err != nil {
		log.Fatal(err)
	}

	// 2. The browser goes there and comes back to the redirect URI (the
	// test provider signs "alice" in at once).
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	callback, err := identity.ParseAuthorizationCallbackURL(resp.Header.Get("Location"), state)
	if err != nil {
		log.Fatal(err)
	}

	// 3. The code for tokens, with the PKCE verifier.
	tokens, err := identity.RequestAuthorizationCodeToken(ctx, nil, identity.AuthorizationCodeTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
		Code:            callback.Code, RedirectURI: "https://app.example/cb", CodeVerifier: pkce.Verifier,
	})
	if err != nil {
		log.Fatal(err)
	}

	// 4. The ID token says who signed in, for this login only.
	idToken, err := validator.ValidateIDToken(ctx, tokens.IDToken, identity.IDTokenCheck{
		ClientID: "client", Nonce: nonce, AccessToken: tokens.AccessToken,
	})
	if err != nil {
		log.Fatal(err)
	}

	// 5. More about the user, for the same subject.
	info, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint},
		Token:           tokens.AccessToken,
		ExpectedSubject: idToken.Claims.Subject,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in:", idToken.Claims.Subject, info.Email, info.EmailVerified)
	fmt.Println("refresh token:", tokens.RefreshToken != "")
	// Output:
	// signed in: alice alice@example.test true
	// refresh token: true
}

// A resource server checks a JWT access token in one call, as
// py-identity-model's validate_token does. For many tokens, keep a
// [identity.Provider] (ValidateOptions.Provider) or a [identity.Validator].
func ExampleValidateAccessToken() {
	iss := startIssuer()
	defer iss.Close()
	token, _ := iss.MintToken(map[string]any{"sub": "svc-7", "aud": "orders", "scope": "orders:read"})

	tok, err := identity.ValidateAccessToken(context.Background(), token, identity.ValidateOptions{
		Issuer:   iss.DiscoveryURL(), // the issuer or its discovery address
		Audience: "orders",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Claims.Subject, tok.Claims.Scopes)

	_, err = identity.ValidateAccessToken(context.Background(), token, identity.ValidateOptions{Issuer: iss.URL, Audience: "billing"})
	var ce *identity.ClaimError
	fmt.Println(errors.As(err, &ce), ce.Claim, ce.Reason)
	// Output:
	// svc-7 [orders:read]
	// true aud audience not accepted
}

// An ID token is checked for one login: the client it was issued to, the
// nonce of the authentication request, and the access token it came with
// (at_hash). One Validator serves every login.
func ExampleValidator_ValidateIDToken() {
	iss := startIssuer()
	defer iss.Close()
	provider, _ := identity.NewProvider(iss.URL, identity.ProviderOptions{})
	defer provider.Close()
	v, err := identity.NewValidator([]identity.IssuerConfig{{Issuer: iss.URL, Keys: provider, Audiences: []string{"web"}}}, identity.ValidatorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	atHash, _ := identity.TokenHash("ES256", "the-access-token")
	raw, _ := iss.MintToken(map[string]any{"sub": "alice", "aud": "web", "nonce": "n-123", "at_hash": atHash})

	tok, err := v.ValidateIDToken(context.Background(), raw, identity.IDTokenCheck{
		ClientID: "web", Nonce: "n-123", AccessToken: "the-access-token",
	})
	fmt.Println(tok.Claims.Subject, err)

	_, err = v.ValidateIDToken(context.Background(), raw, identity.IDTokenCheck{ClientID: "web", Nonce: "another-login"})
	fmt.Println(err)
	_, err = v.ValidateIDToken(context.Background(), raw, identity.IDTokenCheck{ClientID: "web", Nonce: "n-123", AccessToken: "another-token"})
	fmt.Println(err)
	// Output:
	// alice <nil>
	// identity: claim "nonce": nonce mismatch
	// identity: claim "at_hash": hash mismatch
}

// The one-call form of ID token validation, for scripts and tests.
func ExampleValidateIDToken() {
	iss := startIssuer()
	defer iss.Close()
	raw, _ := iss.MintToken(map[string]any{"sub": "bob", "aud": "cli", "nonce": "n-9"})
	tok, err := identity.ValidateIDToken(context.Background(), raw,
		identity.ValidateOptions{Issuer: iss.URL}, identity.IDTokenCheck{ClientID: "cli", Nonce: "n-9"})
	fmt.Println(tok.Claims.Subject, err)
	// Output: bob <nil>
}

// A Provider fetches the discovery document once and serves it from its
// cache; the metadata address is accepted in place of the issuer.
func ExampleProvider_Discovery() {
	iss := startIssuer()
	defer iss.Close()
	p, err := identity.NewProvider(iss.DiscoveryURL(), identity.ProviderOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for range 3 {
		if _, err := p.Discovery(context.Background()); err != nil {
			log.Fatal(err)
		}
	}
	doc, _ := p.Discovery(context.Background())
	fmt.Println(p.Issuer() == iss.URL, strings.TrimPrefix(doc.TokenEndpoint, iss.URL), strings.TrimPrefix(doc.IntrospectionEndpoint, iss.URL))
	fmt.Println("fetches:", iss.DiscoveryFetches())
	// Output:
	// true /token /introspect
	// fetches: 1
}

// FetchKeySet reads a JWKS once (a RemoteKeySet or Provider caches it).
func ExampleFetchKeySet() {
	iss := startIssuer()
	defer iss.Close()
	set, _, err := identity.FetchKeySet(context.Background(), nil, iss.JWKSURL(), identity.FetchKeySetOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range set.Keys() {
		// identitytest's key IDs end in a tag that is random per issuer.
		fmt.Println(strings.TrimSuffix(k.JWK.KeyID, "."+iss.KeyIDTag()), k.JWK.Algorithm, len(k.Thumbprint))
	}
	// Output: es256-1 ES256 43
}

// A ClaimsPrincipal reads the name and roles from where the provider puts
// them, here Keycloak's realm_access.roles.
func ExampleClaimsPrincipal() {
	claims, _ := identity.ParseClaims([]byte(`{"sub":"f81d4fae","preferred_username":"alice",
		"realm_access":{"roles":["clerk","auditor"]}}`))
	user := identity.ClaimsPrincipal{Claims: claims, NameClaimType: "preferred_username", RoleClaimType: "realm_access.roles"}
	fmt.Println(user.Name(), user.Roles(), user.IsInRole("auditor"), user.IsInRole("admin"))
	// Output: alice [clerk auditor] true false
}

// Claims.Get returns decoded JSON by path; Claims.Strings flattens a
// claim to a list, whatever its JSON shape.
func ExampleClaims_Get() {
	claims, _ := identity.ParseClaims([]byte(`{"sub":"u1","https://example.com/roles":["a","b"],
		"address":{"country":"DE"},"tier":3,"amr":"pwd"}`))
	country, _ := claims.Get("address.country")
	tier, _ := claims.String("tier")
	fmt.Println(country, tier)
	fmt.Println(claims.Strings("https://example.com/roles"), claims.Strings("amr"), claims.Strings("missing") == nil)
	// Output:
	// DE 3
	// [a b] [pwd] true
}

// A service calls an API with a client-credentials token that the
// TokenManager keeps fresh; the token endpoint comes from discovery. The
// API validates the token.
func ExampleTokenManager_Transport() {
	iss := startIssuer()
	defer iss.Close()
	provider, _ := identity.NewProvider(iss.URL, identity.ProviderOptions{})
	defer provider.Close()

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok, err := identity.ValidateAccessToken(r.Context(), token, identity.ValidateOptions{
			Provider: provider, Config: identity.IssuerConfig{AnyAudience: true, Types: []string{"at+jwt"}},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "hello "+tok.Claims.Subject)
	}))
	defer api.Close()

	m, err := identity.NewTokenManager(identity.TokenManagerOptions{
		Provider: provider,
		Request: identity.ClientCredentialsTokenRequest{
			ProtocolRequest: identity.ProtocolRequest{ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
			Scopes:          []string{"orders:read"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: m.Transport(nil)}
	resp, err := client.Get(api.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello client
}

// With a DPoP key the token manager gets DPoP-bound tokens, and its
// transport presents them with the DPoP scheme and a fresh proof for each
// request; the API checks the proof against the token's cnf.jkt.
func ExampleTokenManager_Transport_dpop() {
	iss := startIssuer()
	defer iss.Close()
	provider, _ := identity.NewProvider(iss.URL, identity.ProviderOptions{})
	defer provider.Close()

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		tok, err := identity.ValidateAccessToken(r.Context(), token, identity.ValidateOptions{
			Provider: provider, Config: identity.IssuerConfig{AnyAudience: true},
		})
		if !ok || err != nil {
			http.Error(w, "no DPoP-bound token", http.StatusUnauthorized)
			return
		}
		jkt, _ := tok.Claims.String("cnf.jkt")
		proof, err := identity.DPoPProofFromHeader(r.Header)
		if err == nil {
			_, err = identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
				Method: r.Method, URI: "http://" + r.Host + r.URL.Path, AccessToken: token, BoundJKT: jkt,
			})
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "hello "+tok.Claims.Subject+" (DPoP)")
	}))
	defer api.Close()

	key, err := identity.NewDPoPKey("ES256") // keep it as long as its tokens
	if err != nil {
		log.Fatal(err)
	}
	m, err := identity.NewTokenManager(identity.TokenManagerOptions{
		Provider: provider,
		Request: identity.ClientCredentialsTokenRequest{ProtocolRequest: identity.ProtocolRequest{
			ClientAuth: identity.ClientSecretBasicAuth("client", "secret"), DPoP: key,
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: m.Transport(nil)}
	for range 2 {
		resp, err := client.Get(api.URL + "/orders")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	// Output:
	// 200 hello client (DPoP)
	// 200 hello client (DPoP)
}
