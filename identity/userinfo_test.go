package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

func userInfoFake(t *testing.T, status int, contentType, body string, header map[string]string) *fakeEndpoint {
	return newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func TestUserInfoJSON(t *testing.T) {
	f := userInfoFake(t, 200, "application/json", `{"sub":"u1","email":"a@b","email_verified":"true","phone_number_verified":false,"updated_at":1700000000,"address":{"country":"FR"},"tenant":"t9"}`, nil)
	r, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL, Header: http.Header{"X-A": {"b"}}}, Token: "at", ExpectedSubject: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.last(t)
	if got.Method != http.MethodGet || got.Header.Get("Authorization") != "Bearer at" || got.Header.Get("X-A") != "b" {
		t.Errorf("request %s %v", got.Method, got.Header)
	}
	if r.Subject != "u1" || !r.EmailVerified || r.PhoneNumberVerified || r.Address == nil || r.Address.Country != "FR" ||
		!r.UpdatedAt.Equal(time.Unix(1700000000, 0)) || r.Signed {
		t.Errorf("response %+v", r)
	}
	if v, _ := r.Extra("tenant"); string(v) != `"t9"` || r.Claims()["tenant"] != "t9" {
		t.Error("custom claim lost")
	}

	for name, tc := range map[string]struct {
		body  string
		check func(error) bool
	}{
		"no sub":          {`{"name":"x"}`, func(e error) bool { return errors.Is(e, identity.ErrMissingMember) }},
		"sub not string":  {`{"sub":5}`, func(e error) bool { return errors.Is(e, identity.ErrNotJSON) }},
		"bad bool":        {`{"sub":"u","email_verified":"yes"}`, func(e error) bool { return errors.Is(e, identity.ErrNotJSON) }},
		"bad address":     {`{"sub":"u","address":"Paris"}`, func(e error) bool { return errors.Is(e, identity.ErrNotJSON) }},
		"bad updated_at":  {`{"sub":"u","updated_at":"yesterday"}`, func(e error) bool { return errors.Is(e, identity.ErrNotJSON) }},
		"bad phone bool":  {`{"sub":"u","phone_number_verified":1}`, func(e error) bool { return errors.Is(e, identity.ErrNotJSON) }},
		"subject differs": {`{"sub":"other"}`, func(e error) bool { return errors.Is(e, identity.ErrSubjectMismatch) }},
	} {
		f := userInfoFake(t, 200, "application/json", tc.body, nil)
		if _, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t", ExpectedSubject: "u"}); !tc.check(err) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if _, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}}); err == nil {
		t.Error("no token accepted")
	}
}

func TestUserInfoPost(t *testing.T) {
	f := userInfoFake(t, 200, "application/json", `{"sub":"u1"}`, nil)
	r, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "at", UsePost: true})
	if err != nil {
		t.Fatal(err)
	}
	got := f.last(t)
	if got.Method != http.MethodPost || got.Header.Get("Authorization") != "Bearer at" ||
		got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || len(got.Form) != 0 {
		t.Errorf("request %s %v form %v", got.Method, got.Header, got.Form)
	}
	if r.Subject != "u1" {
		t.Errorf("response %+v", r)
	}
}

func TestUserInfoChallenges(t *testing.T) {
	f := userInfoFake(t, 401, "", "", map[string]string{"WWW-Authenticate": `Bearer realm="idp", error="invalid_token", error_description="expired"`})
	_, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.StatusCode != 401 || pe.Code != "invalid_token" || pe.Description != "expired" || pe.WWWAuthenticate == "" {
		t.Errorf("401 challenge: %#v", err)
	}
	f = userInfoFake(t, 401, "", "", map[string]string{"WWW-Authenticate": `Bearer realm="idp"`})
	_, err = identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
	if !errors.As(err, &pe) || pe.StatusCode != 401 || pe.Code != "" || pe.WWWAuthenticate != `Bearer realm="idp"` {
		t.Errorf("401 bare challenge: %#v", err)
	}
	f = userInfoFake(t, 403, "application/json", `{"error":"insufficient_scope"}`, map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope"`})
	_, err = identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
	if !errors.As(err, &pe) || pe.StatusCode != 403 || pe.Code != "insufficient_scope" || pe.WWWAuthenticate == "" {
		t.Errorf("403 body: %#v", err)
	}
}

func TestUserInfoSigned(t *testing.T) {
	s := newTestSigner(t, "k1")
	claims := map[string]any{"sub": "u1", "iss": "https://idp", "aud": "app", "name": "Jane"}
	serve := func(tok string) *fakeEndpoint {
		return userInfoFake(t, 200, "application/jwt; charset=utf-8", tok, nil)
	}
	f := serve(s.sign(t, "", claims))
	r, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: f.URL},
		Token:           "t",
		Keys:            s.keys(),
		Issuer:          "https://idp",
		ClientID:        "app",
		ExpectedSubject: "u1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Signed || r.Name != "Jane" {
		t.Errorf("response %+v", r)
	}
	if accept := f.last(t).Header.Get("Accept"); accept != "application/json, application/jwt" {
		t.Errorf("Accept = %q", accept)
	}

	other := newTestSigner(t, "k1")
	exp := map[string]any{"sub": "u1", "exp": time.Now().Add(-time.Hour).Unix()}
	nbf := map[string]any{"sub": "u1", "nbf": time.Now().Add(time.Hour).Unix()}
	for name, tc := range map[string]struct {
		tok   string
		req   identity.UserInfoRequest
		check func(error) bool
	}{
		"no keys":      {s.sign(t, "", claims), identity.UserInfoRequest{}, func(e error) bool { return errors.Is(e, identity.ErrKeyNotFound) }},
		"wrong key":    {other.sign(t, "", claims), identity.UserInfoRequest{Keys: s.keys()}, func(e error) bool { return errors.Is(e, identity.ErrSignature) }},
		"wrong issuer": {s.sign(t, "", claims), identity.UserInfoRequest{Keys: s.keys(), Issuer: "https://evil"}, claimErr("iss")},
		"wrong aud":    {s.sign(t, "", claims), identity.UserInfoRequest{Keys: s.keys(), ClientID: "other"}, claimErr("aud")},
		"expired":      {s.sign(t, "", exp), identity.UserInfoRequest{Keys: s.keys()}, claimErr("exp")},
		"not yet":      {s.sign(t, "", nbf), identity.UserInfoRequest{Keys: s.keys()}, claimErr("nbf")},
		"alg not allowed": {s.sign(t, "", claims), identity.UserInfoRequest{Keys: s.keys(), Algorithms: []string{"RS256"}},
			func(e error) bool { return errors.Is(e, identity.ErrUnsupportedAlg) }},
		"alg none": {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.", identity.UserInfoRequest{Keys: s.keys()},
			func(e error) bool { return errors.Is(e, identity.ErrAlgNone) }},
		"garbage": {"not-a-jwt", identity.UserInfoRequest{Keys: s.keys()}, func(e error) bool { return errors.Is(e, identity.ErrMalformed) }},
		"jwe":     {"a.b.c.d.e", identity.UserInfoRequest{Keys: s.keys()}, func(e error) bool { return errors.Is(e, identity.ErrMalformed) }},
		"unknown kid": {newTestSigner(t, "k2").sign(t, "", claims), identity.UserInfoRequest{Keys: s.keys()},
			func(e error) bool { return errors.Is(e, identity.ErrKeyNotFound) }},
	} {
		f := serve(tc.tok)
		tc.req.Address, tc.req.Token = f.URL, "t"
		if _, err := identity.RequestUserInfo(context.Background(), nil, tc.req); !tc.check(err) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// claimErr matches a *ClaimError for claim.
func claimErr(claim string) func(error) bool {
	return func(e error) bool {
		var ce *identity.ClaimError
		return errors.As(e, &ce) && ce.Claim == claim && errors.Is(e, identity.ErrClaimValidation)
	}
}

// refreshingKeys is a KeySource that learns its key on Refresh.
type refreshingKeys struct {
	testKeys
	next *testKeys
}

func (r *refreshingKeys) Refresh(context.Context) error {
	r.testKeys = *r.next
	r.refreshed++
	return nil
}

func TestSignedResponseRefreshesKeys(t *testing.T) {
	s := newTestSigner(t, "k1")
	stale := newTestSigner(t, "k1")
	keys := &refreshingKeys{testKeys: *stale.keys(), next: s.keys()}
	f := userInfoFake(t, 200, "application/jwt", s.sign(t, "", map[string]any{"sub": "u"}), nil)
	if _, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t", Keys: keys}); err != nil {
		t.Fatal(err)
	}
	if keys.refreshed != 1 {
		t.Errorf("refreshed %d times", keys.refreshed)
	}
}

// TestSignedUserInfoWithKeySet verifies a signed response with the
// package's own KeySet (kid and alg matching as for access tokens).
func TestSignedUserInfoWithKeySet(t *testing.T) {
	s := newTestSigner(t, "es-1")
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.priv.PublicKey, KeyID: "es-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := identity.ParseKeySet(jwks)
	if err != nil {
		t.Fatal(err)
	}
	f := userInfoFake(t, 200, "application/jwt", s.sign(t, "", map[string]any{"sub": "u", "iss": "https://idp", "aud": []string{"app", "x"}}), nil)
	r, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t", Keys: set, Issuer: "https://idp", ClientID: "app"})
	if err != nil || !r.Signed || r.Subject != "u" {
		t.Fatalf("got %+v, %v", r, err)
	}
	f = userInfoFake(t, 200, "application/jwt", newTestSigner(t, "es-2").sign(t, "", map[string]any{"sub": "u"}), nil)
	if _, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t", Keys: set}); !errors.Is(err, identity.ErrKeyNotFound) {
		t.Errorf("unknown kid: %v", err)
	}
}

// advertisingKeys is a KeySource that advertises its provider's algorithms.
type advertisingKeys struct {
	*testKeys
	algs []string
}

func (a advertisingKeys) AdvertisedAlgorithms() []string { return a.algs }

// TestSignedResponseAlgorithms checks the allow-list of signed responses:
// the advertised asymmetric algorithms when the caller names none, and
// "none" never.
func TestSignedResponseAlgorithms(t *testing.T) {
	s := newTestSigner(t, "k1")
	f := userInfoFake(t, 200, "application/jwt", s.sign(t, "", map[string]any{"sub": "u"}), nil)
	for name, tc := range map[string]struct {
		keys identity.KeySource
		algs []string
		ok   bool
	}{
		"advertised ES256":         {advertisingKeys{s.keys(), []string{"RS256", "ES256", "HS256"}}, nil, true},
		"advertised RS256 only":    {advertisingKeys{s.keys(), []string{"RS256", "HS256"}}, nil, false},
		"advertised nothing known": {advertisingKeys{s.keys(), []string{"HS256"}}, nil, true},
		"explicit none is dropped": {s.keys(), []string{"none", "ES256"}, true},
	} {
		_, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t", Keys: tc.keys, Algorithms: tc.algs})
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, identity.ErrUnsupportedAlg)) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestUserInfoDPoP(t *testing.T) {
	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		calls++
		if calls == 1 {
			w.Header().Set("DPoP-Nonce", "n1")
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		proof, err := identity.DPoPProofFromHeader(r.Header)
		if err == nil {
			_, err = identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
				Method: r.Method, URI: "http://" + r.Host + r.URL.Path, AccessToken: "at", BoundJKT: key.Thumbprint(), Nonce: "n1",
			})
		}
		if err != nil || r.Header.Get("Authorization") != "DPoP at" {
			t.Errorf("retried request: Authorization %q, proof: %v", r.Header.Get("Authorization"), err)
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sub":"u1"}`)
	})
	r, err := identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL, DPoP: key}, Token: "at", ExpectedSubject: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "u1" || calls != 2 {
		t.Errorf("subject %q after %d requests, want u1 after 2 (one nonce retry)", r.Subject, calls)
	}

	refused := userInfoFake(t, http.StatusUnauthorized, "", "", map[string]string{"WWW-Authenticate": `DPoP error="invalid_token", error_description="bound to another key"`})
	_, err = identity.RequestUserInfo(context.Background(), nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: refused.URL, DPoP: key}, Token: "at"})
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.Code != "invalid_token" || pe.Description != "bound to another key" {
		t.Errorf("err = %v, want a ProtocolError invalid_token from the DPoP challenge", err)
	}
	if got := refused.last(t).Header.Get("Authorization"); got != "DPoP at" {
		t.Errorf("Authorization = %q, want the DPoP scheme", got)
	}
}
