package caddyidentity

import (
	"slices"

	"github.com/caddy-identity/caddy-identity/identity"
)

// decodedClaims returns the claims the cache entry of every accepted token
// reads (see claimsEntry), for [identity.ValidatorOptions].DecodeClaims:
// the claim headers, the require_claim rules of every issuer (which are
// also the claims userinfo may complete) and, when a binding is checked,
// cnf. The validator decodes these with the claims its own checks read; a
// placeholder naming any other claim decodes the rest of the payload the
// first time it is resolved.
func decodedClaims(headers []claimHeader, policies map[string]*issuerPolicy, bindings bool) []string {
	var names []string
	for _, ch := range headers {
		names = append(names, ch.path)
	}
	for _, pol := range policies {
		for _, r := range pol.claims {
			names = append(names, r.path)
		}
	}
	if bindings {
		names = append(names, identity.ClaimConfirmation)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
