package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// An OpenID provider on a local test server: its discovery document is
// fetched, validated against the default policy (loopback http is allowed,
// anything else needs https) and read through typed fields or Extra.
func ExampleFetchDiscovery() {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                srv.URL,
			"authorization_endpoint":                srv.URL + "/authorize",
			"token_endpoint":                        srv.URL + "/token",
			"jwks_uri":                              srv.URL + "/jwks",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
			"x_tenant_region":                       "eu-west",
		})
	}))
	defer srv.Close()

	doc, _, err := identity.FetchDiscovery(context.Background(), srv.Client(), srv.URL, identity.DiscoveryPolicy{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.TrimPrefix(doc.TokenEndpoint, srv.URL))
	fmt.Println(doc.IDTokenSigningAlgValuesSupported)
	region, _ := doc.Extra("x_tenant_region")
	fmt.Println(string(region))
	// Output:
	// /token
	// [RS256 ES256]
	// "eu-west"
}

// Each policy violation is its own error, usable with errors.Is and
// errors.As.
func ExampleDiscoveryDocument_Validate() {
	doc, err := identity.ParseDiscovery([]byte(`{
		"issuer": "https://idp.example.com",
		"authorization_endpoint": "https://idp.example.com/authorize",
		"token_endpoint": "https://idp.example.com/token",
		"response_types_supported": ["code"],
		"subject_types_supported": ["public"],
		"id_token_signing_alg_values_supported": ["RS256"]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	err = doc.Validate("https://idp.example.com", identity.DiscoveryPolicy{})
	var missing *identity.MissingMembersError
	fmt.Println(errors.As(err, &missing), missing.Members)

	err = doc.Validate("https://other.example.com", identity.DiscoveryPolicy{AllowMissingJWKSURI: true})
	fmt.Println(errors.Is(err, identity.ErrIssuerMismatch))
	// Output:
	// true [jwks_uri]
	// true
}

func ExampleDiscoveryURL() {
	oidc, _ := identity.DiscoveryURL("https://idp.example.com/realms/main", identity.OpenIDConfiguration)
	oauth, _ := identity.DiscoveryURL("https://as.example.com/tenant", identity.OAuthAuthorizationServer)
	fmt.Println(oidc)
	fmt.Println(oauth)
	// Output:
	// https://idp.example.com/realms/main/.well-known/openid-configuration
	// https://as.example.com/.well-known/oauth-authorization-server/tenant
}

// A Provider discovers the jwks_uri and serves keys from a cache; it does
// no I/O before the first lookup and must be closed.
func ExampleNewProvider() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer":                                srv.URL,
				"authorization_endpoint":                srv.URL + "/authorize",
				"token_endpoint":                        srv.URL + "/token",
				"jwks_uri":                              srv.URL + "/jwks",
				"response_types_supported":              []string{"code"},
				"subject_types_supported":               []string{"public"},
				"id_token_signing_alg_values_supported": []string{"ES256"},
			})
		case "/jwks":
			_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
				{Key: &key.PublicKey, KeyID: "2026-01", Algorithm: "ES256", Use: "sig"},
			}})
		}
	}))
	defer srv.Close()

	p, err := identity.NewProvider(srv.URL, identity.ProviderOptions{HTTPClient: srv.Client()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	keys, err := p.CandidateKeys(context.Background(), "2026-01", "ES256")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(keys), keys[0].JWK.KeyID)
	fmt.Println(p.AdvertisedAlgorithms())
	_, err = p.CandidateKeys(context.Background(), "2026-01", "RS256")
	fmt.Println(errors.Is(err, identity.ErrKeyNotFound))
	// Output:
	// 1 2026-01
	// [ES256]
	// true
}
