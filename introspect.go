package caddyidentity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-identity/caddy-identity/identity"
)

// IntrospectionConfig lets an issuer accept opaque access tokens: tokens
// that are not JWTs, which the handler cannot verify itself, are sent to
// the issuer's RFC 7662 introspection endpoint, and the active ones are
// accepted under the same rules as JWTs (see README, "Opaque tokens").
type IntrospectionConfig struct {
	// Endpoint is the introspection endpoint URL. Default: the
	// introspection_endpoint of the issuer's discovery document (then
	// required for an issuer with jwks_file, which has none), used only
	// when it is on the issuer's scheme and host or under one of its
	// jwks_uri_bases, like jwks_uri: the client secret and the tokens go
	// there. https unless loopback or the issuer's insecure_allow_http.
	Endpoint string `json:"endpoint,omitempty"`
	// ClientID authenticates the handler to the endpoint (required: RFC
	// 7662 §2.1 wants the caller authorized, and servers answer anonymous
	// callers with an error or with active=false for every token).
	ClientID string `json:"client_id"`
	// ClientSecret is the client's secret; placeholders such as
	// {env.INTROSPECTION_SECRET} are resolved when the config is loaded,
	// so that the secret need not be written in the config. Exclusive
	// with KeyFile.
	ClientSecret string `json:"client_secret,omitempty"`
	// KeyFile is a private key (PEM: PKCS #8, PKCS #1 or SEC 1; or a
	// private JWK) that authenticates the client with private_key_jwt
	// (RFC 7523): no shared secret, a short-lived assertion signed for
	// each request, its aud set by AssertionAudience. Exclusive with
	// ClientSecret.
	KeyFile string `json:"key_file,omitempty"`
	// AssertionAudience is the aud of the assertions signed with KeyFile:
	// "endpoint" (default: the introspection endpoint's URL, as Okta
	// wants), "issuer" (the issuer identifier, as Auth0 and
	// draft-ietf-oauth-rfc7523bis want; see SECURITY.md, "Client
	// assertions"), "token_endpoint" (the token endpoint of the issuer's
	// discovery document, OpenID Connect Core §9) or an absolute https URL
	// (http only on loopback or with insecure_allow_http). Keycloak and
	// oidc-provider accept any of the first three.
	AssertionAudience string `json:"assertion_audience,omitempty"`
	// AuthMethod is client_secret_basic (default) or client_secret_post
	// with ClientSecret; private_key_jwt, the only one with KeyFile, may
	// be given or left out.
	AuthMethod string `json:"auth_method,omitempty"`
	// Accept is "json" (default: RFC 7662 answers, signed ones verified
	// when the server sends them) or "jwt": only RFC 9701 signed answers
	// (Accept: application/token-introspection+jwt), verified with the
	// issuer's keys under its algorithm allow-list, typ
	// token-introspection+jwt, iss the issuer, aud client_id, iat present
	// and at most 5 minutes old. Any other answer, plain JSON included,
	// makes opaque tokens fail with 503: the handler does not fall back to
	// what it did not ask for.
	Accept string `json:"accept,omitempty"`
	// CacheTTL is how long an active result may be reused without asking
	// again (never past the token's exp): the delay before a token
	// revoked at the server is refused here. Default 1m; 0 asks on every
	// request.
	CacheTTL *caddy.Duration `json:"cache_ttl,omitempty"`
}

const (
	// DefaultIntrospectionCacheTTL is the default IntrospectionConfig.CacheTTL.
	DefaultIntrospectionCacheTTL = time.Minute
	// introspectionTimeout bounds one exchange with the endpoint: a request
	// waits no longer for an answer than a client would for a slow page.
	introspectionTimeout = 5 * time.Second
	// introspectionCacheEntries bounds the cache of active results. An
	// entry holds the decoded response (a few hundred bytes to a few KiB),
	// so this is a few MiB at most.
	introspectionCacheEntries = 10000
	// inactiveCacheTTL is how long an inactive answer is reused (never
	// longer than the cache TTL): a client retrying a revoked or made-up
	// token costs the endpoint one call per period instead of one per
	// request, while a token the server activates late (a replica that
	// had not seen it yet) is refused for that long at most.
	inactiveCacheTTL = 10 * time.Second
)

// accessTokenTypes are the token_type values of an access token
// (compared case-insensitively): RFC 6750 Bearer, RFC 9449 DPoP, and
// "access_token", which some servers (ORY Hydra) send as a hint-like
// value. A refresh token is never a credential for a resource.
var accessTokenTypes = []string{"Bearer", identity.TokenTypeDPoP, "access_token"}

// tokenKindHints are the non-standard members by which servers that omit
// token_type (or send it for every kind) name the kind of token, with the
// values (compared case-insensitively) that mean an access token: AWS
// Cognito and ORY Hydra send token_use, Keycloak typ ("Refresh", "ID" and
// "Offline" for the others). A hint of another value, or not a string, is
// refused like a token_type that names no access token.
var tokenKindHints = map[string][]string{
	"token_use": {"access", "access_token"},
	"typ":       append([]string{identity.JWTTypeAccessToken}, accessTokenTypes...),
}

// checkIntrospection checks an issuer's introspection block.
func checkIntrospection(is *IssuerConfig) error {
	c := is.Introspection
	if c == nil {
		return nil
	}
	if strings.Contains(is.Issuer, identity.TenantPlaceholder) {
		return errors.New("not allowed with an issuer template: the tenant of an opaque token is unknown")
	}
	if c.ClientID == "" {
		return errors.New("client_id is required")
	}
	if err := checkIntrospectionClient(c); err != nil {
		return err
	}
	if err := checkAssertionAudience(c.AssertionAudience, c.KeyFile, is.InsecureAllowHTTP); err != nil {
		return err
	}
	if c.CacheTTL != nil && *c.CacheTTL < 0 {
		return errors.New("cache_ttl must not be negative")
	}
	if c.Endpoint == "" && is.JWKSFile != "" {
		return errors.New("an issuer with jwks_file has no discovery document: set endpoint")
	}
	if c.Endpoint != "" && !strings.Contains(c.Endpoint, "{") { // a placeholder is checked once replaced
		return checkEndpointURL(c.Endpoint, is.InsecureAllowHTTP)
	}
	return nil
}

// checkEndpointURL requires an absolute https URL, or http on a loopback
// host or with insecure_allow_http: the rule for every URL the handler
// calls, since the token and the client secret travel to it.
func checkEndpointURL(raw string, allowHTTP bool) error {
	if !httpsURL(raw, allowHTTP) {
		return fmt.Errorf("endpoint %q must be an absolute https URL (http only on loopback or with insecure_allow_http)", raw)
	}
	return nil
}

// httpsURL reports whether raw is an absolute https URL without fragment,
// or an http one on a loopback host or with allowHTTP.
func httpsURL(raw string, allowHTTP bool) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	httpOK := allowHTTP || isLoopback(u.Hostname())
	return u.Host != "" && (u.Scheme == "https" || (u.Scheme == "http" && httpOK)) && u.Fragment == ""
}

// introspector accepts the opaque tokens of one issuer.
type introspector struct {
	issuer string
	// issuers are the accepted iss values: the issuer and its aliases.
	issuers []string
	// endpoint is the configured endpoint; "" means discovery's, asked of
	// provider, as is the token endpoint, the aud of the client
	// assertions, with tokenEndpointAudience.
	endpoint              string
	provider              *identity.Provider
	tokenEndpointAudience bool
	allowHTTP             bool
	// endpointBases are the issuer's jwks_uri_bases, where a discovered
	// endpoint may live besides the issuer's origin; checked holds the
	// last document checked and its endpoint.
	endpointBases []string
	checked       atomic.Pointer[checkedEndpoint]
	auth          identity.ClientAuth
	client        *http.Client
	transport     *http.Transport
	// keys and algorithms verify RFC 9701 signed answers; requireJWT,
	// with accept jwt, takes no other (see signedAnswers).
	requireJWT bool
	keys       identity.KeySource
	algorithms []string

	// audiences, unless anyAudience, must meet the response's aud.
	audiences   []string
	anyAudience bool
	// parties, when set, must contain the member partyClaim.
	parties    []string
	partyClaim string

	ttl   time.Duration
	cache *introspectionCache
	// inactive remembers the tokens answered inactive, by hash, until the
	// time stored (see inactiveCacheTTL); nil when ttl is 0.
	inactive *otter.Cache[tokenKey, time.Time]

	// calls coalesces the introspections of one token that arrive while
	// one is under way, and slots bounds the introspections under way (see
	// askShared).
	calls singleflight.Group
	slots chan struct{}

	logger *zap.Logger
	// down is set while the endpoint fails, so that an outage is logged
	// once when it starts and once when it ends, not on every request,
	// and so that requests meanwhile do not each wait for it: probing is
	// held by the one request that asks it, probeAfter (Unix nanoseconds
	// of now) is when the next may (introspect_breaker.go).
	down       atomic.Bool
	probing    atomic.Bool
	probeAfter atomic.Int64
	now        func() time.Time

	closeOnce sync.Once
}

// newIntrospector compiles the introspection block of is, whose validator
// configuration (placeholders resolved, handler defaults applied) is ic.
func newIntrospector(repl *caddy.Replacer, is *IssuerConfig, ic identity.IssuerConfig, pol *issuerPolicy, a *authenticator) (*introspector, error) {
	c := is.Introspection
	in := &introspector{
		issuer:        pol.issuer,
		issuers:       append([]string{pol.issuer}, ic.Aliases...),
		endpoint:      repl.ReplaceKnown(c.Endpoint, ""),
		allowHTTP:     is.InsecureAllowHTTP,
		endpointBases: replaceAll(repl, is.JWKSURIBases),
		audiences:     ic.Audiences,
		anyAudience:   ic.AnyAudience,
		parties:       ic.AuthorizedParties,
		partyClaim:    ic.AuthorizedPartyClaim,
		ttl:           DefaultIntrospectionCacheTTL,
		logger:        a.logger.With(zap.String("issuer", pol.issuer)),
		now:           a.now,
		slots:         make(chan struct{}, maxIntrospections),
	}
	in.tokenEndpointAudience = c.KeyFile != "" && c.AssertionAudience == assertionAudienceTokenEndpoint
	if in.endpoint != "" {
		if err := checkEndpointURL(in.endpoint, in.allowHTTP); err != nil {
			return nil, err
		}
	}
	if in.endpoint == "" || in.tokenEndpointAudience {
		p, ok := ic.Keys.(*identity.Provider)
		switch {
		case !ok && in.endpoint == "":
			return nil, errors.New("no discovery document to find the endpoint in: set endpoint")
		case !ok:
			return nil, errors.New("assertion_audience token_endpoint: no discovery document to find the token endpoint in: give its URL")
		}
		in.provider = p
	}
	if in.partyClaim == "" {
		// RFC 7662 §2.2 names the client in client_id; azp, the JWT
		// default, is rarely in a response.
		in.partyClaim = "client_id"
	}
	var err error
	if in.auth, err = introspectionClientAuth(repl, c); err != nil {
		return nil, err
	}
	if in.auth.Audience, err = assertionAudience(repl, c.AssertionAudience, in.issuer, in.allowHTTP); err != nil {
		return nil, err
	}
	in.signedAnswers(c, ic)
	if c.CacheTTL != nil {
		in.ttl = time.Duration(*c.CacheTTL)
	}
	// A transport of its own, so that Cleanup can close its idle
	// connections instead of leaving them to the shared default one.
	in.transport = http.DefaultTransport.(*http.Transport).Clone()
	in.client = &http.Client{Timeout: introspectionTimeout, Transport: in.transport}
	if in.ttl > 0 {
		if in.cache, err = newIntrospectionCache(introspectionCacheEntries); err != nil {
			return nil, err
		}
		if in.inactive, err = otter.New(&otter.Options[tokenKey, time.Time]{
			MaximumSize: introspectionCacheEntries,
			Clock:       frozenClock{}, // expiry is checked by introspect
			Executor:    func(fn func()) { fn() },
		}); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// close drops the cache and the idle connections to the endpoint. It may
// be called more than once (Caddy may clean a handler up twice).
func (in *introspector) close() {
	in.closeOnce.Do(func() {
		if in.cache != nil {
			in.cache.close()
			in.inactive.InvalidateAll()
			in.inactive.StopAllGoroutines()
		}
		in.transport.CloseIdleConnections()
	})
}

// isCompactJWS reports whether token has the form of a JWS in compact
// serialization: exactly three non-empty dot-separated parts, the first
// the base64url encoding of a JSON object. Anything else is an opaque
// token. A JWT, valid or not, is never introspected: its signature
// decides.
func isCompactJWS(token string) bool {
	header, rest, ok := strings.Cut(token, ".")
	if !ok || header == "" {
		return false
	}
	payload, signature, ok := strings.Cut(rest, ".")
	if !ok || payload == "" || signature == "" || strings.IndexByte(signature, '.') >= 0 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return false
	}
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}

// cached returns the live entry of the active token whose hash is key.
func (in *introspector) cached(key tokenKey, now time.Time) (*cacheEntry, bool) {
	if in.cache == nil {
		return nil, false
	}
	return in.cache.get(key, now)
}

// knownInactive reports whether the endpoint answered inactive for the
// token whose hash is key less than inactiveCacheTTL ago.
func (in *introspector) knownInactive(key tokenKey, now time.Time) bool {
	if in.inactive == nil {
		return false
	}
	until, ok := in.inactive.GetIfPresent(key)
	if ok && !now.Before(until) {
		in.inactive.Invalidate(key)
		return false
	}
	return ok
}

// introspectAt asks in's endpoint about token (whose hash is key) and
// returns the entry of an active token, or the rejection reason: an
// endpoint that cannot answer makes it provider_unavailable (503), since
// the client did nothing wrong.
func (a *authenticator) introspectAt(ctx context.Context, in *introspector, key tokenKey, token string) (*cacheEntry, reason, error) {
	res, fromStore, err := a.introspectShared(ctx, in, key, token)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, errIntrospectionOutage) { // a failed exchange, not a client that went away
			in.setDown(true, err)
		}
		return nil, reasonProviderUnavailable, err
	}
	if !fromStore { // the endpoint answered
		in.setDown(false, nil)
	}
	now := a.now()
	e, rsn, err := a.admitIntrospection(ctx, in, res, token, now)
	if rsn == reasonInactive && in.inactive != nil {
		in.inactive.Set(key, now.Add(min(inactiveCacheTTL, in.ttl)))
	}
	if rsn != reasonNone {
		return nil, rsn, err
	}
	if in.cache != nil {
		if limit := now.Add(in.ttl); limit.Before(e.expires) {
			e.expires = limit
		}
		in.cache.put(key, e)
	}
	return e, reasonNone, nil
}

// maxIntrospections bounds the introspection requests under way at once
// for a handler: every opaque token the cache does not know costs a request
// to the provider, so a client sending many made-up tokens must not turn
// Caddy into a flood of requests against it.
const maxIntrospections = 64

// askShared asks the endpoint about token (whose hash is key) once for all
// the requests that carry it while an answer is awaited, in at most
// maxIntrospections requests at once; a request over the bound waits for a
// slot, up to the client's timeout. The shared call does not end when the
// request that started it does (another may be waiting for it), but each
// caller stops waiting when its own request ends. While the endpoint is
// in outage, only the probe asks it (see admit).
func (in *introspector) askShared(ctx context.Context, key tokenKey, token string) (*identity.IntrospectionResponse, error) {
	probe, err := in.admit()
	if err != nil {
		return nil, err
	}
	if probe {
		defer in.probed()
	}
	ch := in.calls.DoChan(string(key[:]), func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), introspectionTimeout)
		defer cancel()
		select {
		case in.slots <- struct{}{}:
			defer func() { <-in.slots }()
		case <-sctx.Done():
			return nil, errors.New("identity: introspection: too many introspections under way")
		}
		return in.ask(sctx, token)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*identity.IntrospectionResponse), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ask sends the token to the endpoint.
func (in *introspector) ask(ctx context.Context, token string) (*identity.IntrospectionResponse, error) {
	endpoint, aud := in.endpoint, in.auth.Audience
	if in.provider != nil {
		doc, err := in.provider.Discovery(ctx)
		if err != nil {
			return nil, fmt.Errorf("identity: introspection: %w", err)
		}
		c := in.discovered(doc)
		if c.err != nil {
			return nil, c.err
		}
		if endpoint == "" {
			endpoint = c.endpoint
		}
		if in.tokenEndpointAudience {
			aud = c.tokenEndpoint
		}
	}
	res, err := identity.IntrospectToken(ctx, in.client, in.request(endpoint, aud, token))
	if err != nil {
		return nil, fmt.Errorf("identity: introspection: %w", err)
	}
	return res, nil
}

// checkedEndpoint is a discovery document and what the introspector takes
// from it, or why it cannot.
type checkedEndpoint struct {
	doc           *identity.DiscoveryDocument
	endpoint      string
	tokenEndpoint string
	err           error
}

// discovered returns the introspection_endpoint of the issuer's discovery
// document (when no endpoint is configured) and its token_endpoint (with
// tokenEndpointAudience) once they passed the policy jwks_uri passes: an
// https URL (http only on loopback or with insecure_allow_http) on the
// issuer's origin or under one of its jwks_uri_bases. The client
// credentials and every opaque token go to the first, so a document that
// names another host is not followed (an endpoint elsewhere is set with
// endpoint); the second names who may use the client assertions, so one
// elsewhere would hand them to another server (SECURITY.md, "Client
// assertions"). The verdict is kept for the document it was reached on.
func (in *introspector) discovered(doc *identity.DiscoveryDocument) *checkedEndpoint {
	if c := in.checked.Load(); c != nil && c.doc == doc {
		return c
	}
	c := &checkedEndpoint{doc: doc}
	var checked []string
	if in.endpoint == "" {
		c.endpoint = doc.IntrospectionEndpoint
		checked = append(checked, identity.DiscoveryIntrospectionEndpoint)
	}
	if in.tokenEndpointAudience {
		c.tokenEndpoint = doc.TokenEndpoint
		checked = append(checked, identity.DiscoveryTokenEndpoint)
	}
	// token_endpoint is a required member: the provider has no document
	// without it.
	if in.endpoint == "" && c.endpoint == "" {
		c.err = errors.New("identity: introspection: the discovery document has no introspection_endpoint")
	} else if err := doc.Validate(in.issuer, identity.DiscoveryPolicy{
		AllowHTTP:               in.allowHTTP,
		CheckedEndpoints:        checked,
		AdditionalEndpointBases: in.endpointBases,
	}); err != nil {
		c.err = fmt.Errorf("identity: introspection: discovered endpoint refused: %w", err)
	}
	in.checked.Store(c)
	return c
}

// setDown records whether the endpoint fails, logging the changes: an
// outage at ERROR (every opaque token is refused meanwhile), the recovery
// at INFO, as for the issuers' keys. A failure puts the next probe an
// interval away (holdProbes) before the flag is raised, so that no request
// sees the outage without it.
func (in *introspector) setDown(down bool, err error) {
	if down {
		in.holdProbes()
	}
	if in.down.CompareAndSwap(!down, down) {
		switch {
		case down && unusableAnswer(err):
			in.logger.Error("introspection answer unusable (provider answer refused): opaque tokens cannot be checked", zap.Error(err))
		case down:
			in.logger.Error("introspection endpoint unavailable: opaque tokens cannot be checked", zap.Error(err))
		default:
			in.logger.Info("introspection endpoint available again")
		}
	}
}

// admitIntrospection checks an introspection response as strictly as the
// validator checks a JWT's claims and returns the entry of the token, or
// why it is refused. The token must be active and unexpired (exp is
// required: without it the handler could not bound how long it trusts the
// answer), valid already, of this issuer and audience, an access token,
// issued to an authorized party and, with max_age, young enough. The
// policy's verdict (scopes, claim rules) is in the entry, as for JWTs,
// on the claims completed from userinfo when the issuer has it.
func (a *authenticator) admitIntrospection(ctx context.Context, in *introspector, res *identity.IntrospectionResponse, token string, now time.Time) (*cacheEntry, reason, error) {
	if !res.Active {
		return nil, reasonInactive, nil
	}
	c, err := identity.ParseClaims(res.Raw)
	if err != nil {
		return nil, reasonClaims, err
	}
	switch {
	case res.Expiry.IsZero():
		return nil, reasonClaims, &identity.ClaimError{Claim: identity.ClaimExpiration, Reason: "missing"}
	case !now.Before(res.Expiry.Add(a.leeway)):
		return nil, reasonExpired, &identity.ClaimError{Claim: identity.ClaimExpiration, Reason: "token expired"}
	case !res.NotBefore.IsZero() && now.Add(a.leeway).Before(res.NotBefore):
		return nil, reasonNotYetValid, &identity.ClaimError{Claim: identity.ClaimNotBefore, Reason: "token not valid yet"}
	case !res.IssuedAt.IsZero() && now.Add(a.leeway).Before(res.IssuedAt):
		// As for a JWT: a token from the future is a server whose clock
		// or data is wrong, and its lifetime cannot be trusted.
		return nil, reasonIssuedAt, &identity.ClaimError{Claim: identity.ClaimIssuedAt, Reason: "issued in the future"}
	case res.Issuer != "" && !slices.Contains(in.issuers, res.Issuer):
		return nil, reasonIssuer, &identity.ClaimError{Claim: identity.ClaimIssuer, Reason: "issuer not accepted"}
	case !in.anyAudience && !slices.ContainsFunc(res.Audience, func(a string) bool { return slices.Contains(in.audiences, a) }):
		return nil, reasonAudience, &identity.ClaimError{Claim: identity.ClaimAudience, Reason: "audience not accepted"}
	case res.TokenType != "" && !slices.ContainsFunc(accessTokenTypes, func(t string) bool { return strings.EqualFold(t, res.TokenType) }):
		return nil, reasonType, &identity.ClaimError{Claim: "token_type", Reason: "not an access token"}
	}
	for member, accepted := range tokenKindHints {
		if v, ok := c.Get(member); ok {
			if s, _ := v.(string); !slices.ContainsFunc(accepted, func(a string) bool { return strings.EqualFold(a, s) }) {
				return nil, reasonType, &identity.ClaimError{Claim: member, Reason: "not an access token"}
			}
		}
	}
	if len(in.parties) > 0 {
		if azp, _ := c.Get(in.partyClaim); !isOneOf(azp, in.parties) {
			return nil, reasonClaims, &identity.ClaimError{Claim: in.partyClaim, Reason: "authorized party not accepted"}
		}
	}
	expires := res.Expiry.Add(a.leeway)
	if a.maxAge > 0 {
		if res.IssuedAt.IsZero() {
			return nil, reasonClaims, &identity.ClaimError{Claim: identity.ClaimIssuedAt, Reason: "missing"}
		}
		if now.Sub(res.IssuedAt) > a.maxAge+a.leeway {
			return nil, reasonIssuedAt, &identity.ClaimError{Claim: identity.ClaimIssuedAt, Reason: "token too old"}
		}
		if limit := res.IssuedAt.Add(a.maxAge); limit.Before(expires) {
			expires = limit
		}
	}
	c, until, rsn, err := a.enrich(ctx, in.issuer, c, token)
	if rsn != reasonNone && rsn != reasonUserInfoBound {
		return nil, rsn, err
	}
	if !until.IsZero() && until.Before(expires) {
		expires = until
	}
	e, err := a.claimsEntry(in.issuer, c)
	if err != nil {
		return nil, classify(err), err
	}
	e.withholdUserInfo(rsn)
	e.expires = expires
	// No signing input to decode the claims from again: the entry keeps
	// them for the placeholders.
	e.decoded.Store(c)
	return e, reasonNone, nil
}

// introspectionCache holds the entries of active opaque tokens, found by
// the SHA-256 of the whole token: the cache never holds a token, and a
// hit needs the very token that was introspected. An entry dies at the
// earlier of the token's exp plus the leeway and its admission plus the
// cache TTL; get refuses dead entries, and the bound (otter's
// frequency-aware eviction) limits the memory of those not asked again.
type introspectionCache struct {
	c *otter.Cache[tokenKey, *cacheEntry]
}

// newIntrospectionCache returns a cache of at most size entries.
func newIntrospectionCache(size int) (*introspectionCache, error) {
	c, err := otter.New(&otter.Options[tokenKey, *cacheEntry]{
		MaximumSize: size,
		// Expiry is checked by get; otter needs no clock of its own, and
		// runs its maintenance inline, so the cache starts no goroutine.
		Clock:    frozenClock{},
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, err
	}
	return &introspectionCache{c: c}, nil
}

// get returns the live entry of the token whose hash is key.
func (ic *introspectionCache) get(key tokenKey, now time.Time) (*cacheEntry, bool) {
	e, ok := ic.c.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		ic.c.Invalidate(key)
		return nil, false
	}
	return e, true
}

// put admits the entry of an active token.
func (ic *introspectionCache) put(key tokenKey, e *cacheEntry) {
	ic.c.Set(key, e)
}

// close drops every entry.
func (ic *introspectionCache) close() {
	ic.c.InvalidateAll()
	ic.c.StopAllGoroutines()
}

// isOneOf reports whether v is a string among values: a client ID of
// another JSON type names no client.
func isOneOf(v any, values []string) bool {
	s, ok := v.(string)
	return ok && slices.Contains(values, s)
}
