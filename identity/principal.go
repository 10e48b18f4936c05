package identity

import "slices"

// ClaimsPrincipal is the authenticated subject of a validated token, with
// the claim types that give its name and roles configurable, like the
// ClaimsPrincipal of IdentityModel.
type ClaimsPrincipal struct {
	// Claims are the token's claims; nil means an anonymous principal.
	Claims *Claims
	// NameClaimType is the claim (a path as in [Claims.Get]) holding the
	// name; "" means [ClaimSubject].
	NameClaimType string
	// RoleClaimType is the claim holding the roles, e.g.
	// "realm_access.roles" for Keycloak; "" means [ClaimRoles].
	RoleClaimType string
}

// Name returns the value of the name claim as text (see [Claims.String]),
// "" when absent.
func (p ClaimsPrincipal) Name() string {
	t := p.NameClaimType
	if t == "" {
		t = ClaimSubject
	}
	s, _ := p.Claims.String(t)
	return s
}

// Roles returns the values of the role claim: one per array element, or
// one for a single value; strings as they are, other values as JSON.
func (p ClaimsPrincipal) Roles() []string {
	return p.Claims.Strings(p.roleClaimType())
}

// IsInRole reports whether role is one of [ClaimsPrincipal.Roles]
// (compared exactly).
func (p ClaimsPrincipal) IsInRole(role string) bool {
	return slices.Contains(p.Roles(), role)
}

// HasClaim reports whether the claim at path has value among its values
// (as returned by [Claims.Strings]).
func (p ClaimsPrincipal) HasClaim(path, value string) bool {
	return slices.Contains(p.Claims.Strings(path), value)
}

func (p ClaimsPrincipal) roleClaimType() string {
	if p.RoleClaimType == "" {
		return ClaimRoles
	}
	return p.RoleClaimType
}
