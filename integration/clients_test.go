package integration

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// The protocol clients of package identity against oidc-provider: every
// endpoint is taken from the provider's discovery document as fetched by
// identity.FetchDiscovery.

// providerDiscovery fetches and validates the provider's metadata with the
// identity package.
func providerDiscovery(t *testing.T, p *oidcProvider) *identity.DiscoveryDocument {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	doc, _, err := identity.FetchDiscovery(ctx, nil, p.URL(), identity.DiscoveryPolicy{})
	if err != nil {
		t.Fatalf("FetchDiscovery: %v", err)
	}
	return doc
}

// validateIDToken validates an ID token of p for one sign-in with the
// library, as a relying party would: discovery, keys, signature, the
// issuer's rules and the login's (client, nonce, at_hash).
func validateIDToken(t *testing.T, p *oidcProvider, raw string, check identity.IDTokenCheck) *identity.Claims {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := identity.ValidateIDToken(ctx, raw, identity.ValidateOptions{Issuer: p.URL()}, check)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	return tok.Claims
}

func clientsContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientsClientCredentialsAgainstProvider(t *testing.T) {
	clientKey := newSigningKey(t, "ES256", "client-es-1")
	p := startProvider(t, providerOptions{ClientJWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{clientKey.Public()}}})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	set := p.fetchJWKS(t)
	for _, tc := range []struct {
		name string
		auth identity.ClientAuth
	}{
		{"client_secret_basic", identity.ClientAuth{ClientID: testClientID, ClientSecret: testClientSecret}},
		{"client_secret_post", identity.ClientSecretPostAuth(testPostClientID, testPostClientSecret)},
		{"private_key_jwt", identity.PrivateKeyJWTAuth(testJWTClientID, clientKey, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{
				ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: tc.auth},
				Scopes:          []string{"api:read"},
				Resource:        []string{resourceRS256},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(tok.TokenType, "Bearer") || tok.ExpiresIn <= 0 || tok.Expiry.Before(time.Now()) || tok.Scope != "api:read" {
				t.Errorf("token response %+v", tok)
			}
			_, claims := verifyJWT(t, tok.AccessToken, set)
			if claims["client_id"] != tc.auth.ClientID || claims["aud"] != resourceRS256 || claims["iss"] != p.URL() {
				t.Errorf("claims %v", claims)
			}
		})
	}
	t.Run("wrong secret", func(t *testing.T) {
		_, err := identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: identity.ClientSecretBasicAuth(testClientID, "nope")},
		})
		var pe *identity.ProtocolError
		if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidClient || pe.StatusCode != 401 {
			t.Errorf("got %v, want 401 invalid_client", err)
		}
	})
}

// TestClientsTokenManagerAgainstProvider runs the TokenManager on 6 s
// tokens: cached, then replaced once inside the refresh margin (half the
// lifetime for short-lived tokens). The harness's "short" resource does not
// shorten client-credentials tokens in oidc-provider 8.8.1 (expires_in stays
// 3600), so the provider-wide TTL is used.
func TestClientsTokenManagerAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{AccessTokenTTL: 6 * time.Second})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	m, err := identity.NewTokenManager(identity.TokenManagerOptions{Request: identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: identity.ClientSecretBasicAuth(testClientID, testClientSecret)},
		Resource:        []string{resourceRS256},
	}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := m.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.ExpiresIn != 6 {
		t.Fatalf("expires_in %d, want 6", first.ExpiresIn)
	}
	if again, _ := m.Token(ctx); again.AccessToken != first.AccessToken {
		t.Error("token not cached")
	}
	time.Sleep(3500 * time.Millisecond)
	second, err := m.Token(ctx)
	if err != nil || second.AccessToken == first.AccessToken {
		t.Errorf("token not refreshed inside the margin: %v", err)
	}
}

func TestClientsIntrospectionRevocationAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	auth := identity.ClientSecretBasicAuth(testClientID, testClientSecret)
	tok, err := identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: auth},
		Scopes:          []string{"api:read"}, Resource: []string{resourceOpaque},
	})
	if err != nil {
		t.Fatal(err)
	}
	introspect := func() *identity.IntrospectionResponse {
		t.Helper()
		r, err := identity.IntrospectToken(ctx, nil, identity.IntrospectionRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: doc.IntrospectionEndpoint, ClientAuth: auth},
			Token:           tok.AccessToken, TokenTypeHint: identity.TokenTypeHintAccessToken,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := introspect()
	if !r.Active || r.ClientID != testClientID || len(r.Audience) != 1 || r.Audience[0] != resourceOpaque ||
		!r.HasScope("api:read") || r.Expiry.Before(time.Now()) || r.IssuedAt.IsZero() || r.Issuer != p.URL() {
		t.Fatalf("introspection %+v (%s)", r, r.Raw)
	}
	if err := identity.RevokeToken(ctx, nil, identity.RevocationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.RevocationEndpoint, ClientAuth: auth},
		Token:           tok.AccessToken, TokenTypeHint: identity.TokenTypeHintAccessToken,
	}); err != nil {
		t.Fatal(err)
	}
	if r := introspect(); r.Active {
		t.Fatalf("token still active after revocation: %s", r.Raw)
	}
	// Revoking an unknown token succeeds the same way (RFC 7009 §2.2).
	if err := identity.RevokeToken(ctx, nil, identity.RevocationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.RevocationEndpoint, ClientAuth: auth}, Token: "no-such-token",
	}); err != nil {
		t.Errorf("unknown token: %v", err)
	}
	_, err = identity.IntrospectToken(ctx, nil, identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.IntrospectionEndpoint, ClientAuth: identity.ClientSecretBasicAuth(testClientID, "bad")},
		Token:           tok.AccessToken,
	})
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidClient || pe.StatusCode != 401 {
		t.Errorf("bad credentials: %v", err)
	}
}

func TestClientsRegistrationAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	reg, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.RegistrationEndpoint},
		Metadata: identity.ClientMetadata{
			ClientName: "dyn", GrantTypes: []string{identity.GrantTypeClientCredentials}, ResponseTypes: []string{},
			RedirectURIs: []string{}, TokenEndpointAuthMethod: identity.AuthMethodClientSecretBasic,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if reg.ClientID == "" || reg.ClientSecret == "" || reg.RegistrationAccessToken == "" || reg.RegistrationClientURI == "" || reg.Metadata.ClientName != "dyn" {
		t.Fatalf("registration %+v", reg)
	}
	auth := identity.ClientSecretBasicAuth(reg.ClientID, reg.ClientSecret)
	ccReq := identity.ClientCredentialsTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: auth}, Resource: []string{resourceRS256}}
	if _, err := identity.RequestClientCredentialsToken(ctx, nil, ccReq); err != nil {
		t.Fatalf("registered client cannot get a token: %v", err)
	}
	cfg := identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: reg.RegistrationClientURI}, RegistrationAccessToken: reg.RegistrationAccessToken}
	read, err := identity.ReadClientConfiguration(ctx, nil, cfg)
	if err != nil || read.ClientID != reg.ClientID || read.Metadata.TokenEndpointAuthMethod != identity.AuthMethodClientSecretBasic {
		t.Fatalf("read: %+v %v", read, err)
	}
	cfg.ClientID, cfg.ClientSecret, cfg.Metadata = reg.ClientID, reg.ClientSecret, read.Metadata
	cfg.Metadata.ClientName = "dyn-renamed"
	updated, err := identity.UpdateClientConfiguration(ctx, nil, cfg)
	if err != nil || updated.Metadata.ClientName != "dyn-renamed" || updated.ClientID != reg.ClientID {
		t.Fatalf("update: %+v %v", updated, err)
	}
	if updated.RegistrationAccessToken != "" {
		cfg.RegistrationAccessToken = updated.RegistrationAccessToken // rotated by the provider
	}
	if err := identity.DeleteClientConfiguration(ctx, nil, cfg); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = identity.RequestClientCredentialsToken(ctx, nil, ccReq)
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidClient {
		t.Errorf("deleted client: %v", err)
	}
	_, err = identity.ReadClientConfiguration(ctx, nil, cfg)
	if !errors.As(err, &pe) || pe.StatusCode != 401 {
		t.Errorf("read after delete: %v", err)
	}
}

func TestClientsCodePKCEUserInfoAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	pk := identity.NewPKCE()
	state, nonce := identity.GenerateState(), identity.GenerateNonce()
	authURL, err := identity.AuthorizationRequest{
		Address: doc.AuthorizationEndpoint, ClientID: testClientID, RedirectURI: testRedirectURI,
		Scopes: []string{"openid", "email", "profile"}, State: state, Nonce: nonce,
		CodeChallenge: pk.Challenge, LoginHint: "bob",
	}.URL()
	if err != nil {
		t.Fatal(err)
	}
	final, status, body := newBrowser(t).follow(p, authURL, nil)
	if !strings.HasPrefix(final.String(), testRedirectURI) {
		t.Fatalf("authorization ended at %s (status %d): %s", final, status, body)
	}
	cb, err := identity.ParseAuthorizationCallbackURL(final.String(), state)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Issuer != p.URL() {
		t.Errorf("iss %q", cb.Issuer)
	}
	codeReq := identity.AuthorizationCodeTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: identity.ClientSecretBasicAuth(testClientID, testClientSecret)},
		Code:            cb.Code, RedirectURI: testRedirectURI, CodeVerifier: pk.Verifier,
	}
	tok, err := identity.RequestAuthorizationCodeToken(ctx, nil, codeReq)
	if err != nil {
		t.Fatal(err)
	}
	if tok.IDToken == "" || tok.AccessToken == "" {
		t.Fatalf("token response %+v", tok)
	}
	check := identity.IDTokenCheck{ClientID: testClientID, Nonce: nonce, AccessToken: tok.AccessToken}
	if claims := validateIDToken(t, p, tok.IDToken, check); claims.Subject != "bob" {
		t.Errorf("ID token subject %q", claims.Subject)
	}
	for name, wrong := range map[string]identity.IDTokenCheck{
		"nonce": {ClientID: testClientID, Nonce: "other", AccessToken: tok.AccessToken},
		"aud":   {ClientID: "another-client", Nonce: nonce, AccessToken: tok.AccessToken},
	} {
		_, err := identity.ValidateIDToken(ctx, tok.IDToken, identity.ValidateOptions{Issuer: p.URL()}, wrong)
		if ce, ok := errors.AsType[*identity.ClaimError](err); !ok || ce.Claim != name {
			t.Errorf("wrong %s accepted or refused for another reason: %v", name, err)
		}
	}

	info, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint}, Token: tok.AccessToken, ExpectedSubject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Email != "bob@example.test" || !info.EmailVerified || info.Name != "bob" {
		t.Errorf("userinfo %+v", info)
	}
	_, err = identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint}, Token: tok.AccessToken, ExpectedSubject: "mallory"})
	if !errors.Is(err, identity.ErrSubjectMismatch) {
		t.Errorf("subject mismatch: %v", err)
	}
	_, err = identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint}, Token: "invalid"})
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.StatusCode != 401 || pe.Code != identity.ErrorInvalidToken {
		t.Errorf("bad token: %v", err)
	}
	// The code is single-use; replaying it also revokes the tokens it gave
	// (RFC 6749 §4.1.2), so this runs last.
	_, err = identity.RequestAuthorizationCodeToken(ctx, nil, codeReq)
	if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidGrant {
		t.Errorf("code replay: %v", err)
	}
}

func TestClientsDeviceFlowAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	pub := identity.ProtocolRequest{ClientAuth: identity.PublicClientAuth(testPublicClientID)}
	daReq := identity.DeviceAuthorizationRequest{ProtocolRequest: pub, Scopes: []string{"openid", "email"}}
	daReq.Address = doc.DeviceAuthorizationEndpoint
	daReq.Parameters = url.Values{"login_hint": {"carol"}}
	da, err := identity.RequestDeviceAuthorization(ctx, nil, daReq)
	if err != nil {
		t.Fatal(err)
	}
	if da.Interval != 0 || da.VerificationURIComplete == "" || da.Expiry.Before(time.Now()) {
		t.Errorf("device authorization %+v", da)
	}
	pub.Address = doc.TokenEndpoint
	req := da.TokenRequest(pub)
	_, err = identity.RequestDeviceToken(ctx, nil, req)
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.Code != identity.ErrorAuthorizationPending {
		t.Fatalf("before approval: %v", err)
	}
	p.approveDevice(t, da.UserCode)
	start := time.Now()
	tok, err := identity.PollDeviceToken(ctx, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < identity.DefaultDevicePollInterval {
		t.Errorf("polled after %v, before the default interval", waited)
	}
	if claims := validateIDToken(t, p, tok.IDToken, identity.IDTokenCheck{ClientID: testPublicClientID, AccessToken: tok.AccessToken}); claims.Subject != "carol" {
		t.Errorf("ID token subject %q", claims.Subject)
	}
}
