package identity_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestConformanceUserInfo covers conformance/userinfo.json (OpenID Connect
// Core §5.3).
func TestConformanceUserInfo(t *testing.T) {
	ctx := context.Background()
	serveFixture := func(t *testing.T, c conformanceCase) *fakeEndpoint {
		body := specFixture(t, c.Fixture)
		return newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
	}
	runConformance(t, "userinfo.json", map[string]func(*testing.T, conformanceCase){
		"UI-001": func(t *testing.T, c conformanceCase) {
			f := serveFixture(t, c)
			r, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "access-token"})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.last(t).Header.Get("Authorization"); got != "Bearer access-token" {
				t.Errorf("Authorization = %q", got)
			}
			want := identity.UserInfoResponse{
				Subject: "248289761001", Name: "Jane Doe", GivenName: "Jane", FamilyName: "Doe", MiddleName: "Quinn",
				Nickname: "Janie", PreferredUsername: "j.doe", Profile: "https://example.com/janedoe",
				Picture: "https://example.com/janedoe/me.jpg", Website: "https://blog.example.com/janedoe",
				Email: "janedoe@example.com", EmailVerified: true, Gender: "female", Birthdate: "1972-03-31",
				Zoneinfo: "Europe/Paris", Locale: "en-US", PhoneNumber: "+1 (425) 555-1212", PhoneNumberVerified: false,
			}
			got := *r
			got.Address, got.UpdatedAt, got.Raw = nil, time.Time{}, nil
			if got.Subject != want.Subject || got.Name != want.Name || got.GivenName != want.GivenName || got.FamilyName != want.FamilyName ||
				got.MiddleName != want.MiddleName || got.Nickname != want.Nickname || got.PreferredUsername != want.PreferredUsername ||
				got.Profile != want.Profile || got.Picture != want.Picture || got.Website != want.Website || got.Email != want.Email ||
				got.EmailVerified != want.EmailVerified || got.Gender != want.Gender || got.Birthdate != want.Birthdate ||
				got.Zoneinfo != want.Zoneinfo || got.Locale != want.Locale || got.PhoneNumber != want.PhoneNumber ||
				got.PhoneNumberVerified != want.PhoneNumberVerified {
				t.Errorf("claims %+v", got)
			}
			if r.Address == nil || r.Address.Locality != "Los Angeles" || r.Address.PostalCode != "90210" || r.Address.Country != "USA" ||
				r.Address.Formatted != "1234 Hollywood Blvd.\nLos Angeles, CA 90210\nUSA" {
				t.Errorf("address %+v", r.Address)
			}
			if !r.UpdatedAt.Equal(time.Unix(1700000000, 0)) {
				t.Errorf("updated_at %v", r.UpdatedAt)
			}
		},
		"UI-002": func(t *testing.T, c conformanceCase) {
			f := serveFixture(t, c)
			if _, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t", ExpectedSubject: "248289761001"}); err != nil {
				t.Fatal(err)
			}
		},
		"UI-003": func(t *testing.T, c conformanceCase) {
			f := serveFixture(t, c)
			r, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t", ExpectedSubject: "someone-else"})
			if !errors.Is(err, identity.ErrSubjectMismatch) || r != nil {
				t.Errorf("got %v, %v", r, err)
			}
		},
		"UI-004": func(t *testing.T, _ conformanceCase) {
			challenge := `Bearer realm="example", error="invalid_token", error_description="The access token expired"`
			f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
				w.Header().Set("WWW-Authenticate", challenge)
				w.WriteHeader(401)
			})
			_, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
			var pe *identity.ProtocolError
			if !errors.As(err, &pe) || pe.StatusCode != 401 || pe.WWWAuthenticate != challenge || pe.Code != identity.ErrorInvalidToken || pe.Description != "The access token expired" {
				t.Errorf("got %#v", err)
			}
		},
		"UI-005": func(t *testing.T, _ conformanceCase) {
			f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) { w.WriteHeader(403) })
			_, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
			var se *identity.HTTPStatusError
			if !errors.As(err, &se) || se.StatusCode != 403 {
				t.Errorf("got %#v", err)
			}
			f = newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="openid profile"`)
				w.WriteHeader(403)
			})
			_, err = identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
			var pe *identity.ProtocolError
			if !errors.As(err, &pe) || pe.StatusCode != 403 || pe.Code != identity.ErrorInsufficientScope {
				t.Errorf("with challenge: got %#v", err)
			}
		},
		"UI-006": func(t *testing.T, _ conformanceCase) {
			f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(500)
				_, _ = io.WriteString(w, "<h1>Internal Server Error</h1>")
			})
			_, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
			var se *identity.HTTPStatusError
			if !errors.As(err, &se) || se.StatusCode != 500 || string(se.Body) != "<h1>Internal Server Error</h1>" || se.Error() == "" {
				t.Errorf("got %#v", err)
			}
		},
		"UI-007": func(t *testing.T, c conformanceCase) {
			f := serveFixture(t, c)
			r, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"})
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := r.Extra("department"); !ok || string(v) != `"Engineering"` || r.Claims()["department"] != "Engineering" {
				t.Errorf("custom claim: %s", v)
			}
			if r.Email != "janedoe@example.com" || !r.EmailVerified || r.Claims()["email"] != "janedoe@example.com" {
				t.Error("standard claims not typed")
			}
		},
		"UI-008": func(t *testing.T, _ conformanceCase) {
			rt := &countingTransport{base: http.DefaultTransport}
			f := jsonFake(t, 200, `{"sub":"u"}`)
			if _, err := identity.RequestUserInfo(ctx, &http.Client{Transport: rt}, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Token: "t"}); err != nil || rt.n.Load() != 1 {
				t.Fatalf("custom client: %v, %d requests", err, rt.n.Load())
			}
			slow := newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
			})
			start := time.Now()
			_, err := identity.RequestUserInfo(ctx, &http.Client{Transport: rt, Timeout: 100 * time.Millisecond}, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: slow.URL}, Token: "t"})
			var ue *url.Error
			if !errors.As(err, &ue) || !ue.Timeout() || time.Since(start) > 2*time.Second {
				t.Errorf("client timeout: %v after %v", err, time.Since(start))
			}
			tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if _, err := identity.RequestUserInfo(tctx, nil, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: slow.URL}, Token: "t"}); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("context timeout: %v", err)
			}
		},
	})
}
