package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
)

const (
	// The client of provider.mjs's RFC 8693 grant (registerTokenExchange).
	testExchangeClientID     = "test-client-exchange"
	testExchangeClientSecret = "test-secret-exchange"
	// resourceUpstream is the upstream behind Caddy, whose tokens are
	// ES256 JWTs (the indicator contains "es256").
	resourceUpstream = "https://upstream.example.test/es256"
)

// userJWT runs the authorization code flow of test-client for account with
// scope, for resource, and returns the access token: a JWT whose aud is
// resource and whose sub is account.
func userJWT(t *testing.T, p *oidcProvider, account, resource, scope string) string {
	t.Helper()
	verifier, challenge := pkcePair(t)
	cb := p.authorize(t, url.Values{
		"client_id": {testClientID}, "scope": {"openid " + scope}, "login_hint": {account}, "resource": {resource},
		"state": {randomString(t)}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	})
	status, tr := p.token(t, basicClient(), url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {testRedirectURI},
		"code_verifier": {verifier}, "resource": {resource},
	})
	if status != http.StatusOK || strings.Count(tr.AccessToken, ".") != 2 {
		t.Fatalf("code redemption for %s: status %d %+v, want a JWT access token", resource, status, tr)
	}
	return tr.AccessToken
}

// exchangeClientToken is a client-credentials token of test-client-exchange
// (opaque without resource), as Caddy's actor token.
func exchangeClientToken(t *testing.T, p *oidcProvider, resource string) string {
	t.Helper()
	return p.clientCredentials(t, clientAuth{ID: testExchangeClientID, Secret: testExchangeClientSecret, Method: "basic"}, resource, "").AccessToken
}

// exchangeRequest is a token exchange by test-client-exchange of subject
// for resourceUpstream.
func exchangeRequest(p *oidcProvider, subject string) identity.TokenExchangeTokenRequest {
	return identity.TokenExchangeTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{
			Address:    p.URL() + "/token",
			ClientAuth: identity.ClientSecretBasicAuth(testExchangeClientID, testExchangeClientSecret),
		},
		SubjectToken:     subject,
		SubjectTokenType: identity.TokenTypeAccessToken,
		Resource:         []string{resourceUpstream},
	}
}

// signAs signs claims with the provider's key of alg (or, with foreign, a
// fresh key under the same kid), header typ at+jwt.
func signAs(t *testing.T, p *oidcProvider, alg string, foreign bool, claims map[string]any) string {
	t.Helper()
	var key jose.JSONWebKey
	for _, k := range p.Keys() {
		if k.Algorithm == alg {
			key = k
			break
		}
	}
	if foreign {
		key = newSigningKey(t, alg, key.KeyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenExchangeGrantAgainstProvider checks provider.mjs's token
// exchange grant itself: it issues a token of the target's audience for the
// subject's sub, and refuses every subject token it did not issue or that
// is no longer valid, as well as requests RFC 8693 says to refuse.
func TestTokenExchangeGrantAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	ctx := clientsContext(t)
	subject := userJWT(t, p, "dora", resourceRS256, "api:read api:write")

	t.Run("exchanged", func(t *testing.T) {
		req := exchangeRequest(p, subject)
		req.Scopes = []string{"api:read"}
		tok, err := identity.RequestTokenExchangeToken(ctx, nil, req)
		if err != nil {
			t.Fatal(err)
		}
		if tok.IssuedTokenType != identity.TokenTypeAccessToken || !strings.EqualFold(tok.TokenType, "Bearer") {
			t.Errorf("issued_token_type %q, token_type %q", tok.IssuedTokenType, tok.TokenType)
		}
		h, claims := verifyJWT(t, tok.AccessToken, p.fetchJWKS(t))
		if h.Algorithm != "ES256" || claims["aud"] != resourceUpstream || claims["sub"] != "dora" ||
			claims["client_id"] != testExchangeClientID || claims["scope"] != "api:read" || claims["iss"] != p.URL() {
			t.Errorf("exchanged token: alg %s, claims %v", h.Algorithm, claims)
		}
	})
	t.Run("a client's token keeps the client as sub", func(t *testing.T) {
		cc := p.clientCredentials(t, postClient(), resourceRS256, "api:read").AccessToken
		tok, err := identity.RequestTokenExchangeToken(ctx, nil, exchangeRequest(p, cc))
		if err != nil {
			t.Fatal(err)
		}
		if _, claims := verifyJWT(t, tok.AccessToken, p.fetchJWKS(t)); claims["sub"] != testPostClientID || claims["scope"] != "api:read" {
			t.Errorf("exchanged token claims %v", claims)
		}
	})

	t.Run("delegation: the actor is the exchanging client", func(t *testing.T) {
		for _, resource := range []string{"", resourceRS256} { // opaque and JWT actor tokens
			req := exchangeRequest(p, subject)
			req.ActorToken, req.ActorTokenType = exchangeClientToken(t, p, resource), identity.TokenTypeAccessToken
			tok, err := identity.RequestTokenExchangeToken(ctx, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			_, claims := verifyJWT(t, tok.AccessToken, p.fetchJWKS(t))
			if act, _ := claims["act"].(map[string]any); claims["sub"] != "dora" || act["sub"] != testExchangeClientID {
				t.Errorf("actor token for %q: exchanged token claims %v, want sub dora and act.sub %s", resource, claims, testExchangeClientID)
			}
		}
	})

	now := time.Now()
	valid := map[string]any{
		"iss": p.URL(), "sub": "dora", "aud": resourceRS256, "scope": "api:read", "client_id": testClientID,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": randomString(t),
	}
	with := func(changes map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range valid {
			c[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	tampered := subject[:strings.LastIndexByte(subject, '.')+1] + strings.Repeat("A", len(subject)-strings.LastIndexByte(subject, '.')-1)
	idToken := func() string {
		verifier, challenge := pkcePair(t)
		cb := p.authorize(t, url.Values{
			"client_id": {testClientID}, "scope": {"openid"}, "login_hint": {"dora"}, "nonce": {randomString(t)},
			"state": {randomString(t)}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		})
		_, tr := p.token(t, basicClient(), url.Values{
			"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
		})
		return tr.IDToken
	}()
	// why is in the provider's error_description: the refusal is for the
	// reason the case is about.
	tests := []struct {
		name   string
		change func(r *identity.TokenExchangeTokenRequest)
		code   string
		why    string
	}{
		{"signed by the provider's key, as the provider would", func(r *identity.TokenExchangeTokenRequest) {
			r.SubjectToken = signAs(t, p, "RS256", false, valid)
		}, "", ""},
		{"signature tampered with", func(r *identity.TokenExchangeTokenRequest) { r.SubjectToken = tampered }, identity.ErrorInvalidGrant, "SIGNATURE_VERIFICATION_FAILED"},
		{"signed by another key under the provider's kid", func(r *identity.TokenExchangeTokenRequest) {
			r.SubjectToken = signAs(t, p, "RS256", true, valid)
		}, identity.ErrorInvalidGrant, "SIGNATURE_VERIFICATION_FAILED"},
		{"expired", func(r *identity.TokenExchangeTokenRequest) {
			r.SubjectToken = signAs(t, p, "ES256", false, with(map[string]any{"exp": now.Add(-time.Minute).Unix()}))
		}, identity.ErrorInvalidGrant, "ERR_JWT_EXPIRED"},
		{"another issuer", func(r *identity.TokenExchangeTokenRequest) {
			r.SubjectToken = signAs(t, p, "ES256", false, with(map[string]any{"iss": "https://elsewhere.example.test"}))
		}, identity.ErrorInvalidGrant, "CLAIM_VALIDATION_FAILED (iss)"},
		{"no sub", func(r *identity.TokenExchangeTokenRequest) {
			r.SubjectToken = signAs(t, p, "ES256", false, with(map[string]any{"sub": nil}))
		}, identity.ErrorInvalidGrant, "CLAIM_VALIDATION_FAILED (sub)"},
		{"an ID token", func(r *identity.TokenExchangeTokenRequest) { r.SubjectToken = idToken }, identity.ErrorInvalidGrant, "CLAIM_VALIDATION_FAILED (typ)"},
		{"an opaque token", func(r *identity.TokenExchangeTokenRequest) { r.SubjectToken = p.accessToken(t, resourceOpaque) }, identity.ErrorInvalidGrant, "ERR_JWS_INVALID"},
		{"not a token", func(r *identity.TokenExchangeTokenRequest) { r.SubjectToken = "not-a-token" }, identity.ErrorInvalidGrant, "ERR_JWS_INVALID"},
		{"scope beyond the subject token's", func(r *identity.TokenExchangeTokenRequest) {
			r.SubjectToken = signAs(t, p, "ES256", false, valid) // api:read only
			r.Scopes = []string{"api:write"}
		}, identity.ErrorInvalidScope, "beyond the subject token"},
		{"no target", func(r *identity.TokenExchangeTokenRequest) { r.Resource = nil }, identity.ErrorInvalidTarget, "exactly one"},
		{"two targets", func(r *identity.TokenExchangeTokenRequest) { r.Audience = []string{resourceES256} }, identity.ErrorInvalidTarget, "exactly one"},
		{"actor token of a user", func(r *identity.TokenExchangeTokenRequest) {
			r.ActorToken, r.ActorTokenType = subject, identity.TokenTypeAccessToken
		}, identity.ErrorInvalidGrant, "actor_token refused"},
		{"actor token of another client", func(r *identity.TokenExchangeTokenRequest) {
			r.ActorToken, r.ActorTokenType = p.clientCredentials(t, basicClient(), "", "").AccessToken, identity.TokenTypeAccessToken
		}, identity.ErrorInvalidGrant, "actor_token refused"},
		{"actor token of another type", func(r *identity.TokenExchangeTokenRequest) {
			r.ActorToken, r.ActorTokenType = exchangeClientToken(t, p, ""), "urn:ietf:params:oauth:token-type:id_token"
		}, identity.ErrorInvalidRequest, "actor_token_type"},
		{"subject token type of an ID token", func(r *identity.TokenExchangeTokenRequest) {
			r.SubjectTokenType = "urn:ietf:params:oauth:token-type:id_token"
		}, identity.ErrorInvalidRequest, "subject_token_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := exchangeRequest(p, subject)
			tc.change(&req)
			tok, err := identity.RequestTokenExchangeToken(ctx, nil, req)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, claims := verifyJWT(t, tok.AccessToken, p.fetchJWKS(t)); claims["sub"] != "dora" || claims["aud"] != resourceUpstream {
					t.Errorf("exchanged token claims %v", claims)
				}
				return
			}
			pe := expectProtocolError(t, err, http.StatusBadRequest, tc.code)
			if !strings.Contains(pe.Description, tc.why) {
				t.Errorf("refused with %q, want a description with %q", pe.Description, tc.why)
			}
		})
	}
}

// TestE2EUpstreamTokenExchange: Caddy verifies the caller's JWT, exchanges
// it at oidc-provider for a token of the upstream, and the upstream gets a
// token whose aud is its own and whose sub is the caller's. A caller whose
// token the provider refuses to exchange (its scope is narrower than the
// upstream's asks) gets 403 and the upstream is never reached.
func TestE2EUpstreamTokenExchange(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p)+fmt.Sprintf(`
		upstream_token exchange {
			client_id %s
			client_secret %s
			resource %s
			scopes api:write
			header X-Upstream-Token
		}`, testExchangeClientID, testExchangeClientSecret, resourceUpstream))

	caller := userJWT(t, p, "erin", resourceRS256, "api:read api:write")
	r := c.expectStatus(caller, http.StatusOK)
	if got := r.Upstream.Get("X-User-Id"); got != "erin" {
		t.Errorf("X-User-Id %q, want the caller erin", got)
	}
	up := r.Upstream.Get("X-Upstream-Token")
	if up == "" || up == caller {
		t.Fatalf("upstream X-Upstream-Token %q, want an exchanged token", up)
	}
	h, claims := verifyJWT(t, up, p.fetchJWKS(t))
	if h.Algorithm != "ES256" || claims["aud"] != resourceUpstream || claims["sub"] != "erin" ||
		claims["client_id"] != testExchangeClientID || claims["scope"] != "api:write" {
		t.Errorf("exchanged token: alg %s, claims %v; want aud %s, sub erin", h.Algorithm, claims, resourceUpstream)
	}
	if again := c.expectStatus(caller, http.StatusOK); again.Upstream.Get("X-Upstream-Token") != up {
		t.Error("the exchanged token was not reused for the same caller token")
	}
	other := userJWT(t, p, "frank", resourceRS256, "api:read api:write")
	if _, claims := verifyJWT(t, c.expectStatus(other, http.StatusOK).Upstream.Get("X-Upstream-Token"), p.fetchJWKS(t)); claims["sub"] != "frank" {
		t.Errorf("another caller's exchanged token has sub %v, want frank", claims["sub"])
	}

	narrow := userJWT(t, p, "grace", resourceRS256, "api:read")
	refused := c.expectStatus(narrow, http.StatusForbidden)
	if !strings.Contains(refused.WWWAuthenticate, `error="insufficient_scope"`) || !strings.Contains(refused.WWWAuthenticate, "cannot be exchanged") {
		t.Errorf("refused exchange: WWW-Authenticate %q, want insufficient_scope", refused.WWWAuthenticate)
	}
}

// TestE2EUpstreamTokenExchangeActor: with actor client_credentials, Caddy
// sends its own client-credentials token as the actor token, and the
// upstream's token names the caller as sub and Caddy's client in act.
func TestE2EUpstreamTokenExchangeActor(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p)+fmt.Sprintf(`
		upstream_token exchange {
			client_id %s
			client_secret %s
			resource %s
			actor client_credentials
		}`, testExchangeClientID, testExchangeClientSecret, resourceUpstream))

	caller := userJWT(t, p, "ivan", resourceRS256, "api:read")
	r := c.expectStatus(caller, http.StatusOK)
	up, ok := strings.CutPrefix(r.Upstream.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("upstream Authorization %q, want the exchanged bearer token", r.Upstream.Get("Authorization"))
	}
	_, claims := verifyJWT(t, up, p.fetchJWKS(t))
	if act, _ := claims["act"].(map[string]any); claims["sub"] != "ivan" || claims["aud"] != resourceUpstream || act["sub"] != testExchangeClientID {
		t.Errorf("exchanged token claims %v, want sub ivan, aud %s and act.sub %s", claims, resourceUpstream, testExchangeClientID)
	}
}
