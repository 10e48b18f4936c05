package caddyidentity

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestRefreshWaitHangingProvider: with a provider that accepts connections
// and never answers, a request is answered 503 (no keys held) within
// refresh_wait plus half a second: the deadline of its context, which the
// handler must not reach.
func TestRefreshWaitHangingProvider(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDelay(time.Hour)
	const wait = 500 * time.Millisecond
	h := ccHandler(iss, nil, nil)
	h.RefreshWait = caddy.Duration(wait)
	ccProvision(t, h, nil)

	token := iss.Token(t, "alice", nil) // signed before the clock starts
	ctx, cancel := context.WithTimeout(t.Context(), wait+500*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://example.test/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := &ccWriter{hdr: make(http.Header)}
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("a request reached the upstream without keys")
		return nil
	})
	err := h.ServeHTTP(w, req, next)
	if ctx.Err() != nil {
		t.Fatal("not answered within refresh_wait + 0.5 s")
	}
	status := w.status
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		status = he.StatusCode
	} else if err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", status)
	}
}
