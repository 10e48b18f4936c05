package caddyidentity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// benchHandler provisions a handler for benchmarks.
func benchHandler(b *testing.B, cacheSize int) (*Handler, *identitytest.Issuer) {
	b.Helper()
	iss := identitytest.NewIssuer(b)
	h := basicHandler(iss)
	h.CacheSize = &cacheSize
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = h.Cleanup()
		cancel()
	})
	return h, iss
}

var benchNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// benchServe runs the handler for tokens[i % len(tokens)]. The request and
// replacer are rebuilt per iteration outside the handler's own cost as far
// as possible: the request is reused, its headers reset.
func benchServe(b *testing.B, h *Handler, tokens []string) {
	b.Helper()
	repl := caddy.NewReplacer()
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	auth := make([][]string, len(tokens))
	for i, t := range tokens {
		auth[i] = []string{"Bearer " + t}
	}
	hdr := http.Header{}
	r.Header = hdr
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		clear(hdr)
		hdr["Authorization"] = auth[i%len(auth)]
		if err := h.ServeHTTP(w, r, benchNext); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandlerCacheHit is the hot path: one token, always cached.
func BenchmarkHandlerCacheHit(b *testing.B) {
	h, iss := benchHandler(b, DefaultCacheSize)
	benchServe(b, h, []string{iss.Token(b, "u", map[string]any{"email": "u@example.com"})})
}

// BenchmarkHandlerCache10k cycles through 10,000 distinct cached tokens.
func BenchmarkHandlerCache10k(b *testing.B) {
	h, iss := benchHandler(b, DefaultCacheSize*2)
	tokens := make([]string, 10000)
	for i := range tokens {
		tokens[i] = iss.Token(b, "u", map[string]any{"i": i})
	}
	benchServe(b, h, tokens)
}

// BenchmarkHandlerNoCache verifies the token in full every time.
func BenchmarkHandlerNoCache(b *testing.B) {
	h, iss := benchHandler(b, 0)
	benchServe(b, h, []string{iss.Token(b, "u", nil)})
}

// TestCacheHitAllocations checks the hot path's budget: a request with a
// cached token costs at most 2 allocations more than the same request
// passed straight to the next handler.
func TestCacheHitAllocations(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, basicHandler(iss))
	tok := iss.Token(t, "u", map[string]any{"email": "u@example.com"})
	wantStatus(t, x.get("/", bearer(tok)), 200)
	base := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	auth := []string{"Bearer " + tok}
	run := func(withHandler bool) float64 {
		return testing.AllocsPerRun(200, func() {
			repl := caddy.NewReplacer()
			r := base.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl))
			r.Header = http.Header{"Authorization": auth, "Accept": {"*/*"}}
			if withHandler {
				if err := x.h.ServeHTTP(nil, r, benchNext); err != nil {
					t.Fatal(err)
				}
			} else {
				_ = benchNext.ServeHTTP(nil, r)
			}
		})
	}
	without, with := run(false), run(true)
	if with-without > 2 {
		t.Fatalf("cache hit costs %.1f allocations (%.1f with the handler, %.1f without), want ≤ 2", with-without, with, without)
	}
	t.Logf("cache hit: %.1f allocations on top of the chain", with-without)
}

// BenchmarkHandlerStagesCacheHit pairs a plain cache hit with hits that
// also hand the upstream a token (upstream_token client_credentials, and
// exchange with the exchanged token cached) or that carry claims merged
// from userinfo (the default X-User-Email, which the token lacks), and an
// introspected opaque token's hit, plain and completed from userinfo, all
// warm, in one run: compare the sub-benchmarks' ns/op.
func BenchmarkHandlerStagesCacheHit(b *testing.B) {
	iss := identitytest.NewIssuer(b, identitytest.WithClient("caller", "pw"))
	opaqueIss := identitytest.NewIssuer(b, identitytest.WithClient("caller", "pw"), identitytest.WithOpaqueAccessTokens())
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"sub":"caller","email":"caller@example.com"}`))
	}))
	b.Cleanup(ui.Close)
	caller := callerToken(b, iss)             // sub "caller", no aud: an issued token, for exchange
	opaqueCaller := callerToken(b, opaqueIss) // the same, opaque
	introspection := func(h *Handler) {
		h.Issuers[0] = IssuerConfig{Issuer: opaqueIss.URL, Introspection: &IntrospectionConfig{
			ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret,
		}}
	}
	configs := []struct {
		name   string
		setup  func(h *Handler)
		opaque bool
	}{
		{"plain", func(*Handler) {}, false},
		{"client_credentials", func(h *Handler) {
			h.UpstreamToken = &UpstreamToken{Grant: "client_credentials", ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret}
		}, false},
		{"exchange", func(h *Handler) {
			h.UpstreamToken = &UpstreamToken{Grant: "exchange", ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret, Audience: []string{"orders"}}
		}, false},
		{"userinfo", func(h *Handler) { h.Issuers[0].UserInfo = &UserInfoConfig{Endpoint: ui.URL} }, false},
		{"introspection", introspection, true},
		{"introspection+userinfo", func(h *Handler) {
			introspection(h)
			h.Issuers[0].UserInfo = &UserInfoConfig{Endpoint: ui.URL}
		}, true},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			h := &Handler{Issuers: []IssuerConfig{{Issuer: iss.URL}}, AnyAudience: true}
			c.setup(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			if err := h.Provision(ctx); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				_ = h.Cleanup()
				cancel()
			})
			tok := caller
			if c.opaque {
				tok = opaqueCaller
			}
			warm := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
			warm.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			if err := h.ServeHTTP(rec, warm, benchNext); err != nil || rec.Code != http.StatusOK {
				b.Fatalf("warm-up: status %d, %v", rec.Code, err)
			}
			if strings.Contains(c.name, "userinfo") && warm.Header.Get("X-User-Email") != "caller@example.com" {
				b.Fatalf("warm-up: X-User-Email %q, want the userinfo email", warm.Header.Get("X-User-Email"))
			}
			benchServe(b, h, []string{tok})
		})
	}
}
