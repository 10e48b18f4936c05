package identitytest_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

func TestDPoPBoundTokens(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	ctx := context.Background()
	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.NewDPoPKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := identity.ProtocolRequest{Address: iss.URL + identitytest.TokenPath, ClientAuth: identity.ClientSecretBasicAuth("client", "secret"), DPoP: key}
	tok, err := identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: endpoint})
	if err != nil || !tok.DPoPBound() {
		t.Fatalf("token %+v, %v", tok, err)
	}
	intro, err := identity.IntrospectToken(ctx, nil, identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + identitytest.IntrospectionPath, ClientAuth: endpoint.ClientAuth},
		Token:           tok.AccessToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cnf, _ := intro.Extra("cnf"); intro.TokenType != "DPoP" || string(cnf) != `{"jkt":"`+key.Thumbprint()+`"}` {
		t.Fatalf("introspection %+v, %v", intro, err)
	}
	userinfo := func(dpop *identity.DPoPKey) error {
		_, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + identitytest.UserInfoPath, DPoP: dpop}, Token: tok.AccessToken,
		})
		return err
	}
	if err := userinfo(key); err != nil {
		t.Errorf("userinfo with the bound key: %v", err)
	}
	var pe *identity.ProtocolError
	if err := userinfo(nil); !errors.As(err, &pe) || pe.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo with the Bearer scheme: %v", err)
	}
	if err := userinfo(other); !errors.As(err, &pe) || pe.Code != "invalid_dpop_proof" {
		t.Errorf("userinfo with another key: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, iss.URL+identitytest.TokenPath, nil)
	req.Header.Set("DPoP", "not-a-proof")
	req.SetBasicAuth("client", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("token request with a bad proof answered %d", resp.StatusCode)
	}
}
