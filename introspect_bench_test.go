package caddyidentity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// BenchmarkIntrospectionCacheHit pairs a JWT cache hit with warm hits of
// opaque tokens: one introspecting issuer, and the second of two in
// introspection_order (whose hit is found after the first issuer's cache
// is looked at), in one run: compare the sub-benchmarks' ns/op.
func BenchmarkIntrospectionCacheHit(b *testing.B) {
	a := identitytest.NewIssuer(b, identitytest.WithOpaqueAccessTokens())
	second := identitytest.NewIssuer(b, identitytest.WithOpaqueAccessTokens())
	intro := &IntrospectionConfig{ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret}
	configs := []struct {
		name  string
		token string
		h     *Handler
	}{
		{"jwt", a.Token(b, "u", nil), &Handler{Issuers: []IssuerConfig{{Issuer: a.URL, Introspection: intro}}}},
		{"opaque, one issuer", serviceToken(b, a), &Handler{Issuers: []IssuerConfig{{Issuer: a.URL, Introspection: intro}}}},
		{"opaque, second of two issuers", serviceToken(b, second), &Handler{
			Issuers:            []IssuerConfig{{Issuer: a.URL, Introspection: intro}, {Issuer: second.URL, Introspection: intro}},
			IntrospectionOrder: []string{a.URL, second.URL},
		}},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			h := c.h
			h.Audiences = []string{identitytest.DefaultAudience}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			if err := h.Provision(ctx); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				_ = h.Cleanup()
				cancel()
			})
			warm := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
			warm.Header.Set("Authorization", "Bearer "+c.token)
			warm = warm.WithContext(context.WithValue(warm.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, warm, benchNext); err != nil || w.Code != http.StatusOK {
				b.Fatalf("warm-up: %d %v", w.Code, err)
			}
			benchServe(b, h, []string{c.token})
		})
	}
}
