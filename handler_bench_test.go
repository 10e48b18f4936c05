package caddyidentity

import (
	"context"
	"net/http"
	"net/http/httptest"
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
