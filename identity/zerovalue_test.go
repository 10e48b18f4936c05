package identity_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestZeroValues calls every exported method on the zero value of its type
// (and on nil where a pointer is usual): each must return normally, and
// those that can fail must fail with an error that says what is missing,
// not panic.
func TestZeroValues(t *testing.T) {
	ctx := context.Background()
	req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
	errs := func(args ...any) error {
		if err, ok := args[len(args)-1].(error); ok {
			return err
		}
		return nil
	}
	type call struct {
		name string
		run  func() error
		// sentinel, when set, must match the error; fails says an error is
		// required.
		sentinel error
		fails    bool
	}
	var (
		m   identity.TokenManager
		p   identity.Provider
		v   identity.Validator
		rk  identity.RemoteKeySet
		ks  identity.KeySet
		k   identity.DPoPKey
		rc  identity.DPoPReplayCache
		c   identity.Claims
		d   identity.DiscoveryDocument
		tr  identity.TokenResponse
		ui  identity.UserInfoResponse
		ir  identity.IntrospectionResponse
		dar identity.DeviceAuthorizationResponse
		par identity.PushedAuthorizationResponse
		cp  identity.ClaimsPrincipal
		ar  identity.AuthorizationRequest
	)
	dk := mustDPoPKey(t, "ES256")
	calls := []call{
		{"TokenManager.Token", func() error { return errs(m.Token(ctx)) }, identity.ErrNotInitialized, true},
		{"TokenManager.AccessToken", func() error { return errs(m.AccessToken(ctx)) }, identity.ErrNotInitialized, true},
		{"nil TokenManager.AccessToken", func() error { return errs((*identity.TokenManager)(nil).AccessToken(ctx)) }, identity.ErrNotInitialized, true},
		{"TokenManager.Invalidate", func() error { m.Invalidate(); return nil }, nil, false},
		{"TokenManager.Transport", func() error {
			resp, err := (&http.Client{Transport: m.Transport(nil)}).Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return err
		}, identity.ErrNotInitialized, true},
		{"Provider.Discovery", func() error { return errs(p.Discovery(ctx)) }, identity.ErrNotInitialized, true},
		{"Provider.RemoteKeySet", func() error { return errs(p.RemoteKeySet(ctx)) }, identity.ErrNotInitialized, true},
		{"Provider.KeySet", func() error { return errs(p.KeySet(ctx)) }, identity.ErrNotInitialized, true},
		{"Provider.CandidateKeys", func() error { return errs(p.CandidateKeys(ctx, "k", "RS256")) }, identity.ErrNotInitialized, true},
		{"Provider.Refresh", func() error { return p.Refresh(ctx) }, identity.ErrNotInitialized, true},
		{"Provider.HasKey", func() error { p.HasKey("x"); return nil }, nil, false},
		{"Provider.KeySetVersion", func() error { p.KeySetVersion(time.Now()); return nil }, nil, false},
		{"Provider.AdvertisedAlgorithms", func() error { p.AdvertisedAlgorithms(); return nil }, nil, false},
		{"Provider.Issuer", func() error { p.Issuer(); return nil }, nil, false},
		{"Provider.Close", func() error { return p.Close() }, nil, false},
		{"nil Provider.Close", func() error { return (*identity.Provider)(nil).Close() }, nil, false},
		{"Validator.Validate", func() error { return errs(v.Validate(ctx, "a.b.c")) }, identity.ErrNotInitialized, true},
		{"nil Validator.Validate", func() error { return errs((*identity.Validator)(nil).Validate(ctx, "a.b.c")) }, identity.ErrNotInitialized, true},
		{"Validator.ValidateIDToken", func() error {
			return errs(v.ValidateIDToken(ctx, "a.b.c", identity.IDTokenCheck{ClientID: "c"}))
		}, identity.ErrNotInitialized, true},
		{"Validator.Issuers", func() error { v.Issuers(); return nil }, nil, false},
		{"Validator.KeyStillValid", func() error { v.KeyStillValid("i", "t"); return nil }, nil, false},
		{"RemoteKeySet.KeySet", func() error { return errs(rk.KeySet(ctx)) }, identity.ErrNotInitialized, true},
		{"RemoteKeySet.CandidateKeys", func() error { return errs(rk.CandidateKeys(ctx, "k", "RS256")) }, identity.ErrNotInitialized, true},
		{"RemoteKeySet.Refresh", func() error { return rk.Refresh(ctx) }, identity.ErrNotInitialized, true},
		{"RemoteKeySet.HasKey", func() error { rk.HasKey("x"); return nil }, nil, false},
		{"RemoteKeySet.KeySetVersion", func() error { rk.KeySetVersion(time.Now()); return nil }, nil, false},
		{"RemoteKeySet.AdvertisedAlgorithms", func() error { rk.AdvertisedAlgorithms(); return nil }, nil, false},
		{"RemoteKeySet.URL", func() error { rk.URL(); return nil }, nil, false},
		{"RemoteKeySet.Close", func() error { return rk.Close() }, nil, false},
		{"KeySet.CandidateKeys", func() error { return errs(ks.CandidateKeys(ctx, "k", "RS256")) }, identity.ErrKeyNotFound, true},
		{"KeySet accessors", func() error {
			ks.Keys()
			ks.Len()
			ks.Skipped()
			ks.Algorithms()
			ks.HasKey("x")
			ks.Candidates("k", "RS256")
			return nil
		}, nil, false},
		{"DPoPKey.Proof", func() error {
			return errs(k.Proof(identity.DPoPProofOptions{Method: "GET", URI: "https://api.example/"}))
		}, identity.ErrNotInitialized, true},
		{"DPoPKey.AuthorizeRequest", func() error { return k.AuthorizeRequest(req.Clone(ctx), "at") }, identity.ErrNotInitialized, true},
		{"DPoPKey accessors", func() error {
			k.Algorithm()
			k.Thumbprint()
			k.PublicJWK()
			k.PrivateJWK()
			k.RememberNonce("https://api.example/", "n")
			k.Nonce("https://api.example/")
			return nil
		}, nil, false},
		{"DPoPReplayCache.Close", func() error { return rc.Close() }, nil, false},
		{"DPoP proof with a zero replay cache", func() error {
			proof, err := dk.Proof(identity.DPoPProofOptions{Method: "GET", URI: "https://api.example/"})
			if err != nil {
				return err
			}
			return errs(identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{Method: "GET", URI: "https://api.example/", Replay: &rc}))
		}, identity.ErrNotInitialized, true},
		{"Claims", func() error {
			c.Get("a.b")
			c.String("sub")
			c.Strings("roles")
			c.HasScope("s")
			c.Raw()
			_, err := c.MarshalJSON()
			return err
		}, nil, false},
		{"nil Claims", func() error {
			var nc *identity.Claims
			nc.Get("a")
			nc.String("a")
			nc.Strings("a")
			nc.HasScope("a")
			return nil
		}, nil, false},
		{"ClaimsPrincipal", func() error { cp.Name(); cp.Roles(); cp.IsInRole("r"); cp.HasClaim("a", "b"); return nil }, nil, false},
		{"DiscoveryDocument", func() error {
			d.Extra("x")
			d.Members()
			d.SigningAlgorithms()
			_, err := d.MarshalJSON()
			if err != nil {
				return err
			}
			return d.Validate("https://issuer.example", identity.DiscoveryPolicy{})
		}, identity.ErrMissingMember, true},
		{"responses", func() error {
			tr.Scopes()
			tr.Extra("x")
			tr.Expired(time.Now())
			tr.DPoPBound()
			ui.Claims()
			ui.Extra("x")
			ir.Extra("x")
			ir.HasScope("x")
			dar.Extra("x")
			dar.TokenRequest(identity.ProtocolRequest{})
			par.Extra("x")
			return nil
		}, nil, false},
		{"AuthorizationRequest.URL", func() error { return errs(ar.URL()) }, identity.ErrMissingAddress, true},
		{"PushedAuthorizationResponse.AuthorizationURL", func() error { return errs(par.AuthorizationURL("", "")) }, identity.ErrMissingAddress, true},
		{"JWKThumbprint", func() error { return errs(identity.JWKThumbprint(jose.JSONWebKey{})) }, identity.ErrKeyConversion, true},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
						t.Errorf("panicked: %v", r)
					}
				}()
				err = tc.run()
			}()
			switch {
			case tc.sentinel != nil && !errors.Is(err, tc.sentinel):
				t.Errorf("err = %v, want %v", err, tc.sentinel)
			case tc.fails && err == nil:
				t.Error("no error")
			case !tc.fails && err != nil:
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestZeroRequests calls every endpoint function and constructor with the
// zero value of its argument: each must refuse at once, with the sentinel
// naming what is missing, before any I/O.
func TestZeroRequests(t *testing.T) {
	ctx := context.Background()
	var zeroKey identity.DPoPKey
	req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"RequestClientCredentialsToken", second(identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{})), identity.ErrMissingAddress},
		{"RequestRefreshToken", second(identity.RequestRefreshToken(ctx, nil, identity.RefreshTokenRequest{})), identity.ErrMissingToken},
		{"RequestAuthorizationCodeToken", second(identity.RequestAuthorizationCodeToken(ctx, nil, identity.AuthorizationCodeTokenRequest{})), identity.ErrMissingParameter},
		{"RequestDeviceToken", second(identity.RequestDeviceToken(ctx, nil, identity.DeviceTokenRequest{})), identity.ErrMissingParameter},
		{"PollDeviceToken", second(identity.PollDeviceToken(ctx, nil, identity.DeviceTokenRequest{})), identity.ErrMissingParameter},
		{"RequestTokenExchangeToken", second(identity.RequestTokenExchangeToken(ctx, nil, identity.TokenExchangeTokenRequest{})), identity.ErrMissingToken},
		{"RequestPasswordToken", second(identity.RequestPasswordToken(ctx, nil, identity.PasswordTokenRequest{})), identity.ErrMissingAddress},
		{"RequestToken", second(identity.RequestToken(ctx, nil, identity.TokenRequest{})), identity.ErrMissingParameter},
		{"RequestUserInfo", second(identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{})), identity.ErrMissingToken},
		{"IntrospectToken", second(identity.IntrospectToken(ctx, nil, identity.IntrospectionRequest{})), identity.ErrMissingToken},
		{"RevokeToken", identity.RevokeToken(ctx, nil, identity.RevocationRequest{}), identity.ErrMissingToken},
		{"RegisterClient", second(identity.RegisterClient(ctx, nil, identity.RegistrationRequest{})), identity.ErrMissingAddress},
		{"ReadClientConfiguration", second(identity.ReadClientConfiguration(ctx, nil, identity.ClientConfigurationRequest{})), identity.ErrMissingToken},
		{"UpdateClientConfiguration", second(identity.UpdateClientConfiguration(ctx, nil, identity.ClientConfigurationRequest{})), identity.ErrMissingClientID},
		{"DeleteClientConfiguration", identity.DeleteClientConfiguration(ctx, nil, identity.ClientConfigurationRequest{}), identity.ErrMissingToken},
		{"RequestDeviceAuthorization", second(identity.RequestDeviceAuthorization(ctx, nil, identity.DeviceAuthorizationRequest{})), identity.ErrMissingAddress},
		{"PushAuthorizationRequest", second(identity.PushAuthorizationRequest(ctx, nil, identity.PushedAuthorizationRequest{})), identity.ErrMissingClientID},
		{"DoDPoPRequest", second(identity.DoDPoPRequest(ctx, nil, &zeroKey, req, "at")), identity.ErrNotInitialized},
		{"FetchDiscovery", third(identity.FetchDiscovery(ctx, nil, "", identity.DiscoveryPolicy{})), identity.ErrMissingAddress},
		{"FetchKeySet", third(identity.FetchKeySet(ctx, nil, "", identity.FetchKeySetOptions{})), identity.ErrMissingAddress},
		{"NewProvider", second(identity.NewProvider("", identity.ProviderOptions{})), identity.ErrMissingAddress},
		{"NewRemoteKeySet", second(identity.NewRemoteKeySet("", identity.RemoteKeySetOptions{})), identity.ErrMissingAddress},
		{"NewTokenManager", second(identity.NewTokenManager(identity.TokenManagerOptions{})), identity.ErrMissingAddress},
		{"NewValidator", second(identity.NewValidator([]identity.IssuerConfig{{}}, identity.ValidatorOptions{})), identity.ErrMissingIssuer},
		{"ValidateAccessToken", second(identity.ValidateAccessToken(ctx, "", identity.ValidateOptions{})), identity.ErrMissingToken},
		{"ValidateIDToken", second(identity.ValidateIDToken(ctx, "x", identity.ValidateOptions{}, identity.IDTokenCheck{})), identity.ErrMissingClientID},
		{"ParseKeySet", second(identity.ParseKeySet(nil)), identity.ErrInvalidKeySet},
		{"ParseDiscovery", second(identity.ParseDiscovery(nil)), identity.ErrNotJSON},
		{"ParseClaims", second(identity.ParseClaims(nil)), identity.ErrMalformed},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }
