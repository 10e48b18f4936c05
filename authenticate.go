package caddyidentity

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity"
)

// authenticator is the stage that decides whether a token is valid: a JWT
// through the token cache (tokencache.go) and the identity.Validator, its
// claims completed from the userinfo endpoint when configured
// (userinfo.go), or an opaque token by introspection (introspect.go, with
// its own cache; introspect_jwt.go for client keys and signed answers,
// introspect_order.go for several introspecting issuers,
// introspect_breaker.go for endpoints in outage). Its result is a
// cache entry (placeholders.go) holding everything a cache hit needs:
// identity headers, placeholders, bindings and the policy's verdict. It owns the issuers' shared key sources
// (providers.go), released by its cleanup with the caches and clients.
type authenticator struct {
	logger *zap.Logger
	now    func() time.Time

	validator *identity.Validator
	cache     *tokenCache
	counters  resolvedCounters
	keys      providerSet

	// introspectors accept opaque tokens of the issuers configured with
	// introspection, in introspection_order (introspect_order.go); empty
	// when none is.
	introspectors []*introspector
	// userinfo completes the claims of the tokens of the issuers (by
	// their configured identifier) that have a userinfo block.
	userinfo map[string]*userInfoSource

	// What an entry is built from: the claim headers, the policy stage's
	// issuer policies, the certificate binding and whether DPoP bindings
	// are read at all, and the limits on how long an entry lives.
	claimHeaders []claimHeader
	policy       *policyStage
	certs        *certBinding
	dpopOn       bool
	dpopRequired bool
	leeway       time.Duration
	maxAge       time.Duration
	// store shares introspection and userinfo answers between instances
	// when its caches say so (store_cache.go); nil without a store.
	store *sharedStore
}

// claimHeader is a compiled ClaimHeader.
type claimHeader struct {
	path   string
	header string // canonical form
}

// compileClaimHeaders compiles the claim headers to set, the defaults
// when none are configured.
func compileClaimHeaders(claims []ClaimHeader) []claimHeader {
	if len(claims) == 0 {
		claims = defaultClaimHeaders
	}
	out := make([]claimHeader, 0, len(claims))
	for _, c := range claims {
		out = append(out, claimHeader{path: c.Claim, header: http.CanonicalHeaderKey(c.Header)})
	}
	return out
}

// authenticate returns the cache entry of the credential's token, or the
// rejection of a token that is not valid or does not fit the scheme it
// came with: a DPoP-bound token must come with the DPoP scheme (RFC 9449
// §7.1; a stacked token whose proof an earlier handler verified counts),
// a token with the DPoP scheme must be DPoP-bound.
func (a *authenticator) authenticate(ctx context.Context, c *credential) (*cacheEntry, *rejection) {
	e, rsn, err := a.verify(ctx, c.token)
	if rsn != reasonNone {
		return nil, &rejection{reason: rsn, dpop: c.dpop(), err: err, token: c.token}
	}
	switch {
	case c.dpop():
		if e.dpopJKT == "" {
			return nil, &rejection{reason: reasonDPoPUnbound, dpop: true, token: c.token}
		}
	case c.stacked != nil && c.stacked.dpopJKT != "":
	case e.dpopBound:
		return nil, &rejection{reason: reasonDPoPBoundAsBearer, token: c.token}
	case c.stacked != nil && a.dpopRequired:
		return nil, &rejection{reason: reasonDPoPRequired, token: c.token}
	}
	return e, nil
}

// verify authenticates a token by its form: an opaque token by
// introspection when an issuer has it, anything else as a JWT (which
// refuses an opaque token as malformed).
func (a *authenticator) verify(ctx context.Context, token string) (*cacheEntry, reason, error) {
	if len(a.introspectors) > 0 && !isCompactJWS(token) {
		return a.introspect(ctx, token)
	}
	return a.validate(ctx, token)
}

// validate returns the cache entry of a verified JWT, verifying it on a
// cache miss, or the rejection reason and the validator's error.
func (a *authenticator) validate(ctx context.Context, token string) (*cacheEntry, reason, error) {
	if a.cache == nil {
		return a.verifyJWT(ctx, token)
	}
	if e, ok := a.cache.get(token); ok {
		e.cacheHits.Inc()
		return e, reasonNone, nil
	}
	e, rsn, err := a.verifyJWT(ctx, token)
	a.counters.countMiss(e)
	return e, rsn, err
}

// verifyJWT verifies a JWT the cache does not hold and caches its entry.
func (a *authenticator) verifyJWT(ctx context.Context, token string) (*cacheEntry, reason, error) {
	t, err := a.validator.Validate(ctx, token)
	if err != nil {
		return nil, classify(err), err
	}
	own := t.Claims
	c, until, rsn, err := a.enrich(ctx, t.Issuer, own, token)
	if rsn != reasonNone && rsn != reasonUserInfoBound {
		return nil, rsn, err
	}
	t.Claims = c
	e, err := a.newEntry(t, token)
	if err != nil {
		return nil, classify(err), err
	}
	e.withholdUserInfo(rsn)
	if t.Claims != own || a.cache == nil {
		// The placeholders see the merged claims; without a cache, they
		// read the token's claims, decoding what they ask for lazily.
		e.decoded.Store(t.Claims)
	}
	if !until.IsZero() && until.Before(e.expires) {
		e.expires = until
	}
	if a.cache != nil && !e.expires.IsZero() {
		a.cache.put(token, e)
	}
	return e, reasonNone, nil
}

// cleanup releases the shared key sources and stops the caches and the
// clients of introspection and userinfo.
func (a *authenticator) cleanup() error {
	err := a.keys.release()
	if a.cache != nil {
		a.cache.close()
	}
	for _, in := range a.introspectors {
		in.close()
	}
	for _, u := range a.userinfo {
		u.close()
	}
	return err
}
