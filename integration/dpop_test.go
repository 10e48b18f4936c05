package integration

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// DPoP (RFC 9449) of package identity against oidc-provider: proofs on token
// requests (ProtocolRequest.DPoP) with the nonce retry, the binding of the
// issued tokens (cnf.jkt in JWT access tokens and in introspection), and
// DoDPoPRequest on a protected resource (the userinfo endpoint).

const (
	// testDPoPClientID must send a DPoP proof with every token request
	// (dpop_bound_access_tokens); code, client credentials, refresh.
	testDPoPClientID     = "test-client-dpop"
	testDPoPClientSecret = "test-secret-dpop"
	// testDPoPNonceClientID must put a provider nonce in its proofs at the
	// token endpoint, and so must whoever presents its access tokens at the
	// userinfo endpoint (provider.mjs requireNonce); code, client credentials.
	testDPoPNonceClientID     = "test-client-dpop-nonce"
	testDPoPNonceClientSecret = "test-secret-dpop-nonce"
)

// recordedExchange is one request seen by a recordingTransport and its answer.
type recordedExchange struct {
	Method, URL, DPoP, Authorization string
	Status                           int
	DPoPNonce, WWWAuthenticate       string
}

// recordingTransport records every exchange going through it.
type recordingTransport struct {
	mu  sync.Mutex
	log []recordedExchange
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	ex := recordedExchange{Method: req.Method, URL: req.URL.String(), DPoP: req.Header.Get("DPoP"),
		Authorization: req.Header.Get("Authorization")}
	if resp != nil {
		ex.Status, ex.DPoPNonce, ex.WWWAuthenticate = resp.StatusCode, resp.Header.Get("DPoP-Nonce"), resp.Header.Get("WWW-Authenticate")
	}
	rt.mu.Lock()
	rt.log = append(rt.log, ex)
	rt.mu.Unlock()
	return resp, err
}

// take returns the exchanges recorded since the last call and forgets them.
func (rt *recordingTransport) take() []recordedExchange {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := rt.log
	rt.log = nil
	return out
}

func newRecordingClient() (*http.Client, *recordingTransport) {
	rt := &recordingTransport{}
	return &http.Client{Transport: rt, Timeout: httpClient().Timeout}, rt
}

// newDPoPKey generates a DPoP key for alg or fails the test.
func newDPoPKey(t testing.TB, alg string) *identity.DPoPKey {
	t.Helper()
	k, err := identity.NewDPoPKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// identityProvider is identity's view of the running provider (discovery
// and JWKS on demand), closed on cleanup.
func identityProvider(t testing.TB, p *oidcProvider) *identity.Provider {
	t.Helper()
	prov, err := identity.NewProvider(p.URL(), identity.ProviderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Close() })
	return prov
}

// accessTokenValidator validates the provider's JWT access tokens for the
// JWT resources with identity's Validator (typ at+jwt).
func accessTokenValidator(t testing.TB, p *oidcProvider) *identity.Validator {
	t.Helper()
	v, err := identity.NewValidator([]identity.IssuerConfig{{
		Issuer:    p.URL(),
		Keys:      identityProvider(t, p),
		Audiences: []string{resourceRS256, resourceES256},
		Types:     []string{"at+jwt"},
	}}, identity.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// expectProtocolError fails unless err is a *ProtocolError with code (and
// status, when not 0).
func expectProtocolError(t testing.TB, err error, status int, code string) *identity.ProtocolError {
	t.Helper()
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.Code != code || (status != 0 && pe.StatusCode != status) {
		t.Fatalf("got %v, want a %d %s protocol error", err, status, code)
	}
	return pe
}

func TestDPoPClientCredentialsAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	for _, alg := range []string{"ES256", "RS256"} {
		if !slices.Contains(doc.DPoPSigningAlgValuesSupported, alg) {
			t.Fatalf("dpop_signing_alg_values_supported %v lacks %s", doc.DPoPSigningAlgValuesSupported, alg)
		}
	}
	v := accessTokenValidator(t, p)
	dpopAuth := identity.ClientSecretBasicAuth(testDPoPClientID, testDPoPClientSecret)
	ccRequest := func(auth identity.ClientAuth, key *identity.DPoPKey, resource string) identity.ClientCredentialsTokenRequest {
		return identity.ClientCredentialsTokenRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: auth, DPoP: key},
			Scopes:          []string{"api:read"},
			Resource:        []string{resource},
		}
	}

	for _, tc := range []struct {
		name, keyAlg, resource, tokenAlg string
		auth                             identity.ClientAuth
	}{
		{"ES256 proof, RS256 JWT", "ES256", resourceRS256, "RS256", dpopAuth},
		{"RS256 proof, ES256 JWT", "RS256", resourceES256, "ES256", dpopAuth},
		{"client without dpop_bound_access_tokens", "ES256", resourceRS256, "RS256", identity.ClientSecretBasicAuth(testClientID, testClientSecret)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newDPoPKey(t, tc.keyAlg)
			client, rec := newRecordingClient()
			tok, err := identity.RequestClientCredentialsToken(ctx, client, ccRequest(tc.auth, key, tc.resource))
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != identity.TokenTypeDPoP || !tok.DPoPBound() || tok.Scope != "api:read" {
				t.Errorf("token response %+v, want token_type DPoP", tok)
			}
			// No nonce is required of these clients: one request, although the
			// provider hands out a DPoP-Nonce (remembered for later proofs).
			ex := rec.take()
			if len(ex) != 1 || ex[0].DPoP == "" || ex[0].Status != http.StatusOK {
				t.Fatalf("exchanges %+v, want one 200 with a DPoP proof", ex)
			}
			if ex[0].DPoPNonce == "" || key.Nonce(doc.TokenEndpoint) != ex[0].DPoPNonce {
				t.Errorf("DPoP-Nonce %q not remembered (key has %q)", ex[0].DPoPNonce, key.Nonce(doc.TokenEndpoint))
			}
			got, err := v.Validate(ctx, tok.AccessToken)
			if err != nil {
				t.Fatalf("identity.Validator: %v", err)
			}
			if got.Algorithm != tc.tokenAlg {
				t.Errorf("access token alg %s, want %s", got.Algorithm, tc.tokenAlg)
			}
			if jkt, _ := got.Claims.String("cnf.jkt"); jkt != key.Thumbprint() {
				t.Errorf("cnf.jkt %q, want the key's thumbprint %q (claims %v)", jkt, key.Thumbprint(), got.Claims.Raw())
			}
			if cid, _ := got.Claims.String("client_id"); cid != tc.auth.ClientID {
				t.Errorf("client_id %q", cid)
			}
			// The proof the provider accepted binds the token to the key that
			// signed it, and identity's proof verifier agrees on the thumbprint.
			proof, err := identity.VerifyDPoPProof(ex[0].DPoP, identity.DPoPVerifyOptions{Method: http.MethodPost, URI: doc.TokenEndpoint})
			if err != nil || proof.Thumbprint != key.Thumbprint() {
				t.Errorf("VerifyDPoPProof of the sent proof: %+v, %v", proof, err)
			}
		})
	}

	t.Run("bearer token of the same client without a proof is refused", func(t *testing.T) {
		_, err := identity.RequestClientCredentialsToken(ctx, nil, ccRequest(dpopAuth, nil, resourceRS256))
		pe := expectProtocolError(t, err, http.StatusBadRequest, identity.ErrorInvalidGrant)
		t.Logf("without a proof: %s", pe.Description)
	})

	t.Run("proof for another URI is refused with invalid_dpop_proof", func(t *testing.T) {
		key := newDPoPKey(t, "ES256")
		proof, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodPost, URI: p.URL() + "/elsewhere"})
		if err != nil {
			t.Fatal(err)
		}
		req := ccRequest(dpopAuth, nil, resourceRS256)
		req.Header = http.Header{"DPoP": {proof}}
		_, err = identity.RequestClientCredentialsToken(ctx, nil, req)
		expectProtocolError(t, err, http.StatusBadRequest, identity.ErrorInvalidDPoPProof)
	})

	t.Run("opaque token bound, cnf.jkt in introspection", func(t *testing.T) {
		key := newDPoPKey(t, "ES256")
		tok, err := identity.RequestClientCredentialsToken(ctx, nil, ccRequest(dpopAuth, key, resourceOpaque))
		if err != nil {
			t.Fatal(err)
		}
		if !tok.DPoPBound() || strings.Count(tok.AccessToken, ".") == 2 {
			t.Fatalf("token response %+v, want an opaque DPoP token", tok)
		}
		r, err := identity.IntrospectToken(ctx, nil, identity.IntrospectionRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: doc.IntrospectionEndpoint, ClientAuth: identity.ClientSecretBasicAuth(testClientID, testClientSecret)},
			Token:           tok.AccessToken, TokenTypeHint: identity.TokenTypeHintAccessToken,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Active || r.ClientID != testDPoPClientID || r.TokenType != identity.TokenTypeDPoP {
			t.Errorf("introspection %s", r.Raw)
		}
		if jkt := cnfJKT(t, r); jkt != key.Thumbprint() {
			t.Errorf("introspection cnf.jkt %q, want %q: %s", jkt, key.Thumbprint(), r.Raw)
		}
	})
}

// cnfJKT returns cnf.jkt of an introspection response ("" when absent).
func cnfJKT(t testing.TB, r *identity.IntrospectionResponse) string {
	t.Helper()
	raw, ok := r.Extra("cnf")
	if !ok {
		return ""
	}
	var cnf struct {
		JKT string `json:"jkt"`
	}
	if err := json.Unmarshal(raw, &cnf); err != nil {
		t.Fatalf("cnf %s: %v", raw, err)
	}
	return cnf.JKT
}

func TestDPoPNonceAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	v := accessTokenValidator(t, p)
	key := newDPoPKey(t, "ES256")
	client, rec := newRecordingClient()
	req := identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint,
			ClientAuth: identity.ClientSecretBasicAuth(testDPoPNonceClientID, testDPoPNonceClientSecret), DPoP: key},
		Resource: []string{resourceRS256},
	}
	get := func(wantExchanges int) {
		t.Helper()
		tok, err := identity.RequestClientCredentialsToken(ctx, client, req)
		if err != nil {
			t.Fatalf("%v (exchanges %+v)", err, rec.take())
		}
		ex := rec.take()
		if len(ex) != wantExchanges {
			t.Fatalf("%d exchanges, want %d: %+v", len(ex), wantExchanges, ex)
		}
		if last := ex[len(ex)-1]; last.Status != http.StatusOK {
			t.Fatalf("last exchange %+v", last)
		}
		got, err := v.Validate(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if jkt, _ := got.Claims.String("cnf.jkt"); !tok.DPoPBound() || jkt != key.Thumbprint() {
			t.Errorf("token_type %q, cnf.jkt %q, want DPoP bound to %q", tok.TokenType, jkt, key.Thumbprint())
		}
		for i, e := range ex[:len(ex)-1] {
			if e.Status != http.StatusBadRequest || e.DPoPNonce == "" {
				t.Errorf("exchange %d: %+v, want 400 use_dpop_nonce with a DPoP-Nonce", i, e)
			}
		}
		if len(ex) == 2 {
			retry, err := identity.VerifyDPoPProof(ex[1].DPoP, identity.DPoPVerifyOptions{Method: http.MethodPost, URI: doc.TokenEndpoint})
			if err != nil || retry.Nonce != ex[0].DPoPNonce {
				t.Errorf("retry proof nonce %q, want %q (%v)", retry.Nonce, ex[0].DPoPNonce, err)
			}
		}
	}

	t.Run("first request: use_dpop_nonce, one retry with the nonce", func(t *testing.T) { get(2) })
	t.Run("next request carries the remembered nonce", func(t *testing.T) { get(1) })
	t.Run("stale nonce: refused, retried with the new one", func(t *testing.T) {
		key.RememberNonce(doc.TokenEndpoint, "stale-nonce")
		get(2)
	})
	t.Run("without the retry the provider's error is use_dpop_nonce", func(t *testing.T) {
		fresh := newDPoPKey(t, "ES256")
		proof, err := fresh.Proof(identity.DPoPProofOptions{Method: http.MethodPost, URI: doc.TokenEndpoint})
		if err != nil {
			t.Fatal(err)
		}
		r := req
		r.DPoP, r.Header = nil, http.Header{"DPoP": {proof}}
		_, err = identity.RequestClientCredentialsToken(ctx, nil, r)
		expectProtocolError(t, err, http.StatusBadRequest, identity.ErrorUseDPoPNonce)
	})
}

// authorizationCode runs the authorization code flow for clientID (scopes
// openid email profile, logged in as account through login_hint, dpop_jkt
// when set) and returns the code exchange request without DPoP key.
func authorizationCode(t *testing.T, p *oidcProvider, doc *identity.DiscoveryDocument, auth identity.ClientAuth, account, dpopJKT string) identity.AuthorizationCodeTokenRequest {
	t.Helper()
	pk := identity.NewPKCE()
	state := identity.GenerateState()
	authURL, err := identity.AuthorizationRequest{
		Address: doc.AuthorizationEndpoint, ClientID: auth.ClientID, RedirectURI: testRedirectURI,
		Scopes: []string{"openid", "email", "profile"}, State: state, Nonce: identity.GenerateNonce(),
		CodeChallenge: pk.Challenge, LoginHint: account, DPoPJKT: dpopJKT,
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
	return identity.AuthorizationCodeTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: auth},
		Code:            cb.Code, RedirectURI: testRedirectURI, CodeVerifier: pk.Verifier,
	}
}

// userToken runs the authorization code flow for a confidential client
// (see authorizationCode) and exchanges the code, with a DPoP proof of key
// unless key is nil; a key must get a DPoP-bound access token.
func userToken(t *testing.T, p *oidcProvider, doc *identity.DiscoveryDocument, auth identity.ClientAuth, key *identity.DPoPKey, account string) *identity.TokenResponse {
	t.Helper()
	req := authorizationCode(t, p, doc, auth, account, "")
	req.DPoP = key
	tok, err := identity.RequestAuthorizationCodeToken(clientsContext(t), nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.DPoPBound() != (key != nil) {
		t.Fatalf("token response %+v (DPoP key: %v)", tok, key != nil)
	}
	return tok
}

// TestDPoPAuthorizationCodeJKTAgainstProvider binds the code to a key with
// AuthorizationRequest.DPoPJKT (dpop_jkt, RFC 9449 §10): only a proof of that
// key redeems it.
func TestDPoPAuthorizationCodeJKTAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)
	auth := identity.ClientSecretBasicAuth(testClientID, testClientSecret) // not dpop_bound_access_tokens
	key := newDPoPKey(t, "ES256")

	t.Run("proof of the key", func(t *testing.T) {
		req := authorizationCode(t, p, doc, auth, "gina", key.Thumbprint())
		req.DPoP = key
		tok, err := identity.RequestAuthorizationCodeToken(ctx, nil, req)
		if err != nil {
			t.Fatal(err)
		}
		if !tok.DPoPBound() {
			t.Errorf("token_type %q", tok.TokenType)
		}
	})
	for _, tc := range []struct {
		name string
		key  *identity.DPoPKey
	}{{"proof of another key", newDPoPKey(t, "ES256")}, {"no proof", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			req := authorizationCode(t, p, doc, auth, "gina", key.Thumbprint())
			req.DPoP = tc.key
			_, err := identity.RequestAuthorizationCodeToken(ctx, nil, req)
			pe := expectProtocolError(t, err, http.StatusBadRequest, identity.ErrorInvalidGrant)
			t.Logf("%s: %s", tc.name, pe.Description)
		})
	}
}

// dpopUserInfo GETs the userinfo endpoint with DoDPoPRequest and decodes the
// JSON claims (nil unless 200).
func dpopUserInfo(t *testing.T, client *http.Client, key *identity.DPoPKey, endpoint, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := identity.DoDPoPRequest(clientsContext(t), client, key, req, token)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Logf("userinfo %d (WWW-Authenticate %q): %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		return resp.StatusCode, nil
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		t.Fatalf("userinfo: %v: %s", err, body)
	}
	return resp.StatusCode, claims
}

func TestDPoPUserTokenAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	ctx := clientsContext(t)

	t.Run("code exchange bound, userinfo through DoDPoPRequest", func(t *testing.T) {
		key := newDPoPKey(t, "ES256")
		tok := userToken(t, p, doc, identity.ClientSecretBasicAuth(testDPoPClientID, testDPoPClientSecret), key, "erin")
		client, rec := newRecordingClient()
		status, claims := dpopUserInfo(t, client, key, doc.UserInfoEndpoint, tok.AccessToken)
		if status != http.StatusOK || claims["sub"] != "erin" || claims["email"] != "erin@example.test" {
			t.Fatalf("userinfo %d %v", status, claims)
		}
		ex := rec.take()
		if len(ex) != 1 || !strings.HasPrefix(ex[0].Authorization, "DPoP ") {
			t.Fatalf("exchanges %+v, want one with Authorization: DPoP", ex)
		}
		proof, err := identity.VerifyDPoPProof(ex[0].DPoP, identity.DPoPVerifyOptions{Method: http.MethodGet, URI: doc.UserInfoEndpoint,
			AccessToken: tok.AccessToken, BoundJKT: key.Thumbprint()})
		if err != nil || proof.AccessTokenHash != identity.DPoPAccessTokenHash(tok.AccessToken) {
			t.Errorf("sent proof %+v: %v", proof, err)
		}

		// The provider enforces the binding: a proof of another key, the
		// same proof twice, or the token as a bearer token are refused.
		if status, _ := dpopUserInfo(t, nil, newDPoPKey(t, "ES256"), doc.UserInfoEndpoint, tok.AccessToken); status != http.StatusUnauthorized {
			t.Errorf("proof of another key: status %d, want 401", status)
		}
		// The replay is byte for byte the request that just succeeded.
		replay, err := http.NewRequest(http.MethodGet, doc.UserInfoEndpoint, nil)
		if err != nil {
			t.Fatal(err)
		}
		replay.Header.Set("Authorization", ex[0].Authorization)
		replay.Header.Set("DPoP", ex[0].DPoP)
		resp, err := httpClient().Do(replay)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("replayed proof: %d %q, want 401 with a DPoP challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		// Without UserInfoRequest.DPoP the bound token goes as a Bearer
		// token, which the provider refuses; with it, RequestUserInfo sends
		// the DPoP scheme and a proof.
		_, err = identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint}, Token: tok.AccessToken})
		pe := expectProtocolError(t, err, http.StatusUnauthorized, identity.ErrorInvalidToken)
		t.Logf("bound token as Bearer at userinfo: %s (%s)", pe.Description, pe.WWWAuthenticate)
		ui, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint, DPoP: key}, Token: tok.AccessToken})
		if err != nil {
			t.Fatalf("RequestUserInfo with DPoP: %v", err)
		}
		if ui.Subject != "erin" {
			t.Errorf("RequestUserInfo with DPoP: subject %q, want erin", ui.Subject)
		}
	})

	t.Run("resource nonce: use_dpop_nonce challenge, one retry", func(t *testing.T) {
		key := newDPoPKey(t, "RS256")
		tok := userToken(t, p, doc, identity.ClientSecretBasicAuth(testDPoPNonceClientID, testDPoPNonceClientSecret), key, "frank")
		// The token endpoint's nonce is remembered for the origin, which is
		// also the userinfo endpoint's: no retry.
		client, rec := newRecordingClient()
		if status, claims := dpopUserInfo(t, client, key, doc.UserInfoEndpoint, tok.AccessToken); status != http.StatusOK || claims["sub"] != "frank" {
			t.Fatalf("userinfo %d %v", status, claims)
		}
		if ex := rec.take(); len(ex) != 1 {
			t.Fatalf("exchanges %+v, want one (nonce remembered from the token endpoint)", ex)
		}
		// The same private key loaded afresh knows no nonce: the provider
		// answers 401 with a DPoP challenge error="use_dpop_nonce" and a
		// nonce, and DoDPoPRequest retries once with it. A stale nonce is
		// handled the same way.
		reloaded, err := identity.LoadDPoPKey(key.PrivateJWK())
		if err != nil {
			t.Fatal(err)
		}
		if reloaded.Thumbprint() != key.Thumbprint() || reloaded.Nonce(doc.UserInfoEndpoint) != "" {
			t.Fatal("reloaded key differs or remembers a nonce")
		}
		key.RememberNonce(doc.UserInfoEndpoint, "stale-nonce")
		for name, k := range map[string]*identity.DPoPKey{"no nonce": reloaded, "stale nonce": key} {
			if status, claims := dpopUserInfo(t, client, k, doc.UserInfoEndpoint, tok.AccessToken); status != http.StatusOK || claims["sub"] != "frank" {
				t.Fatalf("%s: userinfo %d %v", name, status, claims)
			}
			ex := rec.take()
			if len(ex) != 2 || ex[0].Status != http.StatusUnauthorized || !strings.Contains(ex[0].WWWAuthenticate, `error="use_dpop_nonce"`) ||
				ex[0].DPoPNonce == "" || ex[1].Status != http.StatusOK {
				t.Fatalf("%s: exchanges %+v, want 401 use_dpop_nonce then 200", name, ex)
			}
		}
	})
}
