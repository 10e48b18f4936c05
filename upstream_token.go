package caddyidentity

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-jose/go-jose/v4"
	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Grants of UpstreamToken.Grant.
const (
	upstreamGrantClientCredentials = "client_credentials"
	upstreamGrantExchange          = "exchange"
)

// UpstreamToken gives the upstream a bearer token of its own audience,
// obtained by the handler from the issuer's token endpoint, in place of
// (or beside) the caller's token. See README, "Service-to-service behind
// Caddy".
//
// With grant "client_credentials" the token is the handler's own service
// identity (RFC 6749 §4.4): one token for every request, kept by an
// identity.TokenManager shared by every handler (in every loaded config)
// with the same token endpoint, client and request, replaced a minute
// before it expires, one request at a time, and never handed out expired.
//
// With grant "exchange" the verified caller's token is exchanged for one
// meant for the upstream (RFC 8693 token exchange), so the upstream sees
// the caller's identity with its own audience. The result is cached per
// caller token (by its SHA-256) for this handler's target only, never past
// the expiry of the caller's token nor of the exchanged one.
//
// When no token can be had (token endpoint down, refusing the handler's
// client, answering nonsense) the request is refused with 503 and the
// upstream never reached; the outage is logged once when it starts and
// once when it ends. An exchange the issuer refuses for the caller's token
// (invalid_grant, invalid_target, invalid_scope, access_denied) is a 403
// insufficient_scope.
type UpstreamToken struct {
	// Grant is "client_credentials" or "exchange".
	Grant string `json:"grant"`
	// Issuer names the configured issuer whose token endpoint (from its
	// discovery document) issues the token. Default: the only issuer;
	// required with several unless TokenEndpoint is set.
	Issuer string `json:"issuer,omitempty"`
	// TokenEndpoint is the token endpoint URL, instead of discovery's
	// (required for an issuer with jwks_file). https unless loopback or
	// the issuer's insecure_allow_http.
	TokenEndpoint string `json:"token_endpoint,omitempty"`
	// ClientID is the handler's client at the issuer (required).
	ClientID string `json:"client_id"`
	// ClientSecret authenticates the client with client_secret_basic;
	// placeholders such as {env.UPSTREAM_SECRET} are resolved when the
	// config is loaded. Exclusive with KeyFile.
	ClientSecret string `json:"client_secret,omitempty"`
	// KeyFile is a private key (PEM: PKCS #8, PKCS #1 or SEC 1; or a
	// private JWK) that authenticates the client with private_key_jwt
	// (RFC 7523). Exclusive with ClientSecret.
	KeyFile string `json:"key_file,omitempty"`
	// AssertionAudience is the aud of the assertions signed with KeyFile:
	// "endpoint" (default) or "token_endpoint", the same here: the token
	// endpoint's URL, as Okta and Entra ID want; "issuer", the issuer
	// identifier, as Auth0 and draft-ietf-oauth-rfc7523bis want (see
	// SECURITY.md, "Client assertions"; needs Issuer with several
	// issuers); or an absolute https URL (http only on loopback or with
	// the issuer's insecure_allow_http).
	AssertionAudience string `json:"assertion_audience,omitempty"`
	// Scopes are requested as the scope parameter.
	Scopes []string `json:"scopes,omitempty"`
	// Resource lists RFC 8707 resource indicators of the upstream.
	Resource []string `json:"resource,omitempty"`
	// Audience lists the logical names of the upstream (the audience
	// parameter of RFC 8693, or Auth0's for client_credentials, where at
	// most one is allowed).
	Audience []string `json:"audience,omitempty"`
	// Header is the request header the token is set in: "Authorization"
	// (default) as "Bearer <token>", any other header as the bare token.
	// The client's own copy of a header other than Authorization is
	// removed from every request, as for claim headers.
	Header string `json:"header,omitempty"`
	// SubjectTokenType is the RFC 8693 type URI of the caller's token
	// (exchange only). Default urn:ietf:params:oauth:token-type:access_token.
	SubjectTokenType string `json:"subject_token_type,omitempty"`
	// Actor, "client_credentials", sends the handler's own
	// client-credentials token as the actor token (RFC 8693 delegation:
	// the exchanged token names the gateway in its act claim). Exchange
	// only; empty means impersonation.
	Actor string `json:"actor,omitempty"`
}

const (
	// upstreamTokenTimeout bounds one request to the token endpoint.
	upstreamTokenTimeout = 5 * time.Second
	// exchangeCacheEntries bounds the cache of exchanged tokens: an entry
	// is one token (a few hundred bytes to a few KiB) and its header value.
	exchangeCacheEntries = 10000
)

// checkUpstreamToken checks the upstream_token configuration of h.
func (h *Handler) checkUpstreamToken() error {
	u := h.UpstreamToken
	if u == nil {
		return nil
	}
	switch u.Grant {
	case upstreamGrantClientCredentials:
		if u.SubjectTokenType != "" || u.Actor != "" {
			return errors.New("upstream_token: subject_token_type and actor apply to exchange only")
		}
		if len(u.Audience) > 1 {
			return errors.New("upstream_token: client_credentials takes one audience at most")
		}
	case upstreamGrantExchange:
		if u.Actor != "" && u.Actor != upstreamGrantClientCredentials {
			return fmt.Errorf("upstream_token: actor must be client_credentials, not %q", u.Actor)
		}
	default:
		return fmt.Errorf("upstream_token: grant must be client_credentials or exchange, not %q", u.Grant)
	}
	if u.ClientID == "" {
		return errors.New("upstream_token: client_id is required")
	}
	if (u.ClientSecret == "") == (u.KeyFile == "") {
		return errors.New("upstream_token: exactly one of client_secret and key_file is required")
	}
	allowHTTP := slices.ContainsFunc(h.Issuers, func(is IssuerConfig) bool {
		return is.InsecureAllowHTTP && (u.Issuer == "" || is.Issuer == u.Issuer)
	})
	if err := checkAssertionAudience(u.AssertionAudience, u.KeyFile, allowHTTP); err != nil {
		return fmt.Errorf("upstream_token: %w", err)
	}
	if u.AssertionAudience == assertionAudienceIssuer && u.Issuer == "" && len(h.Issuers) != 1 {
		return errors.New("upstream_token: assertion_audience issuer: with several issuers, name one (issuer)")
	}
	if u.Header != "" && !validHeaderName(u.Header) {
		return fmt.Errorf("upstream_token: invalid header name %q", u.Header)
	}
	if u.Header != "" && !strings.EqualFold(u.Header, "Authorization") {
		for _, s := range h.TokenSources {
			if s.From == "header" && strings.EqualFold(s.Name, u.Header) {
				return fmt.Errorf("upstream_token: header %q is where the caller's token comes from: choose another header for the upstream", u.Header)
			}
		}
	}
	if u.Issuer == "" && u.TokenEndpoint == "" && len(h.Issuers) != 1 {
		return errors.New("upstream_token: with several issuers, name one (issuer) or set token_endpoint")
	}
	if u.Issuer != "" && !slices.ContainsFunc(h.Issuers, func(is IssuerConfig) bool { return is.Issuer == u.Issuer }) {
		return fmt.Errorf("upstream_token: issuer %q is not a configured issuer", u.Issuer)
	}
	return nil
}

// upstreamStage obtains the upstream's token for an accepted request.
type upstreamStage struct {
	grant  string
	header string // canonical
	bare   bool   // the header carries the bare token, not "Bearer <token>"

	// manager keeps the client-credentials token (the actor's, with
	// exchange and actor); poolKey is its key in managerPool.
	manager *identity.TokenManager
	poolKey string

	// exchange is the request template of a token exchange (the subject
	// token is set per request); endpoint "" means discovery's, asked of
	// provider.
	exchange identity.TokenExchangeTokenRequest
	provider *identity.Provider
	client   *http.Client
	cache    *otter.Cache[tokenKey, *exchanged]
	calls    singleflight.Group
	leeway   time.Duration
	now      func() time.Time
	// refusal is the challenge of a refused exchange.
	refusal string

	outage outageLog
	// lastCC is the header value of the last client-credentials token, so
	// that a request does not build it anew.
	lastCC atomic.Pointer[ccValue]
}

// ccValue is the header value of a client-credentials token.
type ccValue struct {
	tok   *identity.TokenResponse
	value string
}

// exchanged is a cached exchanged token, ready to set.
type exchanged struct {
	value   string
	expires time.Time
}

// managerPool shares the client-credentials token manager of one token
// endpoint, client and request between every handler that uses it.
var managerPool = caddy.NewUsagePool()

// pooledManager makes a token manager a caddy.Destructor.
type pooledManager struct {
	*identity.TokenManager
	transport *http.Transport
}

// Destruct closes the idle connections to the token endpoint.
func (p pooledManager) Destruct() error {
	p.transport.CloseIdleConnections()
	return nil
}

// newUpstreamStage compiles u, for the handler h whose compiled issuers
// are ics, with its logger, clock, leeway and realm.
func newUpstreamStage(repl *caddy.Replacer, u *UpstreamToken, h *Handler, ics []identity.IssuerConfig, logger *zap.Logger, now func() time.Time, leeway time.Duration, realm string) (*upstreamStage, error) {
	st := &upstreamStage{
		grant:  u.Grant,
		header: "Authorization",
		leeway: leeway,
		now:    now,
	}
	if u.Header != "" {
		st.header = http.CanonicalHeaderKey(u.Header)
		st.bare = st.header != "Authorization"
	}
	// The issuer whose token endpoint to use.
	idx := 0
	for i := range h.Issuers {
		if h.Issuers[i].Issuer == u.Issuer {
			idx = i
		}
	}
	allowHTTP := h.Issuers[idx].InsecureAllowHTTP
	endpoint := repl.ReplaceKnown(u.TokenEndpoint, "")
	if endpoint != "" {
		if err := checkEndpointURL(endpoint, allowHTTP); err != nil {
			return nil, err
		}
	} else if p, ok := ics[idx].Keys.(*identity.Provider); ok {
		st.provider = p
	} else {
		return nil, errors.New("the issuer has no discovery document to find the token endpoint in: set token_endpoint")
	}
	st.outage = outageLog{
		logger:  logger.With(zap.String("issuer", ics[idx].Issuer), zap.String("upstream_token", u.Grant)),
		downMsg: "upstream token unavailable: requests are refused",
		upMsg:   "upstream token available again",
	}
	auth, authKey, err := upstreamClientAuth(repl, u, ics[idx].Issuer, allowHTTP)
	if err != nil {
		return nil, err
	}
	proto := identity.ProtocolRequest{Address: endpoint, ClientAuth: auth, AllowHTTP: allowHTTP}
	scopes, resource, audience := replaceAll(repl, u.Scopes), replaceAll(repl, u.Resource), replaceAll(repl, u.Audience)

	if u.Grant == upstreamGrantClientCredentials || u.Actor != "" {
		cc := identity.ClientCredentialsTokenRequest{ProtocolRequest: proto}
		if u.Grant == upstreamGrantClientCredentials {
			cc.Scopes, cc.Resource = scopes, resource
			if len(audience) == 1 {
				cc.Audience = audience[0]
			}
		}
		if err := st.acquireManager(cc, authKey, now); err != nil {
			return nil, err
		}
	}
	if u.Grant == upstreamGrantExchange {
		st.exchange = identity.TokenExchangeTokenRequest{
			ProtocolRequest:  proto,
			SubjectTokenType: u.SubjectTokenType,
			Audience:         audience,
			Resource:         resource,
			Scopes:           scopes,
		}
		if st.exchange.SubjectTokenType == "" {
			st.exchange.SubjectTokenType = identity.TokenTypeAccessToken
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		st.client = &http.Client{Timeout: upstreamTokenTimeout, Transport: transport}
		st.cache, err = otter.New(&otter.Options[tokenKey, *exchanged]{
			MaximumSize: exchangeCacheEntries,
			// Expiry is checked by lookup (see introspectionCache).
			Clock:    frozenClock{},
			Executor: func(fn func()) { fn() },
		})
		if err != nil {
			return nil, err
		}
		st.refusal = `Bearer realm="` + realm + `", error="insufficient_scope", error_description="` +
			reasons[reasonExchangeRefused].description + `"`
	}
	return st, nil
}

// upstreamClientAuth returns the client authentication of u at a token
// endpoint of issuer and a string that tells its credentials (and the
// aud of its assertions) apart in a pool key without containing them.
func upstreamClientAuth(repl *caddy.Replacer, u *UpstreamToken, issuer string, allowHTTP bool) (identity.ClientAuth, string, error) {
	id := repl.ReplaceKnown(u.ClientID, "")
	if u.KeyFile == "" {
		secret := repl.ReplaceKnown(u.ClientSecret, "")
		sum := hashToken(secret)
		return identity.ClientSecretBasicAuth(id, secret), fmt.Sprintf("secret:%x", sum[:8]), nil
	}
	path := repl.ReplaceKnown(u.KeyFile, "")
	key, err := loadPrivateKey(path)
	if err != nil {
		return identity.ClientAuth{}, "", fmt.Errorf("key_file: %w", err)
	}
	auth := identity.PrivateKeyJWTAuth(id, key, "")
	if auth.Audience, err = assertionAudience(repl, u.AssertionAudience, issuer, allowHTTP); err != nil {
		return identity.ClientAuth{}, "", err
	}
	return auth, "key:" + path + "\x00aud:" + auth.Audience, nil
}

// loadPrivateKey reads a private key from a PEM file (PKCS #8, PKCS #1 or
// SEC 1) or a private JWK.
func loadPrivateKey(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if trimmed := strings.TrimSpace(string(data)); strings.HasPrefix(trimmed, "{") {
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(data, &jwk); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if jwk.IsPublic() {
			return nil, fmt.Errorf("%s: the JWK is a public key", path)
		}
		return jwk, nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: neither PEM nor a JWK", path)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%s: no PKCS #8, PKCS #1 or SEC 1 private key in the PEM block %q", path, block.Type)
}

// acquireManager obtains the shared token manager of req, creating it
// without I/O when it does not exist yet.
func (st *upstreamStage) acquireManager(req identity.ClientCredentialsTokenRequest, authKey string, now func() time.Time) error {
	key := fmt.Sprintf("%s\x00%p\x00%s\x00%s\x00%s\x00%s\x00%s\x00%t", req.Address, st.provider, req.ClientAuth.ClientID, authKey,
		strings.Join(req.Scopes, " "), strings.Join(req.Resource, " "), req.Audience, req.AllowHTTP)
	val, _, err := managerPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		m, err := identity.NewTokenManager(identity.TokenManagerOptions{
			HTTPClient: &http.Client{Timeout: upstreamTokenTimeout, Transport: transport},
			Request:    req,
			Provider:   st.provider,
			Now:        now,
		})
		if err != nil {
			return nil, err
		}
		return pooledManager{TokenManager: m, transport: transport}, nil
	})
	if err != nil {
		return err
	}
	st.manager, st.poolKey = val.(pooledManager).TokenManager, key
	return nil
}

// close releases the shared token manager and drops the exchanged tokens.
func (st *upstreamStage) close() error {
	if st.cache != nil {
		st.cache.InvalidateAll()
		st.cache.StopAllGoroutines()
		st.client.CloseIdleConnections()
	}
	if st.poolKey == "" {
		return nil
	}
	key := st.poolKey
	st.poolKey = ""
	_, err := managerPool.Delete(key)
	return err
}

// upstreamHeader is the header an accepted request gets for the upstream;
// the zero value sets none.
type upstreamHeader struct {
	name, value string
}

// set sets the header, replacing any value.
func (uh upstreamHeader) set(r *http.Request) {
	if uh.name != "" {
		r.Header[uh.name] = []string{uh.value}
	}
}

// token returns the upstream header for the request accepted with
// credential c and entry e, or the rejection of the request; without
// upstream_token (a nil stage), none. A token an earlier identity handler
// of the route accepted (stacked.go) gets one like any other: this
// handler's replaces the earlier one's in the same header.
func (st *upstreamStage) token(ctx context.Context, c *credential, e *cacheEntry) (upstreamHeader, *rejection) {
	if st == nil {
		return upstreamHeader{}, nil
	}
	token := c.token
	var (
		v   string
		err error
	)
	if st.grant == upstreamGrantClientCredentials {
		v, err = st.clientCredentials(ctx)
	} else {
		v, err = st.exchangeFor(ctx, e, token)
	}
	if err != nil {
		if isRefusal(err) {
			return upstreamHeader{}, &rejection{reason: reasonExchangeRefused, challenge: st.refusal, err: err, token: token}
		}
		if ctx.Err() == nil { // not a client that went away
			st.outage.set(true, err)
		}
		return upstreamHeader{}, &rejection{reason: reasonUpstreamToken, err: err, token: token}
	}
	st.outage.set(false, nil)
	return upstreamHeader{name: st.header, value: v}, nil
}

// clientCredentials returns the header value of the manager's token.
func (st *upstreamStage) clientCredentials(ctx context.Context) (string, error) {
	tok, err := st.manager.Token(ctx)
	if err != nil {
		return "", err
	}
	if last := st.lastCC.Load(); last != nil && last.tok == tok {
		return last.value, nil
	}
	v, err := st.headerValue(tok)
	if err != nil {
		return "", err
	}
	st.lastCC.Store(&ccValue{tok: tok, value: v})
	return v, nil
}

// headerValue is the header value of an issued token: only bearer tokens
// can be handed on (the handler holds no DPoP key for the upstream).
func (st *upstreamStage) headerValue(tok *identity.TokenResponse) (string, error) {
	if !strings.EqualFold(tok.TokenType, identity.TokenTypeBearer) && tok.TokenType != identity.TokenTypeNA {
		return "", fmt.Errorf("identity: upstream_token: token_type %q is not a bearer token", tok.TokenType)
	}
	if tok.AccessToken == "" || strings.ContainsAny(tok.AccessToken, " \t\r\n") {
		return "", errors.New("identity: upstream_token: the issued token is empty or not a header value")
	}
	if st.bare {
		return tok.AccessToken, nil
	}
	return "Bearer " + tok.AccessToken, nil
}

// exchangeFor returns the header value of the caller's token exchanged
// for the upstream, from the cache or by one exchange for all the requests
// that carry the token at once.
func (st *upstreamStage) exchangeFor(ctx context.Context, e *cacheEntry, token string) (string, error) {
	// The token's own cache entry (this handler's, for this very token)
	// holds its exchanged token: a hit costs no hashing.
	if x := e.exchanged.Load(); x != nil && st.now().Before(x.expires) {
		return x.value, nil
	}
	key := hashToken(token)
	if x, ok := st.cache.GetIfPresent(key); ok {
		if st.now().Before(x.expires) {
			e.exchanged.Store(x)
			return x.value, nil
		}
		st.cache.Invalidate(key)
	}
	ch := st.calls.DoChan(string(key[:]), func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamTokenTimeout)
		defer cancel()
		return st.doExchange(sctx, key, e, token)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// doExchange exchanges the caller's token and caches the result until the
// earlier of both tokens' expiry, less the margin a token manager keeps.
func (st *upstreamStage) doExchange(ctx context.Context, key tokenKey, e *cacheEntry, token string) (string, error) {
	req := st.exchange
	req.SubjectToken = token
	if req.Address == "" {
		doc, err := st.provider.Discovery(ctx)
		if err != nil {
			return "", err
		}
		if req.Address = doc.TokenEndpoint; req.Address == "" {
			return "", errors.New("identity: upstream_token: the discovery document has no token_endpoint")
		}
	}
	if st.manager != nil {
		actor, err := st.manager.AccessToken(ctx)
		if err != nil {
			return "", err
		}
		req.ActorToken, req.ActorTokenType = actor, identity.TokenTypeAccessToken
	}
	start := st.now()
	tok, err := identity.RequestTokenExchangeToken(ctx, st.client, req)
	if err != nil {
		return "", err
	}
	v, err := st.headerValue(tok)
	if err != nil {
		return "", err
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = identity.DefaultTokenLifetime
	}
	expires := start.Add(life - min(identity.DefaultRefreshMargin, life/2))
	if !e.expires.IsZero() {
		// e.expires is the caller token's exp plus the leeway (or earlier).
		if callerExp := e.expires.Add(-st.leeway); callerExp.Before(expires) {
			expires = callerExp
		}
		x := &exchanged{value: v, expires: expires}
		st.cache.Set(key, x)
		e.exchanged.Store(x)
	}
	return v, nil
}

// isRefusal reports whether err is the issuer refusing to exchange the
// caller's token (as opposed to the handler's client or the endpoint
// failing): the caller cannot reach the upstream with this token.
func isRefusal(err error) bool {
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "invalid_grant", "invalid_target", "invalid_scope", "access_denied":
		return true
	}
	return false
}

// outageLog logs an outage of an endpoint once when it starts (at ERROR:
// requests are refused or degraded meanwhile) and once when it ends (at
// INFO), not on every request.
type outageLog struct {
	down    atomic.Bool
	logger  *zap.Logger
	downMsg string
	upMsg   string
}

// set records whether the endpoint fails.
func (o *outageLog) set(down bool, err error) {
	// The load first: on the common path nothing changes, and a failed
	// compare-and-swap would still take the cache line from other cores.
	if o.down.Load() != down && o.down.CompareAndSwap(!down, down) {
		if down {
			o.logger.Error(o.downMsg, zap.Error(err))
		} else {
			o.logger.Info(o.upMsg)
		}
	}
}
