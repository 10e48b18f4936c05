package identity_test

import (
	"slices"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

func TestClaimsPrincipal(t *testing.T) {
	c := mustParseClaims(t, `{
		"sub": "user-1", "preferred_username": "alice", "employee": 1234,
		"roles": ["reader", "writer"],
		"role": "admin",
		"realm_access": {"roles": ["kc-admin", 7, {"scope": "x"}]},
		"groups": "/staff"
	}`)
	tests := []struct {
		name      string
		p         identity.ClaimsPrincipal
		wantName  string
		wantRoles []string
	}{
		{"defaults", identity.ClaimsPrincipal{Claims: c}, "user-1", []string{"reader", "writer"}},
		{"custom name", identity.ClaimsPrincipal{Claims: c, NameClaimType: identity.ClaimPreferredUsername}, "alice", []string{"reader", "writer"}},
		{"numeric name as JSON", identity.ClaimsPrincipal{Claims: c, NameClaimType: "employee"}, "1234", []string{"reader", "writer"}},
		{"single role string", identity.ClaimsPrincipal{Claims: c, RoleClaimType: identity.ClaimRole}, "user-1", []string{"admin"}},
		{"nested roles, non-strings as JSON", identity.ClaimsPrincipal{Claims: c, RoleClaimType: "realm_access.roles"}, "user-1", []string{"kc-admin", "7", `{"scope":"x"}`}},
		{"missing claims", identity.ClaimsPrincipal{Claims: c, NameClaimType: "nope", RoleClaimType: "nope"}, "", nil},
		{"anonymous", identity.ClaimsPrincipal{}, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Name(); got != tc.wantName {
				t.Errorf("Name() = %q, want %q", got, tc.wantName)
			}
			if got := tc.p.Roles(); !slices.Equal(got, tc.wantRoles) {
				t.Errorf("Roles() = %q, want %q", got, tc.wantRoles)
			}
			for _, r := range tc.wantRoles {
				if !tc.p.IsInRole(r) {
					t.Errorf("IsInRole(%q) false", r)
				}
			}
			if tc.p.IsInRole("Reader") || tc.p.IsInRole("") {
				t.Error("IsInRole matched a role the principal lacks")
			}
		})
	}
	p := identity.ClaimsPrincipal{Claims: c}
	if !p.HasClaim("groups", "/staff") || !p.HasClaim("realm_access.roles", "7") || p.HasClaim("groups", "/other") || p.HasClaim("nope", "") {
		t.Error("HasClaim")
	}
}
