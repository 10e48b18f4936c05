package caddyidentity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-identity/caddy-identity/identity"
)

// UserInfoConfig completes the claims of an issuer's access tokens from
// its OpenID Connect userinfo endpoint, for providers whose access tokens
// carry little more than sub (see README, "My access token has only
// sub"). When a claim named by a claim_header or require_claim is absent
// from a verified token (a JWT's claims, or the introspection response of
// an opaque token), the endpoint is asked once with the caller's token;
// its claims are merged under the token's (the token's own claims win),
// its sub must equal the token's, and claim_header, require_claim and the
// {http.auth.user.*} placeholders see the merged claims. The result lives
// in the token's cache entry (the JWT cache, or the introspection cache):
// once per token, for no longer than the token nor CacheTTL (nor, for an
// opaque token, the introspection cache_ttl: with cache_ttl 0 both are
// asked on every request). A token without sub (a client's own token)
// names no user: it keeps its own claims.
//
// Claims that carry authorization or token metadata are never taken from
// userinfo: iss, sub, aud, exp, nbf, iat, jti, scope, scp, cnf, azp,
// client_id, act, may_act and tid.
//
// A sender-constrained token, bound to a DPoP key (cnf.jkt, RFC 9449) or
// to a client certificate (cnf.x5t#S256, RFC 8705), is never sent: the
// endpoint must be shown the binding (a DPoP proof signed for it, or the
// client's TLS key), which only the client holds, and the client's proof
// for this request must not be replayed elsewhere. Such a token keeps its
// own claims, OnError decides (under its own reason,
// userinfo_not_for_bound_tokens), and the skip is logged at most once a
// minute. With dpop require every token is bound, so OnError refuse is a
// configuration error.
type UserInfoConfig struct {
	// Endpoint is the userinfo endpoint URL. Default: the
	// userinfo_endpoint of the issuer's discovery document (then required
	// for an issuer with jwks_file). https unless loopback or the issuer's
	// insecure_allow_http.
	Endpoint string `json:"endpoint,omitempty"`
	// OnError is what happens when the endpoint cannot answer (down, an
	// error status, not JSON, larger than 64 KiB, another sub): "refuse"
	// (default) answers 503, and the outage is logged once; "continue"
	// goes on with the token's own claims (a claim rule that needed the
	// missing claims then fails with 403) and asks again after 30s.
	OnError string `json:"on_error,omitempty"`
	// CacheTTL bounds how long fetched claims are reused (never past the
	// token's exp): the delay before a change at the provider shows.
	// Default 5m.
	CacheTTL *caddy.Duration `json:"cache_ttl,omitempty"`
}

const (
	// DefaultUserInfoCacheTTL is the default UserInfoConfig.CacheTTL.
	DefaultUserInfoCacheTTL = 5 * time.Minute
	// userInfoRetry is how long a token's own claims are used, with
	// on_error continue, before the endpoint is asked again.
	userInfoRetry = 30 * time.Second
	// userInfoMaxBytes caps a userinfo response: claims of one user.
	userInfoMaxBytes = 64 << 10
	// userInfoTimeout bounds one request to the endpoint.
	userInfoTimeout = 5 * time.Second
	// userInfoBoundLogEvery spaces the lines that say sender-constrained
	// tokens were not sent to userinfo: a configuration matter, not an
	// event of each request.
	userInfoBoundLogEvery = time.Minute
)

// userInfoExcluded are the claims never taken from userinfo.
var userInfoExcluded = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "scp", "cnf", "azp", "client_id", "act", "may_act", "tid"}

// checkUserInfo checks an issuer's userinfo block under the handler's dpop
// option.
func checkUserInfo(is *IssuerConfig, dpop string) error {
	c := is.UserInfo
	if c == nil {
		return nil
	}
	switch c.OnError {
	case "", "refuse", "continue":
	default:
		return fmt.Errorf("on_error must be refuse or continue, not %q", c.OnError)
	}
	if c.OnError != "continue" && parseDPoPMode(dpop) == dpopRequire {
		return errors.New("with dpop require every token is DPoP-bound, and a bound token is never sent to userinfo " +
			"(only the client can sign the proof it needs), so on_error refuse would refuse every request that needs a userinfo claim: " +
			"have the provider put those claims in the access token and remove userinfo, or set on_error continue")
	}
	if c.CacheTTL != nil && *c.CacheTTL <= 0 {
		return errors.New("cache_ttl must be positive")
	}
	if c.Endpoint == "" && is.JWKSFile != "" {
		return errors.New("an issuer with jwks_file has no discovery document: set endpoint")
	}
	if c.Endpoint != "" && !strings.Contains(c.Endpoint, "{") {
		return checkEndpointURL(c.Endpoint, is.InsecureAllowHTTP)
	}
	return nil
}

// userInfoSource fetches the userinfo claims of one issuer's tokens.
type userInfoSource struct {
	endpoint  string // "" means discovery's, asked of provider
	provider  *identity.Provider
	allowHTTP bool
	client    *http.Client
	refuse    bool
	ttl       time.Duration
	// wanted are the claim paths whose absence from a token calls for
	// userinfo.
	wanted []string
	calls  singleflight.Group
	outage outageLog
	bound  boundSkipLog
}

// newUserInfoSource compiles the userinfo block of is.
func newUserInfoSource(repl *caddy.Replacer, is *IssuerConfig, ic identity.IssuerConfig, pol *issuerPolicy, a *authenticator) (*userInfoSource, error) {
	c := is.UserInfo
	u := &userInfoSource{
		endpoint:  repl.ReplaceKnown(c.Endpoint, ""),
		allowHTTP: is.InsecureAllowHTTP,
		client:    &http.Client{Timeout: userInfoTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()},
		refuse:    c.OnError != "continue",
		ttl:       DefaultUserInfoCacheTTL,
		outage: outageLog{
			logger:  a.logger.With(zap.String("issuer", pol.issuer)),
			downMsg: "userinfo endpoint unavailable: tokens needing its claims are refused",
			upMsg:   "userinfo endpoint available again",
		},
	}
	u.bound.logger = u.outage.logger
	u.bound.msg = "userinfo not asked for sender-constrained tokens (DPoP or certificate-bound: only the client can prove the binding): those that need its claims are refused"
	if !u.refuse {
		u.outage.downMsg = "userinfo endpoint unavailable: going on with the tokens' own claims"
		u.bound.msg = "userinfo not asked for sender-constrained tokens (DPoP or certificate-bound: only the client can prove the binding): going on with their own claims"
	}
	if a.dpopRequired && !u.refuse {
		// checkUserInfo refused on_error refuse here.
		u.outage.logger.Warn("userinfo is never asked with dpop require: every token is DPoP-bound")
	}
	if c.CacheTTL != nil {
		u.ttl = time.Duration(*c.CacheTTL)
	}
	if u.endpoint != "" {
		if err := checkEndpointURL(u.endpoint, u.allowHTTP); err != nil {
			return nil, err
		}
	} else if p, ok := ic.Keys.(*identity.Provider); ok {
		u.provider = p
	} else {
		return nil, errors.New("no discovery document to find the endpoint in: set endpoint")
	}
	for _, ch := range a.claimHeaders {
		u.wanted = append(u.wanted, ch.path)
	}
	for _, r := range pol.claims {
		u.wanted = append(u.wanted, r.path)
	}
	return u, nil
}

// close drops the idle connections to the endpoint.
func (u *userInfoSource) close() {
	u.client.CloseIdleConnections()
}

// enrich completes the claims c of a verified token of issuer (a JWT's,
// or an introspection response's) from the issuer's userinfo endpoint
// when one is configured and a wanted claim is missing. It returns the
// claims to admit (the merged ones, or c), the time until which the entry
// may be cached (zero: no limit), or the reason to refuse the request. A
// token without sub (a client's own token) names no user to ask about: it
// keeps its own claims, and a claim rule that needed more fails with 403.
// A sender-constrained token is never sent (see UserInfoConfig): it keeps
// its own claims too, and under on_error refuse the reason is
// reasonUserInfoBound, which the caller puts in the token's entry
// (withholdUserInfo) rather than refusing at once.
func (a *authenticator) enrich(ctx context.Context, issuer string, c *identity.Claims, token string) (*identity.Claims, time.Time, reason, error) {
	u := a.userinfo[issuer]
	if u == nil || c.Subject == "" || !u.needed(c) {
		return c, time.Time{}, reasonNone, nil
	}
	if binding := senderConstraint(c); binding != "" {
		u.bound.skip(a.now(), binding)
		if u.refuse {
			return c, time.Time{}, reasonUserInfoBound, nil
		}
		return c, time.Time{}, reasonNone, nil // bound for its whole life: no retry
	}
	merged, sharedUntil, err := a.userinfoShared(ctx, u, issuer, c, token)
	now := a.now()
	if err != nil {
		if ctx.Err() != nil {
			return nil, time.Time{}, reasonUserInfo, err // the client went away
		}
		u.outage.set(true, err)
		if u.refuse {
			return nil, time.Time{}, reasonUserInfo, err
		}
		return c, now.Add(userInfoRetry), reasonNone, nil
	}
	if !sharedUntil.IsZero() { // from another instance: its entry's life
		return merged, sharedUntil, reasonNone, nil
	}
	u.outage.set(false, nil)
	return merged, now.Add(u.ttl), reasonNone, nil
}

// needed reports whether a wanted claim is absent from c.
func (u *userInfoSource) needed(c *identity.Claims) bool {
	for _, p := range u.wanted {
		if _, ok := c.Get(p); !ok {
			return true
		}
	}
	return false
}

// fetchShared asks the endpoint once for all the requests that carry the
// token at once; each caller stops waiting when its own request ends.
func (u *userInfoSource) fetchShared(ctx context.Context, c *identity.Claims, token string) (*identity.Claims, error) {
	key := hashToken(token)
	ch := u.calls.DoChan(string(key[:]), func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), userInfoTimeout)
		defer cancel()
		return u.fetch(sctx, c, token)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*identity.Claims), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch asks the endpoint and merges its claims under the token's.
func (u *userInfoSource) fetch(ctx context.Context, c *identity.Claims, token string) (*identity.Claims, error) {
	endpoint := u.endpoint
	if endpoint == "" {
		doc, err := u.provider.Discovery(ctx)
		if err != nil {
			return nil, fmt.Errorf("identity: userinfo: %w", err)
		}
		if endpoint = doc.UserInfoEndpoint; endpoint == "" {
			return nil, errors.New("identity: userinfo: the discovery document has no userinfo_endpoint")
		}
	}
	req := identity.UserInfoRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: endpoint, AllowHTTP: u.allowHTTP, MaxResponseBytes: userInfoMaxBytes},
		Token:           token,
		ExpectedSubject: c.Subject,
	}
	if u.provider != nil {
		req.Keys = u.provider // verifies signed (application/jwt) answers
	}
	res, err := identity.RequestUserInfo(ctx, u.client, req)
	if err != nil {
		return nil, err
	}
	merged := res.Claims()
	for _, name := range userInfoExcluded {
		delete(merged, name)
	}
	for k, v := range c.Raw() {
		merged[k] = v
	}
	raw, err := json.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("identity: userinfo: %w", err)
	}
	out, err := identity.ParseClaims(raw)
	if err != nil {
		return nil, fmt.Errorf("identity: userinfo: %w", err)
	}
	return out, nil
}

// withholdUserInfo makes the entry of a sender-constrained token that
// needed userinfo claims under on_error refuse (enrich's rsn
// reasonUserInfoBound) a refusal of the policy stage: after the binding
// and the DPoP proof are checked, so that a token presented without its
// binding still gets the 401 that says so, and cached with the entry like
// a policy's verdict, for the token's life (it stays bound).
func (e *cacheEntry) withholdUserInfo(rsn reason) {
	if rsn == reasonUserInfoBound {
		e.denied, e.challenge = rsn, ""
	}
}

// senderConstraint names the binding of a token's claims that the handler
// cannot present for it to another server: "dpop" for cnf.jkt (RFC 9449
// §6), "certificate" for cnf.x5t#S256 (RFC 8705 §3.1), "" for neither. It
// reads the claims, not the handler's dpop and cert_binding modes: the
// token's issuer enforces the binding whatever this handler checks.
func senderConstraint(c *identity.Claims) string {
	v, _ := c.Get(identity.ClaimConfirmation)
	cnf, _ := v.(map[string]any)
	if _, ok := cnf["jkt"]; ok {
		return "dpop"
	}
	if _, ok := cnf[cnfCertThumbprint]; ok {
		return "certificate"
	}
	return ""
}

// boundSkipLog logs, at most once per userInfoBoundLogEvery for an issuer,
// that its sender-constrained tokens were not sent to userinfo, with the
// binding of the token that wrote the line and how many were skipped
// since the last line (verifications: each token once while its entry is
// cached): at WARN, since it is a mismatch of configuration and provider,
// not an outage and not the client's doing.
type boundSkipLog struct {
	logger  *zap.Logger
	msg     string
	next    atomic.Int64 // Unix nanoseconds from which the next line may be written
	skipped atomic.Int64
}

// skip records one skipped token at now.
func (l *boundSkipLog) skip(now time.Time, binding string) {
	l.skipped.Add(1)
	next := l.next.Load()
	if now.UnixNano() < next || !l.next.CompareAndSwap(next, now.Add(userInfoBoundLogEvery).UnixNano()) {
		return
	}
	l.logger.Warn(l.msg, zap.String("reason", reasons[reasonUserInfoBound].label),
		zap.String("binding", binding), zap.Int64("tokens", l.skipped.Swap(0)))
}
