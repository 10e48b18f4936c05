package identity_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// routedTLS is an https test server reachable under any host name: its
// client dials the server whatever the URL says, so endpoints taken
// verbatim from a discovery fixture (https://server.example.com/...) hit it.
type routedTLS struct {
	*httptest.Server
	hosts chan string // Host and path of each request
}

func newRoutedTLS(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) (*routedTLS, *http.Client) {
	rt := &routedTLS{hosts: make(chan string, 16)}
	rt.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt.hosts <- r.Host + r.URL.Path
		reply(w, r)
	}))
	t.Cleanup(rt.Close)
	tr := rt.Client().Transport.(*http.Transport).Clone()
	addr := rt.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr.TLSClientConfig.ServerName = "example.com" // a name of the httptest certificate
	return rt, &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// TestConformanceIntrospection covers conformance/introspection.json (RFC 7662).
func TestConformanceIntrospection(t *testing.T) {
	ctx := context.Background()
	serve := func(t *testing.T, status int, body []byte) *fakeEndpoint {
		return newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	}
	request := func(addr string, auth identity.ClientAuth) identity.IntrospectionRequest {
		return identity.IntrospectionRequest{ProtocolRequest: identity.ProtocolRequest{Address: addr + "/introspect", ClientAuth: auth}, Token: "mF_9.B5f-4.1JqM"}
	}
	rs := identity.ClientSecretBasicAuth("resource server", "s&cret")
	runConformance(t, "introspection.json", map[string]func(*testing.T, conformanceCase){
		"INTR-001": func(t *testing.T, c conformanceCase) {
			f := serve(t, 200, specFixture(t, c.Fixture))
			r, err := identity.IntrospectToken(ctx, nil, request(f.URL, rs))
			if err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.Method != http.MethodPost || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || got.Form.Get("token") != "mF_9.B5f-4.1JqM" {
				t.Errorf("request %s %v %v", got.Method, got.Header, got.Form)
			}
			if !r.Active || r.Scope != "read write dolphin" || !reflect.DeepEqual(r.Scopes, []string{"read", "write", "dolphin"}) ||
				r.ClientID != "l238j323ds-23ij4" || r.Username != "jdoe" || r.TokenType != "Bearer" ||
				!r.Expiry.Equal(time.Unix(1419356238, 0)) || !r.IssuedAt.Equal(time.Unix(1419350238, 0)) || !r.NotBefore.Equal(time.Unix(1419350238, 0)) ||
				r.Subject != "Z5O3upPC88QrAjx00dis" || !reflect.DeepEqual(r.Audience, []string{"https://protected.example.net/resource"}) ||
				r.Issuer != "https://server.example.com/" || r.ID != "d3f5c9a1-2b7e-4c1a-9e8f-0a1b2c3d4e5f" {
				t.Errorf("typed response %+v", r)
			}
			if v, ok := r.Extra("extension_field"); !ok || string(v) != `"twenty-seven"` {
				t.Errorf("unknown member lost: %s", v)
			}
		},
		"INTR-002": func(t *testing.T, c conformanceCase) {
			f := serve(t, 200, specFixture(t, c.Fixture))
			r, err := identity.IntrospectToken(ctx, nil, request(f.URL, rs))
			if err != nil || r.Active || r.Subject != "" || !r.Expiry.IsZero() {
				t.Errorf("got %+v, %v", r, err)
			}
		},
		"INTR-003": func(t *testing.T, _ conformanceCase) {
			f := serve(t, 200, []byte(`{"active":true}`))
			if _, err := identity.IntrospectToken(ctx, nil, request(f.URL, rs)); err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			u, p := basicCreds(t, got.Header.Get("Authorization"))
			if u != "resource+server" || p != "s%26cret" || got.Form.Has("client_id") || got.Form.Has("client_secret") {
				t.Errorf("basic: %q:%q %v", u, p, got.Form)
			}
			if _, err := identity.IntrospectToken(ctx, nil, request(f.URL, identity.ClientSecretPostAuth("resource server", "s&cret"))); err != nil {
				t.Fatal(err)
			}
			got = f.last(t)
			if got.Form.Get("client_id") != "resource server" || got.Form.Get("client_secret") != "s&cret" || got.Header.Get("Authorization") != "" {
				t.Errorf("post: %v %v", got.Form, got.Header)
			}
		},
		"INTR-004": func(t *testing.T, _ conformanceCase) {
			f := serve(t, 200, []byte(`{"active":true}`))
			for _, hint := range []string{identity.TokenTypeHintAccessToken, identity.TokenTypeHintRefreshToken} {
				req := request(f.URL, rs)
				req.TokenTypeHint = hint
				if _, err := identity.IntrospectToken(ctx, nil, req); err != nil {
					t.Fatal(err)
				}
				if got := f.last(t).Form; got.Get("token_type_hint") != hint || got.Get("token") == "" {
					t.Errorf("form %v", got)
				}
			}
		},
		"INTR-005": func(t *testing.T, c conformanceCase) {
			f := serve(t, 401, specFixture(t, c.Fixture))
			_, err := identity.IntrospectToken(ctx, nil, request(f.URL, rs))
			var pe *identity.ProtocolError
			if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidClient || pe.Description != "Client authentication failed" || pe.StatusCode != 401 {
				t.Errorf("got %#v", err)
			}
		},
		"INTR-006": func(t *testing.T, c conformanceCase) {
			doc, err := identity.ParseDiscovery(specFixture(t, c.Fixture))
			if err != nil {
				t.Fatal(err)
			}
			srv, client := newRoutedTLS(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, `{"active":true}`) })
			r, err := identity.IntrospectToken(ctx, client, identity.IntrospectionRequest{
				ProtocolRequest: identity.ProtocolRequest{Address: doc.IntrospectionEndpoint, ClientAuth: rs}, Token: "t"})
			if err != nil || !r.Active {
				t.Fatalf("got %v, %v", r, err)
			}
			if got := <-srv.hosts; got != "server.example.com/introspect" {
				t.Errorf("request went to %q, not the discovered introspection_endpoint", got)
			}
		},
	})
}
