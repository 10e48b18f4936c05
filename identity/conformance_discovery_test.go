package identity_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// specProvider is the issuer the discovery and JWKS fixtures name.
const specProvider = "https://provider.example.com"

// fixtureHost is an HTTPS server answering for provider.example.com with
// fixed bodies per path (404 elsewhere), counting requests.
type fixtureHost struct {
	srv    *httptest.Server
	client *http.Client
	hits   atomic.Int64

	mu     sync.Mutex
	routes map[string]fixtureRoute
}

type fixtureRoute struct {
	status int
	ctype  string
	body   []byte
}

func newFixtureHost(t *testing.T) *fixtureHost {
	t.Helper()
	h := &fixtureHost{routes: map[string]fixtureRoute{}}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		h.mu.Lock()
		rt, ok := h.routes[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rt.status != 0 && rt.status != http.StatusOK {
			http.Error(w, string(rt.body), rt.status)
			return
		}
		w.Header().Set("Content-Type", rt.ctype)
		_, _ = w.Write(rt.body)
	}))
	t.Cleanup(h.srv.Close)
	h.client = hostClient(t, h.srv)
	return h
}

// serve answers path with a 200 JSON body.
func (h *fixtureHost) serve(path string, body []byte) {
	h.set(path, fixtureRoute{ctype: "application/json", body: body})
}

func (h *fixtureHost) set(path string, rt fixtureRoute) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes[path] = rt
}

const wellKnown = "/.well-known/openid-configuration"

// requiredDiscoveryFields are the seven members DISC-002 names.
func requiredDiscoveryFields(d *identity.DiscoveryDocument) map[string]bool {
	return map[string]bool{
		"issuer":                                d.Issuer != "",
		"authorization_endpoint":                d.AuthorizationEndpoint != "",
		"token_endpoint":                        d.TokenEndpoint != "",
		"jwks_uri":                              d.JWKSURI != "",
		"response_types_supported":              len(d.ResponseTypesSupported) > 0,
		"subject_types_supported":               len(d.SubjectTypesSupported) > 0,
		"id_token_signing_alg_values_supported": len(d.IDTokenSigningAlgValuesSupported) > 0,
	}
}

func TestConformanceDiscovery(t *testing.T) {
	ctx := context.Background()
	runConformance(t, "discovery.json", map[string]func(t *testing.T, c conformanceCase){
		"DISC-001": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(wellKnown, specFixture(t, c.Fixture))
			d, _, err := identity.FetchDiscovery(ctx, h.client, specProvider, identity.DiscoveryPolicy{})
			if err != nil {
				t.Fatal(err)
			}
			for name, ok := range requiredDiscoveryFields(d) {
				if !ok {
					t.Errorf("required field %s not populated", name)
				}
			}
			if d.Issuer != specProvider || d.JWKSURI != specProvider+"/jwks" || d.TokenEndpoint != specProvider+"/token" ||
				!slices.Equal(d.IDTokenSigningAlgValuesSupported, []string{"RS256", "ES256"}) ||
				!slices.Equal(d.ResponseTypesSupported, []string{"code", "id_token", "code id_token"}) ||
				d.IntrospectionEndpoint != specProvider+"/introspect" || d.RevocationEndpoint != specProvider+"/revoke" {
				t.Errorf("typed fields do not match the fixture: %+v", d)
			}
		},
		"DISC-002": func(t *testing.T, c conformanceCase) {
			d, err := identity.ParseDiscovery(specFixture(t, c.Fixture))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Validate(specProvider, identity.DiscoveryPolicy{}); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			fields := requiredDiscoveryFields(d)
			if len(fields) != 7 {
				t.Fatalf("%d required fields checked", len(fields))
			}
			for name, ok := range fields {
				if !ok {
					t.Errorf("required field %s not accessible", name)
				}
			}
		},
		"DISC-003": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(wellKnown, specFixture(t, c.Fixture))
			d, _, err := identity.FetchDiscovery(ctx, h.client, specProvider, identity.DiscoveryPolicy{})
			matchesOnly(t, err, identity.ErrIssuerMismatch)
			if d != nil {
				t.Error("a mismatching document was returned")
			}
		},
		"DISC-004": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(wellKnown, specFixture(t, "discovery/valid.json"))
			p := newProvider(t, specProvider, identity.ProviderOptions{HTTPClient: h.client})
			first, err := p.Discovery(ctx)
			if err != nil {
				t.Fatal(err)
			}
			second, err := p.Discovery(ctx)
			if err != nil || second != first {
				t.Fatalf("second Discovery: %v (same document: %v)", err, second == first)
			}
			if n := h.hits.Load(); n != 1 {
				t.Errorf("%d HTTP requests, want 1", n)
			}
		},
		"DISC-005": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(wellKnown, specFixture(t, "discovery/valid.json"))
			clock := newOPClock()
			p := newProvider(t, specProvider, identity.ProviderOptions{HTTPClient: h.client,
				Keys: identity.RemoteKeySetOptions{Now: clock.Now, DefaultTTL: 10 * time.Minute, StaleWindow: -1}})
			first, err := p.Discovery(ctx)
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(10 * time.Minute)
			second, err := p.Discovery(ctx)
			if err != nil || second == first {
				t.Fatalf("after the TTL: %v (refreshed: %v)", err, second != first)
			}
			if n := h.hits.Load(); n != 2 {
				t.Errorf("%d HTTP requests, want 2", n)
			}
		},
		"DISC-006": func(t *testing.T, c conformanceCase) {
			for _, status := range []int{http.StatusNotFound, http.StatusInternalServerError} {
				h := newFixtureHost(t)
				h.set(wellKnown, fixtureRoute{status: status, body: []byte("error page")})
				_, _, err := identity.FetchDiscovery(ctx, h.client, specProvider, identity.DiscoveryPolicy{})
				matchesOnly(t, err, identity.ErrHTTPStatus)
				var se *identity.HTTPStatusError
				if !errors.As(err, &se) || se.StatusCode != status {
					t.Errorf("status %d: err = %v", status, err)
				}
			}
		},
		"DISC-007": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(wellKnown, []byte("this is not JSON"))
			_, _, err := identity.FetchDiscovery(ctx, h.client, specProvider, identity.DiscoveryPolicy{})
			matchesOnly(t, err, identity.ErrNotJSON)
		},
		"DISC-008": func(t *testing.T, c conformanceCase) {
			for fixture, want := range map[string][]string{
				c.Fixture:                                {"jwks_uri"},
				"discovery/missing-multiple-fields.json": {"token_endpoint", "subject_types_supported"},
			} {
				h := newFixtureHost(t)
				h.serve(wellKnown, specFixture(t, fixture))
				_, _, err := identity.FetchDiscovery(ctx, h.client, specProvider, identity.DiscoveryPolicy{})
				matchesOnly(t, err, identity.ErrMissingMember)
				var me *identity.MissingMembersError
				if !errors.As(err, &me) || !slices.Equal(me.Members, want) {
					t.Errorf("%s: missing = %v, want %v", fixture, me, want)
				}
			}
		},
		"DISC-009": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(wellKnown, specFixture(t, c.Fixture))
			d, _, err := identity.FetchDiscovery(ctx, h.client, specProvider, identity.DiscoveryPolicy{})
			if err != nil {
				t.Fatalf("extra field rejected: %v", err)
			}
			if v, ok := d.Extra("x_custom_extension_field"); !ok || string(v) != `"should-be-ignored-not-rejected"` {
				t.Errorf("extra field = %s, %v", v, ok)
			}
			for name, ok := range requiredDiscoveryFields(d) {
				if !ok {
					t.Errorf("required field %s not accessible", name)
				}
			}
		},
		"DISC-010": func(t *testing.T, c conformanceCase) {
			_, _, err := identity.FetchDiscovery(ctx, &http.Client{Transport: failingTransport{t}}, "http://provider.example.com", identity.DiscoveryPolicy{})
			matchesOnly(t, err, identity.ErrHTTPSRequired)
			if _, err := identity.NewProvider("http://provider.example.com", identity.ProviderOptions{}); !errors.Is(err, identity.ErrHTTPSRequired) {
				t.Errorf("NewProvider: err = %v, want ErrHTTPSRequired", err)
			}
			// Configurable for development.
			op := newFakeOP(t)
			_, _, err = identity.FetchDiscovery(ctx, nil, op.URL, identity.DiscoveryPolicy{AllowHTTP: true})
			if err != nil {
				t.Errorf("http with AllowHTTP: %v", err)
			}
		},
	})
}
