package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

const okToken = `{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","id_token":"idt","scope":"a b","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","custom":{"x":1}}`

func TestTokenRequestsSendTheirGrant(t *testing.T) {
	f := jsonFake(t, 200, okToken)
	p := identity.ProtocolRequest{Address: f.URL + "/token", ClientAuth: identity.ClientSecretBasicAuth("c", "s")}
	ctx := context.Background()
	cases := []struct {
		name string
		do   func() (*identity.TokenResponse, error)
		want url.Values
	}{
		{"client_credentials", func() (*identity.TokenResponse, error) {
			return identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: p,
				Scopes: []string{"a", "", "b"}, Resource: []string{"https://r1", "https://r2"}, Audience: "api"})
		}, url.Values{"grant_type": {"client_credentials"}, "scope": {"a b"}, "resource": {"https://r1", "https://r2"}, "audience": {"api"}}},
		{"refresh", func() (*identity.TokenResponse, error) {
			return identity.RequestRefreshToken(ctx, nil, identity.RefreshTokenRequest{ProtocolRequest: p, RefreshToken: "rt", Scopes: []string{"a"}, Resource: []string{"https://r"}})
		}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}, "scope": {"a"}, "resource": {"https://r"}}},
		{"authorization_code", func() (*identity.TokenResponse, error) {
			return identity.RequestAuthorizationCodeToken(ctx, nil, identity.AuthorizationCodeTokenRequest{ProtocolRequest: p, Code: "c1", RedirectURI: "https://app/cb", CodeVerifier: "v", Resource: []string{"https://r"}})
		}, url.Values{"grant_type": {"authorization_code"}, "code": {"c1"}, "redirect_uri": {"https://app/cb"}, "code_verifier": {"v"}, "resource": {"https://r"}}},
		{"device_code", func() (*identity.TokenResponse, error) {
			return identity.RequestDeviceToken(ctx, nil, identity.DeviceTokenRequest{ProtocolRequest: p, DeviceCode: "dc"})
		}, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"dc"}}},
		{"password", func() (*identity.TokenResponse, error) {
			return identity.RequestPasswordToken(ctx, nil, identity.PasswordTokenRequest{ProtocolRequest: p, UserName: "u", Password: "pw", Scopes: []string{"a"}, Resource: []string{"https://r"}}) //nolint:staticcheck // deprecated grant under test
		}, url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"pw"}, "scope": {"a"}, "resource": {"https://r"}}},
		{"custom", func() (*identity.TokenResponse, error) {
			q := p
			q.Parameters = url.Values{"assertion": {"jwt"}}
			return identity.RequestToken(ctx, nil, identity.TokenRequest{ProtocolRequest: q, GrantType: "urn:ietf:params:oauth:grant-type:jwt-bearer"})
		}, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"jwt"}}},
		{"token_exchange", func() (*identity.TokenResponse, error) {
			return identity.RequestTokenExchangeToken(ctx, nil, identity.TokenExchangeTokenRequest{ProtocolRequest: p,
				SubjectToken: "st", SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt",
				ActorToken: "act", ActorTokenType: "urn:ietf:params:oauth:token-type:id_token",
				RequestedTokenType: "urn:ietf:params:oauth:token-type:refresh_token",
				Audience:           []string{"a1", "a2"}, Resource: []string{"https://r"}, Scopes: []string{"x"}})
		}, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {"st"},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}, "actor_token": {"act"},
			"actor_token_type": {"urn:ietf:params:oauth:token-type:id_token"}, "requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"},
			"audience": {"a1", "a2"}, "resource": {"https://r"}, "scope": {"x"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			tok, err := tc.do()
			if err != nil {
				t.Fatal(err)
			}
			if got := f.last(t).Form; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("form = %v\nwant   %v", got, tc.want)
			}
			if tok.AccessToken != "at" || tok.TokenType != "Bearer" || tok.RefreshToken != "rt" || tok.IDToken != "idt" ||
				tok.Scope != "a b" || tok.ExpiresIn != 3600 || tok.IssuedTokenType != "urn:ietf:params:oauth:token-type:access_token" {
				t.Errorf("response = %+v", tok)
			}
			if tok.Expiry.Before(before.Add(time.Hour)) || tok.Expiry.After(time.Now().Add(time.Hour)) {
				t.Errorf("expiry %v", tok.Expiry)
			}
			if !reflect.DeepEqual(tok.Scopes(), []string{"a", "b"}) || tok.Expired(time.Now()) || !tok.Expired(tok.Expiry) {
				t.Error("Scopes/Expired")
			}
			if raw, ok := tok.Extra("custom"); !ok || string(raw) != `{"x":1}` {
				t.Errorf("Extra(custom) = %s %v", raw, ok)
			}
			if _, ok := tok.Extra("absent"); ok {
				t.Error("Extra(absent) found")
			}
		})
	}
}

func TestTokenRequestValidation(t *testing.T) {
	f := jsonFake(t, 200, okToken)
	p := identity.ProtocolRequest{Address: f.URL}
	ctx := context.Background()
	for name, do := range map[string]func() error{
		"refresh without token": func() error {
			_, err := identity.RequestRefreshToken(ctx, nil, identity.RefreshTokenRequest{ProtocolRequest: p})
			return err
		},
		"code without code": func() error {
			_, err := identity.RequestAuthorizationCodeToken(ctx, nil, identity.AuthorizationCodeTokenRequest{ProtocolRequest: p})
			return err
		},
		"device without code": func() error {
			_, err := identity.RequestDeviceToken(ctx, nil, identity.DeviceTokenRequest{ProtocolRequest: p})
			return err
		},
		"custom without grant": func() error {
			_, err := identity.RequestToken(ctx, nil, identity.TokenRequest{ProtocolRequest: p})
			return err
		},
		"exchange without subject type": func() error {
			_, err := identity.RequestTokenExchangeToken(ctx, nil, identity.TokenExchangeTokenRequest{ProtocolRequest: p, SubjectToken: "s"})
			return err
		},
		"exchange actor without type": func() error {
			_, err := identity.RequestTokenExchangeToken(ctx, nil, identity.TokenExchangeTokenRequest{ProtocolRequest: p,
				SubjectToken: "s", SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt", ActorToken: "a"})
			return err
		},
	} {
		if err := do(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if f.count() != 0 {
		t.Errorf("%d invalid requests were sent", f.count())
	}
}

func TestTokenResponseShapes(t *testing.T) {
	ctx := context.Background()
	get := func(body string) (*identity.TokenResponse, error) {
		f := jsonFake(t, 200, body)
		return identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}})
	}
	tok, err := get(`{"access_token":"a","expires_in":"120"}`)
	if err != nil || tok.ExpiresIn != 120 || tok.Expiry.IsZero() {
		t.Errorf("expires_in as string: %+v %v", tok, err)
	}
	tok, err = get(`{"access_token":"a","token_type":null}`)
	if err != nil || !tok.Expiry.IsZero() || tok.Expired(time.Now().Add(1000*time.Hour)) {
		t.Errorf("no expires_in: %+v %v", tok, err)
	}
	_, err = get(`{"token_type":"Bearer"}`)
	var mm *identity.MissingMembersError
	if !errors.As(err, &mm) || !reflect.DeepEqual(mm.Members, []string{"access_token"}) || !errors.Is(err, identity.ErrMissingMember) {
		t.Errorf("missing access_token: %v", err)
	}
	for _, bad := range []string{
		`{"access_token":1}`, `{"access_token":"a","expires_in":"soon"}`, `{"access_token":"a","expires_in":-5}`,
		`{"access_token":"a","scope":["a"]}`, `{"access_token":"a","expires_in":1e300}`,
	} {
		if _, err := get(bad); !errors.Is(err, identity.ErrNotJSON) {
			t.Errorf("%s: got %v", bad, err)
		}
	}

	// Token exchange requires issued_token_type and token_type.
	f := jsonFake(t, 200, `{"access_token":"a"}`)
	_, err = identity.RequestTokenExchangeToken(ctx, nil, identity.TokenExchangeTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL},
		SubjectToken: "s", SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt"})
	if !errors.As(err, &mm) || !reflect.DeepEqual(mm.Members, []string{"issued_token_type", "token_type"}) {
		t.Errorf("exchange members: %v", err)
	}
	var raw json.RawMessage
	tok, _ = get(okToken)
	if err := json.Unmarshal(tok.Raw, &raw); err != nil {
		t.Errorf("Raw is not the body: %v", err)
	}
}

func TestPollDeviceTokenOutcomes(t *testing.T) {
	// Real waits are short here; the interval arithmetic is covered by the
	// internal test with a recorded clock.
	ctx := context.Background()
	for _, tc := range []struct {
		code string
		want string
	}{{"access_denied", "access_denied"}, {"expired_token", "expired_token"}, {"invalid_grant", "invalid_grant"}} {
		f := jsonFake(t, 400, `{"error":"`+tc.code+`"}`)
		_, err := identity.PollDeviceToken(ctx, nil, identity.DeviceTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, DeviceCode: "d", Interval: time.Millisecond})
		var pe *identity.ProtocolError
		if !errors.As(err, &pe) || pe.Code != tc.want {
			t.Errorf("%s: got %v", tc.code, err)
		}
	}
	n := 0
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		n++
		if n < 3 {
			writeJSON(w, 400, `{"error":"authorization_pending"}`)
			return
		}
		writeJSON(w, 200, `{"access_token":"dev"}`)
	})
	tok, err := identity.PollDeviceToken(ctx, nil, identity.DeviceTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, DeviceCode: "d", Interval: time.Millisecond})
	if err != nil || tok.AccessToken != "dev" || f.count() != 3 {
		t.Fatalf("poll: %v %v after %d requests", tok, err, f.count())
	}

	pending := jsonFake(t, 400, `{"error":"authorization_pending"}`)
	_, err = identity.PollDeviceToken(ctx, nil, identity.DeviceTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: pending.URL},
		DeviceCode: "d", Interval: time.Millisecond, Expiry: time.Now().Add(30 * time.Millisecond)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expiry: got %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = identity.PollDeviceToken(cctx, nil, identity.DeviceTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: pending.URL}, DeviceCode: "d"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	down := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) { w.WriteHeader(503) })
	_, err = identity.PollDeviceToken(ctx, nil, identity.DeviceTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: down.URL}, DeviceCode: "d", Interval: time.Millisecond})
	if !errors.Is(err, identity.ErrHTTPStatus) {
		t.Errorf("503: got %v", err)
	}
}
