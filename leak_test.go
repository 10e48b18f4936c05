package caddyidentity

import (
	"context"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/goleak"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestNoGoroutineLeakAcrossReloads provisions handlers the way config
// reloads do (new config first, then the old one cleaned up and its context
// cancelled) and checks that no goroutine outlives the last config: not the
// key refreshers, nor the warm-up, nor the token cache.
func TestNoGoroutineLeakAcrossReloads(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	down := identitytest.NewIssuer(t)
	down.SetDown(true)
	ignore := goleak.IgnoreCurrent()

	load := func() (*Handler, context.CancelFunc) {
		h := &Handler{
			Issuers:   []IssuerConfig{{Issuer: iss.URL}, {Issuer: down.URL}},
			Audiences: []string{identitytest.DefaultAudience},
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return h, cancel
	}
	old, oldCancel := load()
	x := &hx{t: t, h: old}
	tok := iss.Token(t, "u", nil)
	wantStatus(t, x.get("/", bearer(tok)), 200)
	for range 3 {
		cur, cancel := load()
		if err := old.Cleanup(); err != nil {
			t.Fatal(err)
		}
		oldCancel()
		x = &hx{t: t, h: cur}
		wantStatus(t, x.get("/", bearer(tok)), 200)
		old, oldCancel = cur, cancel
	}
	if n, ok := providerPool.References(fmtProviderKey(iss.URL, "", false)); !ok || n != 1 {
		t.Fatalf("provider references = %d (%v), want 1", n, ok)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	oldCancel()
	if _, ok := providerPool.References(fmtProviderKey(iss.URL, "", false)); ok {
		t.Fatal("provider still pooled after the last config was cleaned up")
	}
	checkNoHandlerGoroutines(t, ignore)
}

// checkNoHandlerGoroutines fails the test if goroutines other than those
// in ignore are left. The idle keep-alive connections of the key fetches
// belong to the shared HTTP client, not to the handler: they are closed
// first, so that their read and write loops end. The only goroutines
// ignored are the test servers' own connections (net/http.(*conn).serve),
// which live until the servers close at the end of the test; anything else,
// a goroutine blocked on a network read included, is a leak.
func checkNoHandlerGoroutines(t *testing.T, ignore goleak.Option) {
	t.Helper()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if err := goleak.Find(ignore, goleak.IgnoreAnyFunction("net/http.(*conn).serve")); err != nil {
		t.Fatal(err)
	}
}
