package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

func TestAuthorizationRequestURL(t *testing.T) {
	pk := identity.NewPKCE()
	r := identity.AuthorizationRequest{
		Address:       "https://idp.example/authorize?p=b2c_policy",
		ClientID:      "app",
		RedirectURI:   "https://app.example/cb",
		Scopes:        []string{"openid", "profile"},
		State:         "st",
		Nonce:         "no",
		CodeChallenge: pk.Challenge,
		ResponseMode:  "form_post",
		Prompt:        "login consent",
		LoginHint:     "jane@example.com",
		IDTokenHint:   "idt",
		MaxAge:        90 * time.Second,
		UILocales:     "fr",
		ACRValues:     "mfa",
		Resource:      []string{"https://api1", "https://api2"},
		DPoPJKT:       "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		Claims:        json.RawMessage(`{"userinfo":{"email":{"essential":true}}}`),
		Parameters:    url.Values{"client_id": {"evil"}, "extra": {"1"}},
	}
	s, err := r.URL()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s)
	if u.Host != "idp.example" || u.Path != "/authorize" {
		t.Errorf("URL %s", s)
	}
	want := url.Values{
		"p": {"b2c_policy"}, "client_id": {"app"}, "response_type": {"code"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid profile"}, "state": {"st"}, "nonce": {"no"}, "code_challenge": {pk.Challenge},
		"code_challenge_method": {"S256"}, "response_mode": {"form_post"}, "prompt": {"login consent"},
		"login_hint": {"jane@example.com"}, "id_token_hint": {"idt"}, "max_age": {"90"}, "ui_locales": {"fr"},
		"acr_values": {"mfa"}, "resource": {"https://api1", "https://api2"},
		"dpop_jkt": {"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		"claims":   {`{"userinfo":{"email":{"essential":true}}}`}, "extra": {"1"},
	}
	if got := u.Query(); !reflect.DeepEqual(got, want) {
		t.Errorf("query = %v\nwant    %v", got, want)
	}

	for name, bad := range map[string]identity.AuthorizationRequest{
		"no client":       {Address: "https://idp/authorize"},
		"bad address":     {Address: "idp/authorize", ClientID: "c"},
		"claims not JSON": {Address: "https://idp/authorize", ClientID: "c", Claims: json.RawMessage(`[1]`)},
	} {
		if _, err := bad.URL(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if identity.GenerateState() == identity.GenerateState() || len(identity.GenerateNonce()) != 43 {
		t.Error("state/nonce not random 256-bit values")
	}
}

func TestParseAuthorizationResponse(t *testing.T) {
	res, err := identity.ParseAuthorizationCallbackURL("https://app/cb?code=c1&state=s1&iss=https%3A%2F%2Fidp", "s1")
	if err != nil || res.Code != "c1" || res.State != "s1" || res.Issuer != "https://idp" || res.Values.Get("code") != "c1" {
		t.Fatalf("got %+v, %v", res, err)
	}
	res, err = identity.ParseAuthorizationCallbackURL("https://app/cb#code=c2&state=s2", "s2")
	if err != nil || res.Code != "c2" {
		t.Fatalf("fragment: %+v, %v", res, err)
	}
	for name, tc := range map[string]struct {
		url, state string
		check      func(error) bool
	}{
		"state mismatch":   {"https://app/cb?code=c&state=other", "s", func(e error) bool { return errors.Is(e, identity.ErrStateMismatch) }},
		"state missing":    {"https://app/cb?code=c", "s", func(e error) bool { return errors.Is(e, identity.ErrStateMismatch) }},
		"unexpected state": {"https://app/cb?code=c&state=x", "", func(e error) bool { return errors.Is(e, identity.ErrStateMismatch) }},
		"error response": {"https://app/cb?error=access_denied&error_description=no&error_uri=https%3A%2F%2Fe&state=s", "s", func(e error) bool {
			var pe *identity.ProtocolError
			return errors.As(e, &pe) && pe.Code == "access_denied" && pe.Description == "no" && pe.URI == "https://e" && pe.StatusCode == 0
		}},
		"forged error with wrong state": {"https://app/cb?error=access_denied&state=x", "s", func(e error) bool { return errors.Is(e, identity.ErrStateMismatch) }},
		"no code":                       {"https://app/cb?state=s", "s", func(e error) bool { return errors.Is(e, identity.ErrMissingMember) }},
		"bad url":                       {"https://app/cb?%zz\x7f", "s", func(e error) bool { return e != nil }},
		"bad fragment":                  {"https://app/cb#code=%zz", "s", func(e error) bool { return e != nil }},
	} {
		if _, err := identity.ParseAuthorizationCallbackURL(tc.url, tc.state); !tc.check(err) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestPushAuthorizationRequest(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		writeJSON(w, 201, `{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60,"x":true}`)
	})
	res, err := identity.PushAuthorizationRequest(context.Background(), nil, identity.PushedAuthorizationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: f.URL + "/par", ClientAuth: identity.ClientSecretBasicAuth("app", "s")},
		Authorization:   identity.AuthorizationRequest{RedirectURI: "https://app/cb", Scopes: []string{"openid"}, State: "st", CodeChallenge: "ch", RequestURI: "ignored"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := f.last(t)
	if got.Form.Get("client_id") != "app" || got.Form.Get("response_type") != "code" || got.Form.Get("code_challenge") != "ch" ||
		got.Form.Get("state") != "st" || got.Form.Has("request_uri") || !strings.HasPrefix(got.Header.Get("Authorization"), "Basic ") {
		t.Errorf("pushed %v %v", got.Form, got.Header)
	}
	if res.RequestURI != "urn:ietf:params:oauth:request_uri:abc" || res.ExpiresIn != 60 || res.Expiry.IsZero() {
		t.Errorf("response %+v", res)
	}
	if v, ok := res.Extra("x"); !ok || string(v) != "true" {
		t.Error("Extra")
	}
	s, err := res.AuthorizationURL("https://idp/authorize", "app")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s)
	if want := (url.Values{"client_id": {"app"}, "request_uri": {"urn:ietf:params:oauth:request_uri:abc"}}); !reflect.DeepEqual(u.Query(), want) {
		t.Errorf("authorization URL %s", s)
	}

	for _, body := range []string{`{"expires_in":60}`, `{"request_uri":7}`, `{"request_uri":"u","expires_in":"x"}`} {
		f := jsonFake(t, 201, body)
		if _, err := identity.PushAuthorizationRequest(context.Background(), nil, identity.PushedAuthorizationRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: f.URL, ClientAuth: identity.PublicClientAuth("app")},
		}); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
	if _, err := identity.PushAuthorizationRequest(context.Background(), nil, identity.PushedAuthorizationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: f.URL}}); err == nil {
		t.Error("PAR without client ID accepted")
	}
}

func TestDeviceAuthorization(t *testing.T) {
	f := jsonFake(t, 200, `{"device_code":"dc","user_code":"ABCD-EFGH","verification_url":"https://idp/device","expires_in":600,"interval":7,"message":"hi"}`)
	res, err := identity.RequestDeviceAuthorization(context.Background(), nil, identity.DeviceAuthorizationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: f.URL, ClientAuth: identity.PublicClientAuth("tv")},
		Scopes:          []string{"openid", "offline_access"}, Resource: []string{"https://api"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := f.last(t).Form
	if got.Get("client_id") != "tv" || got.Get("scope") != "openid offline_access" || got.Get("resource") != "https://api" {
		t.Errorf("form %v", got)
	}
	if res.DeviceCode != "dc" || res.UserCode != "ABCD-EFGH" || res.VerificationURI != "https://idp/device" || res.ExpiresIn != 600 || res.Interval != 7*time.Second {
		t.Errorf("response %+v", res)
	}
	if m, _ := res.Extra("message"); string(m) != `"hi"` {
		t.Error("Extra")
	}
	tr := res.TokenRequest(identity.ProtocolRequest{Address: "https://idp/token"})
	if tr.DeviceCode != "dc" || tr.Interval != 7*time.Second || !tr.Expiry.Equal(res.Expiry) || tr.Address != "https://idp/token" {
		t.Errorf("token request %+v", tr)
	}

	f = jsonFake(t, 200, `{"device_code":"dc"}`)
	_, err = identity.RequestDeviceAuthorization(context.Background(), nil, identity.DeviceAuthorizationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}})
	var mm *identity.MissingMembersError
	if !errors.As(err, &mm) || !reflect.DeepEqual(mm.Members, []string{"user_code", "verification_uri"}) {
		t.Errorf("missing members: %v", err)
	}
	for _, body := range []string{
		`{"device_code":"dc","user_code":"u","verification_uri":"v","interval":"x"}`,
		`{"device_code":"dc","user_code":"u","verification_uri":"v","expires_in":true}`,
		`{"device_code":1,"user_code":"u","verification_uri":"v"}`,
		`{"device_code":"dc","user_code":"u","verification_url":1}`,
	} {
		f := jsonFake(t, 200, body)
		if _, err := identity.RequestDeviceAuthorization(context.Background(), nil, identity.DeviceAuthorizationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}}); !errors.Is(err, identity.ErrNotJSON) {
			t.Errorf("%s: got %v", body, err)
		}
	}
}

func TestPKCEHelpers(t *testing.T) {
	p := identity.NewPKCE()
	if !identity.ValidCodeVerifier(p.Verifier) || len(p.Verifier) != 43 || p.Method != "S256" || p.Challenge != s256(p.Verifier) {
		t.Errorf("NewPKCE = %+v", p)
	}
	if identity.GenerateCodeVerifier() == identity.GenerateCodeVerifier() {
		t.Error("verifiers repeat")
	}
	for v, ok := range map[string]bool{
		strings.Repeat("a", 42): false, strings.Repeat("a", 43): true, strings.Repeat("~._-", 32): true,
		strings.Repeat("a", 129): false, strings.Repeat("a", 42) + "+": false, strings.Repeat("a", 42) + "é": false,
	} {
		if identity.ValidCodeVerifier(v) != ok {
			t.Errorf("ValidCodeVerifier(%q) != %v", v, ok)
		}
	}
}
