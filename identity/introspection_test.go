package identity_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

func TestIntrospectTokenRequest(t *testing.T) {
	f := jsonFake(t, 200, `{"active":true,"scope":["read","write admin"],"aud":["a1","a2"],"exp":1419356238.5,"sub":"s","ext":[1]}`)
	r, err := identity.IntrospectToken(context.Background(), nil, identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: f.URL, ClientAuth: identity.ClientSecretPostAuth("rs", "sec")},
		Token:           "opaque", TokenTypeHint: "refresh_token",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := f.last(t)
	if want := (url.Values{"token": {"opaque"}, "token_type_hint": {"refresh_token"}, "client_id": {"rs"}, "client_secret": {"sec"}}); !reflect.DeepEqual(got.Form, want) {
		t.Errorf("form %v", got.Form)
	}
	if !r.Active || r.Scope != "read write admin" || !reflect.DeepEqual(r.Scopes, []string{"read", "write", "admin"}) || !r.HasScope("admin") || r.HasScope("rea") {
		t.Errorf("scopes %q %v", r.Scope, r.Scopes)
	}
	if !reflect.DeepEqual(r.Audience, []string{"a1", "a2"}) || !r.Expiry.Equal(time.Unix(1419356238, 5e8)) || r.Subject != "s" || r.Signed {
		t.Errorf("response %+v", r)
	}
	if v, _ := r.Extra("ext"); string(v) != "[1]" {
		t.Error("Extra")
	}
	if _, err := identity.IntrospectToken(context.Background(), nil, identity.IntrospectionRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}}); err == nil {
		t.Error("empty token accepted")
	}
}

func TestParseIntrospectionResponseErrors(t *testing.T) {
	for body, want := range map[string]error{
		`{}`:                              identity.ErrMissingMember,
		`{"active":null}`:                 identity.ErrMissingMember,
		`{"active":"true"}`:               identity.ErrNotJSON,
		`{"active":true,"scope":5}`:       identity.ErrNotJSON,
		`{"active":true,"aud":[1]}`:       identity.ErrNotJSON,
		`{"active":true,"exp":"soon"}`:    identity.ErrNotJSON,
		`{"active":true,"iat":-1}`:        identity.ErrNotJSON,
		`{"active":true,"nbf":1e20}`:      identity.ErrNotJSON,
		`{"active":true,"client_id":{}}`:  identity.ErrNotJSON,
		`{"active":true,"username":true}`: identity.ErrNotJSON,
		`[]`:                              identity.ErrNotJSON,
		`{"active":true`:                  identity.ErrNotJSON,
	} {
		if _, err := identity.ParseIntrospectionResponse([]byte(body)); !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", body, err, want)
		}
	}
	r, err := identity.ParseIntrospectionResponse([]byte(`{"active":false}`))
	if err != nil || r.Active || r.Scopes != nil || !r.Expiry.IsZero() {
		t.Errorf("inactive: %+v %v", r, err)
	}
}

func TestIntrospectSignedResponse(t *testing.T) {
	s := newTestSigner(t, "k1")
	now := time.Now().Unix()
	good := map[string]any{"iss": "https://as", "aud": "rs", "iat": now,
		"token_introspection": map[string]any{"active": true, "sub": "u", "scope": "read"}}
	serve := func(body string) *fakeEndpoint {
		return newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
			w.Header().Set("Content-Type", "application/token-introspection+jwt")
			_, _ = io.WriteString(w, body)
		})
	}
	f := serve(s.sign(t, "token-introspection+jwt", good))
	req := identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: f.URL, ClientAuth: identity.ClientSecretBasicAuth("rs", "x")},
		Token:           "t", RequestJWT: true, Keys: s.keys(), Issuer: "https://as",
	}
	r, err := identity.IntrospectToken(context.Background(), nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Signed || !r.Active || r.Subject != "u" || r.Scope != "read" {
		t.Errorf("response %+v", r)
	}
	if a := f.last(t).Header.Get("Accept"); a != "application/token-introspection+jwt" {
		t.Errorf("Accept = %q", a)
	}

	with := func(name string, v any) map[string]any {
		c := maps.Clone(good)
		if v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
		return c
	}
	noIntro := with("token_introspection", nil)
	badIntro := with("token_introspection", map[string]any{"active": "yes"})
	for name, tc := range map[string]struct {
		body  string
		mod   func(*identity.IntrospectionRequest)
		check func(error) bool
	}{
		"wrong typ":              {s.sign(t, "JWT", good), nil, claimErr("typ")},
		"no typ":                 {s.sign(t, "", good), nil, claimErr("typ")},
		"wrong issuer":           {s.sign(t, "token-introspection+jwt", good), func(r *identity.IntrospectionRequest) { r.Issuer = "https://x" }, claimErr("iss")},
		"wrong aud":              {s.sign(t, "token-introspection+jwt", good), func(r *identity.IntrospectionRequest) { r.Audience = "other" }, claimErr("aud")},
		"no keys":                {s.sign(t, "token-introspection+jwt", good), func(r *identity.IntrospectionRequest) { r.Keys = nil }, func(e error) bool { return errors.Is(e, identity.ErrKeyNotFound) }},
		"other signer":           {newTestSigner(t, "k1").sign(t, "token-introspection+jwt", good), nil, func(e error) bool { return errors.Is(e, identity.ErrSignature) }},
		"missing claim":          {s.sign(t, "token-introspection+jwt", noIntro), nil, func(e error) bool { return errors.Is(e, identity.ErrMissingMember) }},
		"bad inner":              {s.sign(t, "token-introspection+jwt", badIntro), nil, func(e error) bool { return errors.Is(e, identity.ErrNotJSON) }},
		"no iat":                 {s.sign(t, "token-introspection+jwt", with("iat", nil)), nil, claimErr("iat")},
		"iat a string":           {s.sign(t, "token-introspection+jwt", with("iat", "now")), nil, claimErr("iat")},
		"iat too old":            {s.sign(t, "token-introspection+jwt", with("iat", now-400)), nil, claimErr("iat")},
		"iat too old for MaxAge": {s.sign(t, "token-introspection+jwt", with("iat", now-200)), func(r *identity.IntrospectionRequest) { r.MaxAge = time.Minute }, claimErr("iat")},
		"iat ahead":              {s.sign(t, "token-introspection+jwt", with("iat", now+120)), nil, claimErr("iat")},
		"expired":                {s.sign(t, "token-introspection+jwt", with("exp", now-120)), nil, claimErr("exp")},
		"RS256 not allowed":      {s.sign(t, "token-introspection+jwt", good), func(r *identity.IntrospectionRequest) { r.Algorithms = []string{"RS256"} }, func(e error) bool { return errors.Is(e, identity.ErrUnsupportedAlg) }},
	} {
		f := serve(tc.body)
		r := req
		r.Address = f.URL
		if tc.mod != nil {
			tc.mod(&r)
		}
		if _, err := identity.IntrospectToken(context.Background(), nil, r); !tc.check(err) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestIntrospectRequireJWT(t *testing.T) {
	s := newTestSigner(t, "k1")
	signed := s.sign(t, "token-introspection+jwt", map[string]any{"iss": "https://as", "aud": "rs", "iat": time.Now().Unix(),
		"token_introspection": map[string]any{"active": true, "sub": "u"}})
	base := identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{ClientAuth: identity.ClientSecretBasicAuth("rs", "x")},
		Token:           "t", RequireJWT: true, Keys: s.keys(), Issuer: "https://as",
	}
	for _, tc := range []struct {
		name        string
		contentType string
		body        string
		mod         func(*identity.IntrospectionRequest)
		want        error // nil: accepted
		asked       bool  // whether the endpoint was called
	}{
		{"signed", "application/token-introspection+jwt", signed, nil, nil, true},
		{"signed, media type with parameters", "application/token-introspection+jwt; charset=utf-8", signed, nil, nil, true},
		{"plain JSON", "application/json", `{"active":true,"sub":"u"}`, nil, identity.ErrContentType, true},
		{"plain JSON, inactive", "application/json", `{"active":false}`, nil, identity.ErrContentType, true},
		{"JWT as application/jwt", "application/jwt", signed, nil, identity.ErrContentType, true},
		{"no keys", "", "", func(r *identity.IntrospectionRequest) { r.Keys = nil }, identity.ErrKeyNotFound, false},
		{"no issuer", "", "", func(r *identity.IntrospectionRequest) { r.Issuer = "" }, identity.ErrMissingIssuer, false},
		{"no audience", "", "", func(r *identity.IntrospectionRequest) { r.ClientAuth = identity.ClientAuth{} }, identity.ErrMissingClientID, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
				w.Header().Set("Content-Type", tc.contentType)
				_, _ = io.WriteString(w, tc.body)
			})
			req := base
			req.Address = f.URL
			if tc.mod != nil {
				tc.mod(&req)
			}
			r, err := identity.IntrospectToken(context.Background(), nil, req)
			if !errors.Is(err, tc.want) || (tc.want == nil && (r == nil || !r.Signed || r.Subject != "u")) {
				t.Fatalf("got %+v, %v; want %v", r, err, tc.want)
			}
			if n := f.count(); (n > 0) != tc.asked {
				t.Fatalf("endpoint called %d times", n)
			}
			if tc.asked {
				if a := f.last(t).Header.Get("Accept"); a != "application/token-introspection+jwt" {
					t.Errorf("Accept = %q", a)
				}
			}
		})
	}
}

func TestRevokeToken(t *testing.T) {
	for _, body := range []string{"", "{}", "ok"} {
		f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) { _, _ = io.WriteString(w, body) })
		err := identity.RevokeToken(context.Background(), nil, identity.RevocationRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: f.URL, ClientAuth: identity.ClientSecretBasicAuth("c", "s")},
			Token:           "rt", TokenTypeHint: "refresh_token",
		})
		if err != nil {
			t.Errorf("body %q: %v", body, err)
		}
		if got := f.last(t).Form; got.Get("token") != "rt" || got.Get("token_type_hint") != "refresh_token" {
			t.Errorf("form %v", got)
		}
	}
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set("Retry-After", "10")
		writeJSON(w, 503, `{"error":"temporarily_unavailable"}`)
	})
	err := identity.RevokeToken(context.Background(), nil, identity.RevocationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.StatusCode != 503 || pe.Code != "temporarily_unavailable" {
		t.Errorf("503: %v", err)
	}
	f = newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) { w.WriteHeader(204) })
	if err := identity.RevokeToken(context.Background(), nil, identity.RevocationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"}); err != nil {
		t.Errorf("204: %v", err)
	}
	f = newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) { w.WriteHeader(302) })
	if err := identity.RevokeToken(context.Background(), nil, identity.RevocationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"}); !errors.Is(err, identity.ErrHTTPStatus) {
		t.Errorf("302 without Location: %v", err)
	}
	if err := identity.RevokeToken(context.Background(), nil, identity.RevocationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}}); err == nil {
		t.Error("empty token accepted")
	}
}
