package caddyidentity

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-identity/caddy-identity/identity"
)

// policyStage applies the issuers' authorization policies (require_scope,
// require_claim) to an authenticated token. A policy is evaluated when
// the token's entry is built (authenticator.claimsEntry) and its verdict
// cached with it (e.denied); the stage turns a refusal into a 403 (or the
// 503 of a sender-constrained token that userinfo was to complete, see
// cacheEntry.withholdUserInfo).
type policyStage struct {
	// byIssuer are the policies by issuer identifier.
	byIssuer map[string]*issuerPolicy
}

// check returns the rejection of a token its issuer's policy refused,
// with the policy's challenge in the scheme the client used.
func (ps *policyStage) check(c *credential, e *cacheEntry) *rejection {
	if e.denied == reasonNone {
		return nil
	}
	return denial(e, c.token, c.dpop())
}

// issuerPolicy is the compiled authorization policy for tokens of one
// issuer: the handler-level rules plus the issuer's own.
type issuerPolicy struct {
	issuer string
	scopes []string
	claims []claimRule
	// keys is the issuer's key source, for the token cache's check that
	// the key of a cached token is still published.
	keys identity.KeySource

	// scopeChallenge and claimChallenge are the WWW-Authenticate values of
	// a 403 for a missing scope and for a failed claim rule.
	scopeChallenge string
	claimChallenge string
}

// claimRule is a compiled ClaimRule.
type claimRule struct {
	path   string
	values []string
}

// compileChallenge precomputes the 403 challenges (RFC 6750 §3.1: the scope
// attribute lists the scopes the resource requires).
func (p *issuerPolicy) compileChallenge(realm string) {
	base := `Bearer realm="` + realm + `", error="insufficient_scope", error_description="`
	p.scopeChallenge = base + reasons[reasonInsufficientScope].description + `"`
	if len(p.scopes) > 0 {
		p.scopeChallenge += `, scope="` + strings.Join(p.scopes, " ") + `"`
	}
	p.claimChallenge = base + reasons[reasonClaimMismatch].description + `"`
}

// authorize evaluates the policy on verified claims. It returns reasonNone,
// or the 403 reason and its challenge.
func (p *issuerPolicy) authorize(c *identity.Claims) (reason, string) {
	for _, s := range p.scopes {
		if !c.HasScope(s) {
			return reasonInsufficientScope, p.scopeChallenge
		}
	}
	for i := range p.claims {
		if !p.claims[i].match(c) {
			return reasonClaimMismatch, p.claimChallenge
		}
	}
	return reasonNone, ""
}

// match reports whether the claim is present and, when values are given,
// equal to one of them (any element, for an array claim).
func (r *claimRule) match(c *identity.Claims) bool {
	v, ok := c.Get(r.path)
	if !ok || v == nil {
		return false
	}
	if len(r.values) == 0 {
		return true
	}
	if arr, isArr := v.([]any); isArr {
		for _, el := range arr {
			if s, ok := scalarString(el); ok && slices.Contains(r.values, s) {
				return true
			}
		}
		return false
	}
	s, ok := scalarString(v)
	return ok && slices.Contains(r.values, s)
}

// scalarString formats a JSON scalar claim value as text: strings as they
// are, numbers and booleans in their JSON form. Objects, arrays and null
// are not scalars.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}
