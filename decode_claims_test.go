package caddyidentity

import (
	"slices"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestClaimsWithoutCache checks that with cache_size 0 the identity headers,
// require_claim and the placeholders read the token's claims whether the
// validator decoded them up front (claim headers, rules) or they are
// decoded when a placeholder first asks (any other claim).
func TestClaimsWithoutCache(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	zero := 0
	h.CacheSize = &zero
	h.ClaimHeaders = []ClaimHeader{{Claim: "sub", Header: "X-User-Id"}, {Claim: "email", Header: "X-User-Email"}}
	h.RequireClaims = []ClaimRule{{Claim: "realm_access.roles", Values: []string{"admin"}}}
	x := newHX(t, h)
	tok := iss.Token(t, "alice", map[string]any{
		"email":                      "alice@example.com",
		"realm_access":               map[string]any{"roles": []any{"admin", "dev"}},
		"https://example.com/tenant": "t1",
		"groups":                     []any{"g1", "g2"},
		"nested":                     map[string]any{"deep": map[string]any{"value": 42}},
	})
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 200)
	for name, want := range map[string]string{"X-User-Id": "alice", "X-User-Email": "alice@example.com"} {
		if got := res.up.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for ph, want := range map[string]string{
		"{http.auth.user.id}":                         "alice",
		"{http.auth.user.email}":                      "alice@example.com",
		"{http.auth.user.realm_access.roles}":         "admin, dev",
		"{http.auth.user.https://example.com/tenant}": "t1",
		"{http.auth.user.groups}":                     "g1, g2",
		"{http.auth.user.nested.deep.value}":          "42",
		"{http.auth.user.nope}":                       "",
	} {
		if got := res.repl.ReplaceAll(ph, ""); got != want {
			t.Errorf("%s = %q, want %q", ph, got, want)
		}
	}
	denied := iss.Token(t, "bob", map[string]any{"realm_access": map[string]any{"roles": []any{"dev"}}})
	wantStatus(t, x.get("/", bearer(denied)), 403)
}

// TestDecodedClaims checks the claims the handler asks the validator to
// decode up front: the claim headers, every issuer's claim rules and, with
// a binding checked, cnf; each once.
func TestDecodedClaims(t *testing.T) {
	headers := []claimHeader{{path: "sub"}, {path: "email"}}
	policies := map[string]*issuerPolicy{
		"a": {claims: []claimRule{{path: "realm_access.roles"}, {path: "email"}}},
		"b": {claims: []claimRule{{path: "tid"}}},
	}
	for _, tc := range []struct {
		bindings bool
		want     []string
	}{
		{false, []string{"email", "realm_access.roles", "sub", "tid"}},
		{true, []string{"cnf", "email", "realm_access.roles", "sub", "tid"}},
	} {
		if got := decodedClaims(headers, policies, tc.bindings); !slices.Equal(got, tc.want) {
			t.Errorf("bindings %v: %q, want %q", tc.bindings, got, tc.want)
		}
	}
}
