package integration

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Signed responses of oidc-provider verified by package identity: userinfo
// as application/jwt (OpenID Connect Core §5.3.2, features.jwtUserinfo) and
// RFC 9701 JWT introspection responses (features.jwtIntrospection), with the
// provider (discovery + JWKS) as identity.Provider key source.

const (
	// testSignedClientID has userinfo_signed_response_alg and
	// introspection_signed_response_alg ES256; code, client credentials.
	testSignedClientID     = "test-client-signed"
	testSignedClientSecret = "test-secret-signed"
)

// rawResponse sends req and returns the status, Content-Type and body.
func rawResponse(t *testing.T, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func TestSignedUserInfoAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	prov := identityProvider(t, p)
	tok := userToken(t, p, doc, identity.ClientSecretBasicAuth(testSignedClientID, testSignedClientSecret), nil, "dave")

	// On the wire: application/jwt, ES256, iss and aud of the client.
	req, err := http.NewRequest(http.MethodGet, doc.UserInfoEndpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	status, ctype, body := rawResponse(t, req)
	if status != http.StatusOK || !strings.HasPrefix(ctype, "application/jwt") {
		t.Fatalf("userinfo %d %q: %s", status, ctype, body)
	}
	h, claims := verifyJWT(t, body, p.fetchJWKS(t))
	if h.Algorithm != "ES256" || claims["iss"] != p.URL() || claims["aud"] != testSignedClientID || claims["sub"] != "dave" {
		t.Errorf("signed userinfo header %+v claims %v", h, claims)
	}

	base := identity.UserInfoRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint},
		Token:           tok.AccessToken,
		Keys:            prov,
		Issuer:          p.URL(),
		ClientID:        testSignedClientID,
		ExpectedSubject: "dave",
	}
	for _, usePost := range []bool{false, true} {
		r := base
		r.UsePost = usePost
		info, err := identity.RequestUserInfo(ctx, nil, r)
		if err != nil {
			t.Fatalf("UsePost %v: %v", usePost, err)
		}
		if !info.Signed || info.Subject != "dave" || info.Email != "dave@example.test" || !info.EmailVerified || info.Name != "dave" {
			t.Errorf("UsePost %v: userinfo %+v (%s)", usePost, info, info.Raw)
		}
	}

	for _, tc := range []struct {
		name   string
		modify func(*identity.UserInfoRequest)
		check  func(error) bool
	}{
		{"other expected subject", func(r *identity.UserInfoRequest) { r.ExpectedSubject = "mallory" },
			func(err error) bool { return errors.Is(err, identity.ErrSubjectMismatch) }},
		{"no keys", func(r *identity.UserInfoRequest) { r.Keys = nil },
			func(err error) bool { return errors.Is(err, identity.ErrKeyNotFound) }},
		{"other issuer", func(r *identity.UserInfoRequest) { r.Issuer = "https://issuer.example.test" },
			func(err error) bool { var ce *identity.ClaimError; return errors.As(err, &ce) && ce.Claim == "iss" }},
		{"other client", func(r *identity.UserInfoRequest) { r.ClientID = testClientID },
			func(err error) bool { var ce *identity.ClaimError; return errors.As(err, &ce) && ce.Claim == "aud" }},
		{"ES256 not allowed", func(r *identity.UserInfoRequest) { r.Algorithms = []string{"RS256"} },
			func(err error) bool { return errors.Is(err, identity.ErrUnsupportedAlg) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.modify(&r)
			info, err := identity.RequestUserInfo(ctx, nil, r)
			if !tc.check(err) {
				t.Errorf("got %+v, %v", info, err)
			}
		})
	}

	t.Run("unsigned client still JSON", func(t *testing.T) {
		plain := userToken(t, p, doc, identity.ClientSecretBasicAuth(testClientID, testClientSecret), nil, "dave")
		info, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint},
			Token:           plain.AccessToken,
			Keys:            prov,
			ExpectedSubject: "dave",
		})
		if err != nil || info.Signed || info.Email != "dave@example.test" {
			t.Errorf("userinfo %+v, %v", info, err)
		}
	})
}

func TestSignedIntrospectionAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	prov := identityProvider(t, p)
	basic := identity.ClientSecretBasicAuth(testClientID, testClientSecret)
	signed := identity.ClientSecretBasicAuth(testSignedClientID, testSignedClientSecret)
	tok, err := identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: basic},
		Scopes:          []string{"api:read"}, Resource: []string{resourceOpaque},
	})
	if err != nil {
		t.Fatal(err)
	}
	request := func(auth identity.ClientAuth, token string) identity.IntrospectionRequest {
		return identity.IntrospectionRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: doc.IntrospectionEndpoint, ClientAuth: auth},
			Token:           token, TokenTypeHint: identity.TokenTypeHintAccessToken,
			RequestJWT: true, Keys: prov, Issuer: p.URL(),
		}
	}

	// On the wire: application/token-introspection+jwt, typ
	// token-introspection+jwt, aud the introspecting client.
	form := url.Values{"token": {tok.AccessToken}}
	req, err := http.NewRequest(http.MethodPost, doc.IntrospectionEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testSignedClientID, testSignedClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/token-introspection+jwt")
	status, ctype, body := rawResponse(t, req)
	if status != http.StatusOK || !strings.HasPrefix(ctype, "application/token-introspection+jwt") {
		t.Fatalf("introspection %d %q: %s", status, ctype, body)
	}
	h, claims := verifyJWT(t, body, p.fetchJWKS(t))
	if typ, _ := h.ExtraHeaders["typ"].(string); typ != "token-introspection+jwt" || h.Algorithm != "ES256" {
		t.Errorf("header typ %q alg %s", typ, h.Algorithm)
	}
	if claims["iss"] != p.URL() || claims["aud"] != testSignedClientID || claims["token_introspection"] == nil {
		t.Errorf("claims %v", claims)
	}
	t.Logf("RFC 9701 response claims: %v", claims)

	for _, tc := range []struct {
		name string
		auth identity.ClientAuth
		alg  string
	}{
		{"ES256 (introspection_signed_response_alg)", signed, "ES256"},
		{"RS256 (oidc-provider's default for other clients)", basic, "RS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(tc.auth, tok.AccessToken)
			req.Algorithms = []string{tc.alg} // the only one allowed: proves which alg signed
			r, err := identity.IntrospectToken(ctx, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Signed || !r.Active || r.ClientID != testClientID || len(r.Audience) != 1 || r.Audience[0] != resourceOpaque ||
				!r.HasScope("api:read") || r.Issuer != p.URL() || r.TokenType != "Bearer" {
				t.Errorf("introspection %+v (%s)", r, r.Raw)
			}
		})
	}

	t.Run("not asked: plain JSON", func(t *testing.T) {
		req := request(signed, tok.AccessToken)
		req.RequestJWT = false
		r, err := identity.IntrospectToken(ctx, nil, req)
		if err != nil || r.Signed || !r.Active {
			t.Errorf("introspection %+v, %v", r, err)
		}
	})

	t.Run("unknown token: signed inactive", func(t *testing.T) {
		r, err := identity.IntrospectToken(ctx, nil, request(signed, "no-such-token"))
		if err != nil || !r.Signed || r.Active {
			t.Errorf("introspection %+v, %v", r, err)
		}
	})

	t.Run("DPoP-bound token: cnf.jkt in the signed response", func(t *testing.T) {
		key := newDPoPKey(t, "ES256")
		bound, err := identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint,
				ClientAuth: identity.ClientSecretBasicAuth(testDPoPClientID, testDPoPClientSecret), DPoP: key},
			Resource: []string{resourceOpaque},
		})
		if err != nil {
			t.Fatal(err)
		}
		r, err := identity.IntrospectToken(ctx, nil, request(signed, bound.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Signed || !r.Active || r.TokenType != identity.TokenTypeDPoP || cnfJKT(t, r) != key.Thumbprint() {
			t.Errorf("introspection %+v (%s), want cnf.jkt %s", r, r.Raw, key.Thumbprint())
		}
	})

	for _, tc := range []struct {
		name   string
		modify func(*identity.IntrospectionRequest)
		check  func(error) bool
	}{
		{"no keys", func(r *identity.IntrospectionRequest) { r.Keys = nil },
			func(err error) bool { return errors.Is(err, identity.ErrKeyNotFound) }},
		{"other audience", func(r *identity.IntrospectionRequest) { r.Audience = "https://rs.example.test" },
			func(err error) bool { var ce *identity.ClaimError; return errors.As(err, &ce) && ce.Claim == "aud" }},
		{"other issuer", func(r *identity.IntrospectionRequest) { r.Issuer = "https://issuer.example.test" },
			func(err error) bool { var ce *identity.ClaimError; return errors.As(err, &ce) && ce.Claim == "iss" }},
		{"ES256 not allowed", func(r *identity.IntrospectionRequest) { r.Algorithms = []string{"RS256"} },
			func(err error) bool { return errors.Is(err, identity.ErrUnsupportedAlg) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request(signed, tok.AccessToken)
			tc.modify(&r)
			got, err := identity.IntrospectToken(ctx, nil, r)
			if !tc.check(err) {
				t.Errorf("got %+v, %v", got, err)
			}
		})
	}
}
