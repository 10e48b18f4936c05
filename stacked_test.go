package caddyidentity

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// chainHeaders runs r through outer then inner, like two identity
// handlers on one route, and returns the status and the headers the
// upstream received (nil when it was not reached).
func chainHeaders(t *testing.T, outer, inner *hx, r *http.Request) (int, http.Header) {
	t.Helper()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	var got http.Header
	up := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusOK)
		return nil
	})
	err := outer.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return inner.h.ServeHTTP(w, r, up)
	}))
	status := w.Code
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		status = he.StatusCode
	}
	return status, got
}

// TestStackedAfterUpstreamToken: when an earlier identity handler put its
// upstream token into Authorization, a later one on the route checks the
// caller's token it accepted, never the proxy's own service token that now
// sits in the header: that token has the proxy's client as subject and
// whatever scopes the proxy holds, so checking it would let a caller
// through a stricter inner rule on the proxy's rights.
func TestStackedAfterUpstreamToken(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	strict := &Handler{Issuers: []IssuerConfig{{Issuer: iss.URL}}, AnyAudience: true, RequireScopes: []string{"admin"}}
	get := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/admin", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	reader := iss.Token(t, "alice", map[string]any{"scope": "read"})
	admin := iss.Token(t, "bob", map[string]any{"scope": "admin"})
	for _, forward := range []bool{false, true} {
		outerH := serviceTokenHandler(iss, "")
		outerH.UpstreamToken.Scopes = []string{"admin"}
		outerH.ForwardToken = forward
		outer := newHX(t, outerH)
		if st, up := chainHeaders(t, outer, newHX(t, strict), get(reader)); st != http.StatusForbidden || up != nil {
			t.Errorf("forward_token %v: caller without the inner handler's scope, after an upstream token with it: %d, reached %v; want 403", forward, st, up != nil)
		}
		st, up := chainHeaders(t, outer, newHX(t, strict), get(admin))
		if st != http.StatusOK || up == nil {
			t.Fatalf("forward_token %v: caller with the inner handler's scope: %d, want 200", forward, st)
		}
		if got := up.Get("X-User-Id"); got != "bob" {
			t.Errorf("forward_token %v: X-User-Id %q after the inner handler, want the caller bob", forward, got)
		}
		if c := issuedToken(t, iss, up.Get("Authorization")); c.Subject != identitytest.DefaultClientID {
			t.Errorf("forward_token %v: upstream token of %q, want the outer handler's service token", forward, c.Subject)
		}
	}
}

// TestStackedUpstreamTokenExchange: a later handler with upstream_token of
// its own obtains one for the caller's token an earlier handler accepted,
// and its token replaces the earlier one's (the later handler is the one
// nearer the upstream).
func TestStackedUpstreamTokenExchange(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("caller", "pw"))
	proxy := newTokenProxy(t, iss)
	outer := newHX(t, &Handler{Issuers: []IssuerConfig{{Issuer: iss.URL}}, AnyAudience: true})
	innerH := exchangeHandler(iss, proxy.srv.URL)
	innerH.UpstreamToken.Audience = []string{"admin-api"}
	caller := callerToken(t, iss)
	r := httptest.NewRequest(http.MethodGet, "http://example.com/admin", nil)
	r.Header.Set("Authorization", "Bearer "+caller)
	st, up := chainHeaders(t, outer, newHX(t, innerH), r)
	if st != http.StatusOK || up == nil {
		t.Fatalf("status %d, want 200", st)
	}
	c := issuedToken(t, iss, up.Get("Authorization"))
	if c.Subject != "caller" || !reflect.DeepEqual(c.Audience, []string{"admin-api"}) {
		t.Errorf("upstream token sub %q aud %v; want the caller exchanged for admin-api", c.Subject, c.Audience)
	}
	if form := proxy.lastForm(); form.Get("subject_token") != caller {
		t.Error("the exchange was not for the caller's token")
	}
}
