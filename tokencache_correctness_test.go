package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// These tests prove the validated-token cache safe: a cached token is
// refused once it expires (exp + the configured leeway) and once its key is
// withdrawn from the JWKS and the key set refreshed, the cache never holds
// more than its bound under a flood of distinct valid tokens while a hot
// entry survives, and rejected tokens are never admitted. They drive the
// provisioned handler directly, the way Caddy's server calls it.

// ccClock is a settable clock for the handler (cache and validator).
type ccClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *ccClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *ccClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// ccProvision provisions h in a fresh Caddy context, with now as its clock
// when not nil, and cleans it up at the end of the test.
func ccProvision(tb testing.TB, h *Handler, now func() time.Time) *Handler {
	tb.Helper()
	if now != nil {
		h.now = now
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		cancel()
		tb.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		cancel()
		tb.Fatalf("validate: %v", err)
	}
	tb.Cleanup(func() {
		if err := h.Cleanup(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
		cancel()
	})
	return h
}

// ccHandler is a handler for iss with audience "api" and the given cache
// size (nil: default) and leeway (nil: default).
func ccHandler(iss *identitytest.Issuer, cacheSize *int, leeway *time.Duration) *Handler {
	h := &Handler{
		Issuers:   []IssuerConfig{{Issuer: iss.URL}},
		Audiences: []string{identitytest.DefaultAudience},
		CacheSize: cacheSize,
	}
	if leeway != nil {
		d := caddy.Duration(*leeway)
		h.Leeway = &d
	}
	return h
}

// ccWriter is a ResponseWriter that keeps only the status.
type ccWriter struct {
	hdr    http.Header
	status int
}

func (w *ccWriter) Header() http.Header { return w.hdr }

func (w *ccWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func (w *ccWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// ccServe sends one request with the token (none when empty) through h as
// Caddy's server does and returns the status and, on a refusal, the
// {http.auth.identity.error} label.
func ccServe(tb testing.TB, h *Handler, token string) (int, string) {
	tb.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := &ccWriter{hdr: make(http.Header)}
	repl := caddy.NewReplacer()
	req = caddyhttp.PrepareRequest(req, repl, w, nil)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	err := h.ServeHTTP(w, req, next)
	if err == nil {
		return w.status, ""
	}
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		tb.Fatalf("ServeHTTP: %v is not a caddyhttp.HandlerError", err)
	}
	label, _ := repl.GetString("http.auth.identity.error")
	return he.StatusCode, label
}

// ccCount reads a counter (the cache hit and miss counters are shared by
// every handler of the process, so tests compare deltas).
func ccCount(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// ccHitsMisses returns the cache hit and miss counts of the handler's
// issuers (process-wide).
func ccHitsMisses(tb testing.TB, h *Handler) (hits, misses float64) {
	tb.Helper()
	for i := range h.auth.counters.cacheHits {
		hits += ccCount(tb, h.auth.counters.cacheHits[i])
		misses += ccCount(tb, h.auth.counters.cacheMisses[i])
	}
	return hits, misses
}

// ccExpect sends token and requires status (and label when not empty)
// and that the answer came from the cache (hit) or not (miss).
func ccExpect(tb testing.TB, h *Handler, token string, status int, label string, hit bool) {
	tb.Helper()
	h0, m0 := ccHitsMisses(tb, h)
	got, gotLabel := ccServe(tb, h, token)
	h1, m1 := ccHitsMisses(tb, h)
	if got != status || (label != "" && gotLabel != label) {
		tb.Fatalf("status %d (%q), want %d (%q)", got, gotLabel, status, label)
	}
	if hit && (h1-h0 != 1 || m1 != m0) {
		tb.Fatalf("want a cache hit: hits +%v, misses +%v", h1-h0, m1-m0)
	}
	if !hit && (h1 != h0 || m1-m0 != 1) {
		tb.Fatalf("want a cache miss: hits +%v, misses +%v", h1-h0, m1-m0)
	}
}

func ccIntPtr(n int) *int { return &n }

// perfClaims are the extra claims of benchmark token n: with the defaults
// of identitytest, a realistic access token of about 800 bytes (RS256).
func perfClaims(n int) map[string]any {
	return map[string]any{
		"sub":       fmt.Sprintf("user-%06d", n),
		"jti":       fmt.Sprintf("bench-%06d", n),
		"scope":     "openid profile email api:read api:write",
		"client_id": "bench-client",
		"email":     fmt.Sprintf("user-%06d@example.test", n),
		"name":      fmt.Sprintf("Bench User %d", n),
		"roles":     []string{"reader", "writer"},
	}
}

func TestTokenCacheCorrectnessExpiredRejectedWhenCached(t *testing.T) {
	for _, leeway := range []time.Duration{0, 5 * time.Second, DefaultLeeway} {
		t.Run(fmt.Sprintf("leeway=%s", leeway), func(t *testing.T) {
			iss := identitytest.NewIssuer(t)
			start := time.Now().Truncate(time.Second)
			clk := &ccClock{t: start}
			h := ccProvision(t, ccHandler(iss, nil, &leeway), clk.Now)

			exp := start.Add(30 * time.Second)
			tok := iss.Mint(t, map[string]any{"iat": start.Unix(), "exp": exp.Unix()})
			ccExpect(t, h, tok, http.StatusOK, "", false) // verified, admitted
			ccExpect(t, h, tok, http.StatusOK, "", true)

			// Still valid up to exp + leeway (exclusive), served from the cache.
			clk.Set(exp.Add(leeway - time.Nanosecond))
			ccExpect(t, h, tok, http.StatusOK, "", true)

			// At exp + leeway the cached entry is dead: it is dropped and the
			// token verified again, which refuses it as expired.
			clk.Set(exp.Add(leeway))
			ccExpect(t, h, tok, http.StatusUnauthorized, "expired", false)
			ccExpect(t, h, tok, http.StatusUnauthorized, "expired", false)
			if n := h.auth.cache.len(); n != 0 {
				t.Fatalf("cache holds %d entries after the only token expired", n)
			}
		})
	}
}

// With the real clock a hit reads the ticker's clock (see hitNow): the
// cache must never answer for a token once that clock has reached exp (so
// never after exp, unless the ticker runs more than clockMargin late), and
// a token past exp is refused as expired. Nothing is timed: each request
// is judged by the ticker's reading taken just before it, since ticks only
// move forward.
func TestTokenCacheCorrectnessExpiryRealClock(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	leeway := time.Duration(0)
	h := ccProvision(t, ccHandler(iss, nil, &leeway), nil)

	// exp is a whole second, 4 to 5 s away.
	exp := time.Now().Truncate(time.Second).Add(5 * time.Second)
	tok := iss.Mint(t, map[string]any{"iat": time.Now().Unix(), "exp": exp.Unix()})
	ccExpect(t, h, tok, http.StatusOK, "", false)
	ccExpect(t, h, tok, http.StatusOK, "", true)

	var afterExp int
	deadline := exp.Add(30 * time.Second)
	for afterExp < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests after exp within 30s of it", afterExp)
		}
		h0, _ := ccHitsMisses(t, h)
		cacheClock := time.Unix(0, h.auth.cache.ticks.Load()).Add(clockMargin)
		started := time.Now()
		status, label := ccServe(t, h, tok)
		h1, _ := ccHitsMisses(t, h)
		hit := h1 != h0
		if hit && !cacheClock.Before(exp) {
			t.Fatalf("a cache hit although the cache's clock (%v before the request) had reached exp %v", cacheClock, exp)
		}
		switch {
		case started.Before(exp):
			// Verified just after exp, it is refused.
			if status != http.StatusOK && label != "expired" {
				t.Fatalf("%v before exp: status %d (%q), want 200", exp.Sub(started), status, label)
			}
		case cacheClock.Before(exp):
			// The ticker ran more than clockMargin late (the process did
			// not run): the documented limit of the cache's clock.
			t.Logf("%v after exp: the ticker was %v late, beyond the margin", started.Sub(exp), started.Sub(cacheClock.Add(-clockMargin)))
		default:
			afterExp++
			if status != http.StatusUnauthorized || label != "expired" || hit {
				t.Fatalf("%v after exp: status %d (%q), from the cache %v; want 401 expired, verified", started.Sub(exp), status, label, hit)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The real clock of a hit is the ticker's last reading of the wall clock
// plus clockMargin, and the ticker keeps reading it: after any moment a
// tick comes that reads a later time, and hits then see at least that
// time plus the margin. Nothing is timed: how late the ticker may run on
// a loaded machine is what clockMargin absorbs.
func TestTokenCacheHitClockAhead(t *testing.T) {
	tc, err := newTokenCache(10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.close()
	for range 3 {
		before := time.Now()
		deadline := before.Add(30 * time.Second)
		for tc.ticks.Load() < before.UnixNano() {
			if time.Now().After(deadline) {
				t.Fatal("the clock did not tick in 30s")
			}
			time.Sleep(clockTick / 4)
		}
		hit := tc.hitNow()
		after := time.Now()
		if hit.Before(before.Add(clockMargin)) || hit.After(after.Add(clockMargin)) {
			t.Fatalf("hit clock %v, want a tick's reading between %v and %v plus %v", hit, before, after, clockMargin)
		}
	}
}

func TestTokenCacheCorrectnessExpiredNeverAdmitted(t *testing.T) {
	// A token that is already past exp + leeway when first seen is refused
	// and not admitted; one that expires within the leeway is admitted with
	// an entry that dies at exp + leeway.
	iss := identitytest.NewIssuer(t)
	start := time.Now().Truncate(time.Second)
	clk := &ccClock{t: start}
	leeway := 10 * time.Second
	h := ccProvision(t, ccHandler(iss, nil, &leeway), clk.Now)

	dead := iss.Mint(t, map[string]any{"iat": start.Add(-time.Hour).Unix(), "exp": start.Add(-leeway).Unix()})
	ccExpect(t, h, dead, http.StatusUnauthorized, "expired", false)
	ccExpect(t, h, dead, http.StatusUnauthorized, "expired", false)

	inLeeway := iss.Mint(t, map[string]any{"iat": start.Add(-time.Hour).Unix(), "exp": start.Add(-leeway / 2).Unix()})
	ccExpect(t, h, inLeeway, http.StatusOK, "", false)
	ccExpect(t, h, inLeeway, http.StatusOK, "", true)
	clk.Set(start.Add(leeway / 2))
	ccExpect(t, h, inLeeway, http.StatusUnauthorized, "expired", false)
}

func TestTokenCacheCorrectnessKeyRemovedFromJWKS(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := ccProvision(t, ccHandler(iss, nil, nil), nil)

	oldKID := iss.CurrentKeyID("RS256")
	tokA := iss.Token(t, "user-a", nil)
	tokB := iss.Token(t, "user-b", nil)
	for _, tok := range []string{tokA, tokB} {
		ccExpect(t, h, tok, http.StatusOK, "", false)
		ccExpect(t, h, tok, http.StatusOK, "", true)
	}

	// The issuer rotates and withdraws the old key. A token signed by the
	// new key has an unknown kid, which makes the handler refresh the JWKS
	// (rate limited: retry until the refresh happened).
	newKID := iss.RotateKey("RS256")
	iss.RemoveKey(oldKID)
	tokNew := iss.Token(t, "user-new", nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, label := ccServe(t, h, tokNew)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of the new key %s still refused (%d %s): JWKS never refreshed", newKID, status, label)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// After the refresh, the cached tokens of the withdrawn key are refused
	// (the hit is re-checked against the key set, the entry dropped, the
	// token verified again and refused), and never re-admitted.
	for _, tok := range []string{tokA, tokB} {
		status, label := ccServe(t, h, tok)
		if status != http.StatusUnauthorized {
			t.Fatalf("token of the withdrawn key: status %d (%s), want 401", status, label)
		}
		ccExpect(t, h, tok, http.StatusUnauthorized, label, false)
	}
	// The new key's token is cached as usual.
	ccExpect(t, h, tokNew, http.StatusOK, "", true)
}

func TestTokenCacheCorrectnessBoundUnderFlood(t *testing.T) {
	// EdDSA keeps minting and verifying 3,000 tokens fast.
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("EdDSA"))
	const bound = 200
	h := ccProvision(t, ccHandler(iss, ccIntPtr(bound), nil), nil)
	oc := h.auth.cache.c

	// A hot token, used often before the flood.
	hot := iss.Token(t, "hot", nil)
	ccExpect(t, h, hot, http.StatusOK, "", false)
	for range 20 {
		ccExpect(t, h, hot, http.StatusOK, "", true)
	}

	// The flood: distinct valid tokens, each used once, while the hot token
	// keeps being used now and then, as real traffic would.
	const flood = 3000
	maxSeen, hotMisses := 0, 0.0
	for i := range flood {
		if i%25 == 0 {
			_, m0 := ccHitsMisses(t, h)
			if status, label := ccServe(t, h, hot); status != http.StatusOK {
				t.Fatalf("hot token: status %d (%s)", status, label)
			}
			_, m1 := ccHitsMisses(t, h)
			hotMisses += m1 - m0
		}
		tok := iss.Token(t, fmt.Sprintf("flood-%d", i), nil)
		if status, label := ccServe(t, h, tok); status != http.StatusOK {
			t.Fatalf("flood token %d: status %d (%s)", i, status, label)
		}
		// Maintenance runs inline (tokencache.go), so the bound holds after
		// every request, not only after a clean-up.
		maxSeen = max(maxSeen, oc.EstimatedSize())
		if i%100 == 99 {
			oc.CleanUp()
			if n, w := oc.EstimatedSize(), oc.WeightedSize(); n > bound || w > bound {
				t.Fatalf("after %d distinct tokens: %d entries, weight %d, bound %d", i+1, n, w, bound)
			}
		}
	}
	oc.CleanUp()
	n, w := oc.EstimatedSize(), oc.WeightedSize()
	t.Logf("bound %d: %d entries (weight %d) after %d distinct valid tokens; largest transient size %d; hot token missed %v times",
		bound, n, w, flood, maxSeen, hotMisses)
	if n > bound || w > bound || uint64(bound) != oc.GetMaximum() {
		t.Fatalf("%d entries, weight %d, maximum %d; bound %d", n, w, oc.GetMaximum(), bound)
	}
	if maxSeen > bound {
		t.Fatalf("transient size %d is more than the bound %d", maxSeen, bound)
	}
	// The frequency-aware policy kept the hot entry through the flood.
	if hotMisses > 0 {
		t.Fatalf("the flood pushed the hot token out of the cache %v times", hotMisses)
	}
	ccExpect(t, h, hot, http.StatusOK, "", true)
}

func TestTokenCacheCorrectnessLargeTokensWeigh(t *testing.T) {
	// A token of several KiB takes a unit per started KiB, so the bound in
	// units also bounds the memory held by large tokens' entries.
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("EdDSA"))
	const bound = 40
	h := ccProvision(t, ccHandler(iss, ccIntPtr(bound), nil), nil)
	oc := h.auth.cache.c
	pad := strings.Repeat("x", 3000) // about 4 KiB once base64url-encoded
	for i := range 100 {
		tok := iss.Token(t, fmt.Sprintf("big-%d", i), map[string]any{"pad": pad})
		if status, label := ccServe(t, h, tok); status != http.StatusOK {
			t.Fatalf("large token %d (%d bytes): status %d (%s)", i, len(tok), status, label)
		}
	}
	oc.CleanUp()
	if n, w := oc.EstimatedSize(), oc.WeightedSize(); w > bound || n > bound/4 {
		t.Fatalf("%d entries of weight %d in a cache of %d units", n, w, bound)
	}
}

func TestTokenCacheCorrectnessRejectedNeverAdmitted(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "EdDSA"))
	other := identitytest.NewIssuer(t)
	h := ccProvision(t, ccHandler(iss, nil, nil), nil)

	good := iss.Token(t, "user-1", nil)
	sig := strings.LastIndexByte(good, '.') + 10
	flip := "A"
	if good[sig] == 'A' {
		flip = "B"
	}
	parts := strings.Split(good, ".")
	refused := map[string]string{
		"bad signature":   good[:sig] + flip + good[sig+1:],
		"payload swapped": parts[0] + "." + strings.Split(iss.Token(t, "admin", nil), ".")[1] + "." + parts[2],
		"expired":         iss.Mint(t, map[string]any{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}),
		"wrong audience":  iss.Mint(t, map[string]any{"aud": "other-api"}),
		"other issuer":    other.Token(t, "user-1", map[string]any{"iss": iss.URL}),
		"alg none":        iss.Mint(t, nil, identitytest.Alg("none")),
		"unknown kid":     iss.Mint(t, nil, identitytest.KeyID("no-such-key")),
		"not yet valid":   iss.Mint(t, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}),
		"missing exp":     iss.Mint(t, map[string]any{"exp": nil}),
		"garbage":         "not.a.jwt",
		"two parts":       parts[0] + "." + parts[1],
		"random":          strings.Repeat("Zm9v", 100),
	}
	for name, tok := range refused {
		for range 3 {
			h0, m0 := ccHitsMisses(t, h)
			status, label := ccServe(t, h, tok)
			h1, m1 := ccHitsMisses(t, h)
			if status != http.StatusUnauthorized {
				t.Fatalf("%s: status %d (%s), want 401", name, status, label)
			}
			if h1 != h0 || m1-m0 != 1 {
				t.Fatalf("%s: hits +%v, misses +%v: a refused token must never be served from the cache", name, h1-h0, m1-m0)
			}
		}
	}
	h.auth.cache.c.CleanUp()
	if n := h.auth.cache.len(); n != 0 {
		t.Fatalf("cache holds %d entries after only refused tokens", n)
	}
	ccExpect(t, h, good, http.StatusOK, "", false)
	ccExpect(t, h, good, http.StatusOK, "", true)
}

func TestTokenCacheCorrectnessMemoryAtBound(t *testing.T) {
	if testing.Short() {
		t.Skip("mints and verifies 12,000 tokens")
	}
	// Fill the default cache past its bound with realistic tokens (about
	// 800 bytes, EdDSA for speed) and measure the live heap it holds.
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("EdDSA"))
	h := ccProvision(t, ccHandler(iss, nil, nil), nil)
	const n = DefaultCacheSize + DefaultCacheSize/5
	toks := make([]string, n)
	for i := range toks {
		toks[i] = iss.Token(t, "", perfClaims(i))
	}
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	for i, tok := range toks {
		if status, label := ccServe(t, h, tok); status != http.StatusOK {
			t.Fatalf("token %d: status %d (%s)", i, status, label)
		}
	}
	h.auth.cache.c.CleanUp()
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	entries := h.auth.cache.len()
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("default cache (%d units) after %d distinct tokens of %d bytes: %d entries, live heap +%.1f MiB (%d B per entry)",
		DefaultCacheSize, n, len(toks[0]), entries, float64(grown)/(1<<20), grown/int64(max(entries, 1)))
	if entries > DefaultCacheSize {
		t.Fatalf("%d entries, bound %d", entries, DefaultCacheSize)
	}
	if grown > 64<<20 {
		t.Fatalf("the cache at its bound holds %.1f MiB, more than 64 MiB", float64(grown)/(1<<20))
	}
}

// peek returns the entry of token as stored, without the checks of get.
func (tc *tokenCache) peek(token string) (*cacheEntry, bool) {
	signingInput, signature, ok := splitToken(token)
	if !ok {
		return nil, false
	}
	e, ok := tc.c.GetIfPresent(hashToken(signature))
	if !ok || e.signingInput != signingInput {
		return nil, false
	}
	return e, true
}

// TestTokenCacheCorrectnessOnlyTheVerifiedTokenHits: entries are found by
// the hash of the signature, so this proves that nothing but the very
// token that was verified is ever answered from its entry: a cached token's
// signature on another header or payload, its signing input with another
// signature, or either with a byte added, is verified (and refused), and
// the cached token keeps hitting.
func TestTokenCacheCorrectnessOnlyTheVerifiedTokenHits(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"))
	h := ccProvision(t, ccHandler(iss, nil, nil), nil)

	good := iss.Token(t, "user-1", nil)
	admin := iss.Token(t, "admin", map[string]any{"scope": "admin"})
	ccExpect(t, h, good, http.StatusOK, "", false)
	ccExpect(t, h, good, http.StatusOK, "", true)

	g, a := strings.Split(good, "."), strings.Split(admin, ".")
	es := strings.Split(iss.Mint(t, nil, identitytest.Alg("ES256")), ".")
	refused := []struct{ name, token string }{
		{"signature on another payload", g[0] + "." + a[1] + "." + g[2]},
		{"signature on another header", es[0] + "." + g[1] + "." + g[2]},
		{"signing input with another signature", g[0] + "." + g[1] + "." + a[2]},
		{"byte added to the payload", g[0] + "." + g[1] + "A." + g[2]},
		{"byte added to the signature", good + "A"},
		{"empty fourth part", good + "."},
		{"signature only", "." + g[2]},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			ccExpect(t, h, tt.token, http.StatusUnauthorized, "", false)
			ccExpect(t, h, good, http.StatusOK, "", true)
		})
	}
}

// TestTokenCacheCorrectnessHoldsNoSignature: an entry keeps a copy of the
// token's signing input, never a view of the token (which would keep the
// signature, and so a usable token, in memory for as long as it lives).
func TestTokenCacheCorrectnessHoldsNoSignature(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := ccProvision(t, ccHandler(iss, nil, nil), nil)
	good := iss.Token(t, "user-1", nil)
	ccExpect(t, h, good, http.StatusOK, "", false)
	e, ok := h.auth.cache.peek(good)
	if !ok {
		t.Fatal("token not cached")
	}
	sig := strings.SplitN(good, ".", 3)[2]
	if strings.Contains(e.signingInput, sig) || e.signingInput != good[:len(good)-len(sig)-1] {
		t.Fatalf("entry signing input %q is not the token's header.payload", e.signingInput)
	}
	if unsafe.StringData(e.signingInput) == unsafe.StringData(good) {
		t.Fatal("the entry's signing input shares the token's memory (and so keeps its signature alive)")
	}
}

func TestSplitToken(t *testing.T) {
	tests := []struct {
		name, token, signingInput, signature string
		ok                                   bool
	}{
		{"compact JWS", "h.p.s", "h.p", "s", true},
		{"empty signature", "h.p.", "h.p", "", true},
		{"extra dots stay in the signature", "h.p.s.x.y", "h.p", "s.x.y", true},
		{"empty parts", "..", ".", "", true},
		{"one dot", "h.p", "", "", false},
		{"no dot", "token", "", "", false},
		{"empty", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			si, sig, ok := splitToken(tt.token)
			if si != tt.signingInput || sig != tt.signature || ok != tt.ok {
				t.Fatalf("splitToken(%q) = %q, %q, %v; want %q, %q, %v", tt.token, si, sig, ok, tt.signingInput, tt.signature, tt.ok)
			}
			if ok && si+"."+sig != tt.token {
				t.Fatalf("the halves of %q do not rebuild it", tt.token)
			}
		})
	}
}

// TestTokenCacheCorrectnessSweepDropsExpired: expired tokens that are never
// presented again do not keep their memory: the sweeper drops them (and
// only them).
func TestTokenCacheCorrectnessSweepDropsExpired(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	start := time.Now().Truncate(time.Second)
	clk := &ccClock{t: start}
	leeway := 5 * time.Second
	h := ccProvision(t, ccHandler(iss, nil, &leeway), clk.Now)

	short := make([]string, 20)
	for i := range short {
		short[i] = iss.Mint(t, map[string]any{"iat": start.Unix(), "exp": start.Add(time.Minute).Unix(), "jti": fmt.Sprint("short-", i)})
		ccExpect(t, h, short[i], http.StatusOK, "", false)
	}
	long := iss.Mint(t, map[string]any{"iat": start.Unix(), "exp": start.Add(time.Hour).Unix()})
	ccExpect(t, h, long, http.StatusOK, "", false)

	h.auth.cache.sweep()
	h.auth.cache.c.CleanUp()
	if n := h.auth.cache.len(); n != len(short)+1 {
		t.Fatalf("a sweep before any token expired left %d entries, want %d", n, len(short)+1)
	}

	// Past exp + leeway of the short tokens only.
	clk.Set(start.Add(time.Minute + leeway))
	h.auth.cache.sweep()
	h.auth.cache.c.CleanUp()
	if n := h.auth.cache.len(); n != 1 {
		t.Fatalf("after the sweep the cache holds %d entries, want 1 (the long-lived token)", n)
	}
	for _, tok := range short {
		if _, ok := h.auth.cache.peek(tok); ok {
			t.Fatal("an expired token is still cached after the sweep")
		}
	}
	ccExpect(t, h, long, http.StatusOK, "", true)
}

// TestTokenCacheCorrectnessClaimsDecodedOnDemand: an entry does not keep
// the decoded claims; the first placeholder that needs one decodes them
// from the signing input, and concurrent requests all get the same values.
func TestTokenCacheCorrectnessClaimsDecodedOnDemand(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := ccProvision(t, ccHandler(iss, nil, nil), nil)
	tok := iss.Token(t, "alice", map[string]any{
		"email":        "alice@example.com",
		"realm_access": map[string]any{"roles": []any{"admin", "dev"}},
	})
	ccExpect(t, h, tok, http.StatusOK, "", false)
	ccExpect(t, h, tok, http.StatusOK, "", true)
	e, ok := h.auth.cache.peek(tok)
	if !ok {
		t.Fatal("token not cached")
	}
	if e.decoded.Load() != nil {
		t.Fatal("the entry holds decoded claims before any placeholder asked for them")
	}
	want := map[string]string{
		"http.auth.user.id":                 "alice",
		"http.auth.user.email":              "alice@example.com",
		"http.auth.user.realm_access.roles": "admin, dev",
		"http.auth.identity.issuer":         iss.URL,
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key, w := range want {
				if v, ok := e.replace(key); !ok || fmt.Sprint(v) != w {
					t.Errorf("%s = %v, %v; want %q", key, v, ok, w)
				}
			}
			if v, ok := e.replace("http.auth.user.nope"); ok {
				t.Errorf("absent claim resolved to %v", v)
			}
		}()
	}
	wg.Wait()
	if e.decoded.Load() == nil {
		t.Fatal("claims not kept once decoded")
	}
}
