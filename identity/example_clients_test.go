package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// exampleServer is a small token endpoint for the examples of the grants
// the test issuer (identitytest) does not serve: the password grant and
// extension grants.
func exampleServer() *httptest.Server {
	reply := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		switch r.PostForm.Get("grant_type") {
		case identity.GrantTypePassword:
			reply(w, 200, `{"access_token":"legacy","token_type":"Bearer"}`)
		case identity.GrantTypeJWTBearer:
			reply(w, 200, `{"access_token":"from-assertion","token_type":"Bearer"}`)
		default:
			reply(w, 400, `{"error":"unsupported_grant_type"}`)
		}
	})
	return httptest.NewServer(mux)
}

func ExampleRequestClientCredentialsToken() {
	iss := startIssuer()
	defer iss.Close()
	tok, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{
			Address:    iss.URL + "/token", // the token_endpoint from discovery
			ClientAuth: identity.ClientSecretBasicAuth("client", "secret"),
		},
		Scopes: []string{"orders.read", "orders.write"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.TokenType, tok.ExpiresIn, tok.Scope, tok.AccessToken != "")
	// Output: Bearer 3600 orders.read orders.write true
}

func ExampleProtocolError() {
	iss := startIssuer()
	defer iss.Close()
	_, err := identity.RequestToken(context.Background(), nil, identity.TokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/token", ClientAuth: identity.ClientSecretPostAuth("client", "secret")},
		GrantType:       "urn:example:unknown",
	})
	var pe *identity.ProtocolError
	if errors.As(err, &pe) {
		fmt.Println(pe.StatusCode, pe.Code+":", pe.Description)
	}
	// Output: 400 unsupported_grant_type: grant type not supported
}

func ExampleRequestRefreshToken() {
	iss := startIssuer()
	defer iss.Close()
	ctx := context.Background()
	endpoint := identity.ProtocolRequest{Address: iss.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")}
	first := exampleLogin(iss, "openid offline_access")

	tok, err := identity.RequestRefreshToken(ctx, nil, identity.RefreshTokenRequest{ProtocolRequest: endpoint, RefreshToken: first.RefreshToken})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("new tokens:", tok.AccessToken != first.AccessToken, tok.RefreshToken != first.RefreshToken)

	// The server rotates refresh tokens: the old one is spent.
	_, err = identity.RequestRefreshToken(ctx, nil, identity.RefreshTokenRequest{ProtocolRequest: endpoint, RefreshToken: first.RefreshToken})
	var pe *identity.ProtocolError
	fmt.Println(errors.As(err, &pe), pe.Code)
	// Output:
	// new tokens: true true
	// true invalid_grant
}

func ExampleAuthorizationRequest_URL() {
	u, err := identity.AuthorizationRequest{
		Address:       "https://idp.example/authorize",
		ClientID:      "web",
		RedirectURI:   "https://app.example/cb",
		Scopes:        []string{"openid", "profile"},
		State:         "af0ifjsldkj",
		Nonce:         "n-0S6_WzA2Mj",
		CodeChallenge: identity.S256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
		Prompt:        "login",
		LoginHint:     "jane@example.com",
	}.URL()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.ReplaceAll(u, "&", "\n&"))
	// Output:
	// https://idp.example/authorize?client_id=web
	// &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
	// &code_challenge_method=S256
	// &login_hint=jane%40example.com
	// &nonce=n-0S6_WzA2Mj
	// &prompt=login
	// &redirect_uri=https%3A%2F%2Fapp.example%2Fcb
	// &response_type=code
	// &scope=openid+profile
	// &state=af0ifjsldkj
}

func ExampleParseAuthorizationCallbackURL() {
	res, err := identity.ParseAuthorizationCallbackURL("https://app.example/cb?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj", "af0ifjsldkj")
	fmt.Println(res.Code, err)
	_, err = identity.ParseAuthorizationCallbackURL("https://app.example/cb?error=access_denied&state=af0ifjsldkj", "af0ifjsldkj")
	fmt.Println(err)
	_, err = identity.ParseAuthorizationCallbackURL("https://app.example/cb?code=x&state=forged", "af0ifjsldkj")
	fmt.Println(errors.Is(err, identity.ErrStateMismatch))
	// Output:
	// SplxlOBeZQQYbYS6WxSbIA <nil>
	// identity: protocol error "access_denied"
	// true
}

func ExampleRequestAuthorizationCodeToken() {
	iss := startIssuer()
	defer iss.Close()
	// The code came back to the redirect URI (see Example_authorizationCodeFlow).
	pkce := identity.NewPKCE()
	code := exampleCode(iss, pkce, "openid")
	tok, err := identity.RequestAuthorizationCodeToken(context.Background(), nil, identity.AuthorizationCodeTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
		Code:            code,
		RedirectURI:     "https://app.example/cb",
		CodeVerifier:    pkce.Verifier,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.TokenType, tok.AccessToken != "", tok.IDToken != "", tok.RefreshToken != "")
	// Output: Bearer true true true
}

func ExampleNewPKCE() {
	p := identity.NewPKCE()
	fmt.Println(len(p.Verifier), p.Method, p.Challenge == identity.S256Challenge(p.Verifier), identity.ValidCodeVerifier(p.Verifier))
	// Output: 43 S256 true true
}

func ExampleS256Challenge() {
	fmt.Println(identity.S256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
	// Output: E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
}

func ExamplePushAuthorizationRequest() {
	iss := startIssuer()
	defer iss.Close()
	pkce := identity.NewPKCE()
	res, err := identity.PushAuthorizationRequest(context.Background(), nil, identity.PushedAuthorizationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/par", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
		Authorization: identity.AuthorizationRequest{
			RedirectURI: "https://app.example/cb", Scopes: []string{"openid"}, State: "xyz",
			CodeChallenge: pkce.Challenge, LoginHint: "alice",
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The browser goes to the authorization endpoint with only client_id
	// and request_uri; the parameters stay with the server.
	u, _ := res.AuthorizationURL(iss.URL+"/authorize", "client")
	fmt.Println(res.ExpiresIn, strings.HasPrefix(res.RequestURI, "urn:ietf:params:oauth:request_uri:"))
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get(u)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	cb, err := identity.ParseAuthorizationCallbackURL(resp.Header.Get("Location"), "xyz")
	fmt.Println(cb.Code != "", err)
	// Output:
	// 60 true
	// true <nil>
}

func ExampleRequestDeviceAuthorization() {
	iss := startIssuer()
	defer iss.Close()
	da, err := identity.RequestDeviceAuthorization(context.Background(), nil, identity.DeviceAuthorizationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/device_authorization", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
		Scopes:          []string{"openid", "offline_access"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("show the user:", strings.TrimPrefix(da.VerificationURI, iss.URL), len(da.UserCode))
	fmt.Println("interval sent:", da.Interval, "- polling uses", identity.DefaultDevicePollInterval)
	// Output:
	// show the user: /device 9
	// interval sent: 0s - polling uses 5s
}

func ExamplePollDeviceToken() {
	iss := startIssuer()
	defer iss.Close()
	ctx := context.Background()
	client := identity.ProtocolRequest{ClientAuth: identity.ClientSecretBasicAuth("client", "secret")}
	client.Address = iss.URL + "/device_authorization"
	da, err := identity.RequestDeviceAuthorization(ctx, nil, identity.DeviceAuthorizationRequest{ProtocolRequest: client, Scopes: []string{"openid"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	client.Address = iss.URL + "/token"
	req := da.TokenRequest(client)
	_, err = identity.RequestDeviceToken(ctx, nil, req)
	var pe *identity.ProtocolError
	fmt.Println("before the user approves:", errors.As(err, &pe), pe.Code)

	iss.ApproveDevice(da.UserCode, "alice") // the user, on another device
	req.Interval = 10 * time.Millisecond    // from the response; 5 s when absent
	req.OnWait = func(answer string, wait time.Duration) {
		fmt.Printf("waiting %v (last answer %q)\n", wait, answer) // a terminal tells the user
	}
	tok, err := identity.PollDeviceToken(ctx, nil, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("approved:", tok.AccessToken != "", tok.IDToken != "")
	// Output:
	// before the user approves: true authorization_pending
	// waiting 10ms (last answer "")
	// approved: true true
}

func ExampleRequestTokenExchangeToken() {
	iss := startIssuer()
	defer iss.Close()
	incoming := exampleLogin(iss, "openid").AccessToken // the user's token that reached the gateway
	tok, err := identity.RequestTokenExchangeToken(context.Background(), nil, identity.TokenExchangeTokenRequest{
		ProtocolRequest:    identity.ProtocolRequest{Address: iss.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
		SubjectToken:       incoming,
		SubjectTokenType:   identity.TokenTypeAccessToken,
		RequestedTokenType: identity.TokenTypeAccessToken,
		Audience:           []string{"orders-service"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, _ := identity.ValidateAccessToken(context.Background(), tok.AccessToken, identity.ValidateOptions{Issuer: iss.URL, Audience: "orders-service"})
	actor, _ := claims.Claims.String("act.sub")
	fmt.Println(tok.IssuedTokenType)
	fmt.Println(claims.Claims.Subject, "via", actor)
	// Output:
	// urn:ietf:params:oauth:token-type:access_token
	// alice via client
}

func ExampleRequestPasswordToken() {
	srv := exampleServer()
	defer srv.Close()
	tok, err := identity.RequestPasswordToken(context.Background(), nil, identity.PasswordTokenRequest{ //nolint:staticcheck // legacy grant shown for completeness
		ProtocolRequest: identity.ProtocolRequest{Address: srv.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("legacy", "secret")},
		UserName:        "jane",
		Password:        "correct horse",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.AccessToken)
	// Output: legacy
}

func ExampleRequestToken() {
	srv := exampleServer()
	defer srv.Close()
	p := identity.ProtocolRequest{Address: srv.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("c", "s")}
	p.Parameters = map[string][]string{"assertion": {"eyJhbGciOiJFUzI1NiJ9.e30.sig"}}
	tok, err := identity.RequestToken(context.Background(), nil, identity.TokenRequest{ProtocolRequest: p, GrantType: identity.GrantTypeJWTBearer})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.AccessToken)
	// Output: from-assertion
}

func ExampleRequestUserInfo() {
	iss := startIssuer()
	defer iss.Close()
	tok := exampleLogin(iss, "openid email")
	info, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/userinfo"},
		Token:           tok.AccessToken,
		ExpectedSubject: "alice",
		// the sub of the ID token,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Subject, info.Email, info.EmailVerified)

	_, err = identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/userinfo"}, Token: "stale"})
	var pe *identity.ProtocolError
	if errors.As(err, &pe) {
		fmt.Println(pe.StatusCode, pe.Code)
	}
	// Output:
	// alice alice@example.test true
	// 401 invalid_token
}

func ExampleIntrospectToken() {
	iss := startIssuer()
	defer iss.Close()
	tok := exampleLogin(iss, "openid orders.read")
	res, err := identity.IntrospectToken(context.Background(), nil, identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/introspect", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
		Token:           tok.AccessToken,
		TokenTypeHint:   identity.TokenTypeHintAccessToken,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Active, res.Subject, res.Scopes, res.HasScope("orders.read"), res.Audience)
	// Output: true alice [openid orders.read] true [api]
}

// A resource server that authenticates with private_key_jwt (RFC 7523) and
// trusts only introspection answers its issuer signed (RFC 9701): the
// answer is verified with the issuer's published keys, and a plain JSON
// one would be refused.
func ExampleIntrospectToken_signed() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := identitytest.Start(identitytest.WithAlgorithms("ES256"), identitytest.WithClientKey("orders-api", &key.PublicKey))
	if err != nil {
		log.Fatal(err)
	}
	defer iss.Close()
	provider, _ := identity.NewProvider(iss.URL, identity.ProviderOptions{})
	defer provider.Close()
	doc, err := provider.Discovery(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	tok := exampleLogin(iss, "openid orders.read")

	res, err := identity.IntrospectToken(context.Background(), nil, identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{
			Address:    doc.IntrospectionEndpoint,
			ClientAuth: identity.PrivateKeyJWTAuth("orders-api", key, ""),
		},
		Token:      tok.AccessToken,
		RequireJWT: true,
		Keys:       provider, // the issuer's JWKS
		Issuer:     iss.URL,  // iss of the answer; its aud must be orders-api
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Signed, res.Active, res.Subject, res.Scope)
	// Output: true true alice openid orders.read
}

func ExampleParseIntrospectionResponse() {
	res, err := identity.ParseIntrospectionResponse([]byte(`{"active":true,"scope":["a","b"],"aud":"api","ext":42}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ext, _ := res.Extra("ext")
	fmt.Println(res.Scope, res.Audience, string(ext))
	// Output: a b [api] 42
}

func ExampleRevokeToken() {
	iss := startIssuer()
	defer iss.Close()
	ctx := context.Background()
	tok := exampleLogin(iss, "openid")
	endpoint := func(path string) identity.ProtocolRequest {
		return identity.ProtocolRequest{Address: iss.URL + path, ClientAuth: identity.ClientSecretBasicAuth("client", "secret")}
	}
	err := identity.RevokeToken(ctx, nil, identity.RevocationRequest{
		ProtocolRequest: endpoint("/revoke"),
		Token:           tok.RefreshToken,
		TokenTypeHint:   identity.TokenTypeHintRefreshToken,
	})
	fmt.Println(err)
	res, _ := identity.IntrospectToken(ctx, nil, identity.IntrospectionRequest{ProtocolRequest: endpoint("/introspect"), Token: tok.RefreshToken})
	fmt.Println("still active:", res.Active)
	// Output:
	// <nil>
	// still active: false
}

func ExampleRegisterClient() {
	iss := startIssuer()
	defer iss.Close()
	ctx := context.Background()
	reg, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/register"}, // the registration_endpoint
		Metadata: identity.ClientMetadata{
			ClientName:              "My App",
			RedirectURIs:            []string{"https://app.example/cb"},
			TokenEndpointAuthMethod: identity.AuthMethodClientSecretBasic,
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reg.ClientID != "", reg.ClientSecret != "", reg.Metadata.ClientName)

	// The new client works at once.
	_, err = identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth(reg.ClientID, reg.ClientSecret)},
	})
	fmt.Println("token:", err)

	cfg := identity.ClientConfigurationRequest{
		ProtocolRequest:         identity.ProtocolRequest{Address: reg.RegistrationClientURI},
		RegistrationAccessToken: reg.RegistrationAccessToken,
	}
	read, _ := identity.ReadClientConfiguration(ctx, nil, cfg)
	fmt.Println("read:", read.Metadata.RedirectURIs)

	cfg.ClientID, cfg.ClientSecret, cfg.Metadata = reg.ClientID, reg.ClientSecret, reg.Metadata
	cfg.Metadata.ClientName = "My Renamed App"
	updated, _ := identity.UpdateClientConfiguration(ctx, nil, cfg)
	fmt.Println("updated:", updated.Metadata.ClientName)

	fmt.Println("deleted:", identity.DeleteClientConfiguration(ctx, nil, cfg))
	// Output:
	// true true My App
	// token: <nil>
	// read: [https://app.example/cb]
	// updated: My Renamed App
	// deleted: <nil>
}

func ExampleNewTokenManager() {
	iss := startIssuer()
	defer iss.Close()
	m, err := identity.NewTokenManager(identity.TokenManagerOptions{
		Request: identity.ClientCredentialsTokenRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
			Scopes:          []string{"upstream"},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	// Requested once, then cached until a minute before expiry; a client
	// whose requests carry it: ExampleTokenManager_Transport.
	first, _ := m.AccessToken(ctx)
	second, _ := m.AccessToken(ctx)
	fmt.Println(first != "", first == second)
	// Output: true true
}

// exampleCode signs "alice" in at the test issuer and returns the code
// that comes back to the redirect URI.
func exampleCode(iss *identitytest.Issuer, pkce identity.PKCE, scope string) string {
	authURL, err := identity.AuthorizationRequest{
		Address: iss.URL + "/authorize", ClientID: "client", RedirectURI: "https://app.example/cb",
		Scopes: strings.Fields(scope), State: "s", CodeChallenge: pkce.Challenge, LoginHint: "alice",
	}.URL()
	if err != nil {
		log.Fatal(err)
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	cb, err := identity.ParseAuthorizationCallbackURL(resp.Header.Get("Location"), "s")
	if err != nil {
		log.Fatal(err)
	}
	return cb.Code
}

// exampleLogin returns the tokens of a sign-in of "alice" at the test
// issuer with scope.
func exampleLogin(iss *identitytest.Issuer, scope string) *identity.TokenResponse {
	pkce := identity.NewPKCE()
	tok, err := identity.RequestAuthorizationCodeToken(context.Background(), nil, identity.AuthorizationCodeTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("client", "secret")},
		Code:            exampleCode(iss, pkce, scope), RedirectURI: "https://app.example/cb", CodeVerifier: pkce.Verifier,
	})
	if err != nil {
		log.Fatal(err)
	}
	return tok
}
