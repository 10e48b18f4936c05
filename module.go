package caddyidentity

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/caddy-identity/caddy-identity/identity"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler configuration.
const (
	// DefaultRealm is the realm of the WWW-Authenticate challenge when none
	// is configured (the same default as Caddy's basic_auth).
	DefaultRealm = "restricted"
	// DefaultCacheSize is the default bound of the validated-token cache, in
	// units of one cached token of up to 1 KiB (see Handler.CacheSize).
	DefaultCacheSize = 10000
	// DefaultLeeway is the default allowed clock skew for exp, nbf and iat.
	DefaultLeeway = 60 * time.Second
	// MaxMaxTokenSize is the largest max_token_size: Caddy's server reads
	// at most 1 MiB of request headers by default anyway, and a token
	// cache unit is 1 KiB.
	MaxMaxTokenSize = 1 << 20
)

// Handler is the "identity" HTTP handler. It authenticates every request it
// sees with a bearer token, answers 401/403/400/503 with RFC 6750 challenges
// when that fails, and otherwise passes the request on with the configured
// identity headers set from the verified claims.
//
// Before any decision, on every path, all configured identity headers (those
// of claim_headers and strip_headers) are deleted from the incoming request,
// in every spelling: any letter case, '_' in place of '-', and duplicates.
type Handler struct {
	// Issuers lists the trusted token issuers. A token is accepted only when
	// its "iss" claim equals one of them (or one of its aliases) exactly, or
	// fits an issuer template with an accepted tenant (see
	// IssuerConfig.Issuer). At least one is required.
	Issuers []IssuerConfig `json:"issuers,omitempty"`

	// Audiences is the default audience allow-list for issuers that set
	// none of their own: the token's "aud" must contain one of them.
	Audiences []string `json:"audiences,omitempty"`
	// AnyAudience accepts any (or no) audience for issuers that set no
	// audience of their own. Risky: any token of the issuer for any other
	// application is then accepted here. Caddyfile: "audience any".
	AnyAudience bool `json:"any_audience,omitempty"`
	// Algorithms is the default signature algorithm allow-list for issuers
	// that set none. Empty means the asymmetric algorithms the issuer
	// advertises (discovery metadata, key "alg"), else RS*, PS*, ES*, EdDSA.
	// "none" and HMAC algorithms are refused.
	Algorithms []string `json:"algorithms,omitempty"`
	// AuthorizedParties is the default allow-list of client IDs for issuers
	// that set none: the token's "azp" claim (or the claim named by
	// AuthorizedPartyClaim) must be present and one of them. Empty means no
	// check. Caddyfile: "authorized_party".
	AuthorizedParties []string `json:"authorized_parties,omitempty"`
	// AuthorizedPartyClaim is the default claim holding the client ID for
	// issuers that set no authorized parties of their own; empty means
	// "azp". Others: "appid" (Entra ID v1), "cid" (Okta), "client_id" (RFC
	// 9068, AWS Cognito access tokens, Duende).
	AuthorizedPartyClaim string `json:"authorized_party_claim,omitempty"`
	// TokenTypes is the default allow-list of the JWS "typ" header (case
	// insensitive, "application/" prefix optional), e.g. ["at+jwt"] to accept
	// only RFC 9068 access tokens. Empty means no check.
	TokenTypes []string `json:"token_types,omitempty"`
	// Leeway is the allowed clock skew when checking exp, nbf and iat.
	// Default 60s; 0 means none.
	Leeway *caddy.Duration `json:"leeway,omitempty"`
	// MaxAge, when set, refuses tokens issued longer ago than this (now -
	// iat), whatever their exp says: a cap on the lifetime of tokens from
	// providers that issue long-lived ones.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// TokenSources lists where the token is looked for. Default: the
	// Authorization header with the Bearer scheme. A token found in more
	// than one place (or a repeated header, cookie or parameter) is a
	// 400 invalid_request.
	TokenSources []TokenSource `json:"token_sources,omitempty"`

	// RequireScopes are scopes the token must all have (from the "scope" or
	// "scp" claim), for tokens of every issuer; otherwise 403
	// insufficient_scope.
	RequireScopes []string `json:"require_scopes,omitempty"`
	// RequireClaims are claim rules the token must all satisfy (AND), for
	// tokens of every issuer; otherwise 403 insufficient_scope.
	RequireClaims []ClaimRule `json:"require_claims,omitempty"`

	// ClaimHeaders maps verified claims to request headers for the upstream.
	// Arrays are joined with ", ", objects forwarded as JSON; a header whose
	// claim is absent is not set (its client copy is still removed). Default
	// when empty: sub → X-User-Id, email → X-User-Email.
	ClaimHeaders []ClaimHeader `json:"claim_headers,omitempty"`
	// StripHeaders are further request headers removed from every request
	// like the claim headers (in every spelling), for instance headers an
	// older configuration used to set.
	StripHeaders []string `json:"strip_headers,omitempty"`

	// Optional lets requests without any token through anonymously (identity
	// headers still removed). A request with a bad token is still refused.
	Optional bool `json:"optional,omitempty"`
	// ForwardToken keeps the token in the request passed upstream. Default
	// false: the token (header, cookie or query parameter it came from) is
	// removed, so the upstream cannot replay it.
	ForwardToken bool `json:"forward_token,omitempty"`
	// Realm is the realm of the WWW-Authenticate challenge. Default
	// "restricted".
	Realm string `json:"realm,omitempty"`

	// CacheSize bounds the cache of validated tokens, in units: a token of
	// up to 1 KiB takes one unit, a larger one a unit per started KiB.
	// Default 10000 (tens of MiB at most); 0 disables the cache.
	CacheSize *int `json:"cache_size,omitempty"`
	// MaxTokenSize is the largest token accepted, in bytes, checked before
	// any parsing. Default 8192 (identity.DefaultMaxTokenBytes), at most
	// MaxMaxTokenSize.
	MaxTokenSize int `json:"max_token_size,omitempty"`
	// RefreshWait bounds how long a request waits for keys being fetched
	// (a token with an unknown kid, or a signature failure that may come
	// from rotated keys, or no keys yet). Past it the request gets 401
	// (unknown key), or 503 when no keys are held at all, while the fetch
	// goes on in the background for the requests that follow: a provider
	// that hangs holds no request longer. Discovery and JWKS fetched in a
	// row share the one wait. Default 3s (identity.DefaultRefreshWait).
	RefreshWait caddy.Duration `json:"refresh_wait,omitempty"`

	// DPoP says whether access tokens bound to a client key with DPoP
	// (RFC 9449) are accepted, in the Authorization header only:
	//
	//   - "allow" (default, also when empty): "Authorization: DPoP <token>"
	//     is accepted with exactly one valid DPoP proof header for this
	//     request and the token's key (cnf.jkt), and a token carrying
	//     cnf.jkt is refused in any other form (Bearer, or another
	//     token_from place): a bound token must not be replayable as a
	//     bearer token (RFC 9449 §7.1). Plain bearer tokens still work.
	//   - "require": only DPoP-bound tokens in "Authorization: DPoP";
	//     Bearer is refused. token_from may then name no other place.
	//   - "off": the DPoP scheme is not recognized, and bound tokens are
	//     accepted as bearer tokens, their binding ignored: what the
	//     handler did before it knew DPoP. Only for migrations.
	DPoP string `json:"dpop,omitempty"`
	// DPoPOptions tunes the proof checks: the accepted algorithms, the iat
	// window, and server-issued nonces (see DPoPOptions). Caddyfile: the
	// dpop option's block.
	DPoPOptions *DPoPOptions `json:"dpop_options,omitempty"`

	// CertBinding says whether certificate-bound access tokens (RFC 8705
	// §3) are checked:
	//
	//   - "check" (default, also when empty): a token whose cnf claim has
	//     x5t#S256 is accepted only over a TLS connection to Caddy whose
	//     client certificate has that SHA-256 thumbprint, on every request;
	//     otherwise 401 invalid_token. The binding is what makes a stolen
	//     token useless without the certificate's key, so ignoring it
	//     silently would turn it back into a bearer token.
	//   - "off": the binding is ignored and bound tokens are accepted as
	//     bearer tokens. For deployments where TLS ends before Caddy, which
	//     then never sees the client certificate; the component that
	//     terminates TLS must check the binding instead.
	CertBinding string `json:"cert_binding,omitempty"`

	// IntrospectionOrder lists the issuers with introspection in the
	// order they are asked about an opaque token, which names no issuer:
	// required when more than one issuer has introspection, naming each
	// once. On a cache miss the first issuer is asked, and the next only
	// when the one before answered inactive or could not answer: each
	// issuer asked costs a round trip and receives the token. The first
	// active answer decides; none active with one unavailable is a 503.
	IntrospectionOrder []string `json:"introspection_order,omitempty"`

	// UpstreamToken, when set, gives the upstream a token of its own
	// audience: the handler's client-credentials token or the caller's
	// token exchanged (RFC 8693). See UpstreamToken.
	UpstreamToken *UpstreamToken `json:"upstream_token,omitempty"`
	// Login, when set, signs browser users in at the proxy with OpenID
	// Connect (see LoginConfig); bearer tokens keep working. With login,
	// an audience is needed only if bearer tokens are to be accepted.
	Login *LoginConfig `json:"login,omitempty"`

	// Store, when set, keeps the state that several Caddy instances behind
	// one load balancer must share: the DPoP proofs already accepted and
	// the sessions ended by back-channel logout (see StoreConfig). The
	// validated-token cache stays in each process.
	Store *StoreConfig `json:"store,omitempty"`

	// now and logger replace the clock and the logger when set before
	// Provision (by tests and by the caddy identity subcommands).
	now    func() time.Time
	logger *zap.Logger

	// The stages Provision builds, in the order a request meets them
	// (see doc.go). Each owns its configuration and state; Cleanup
	// releases what they took.
	// They are values, next to each other, so that a request follows no
	// pointer to reach them; the optional ones are pointers, nil when not
	// configured.
	strip      stripStage
	credential credentialStage
	login      *login // nil without a login block
	auth       authenticator
	certs      certBinding
	dpop       dpopStage
	policy     policyStage
	upstream   *upstreamStage // nil without upstream_token
	handOn     handOn
	refuser    refuser

	// store is the shared store, nil without one, which the DPoP and
	// login stages use; storeKey is its key in storePool.
	store    *sharedStore
	storeKey string
}

// IssuerConfig is one trusted issuer. The fields left empty take the
// handler-level defaults.
type IssuerConfig struct {
	// Issuer is the issuer identifier (an HTTPS URL). The token's "iss" must
	// equal it (or one of Aliases). Keys come from its OpenID Connect
	// discovery document unless JWKSURL or JWKSFile is set.
	//
	// An issuer containing "{tenantid}" once is a template for the tenants
	// of a multi-tenant provider, such as Microsoft Entra ID's
	// "https://login.microsoftonline.com/{tenantid}/v2.0": the token's
	// "tid" claim must be one of Tenants and its "iss" the template with
	// "{tenantid}" replaced by that tid. A template has no discovery
	// document of its own, so it needs JWKSURL or JWKSFile. Placeholders
	// such as {http.auth.identity.issuer} give the template, not the
	// token's iss.
	Issuer string `json:"issuer"`
	// Aliases are further exact "iss" values accepted for this issuer, for
	// providers that issue more than one spelling: Google ID tokens carry
	// "https://accounts.google.com" or "accounts.google.com". Nothing else
	// is normalized. Not allowed with a template issuer.
	Aliases []string `json:"aliases,omitempty"`
	// Tenants are the tenant IDs accepted by a template issuer. Required
	// with a template unless AnyTenant is set.
	Tenants []string `json:"tenants,omitempty"`
	// AnyTenant accepts tokens of every tenant of a template issuer (iss
	// must still be the template filled in with tid). Risky: the provider's
	// keys sign for all its tenants, so anyone who can register an
	// application in any tenant may obtain a token accepted here.
	// Caddyfile: "tenants any".
	AnyTenant bool `json:"any_tenant,omitempty"`
	// AuthorizedParties is this issuer's allow-list of client IDs (see
	// Handler.AuthorizedParties).
	AuthorizedParties []string `json:"authorized_parties,omitempty"`
	// AuthorizedPartyClaim is the claim holding the client ID for this
	// issuer (see Handler.AuthorizedPartyClaim).
	AuthorizedPartyClaim string `json:"authorized_party_claim,omitempty"`
	// JWKSURL is the URL of the issuer's JSON Web Key Set, used instead of
	// discovery.
	JWKSURL string `json:"jwks_url,omitempty"`
	// JWKSFile is a local file with the issuer's JSON Web Key Set (static
	// keys, read at provisioning).
	JWKSFile string `json:"jwks_file,omitempty"`
	// JWKSURIBases are URL prefixes (scheme, host and optional path) where
	// the discovery document's jwks_uri may be besides the issuer's own
	// scheme and host, which is all that is allowed by default. Google's
	// keys, for instance, are at https://www.googleapis.com/oauth2/v3/certs
	// for the issuer https://accounts.google.com. With introspection, the
	// document's introspection_endpoint must pass the same check; the
	// other endpoints are not checked: the handler uses none of them.
	JWKSURIBases []string `json:"jwks_uri_bases,omitempty"`
	// Audiences is this issuer's audience allow-list.
	Audiences []string `json:"audiences,omitempty"`
	// AnyAudience accepts any audience from this issuer (risky, see
	// Handler.AnyAudience).
	AnyAudience bool `json:"any_audience,omitempty"`
	// Algorithms is this issuer's signature algorithm allow-list.
	Algorithms []string `json:"algorithms,omitempty"`
	// TokenTypes is this issuer's "typ" allow-list.
	TokenTypes []string `json:"token_types,omitempty"`
	// RequireScopes are scopes that tokens of this issuer must also have
	// (in addition to the handler-level ones).
	RequireScopes []string `json:"require_scopes,omitempty"`
	// RequireClaims are claim rules that tokens of this issuer must also
	// satisfy (in addition to the handler-level ones).
	RequireClaims []ClaimRule `json:"require_claims,omitempty"`
	// InsecureAllowHTTP allows plain-HTTP discovery and JWKS URLs on
	// non-loopback hosts (for an identity provider on a private network).
	// Loopback addresses are always allowed.
	InsecureAllowHTTP bool `json:"insecure_allow_http,omitempty"`
	// Introspection, when set, accepts opaque access tokens (anything that
	// is not a compact JWS) of this issuer by asking its RFC 7662
	// introspection endpoint. With several issuers that have it, the
	// handler's IntrospectionOrder says which is asked first. Not allowed
	// with a template issuer.
	Introspection *IntrospectionConfig `json:"introspection,omitempty"`
	// UserInfo, when set, completes the claims of this issuer's access
	// tokens, JWTs and introspected opaque tokens alike, from its userinfo
	// endpoint (see UserInfoConfig).
	UserInfo *UserInfoConfig `json:"userinfo,omitempty"`
}

// TokenSource is one place where the token may be.
type TokenSource struct {
	// From is "header", "cookie" or "query".
	From string `json:"from"`
	// Name is the header, cookie or query parameter name.
	Name string `json:"name"`
	// Scheme is the authentication scheme expected before the token in a
	// header (compared case-insensitively). Default "Bearer" for the
	// Authorization header, none (the whole value) for other headers.
	Scheme string `json:"scheme,omitempty"`
}

// ClaimRule requires a claim to have one of the given values. A claim that
// is an array satisfies the rule when any element equals one of them.
// Numbers and booleans are compared in their JSON text form. With no values,
// the claim only has to be present.
type ClaimRule struct {
	// Claim is the claim name or a dotted path into nested objects (an exact
	// member name, even one containing dots such as a URL, wins).
	Claim string `json:"claim"`
	// Values are the accepted values (one of them).
	Values []string `json:"values,omitempty"`
}

// ClaimHeader forwards a verified claim to the upstream as a request header.
type ClaimHeader struct {
	// Claim is the claim name or dotted path.
	Claim string `json:"claim"`
	// Header is the request header name to set.
	Header string `json:"header"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.identity",
		New: func() caddy.Module { return new(Handler) },
	}
}

// defaultClaimHeaders are forwarded when no claim_headers are configured.
var defaultClaimHeaders = []ClaimHeader{
	{Claim: "sub", Header: "X-User-Id"},
	{Claim: "email", Header: "X-User-Email"},
}

// setup is what Provision derives once from the configuration and the
// Caddy context and hands to the stages it builds.
type setup struct {
	logger  *zap.Logger
	slog    *slog.Logger
	now     func() time.Time
	metrics *collectors
	realm   string
	leeway  time.Duration
}

// Provision compiles the configuration into the stages of the request
// path, obtains the shared key caches of the issuers and sets up the token
// cache and metrics. It does no network I/O: Caddy starts even when an
// identity provider is down.
func (h *Handler) Provision(ctx caddy.Context) error {
	su := &setup{logger: ctx.Logger(), slog: ctx.Slogger(), now: time.Now}
	// The token cache's clock: nil is the real clock, which its hits read
	// coarsely; a clock injected by tests is read as it is.
	cacheClock := h.now
	if h.now != nil {
		su.now = h.now
	}
	if h.logger != nil {
		su.logger = h.logger
		su.slog = slog.New(zapslog.NewHandler(h.logger.Core()))
	}

	if err := h.checkConfig(); err != nil {
		return err
	}

	su.metrics = processMetrics()
	su.metrics.register(ctx, su.logger)
	if err := h.acquireStore(h.Store, su.logger); err != nil {
		return err
	}

	su.realm = h.Realm
	if su.realm == "" {
		su.realm = DefaultRealm
	}
	maxTokenSize := h.MaxTokenSize
	if maxTokenSize <= 0 {
		maxTokenSize = identity.DefaultMaxTokenBytes
	}
	su.leeway = DefaultLeeway
	if h.Leeway != nil {
		su.leeway = time.Duration(*h.Leeway)
	}
	dpop := parseDPoPMode(h.DPoP)
	m := &meter{metrics: su.metrics}
	h.policy = policyStage{byIssuer: make(map[string]*issuerPolicy, len(h.Issuers))}
	h.certs = newCertBinding(h.CertBinding)
	h.auth = authenticator{
		logger:       su.logger,
		now:          su.now,
		policy:       &h.policy,
		certs:        &h.certs,
		dpopOn:       dpop != dpopOff,
		dpopRequired: dpop == dpopRequire,
		leeway:       su.leeway,
		maxAge:       time.Duration(h.MaxAge),
		store:        h.store,
	}
	h.dpop = dpopStage{store: h.store, now: su.now}
	h.dpop.configure(h.DPoPOptions)
	var err error
	if h.credential, err = newCredentialStage(h.TokenSources, dpop, h.Optional, maxTokenSize); err != nil {
		return err
	}
	h.credential.warnLoggedTokenSources(ctx, su.logger)
	upstreamHeader := ""
	if h.UpstreamToken != nil {
		upstreamHeader = h.UpstreamToken.Header
	}
	h.strip = newStripStage(h.ClaimHeaders, h.StripHeaders, upstreamHeader, h.credential.sources, dpop != dpopOff)
	h.auth.claimHeaders = compileClaimHeaders(h.ClaimHeaders)
	h.refuser = newRefuser(su.logger, m, su.realm, dpop, h.dpop.algorithms)
	h.handOn = handOn{forwardToken: h.ForwardToken, meter: m}

	issuerCfgs := make([]identity.IssuerConfig, 0, len(h.Issuers))
	repl := caddy.NewReplacer()
	if err := h.checkPlaceholders(repl); err != nil {
		return err
	}
	if err := h.compileNonces(repl); err != nil {
		return err
	}
	for i := range h.Issuers {
		ic, pol, err := h.compileIssuer(ctx, repl, &h.Issuers[i], su)
		if err != nil {
			return fmt.Errorf("issuer %q: %w", h.Issuers[i].Issuer, err)
		}
		issuerCfgs = append(issuerCfgs, ic)
		h.policy.byIssuer[pol.issuer] = pol
		if h.Login != nil && &h.Issuers[i] == h.loginIssuer() {
			if err := h.provisionLogin(repl, &h.Issuers[i], ic, su); err != nil {
				return err
			}
		}
		m.issuerLabels = append(m.issuerLabels, pol.issuer)
		if h.Issuers[i].Introspection != nil {
			in, err := newIntrospector(repl, &h.Issuers[i], ic, pol, &h.auth)
			if err != nil {
				return fmt.Errorf("issuer %q: introspection: %w", h.Issuers[i].Issuer, err)
			}
			h.auth.introspectors = append(h.auth.introspectors, in)
		}
		if h.Issuers[i].UserInfo != nil {
			u, err := newUserInfoSource(repl, &h.Issuers[i], ic, pol, &h.auth)
			if err != nil {
				return fmt.Errorf("issuer %q: userinfo: %w", h.Issuers[i].Issuer, err)
			}
			if h.auth.userinfo == nil {
				h.auth.userinfo = make(map[string]*userInfoSource)
			}
			h.auth.userinfo[pol.issuer] = u
		}
	}
	h.auth.orderIntrospectors(repl, h.IntrospectionOrder)
	if len(m.issuerLabels) > 1 {
		m.issuerLabels = append(m.issuerLabels, "")
	}
	h.auth.counters = su.metrics.resolve(m.issuerLabels)
	v, err := identity.NewValidator(issuerCfgs, identity.ValidatorOptions{
		MaxTokenBytes: maxTokenSize,
		Logger:        su.slog,
		RefreshWait:   time.Duration(h.RefreshWait),
		DecodeClaims:  decodedClaims(h.auth.claimHeaders, h.policy.byIssuer, h.auth.dpopOn || !h.certs.off),
	})
	if err != nil {
		return err
	}
	h.auth.validator = v
	if h.UpstreamToken != nil {
		if h.upstream, err = newUpstreamStage(repl, h.UpstreamToken, h, issuerCfgs, su.logger, su.now, su.leeway, su.realm); err != nil {
			return fmt.Errorf("upstream_token: %w", err)
		}
	}

	size := DefaultCacheSize
	if h.CacheSize != nil {
		size = *h.CacheSize
	}
	if size > 0 {
		h.auth.cache, err = newTokenCache(size, cacheClock)
		if err != nil {
			return err
		}
	}
	h.refuser.summary = newRejectionSummary(su.logger, m.issuerLabels)
	trackHandler(&h.auth) // Caddy cleans up a handler whose Provision fails
	if dpop != dpopOff {
		return h.dpop.acquire()
	}
	return nil
}

// checkConfig reports configuration errors that do not need provisioning.
func (h *Handler) checkConfig() error {
	if len(h.Issuers) == 0 {
		return errors.New("at least one issuer is required")
	}
	seen := make(map[string]bool, len(h.Issuers))
	for i := range h.Issuers {
		is := &h.Issuers[i]
		if is.Issuer == "" {
			return errors.New("issuer is empty: write the provider's issuer URL, as its tokens carry it in iss")
		}
		if seen[is.Issuer] {
			return fmt.Errorf("issuer %q is configured twice: merge its settings into one issuer block", is.Issuer)
		}
		seen[is.Issuer] = true
		if is.JWKSURL != "" && is.JWKSFile != "" {
			return fmt.Errorf("issuer %q: jwks_url and jwks_file are exclusive: keep one", is.Issuer)
		}
		if err := checkJWKSURIBases(is); err != nil {
			return fmt.Errorf("issuer %q: %w", is.Issuer, err)
		}
		if len(is.Audiences) > 0 && is.AnyAudience {
			return fmt.Errorf("issuer %q: a list of audiences and `audience any` (any_audience) are exclusive: keep one", is.Issuer)
		}
		if err := checkAudiences(is.Audiences); err != nil {
			return fmt.Errorf("issuer %q: %w", is.Issuer, err)
		}
		if err := checkIssuerURL(is); err != nil {
			return err
		}
		if len(is.Audiences) == 0 && !is.AnyAudience && len(h.Audiences) == 0 && !h.AnyAudience && h.Login == nil {
			return fmt.Errorf("issuer %q: an audience is required (or, at your own risk, `audience any`)", is.Issuer)
		}
		if err := checkAlgorithms(is.Algorithms); err != nil {
			return fmt.Errorf("issuer %q: %w", is.Issuer, err)
		}
		if err := checkIssuerMatch(is); err != nil {
			return fmt.Errorf("issuer %q: %w", is.Issuer, err)
		}
		if err := checkAuthorizedParties(is.AuthorizedParties, is.AuthorizedPartyClaim); err != nil {
			return fmt.Errorf("issuer %q: %w", is.Issuer, err)
		}
		if err := checkClaimRules(is.RequireClaims); err != nil {
			return fmt.Errorf("issuer %q: %w", is.Issuer, err)
		}
		if err := checkScopes(is.RequireScopes); err != nil {
			return fmt.Errorf("issuer %q: %w", is.Issuer, err)
		}
		if err := checkIntrospection(is); err != nil {
			return fmt.Errorf("issuer %q: introspection: %w", is.Issuer, err)
		}
		if err := checkUserInfo(is, h.DPoP); err != nil {
			return fmt.Errorf("issuer %q: userinfo: %w", is.Issuer, err)
		}
	}
	if err := checkIntrospectionOrder(h.Issuers, h.IntrospectionOrder); err != nil {
		return err
	}
	if h.Login != nil {
		if err := h.checkLogin(); err != nil {
			return err
		}
	}
	if len(h.Audiences) > 0 && h.AnyAudience {
		return errors.New("a list of audiences and `audience any` (any_audience) are exclusive: keep one")
	}
	if err := checkAlgorithms(h.Algorithms); err != nil {
		return err
	}
	if err := checkAuthorizedParties(h.AuthorizedParties, h.AuthorizedPartyClaim); err != nil {
		return err
	}
	if err := checkClaimRules(h.RequireClaims); err != nil {
		return err
	}
	if err := checkScopes(h.RequireScopes); err != nil {
		return err
	}
	if h.Leeway != nil && *h.Leeway < 0 {
		return errors.New("leeway must not be negative")
	}
	if h.MaxAge < 0 {
		return errors.New("max_age must not be negative")
	}
	if h.RefreshWait < 0 {
		return errors.New("refresh_wait must not be negative")
	}
	if h.CacheSize != nil && *h.CacheSize < 0 {
		return errors.New("cache_size must not be negative")
	}
	if h.MaxTokenSize < 0 || h.MaxTokenSize > MaxMaxTokenSize {
		return errors.New("max_token_size must be between 0 (the default) and 1 MiB")
	}
	if strings.ContainsAny(h.Realm, "\"\\\r\n") {
		return errors.New("realm must not contain quotes, backslashes or line breaks")
	}
	if err := checkDPoP(h.DPoP, h.TokenSources); err != nil {
		return err
	}
	if err := checkDPoPOptions(h.DPoPOptions, h.DPoP); err != nil {
		return err
	}
	if err := checkCertBinding(h.CertBinding); err != nil {
		return err
	}
	if err := h.checkUpstreamToken(); err != nil {
		return err
	}
	for _, s := range h.TokenSources {
		switch s.From {
		case "header", "cookie", "query":
		default:
			return fmt.Errorf("token_from %s: the source must be header, cookie or query", s.From)
		}
		if s.Name == "" {
			return fmt.Errorf("token_from %s: name is required (the header, cookie or query parameter that carries the token)", s.From)
		}
		if s.Scheme != "" && s.From != "header" {
			return fmt.Errorf("token_from %s %s: a scheme applies to headers only: remove %q", s.From, s.Name, s.Scheme)
		}
		if err := checkTokenSource(s); err != nil {
			return err
		}
	}
	for _, ch := range h.ClaimHeaders {
		if ch.Claim == "" || ch.Header == "" {
			return errors.New("claim_header needs a claim and a header name")
		}
		if err := checkClaimHeader(ch); err != nil {
			return err
		}
	}
	for _, name := range h.StripHeaders {
		if err := checkHeaderName("strip_header", name); err != nil {
			return err
		}
	}
	if err := checkAudiences(h.Audiences); err != nil {
		return err
	}
	return nil
}

// checkHeaderName refuses a header name that is not an RFC 9110 token,
// such as "Authorization: Bearer" or "X User".
func checkHeaderName(option, name string) error {
	if validHeaderName(name) {
		return nil
	}
	return fmt.Errorf("%s: invalid header name %q (letters, digits and !#$%%&'*+-.^_`|~ only, no spaces or colons)", option, name)
}

// checkTokenSource refuses a header or cookie name that no request can
// carry, which would refuse every request as "missing".
func checkTokenSource(s TokenSource) error {
	switch s.From {
	case "header":
		if validHeaderName(s.Name) {
			return nil
		}
		if name, scheme, ok := strings.Cut(s.Name, ":"); ok && s.Scheme == "" && validHeaderName(strings.TrimSpace(name)) {
			if scheme = strings.TrimSpace(scheme); scheme != "" {
				return fmt.Errorf("token_from header %q: the scheme is a separate argument: write `token_from header %s %s`", s.Name, strings.TrimSpace(name), scheme)
			}
			return fmt.Errorf("token_from header %q: write the header name without the colon: `token_from header %s`", s.Name, strings.TrimSpace(name))
		}
		return checkHeaderName("token_from header", s.Name)
	case "cookie":
		if !validHeaderName(s.Name) {
			return fmt.Errorf("token_from cookie %q: not a valid cookie name (RFC 6265: letters, digits and !#$%%&'*+-.^_`|~ only, no spaces)", s.Name)
		}
	case "query":
		if strings.ContainsAny(s.Name, " &=#") {
			return fmt.Errorf("token_from query %q: a query parameter name contains no spaces, '&', '=' or '#'", s.Name)
		}
	}
	if s.Scheme != "" && !validHeaderName(s.Scheme) {
		return fmt.Errorf("token_from header %s %q: not a valid authentication scheme", s.Name, s.Scheme)
	}
	return nil
}

// checkClaimHeader refuses a claim_header whose arguments are the wrong way
// round ("claim_header X-User-Email email", as request_header writes
// them), whose claim path is not one, or whose header name is invalid.
func checkClaimHeader(ch ClaimHeader) error {
	if looksLikeHeaderName(ch.Claim) && !looksLikeHeaderName(ch.Header) {
		return fmt.Errorf("claim_header %s %s: the claim comes first, then the header: did you mean `claim_header %s %s`?", ch.Claim, ch.Header, ch.Header, ch.Claim)
	}
	if err := checkClaimPath("claim_header", ch.Claim); err != nil {
		return err
	}
	return checkHeaderName("claim_header", ch.Header)
}

// looksLikeHeaderName reports whether s looks like an extension header name
// (X-Something) rather than a claim.
func looksLikeHeaderName(s string) bool {
	return len(s) > 2 && (s[0] == 'X' || s[0] == 'x') && s[1] == '-'
}

// checkClaimPath refuses claim paths with spaces or '=', which are never
// claim names but a value written into the path.
func checkClaimPath(option, path string) error {
	if name, value, ok := strings.Cut(path, "="); ok && option == "require_claim" {
		return fmt.Errorf("require_claim %s: the value is a separate argument: did you mean `require_claim %s %s`?", path, name, value)
	}
	if strings.ContainsAny(path, " \t=") {
		return fmt.Errorf("%s: %q is not a claim path (no spaces or '=')", option, path)
	}
	return nil
}

// checkAudiences refuses an audience containing a comma: "api,web" is one
// literal audience no token carries; several are separate arguments.
func checkAudiences(auds []string) error {
	for _, a := range auds {
		if strings.Contains(a, ",") {
			return fmt.Errorf("audience %q contains a comma: list several audiences separated by spaces, `audience %s`", a, strings.Join(strings.FieldsFunc(a, isCommaOrSpace), " "))
		}
	}
	return nil
}

// isCommaOrSpace separates the values of a comma-separated list.
func isCommaOrSpace(r rune) bool { return r == ',' || r == ' ' }

// checkIssuerURL refuses a discovery document's address given as the
// issuer: tokens carry the issuer, which the address only starts with.
func checkIssuerURL(is *IssuerConfig) error {
	if err := checkHTTPIssuer(is); err != nil {
		return err
	}
	if before, _, ok := strings.Cut(is.Issuer, "/.well-known/"); ok {
		return fmt.Errorf("issuer %s is a discovery document's address; write the issuer, which tokens carry as iss: `issuer %s`", is.Issuer, before)
	}
	return nil
}

// checkHTTPIssuer refuses an http issuer on a host other than loopback
// without insecure_allow_http, naming the option.
func checkHTTPIssuer(is *IssuerConfig) error {
	if is.InsecureAllowHTTP || strings.Contains(is.Issuer, "{") {
		return nil
	}
	u, err := url.Parse(is.Issuer)
	if err != nil || !strings.EqualFold(u.Scheme, "http") || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("issuer %s uses http: tokens and keys would travel unprotected; use https, or, for a provider on a private network, add `insecure_allow_http` (in the issuer block, or at top level with one issuer)", is.Issuer)
}

// checkAlgorithms refuses "none", HMAC and unknown algorithm names.
func checkAlgorithms(algs []string) error {
	known := identity.DefaultAlgorithms()
	for _, a := range algs {
		if strings.EqualFold(a, "none") {
			return errors.New(`algorithm "none" is never accepted`)
		}
		if strings.HasPrefix(strings.ToUpper(a), "HS") {
			return fmt.Errorf("algorithm %q: HMAC algorithms are not supported for issuer-signed tokens", a)
		}
		if !slices.Contains(known, a) {
			return fmt.Errorf("unknown algorithm %q (known: %s)", a, strings.Join(known, " "))
		}
	}
	return nil
}

// checkIssuerMatch checks the template, tenant and alias settings of an
// issuer. The validator checks them again; this gives `caddy validate` and
// `caddy adapt` users the Caddyfile's own words.
func checkIssuerMatch(is *IssuerConfig) error {
	switch strings.Count(is.Issuer, identity.TenantPlaceholder) {
	case 0:
		if len(is.Tenants) > 0 || is.AnyTenant {
			return fmt.Errorf("tenants need an issuer template containing %s", identity.TenantPlaceholder)
		}
	case 1:
		if len(is.Tenants) == 0 && !is.AnyTenant {
			return fmt.Errorf("an issuer template with %s needs `tenants <tid...>` (or, at your own risk, `tenants any`)", identity.TenantPlaceholder)
		}
		if len(is.Tenants) > 0 && is.AnyTenant {
			return errors.New("a list of tenants and `tenants any` (any_tenant) are exclusive: keep one")
		}
		if slices.Contains(is.Tenants, "") {
			return errors.New("empty tenant ID")
		}
		if is.JWKSURL == "" && is.JWKSFile == "" {
			return errors.New("an issuer template has no discovery document: set jwks_url or jwks_file")
		}
		if len(is.Aliases) > 0 {
			return errors.New("aliases are not allowed with an issuer template")
		}
	default:
		return fmt.Errorf("an issuer template contains %s once", identity.TenantPlaceholder)
	}
	for _, a := range is.Aliases {
		if a == "" || a == is.Issuer {
			return fmt.Errorf("alias %q is empty or the issuer itself", a)
		}
	}
	return nil
}

// checkAuthorizedParties refuses empty client IDs and a claim name without
// client IDs to check it against.
func checkAuthorizedParties(parties []string, claim string) error {
	if slices.Contains(parties, "") {
		return errors.New("authorized_party: empty client ID")
	}
	if claim != "" && len(parties) == 0 {
		return errors.New("authorized_party_claim needs authorized_party client IDs")
	}
	return nil
}

// checkClaimRules reports claim rules without a claim path.
func checkClaimRules(rules []ClaimRule) error {
	for _, r := range rules {
		if r.Claim == "" {
			return errors.New("require_claim needs a claim path")
		}
		if err := checkClaimPath("require_claim", r.Claim); err != nil {
			return err
		}
	}
	return nil
}

// checkScopes refuses empty scope names and names with characters that
// RFC 6749 §3.3 does not allow in a scope token.
func checkScopes(scopes []string) error {
	for _, s := range scopes {
		if s == "" {
			return errors.New("require_scope: empty scope")
		}
		if strings.Contains(s, ",") {
			return fmt.Errorf("require_scope %q contains a comma: list several scopes separated by spaces, `require_scope %s`", s, strings.Join(strings.FieldsFunc(s, isCommaOrSpace), " "))
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c <= 0x20 || c == '"' || c == '\\' || c >= 0x7f {
				return fmt.Errorf("require_scope: invalid scope %q", s)
			}
		}
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 field name (token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// compileIssuer builds the validator configuration and the authorization
// policy of one issuer, obtaining its shared key source from the pool.
func (h *Handler) compileIssuer(ctx caddy.Context, repl *caddy.Replacer, is *IssuerConfig, su *setup) (identity.IssuerConfig, *issuerPolicy, error) {
	issuer := repl.ReplaceKnown(is.Issuer, "")
	if err := checkHTTPIssuer(&IssuerConfig{Issuer: issuer, InsecureAllowHTTP: is.InsecureAllowHTTP}); err != nil {
		return identity.IssuerConfig{}, nil, err
	}
	cfg := identity.IssuerConfig{
		Issuer:               issuer,
		Aliases:              replaceAll(repl, is.Aliases),
		Tenants:              replaceAll(repl, is.Tenants),
		AnyTenant:            is.AnyTenant,
		Audiences:            is.Audiences,
		AnyAudience:          is.AnyAudience,
		AuthorizedParties:    is.AuthorizedParties,
		AuthorizedPartyClaim: is.AuthorizedPartyClaim,
		Algorithms:           is.Algorithms,
		Types:                is.TokenTypes,
		MaxAge:               time.Duration(h.MaxAge),
		Now:                  su.now,
	}
	if len(cfg.AuthorizedParties) == 0 {
		cfg.AuthorizedParties = h.AuthorizedParties
		cfg.AuthorizedPartyClaim = h.AuthorizedPartyClaim
	}
	if len(cfg.AuthorizedParties) > 0 {
		cfg.AuthorizedParties = replaceAll(repl, cfg.AuthorizedParties)
	}
	if len(cfg.Audiences) == 0 && !cfg.AnyAudience {
		cfg.Audiences = h.Audiences
		cfg.AnyAudience = h.AnyAudience
	}
	if len(cfg.Audiences) > 0 {
		cfg.Audiences = replaceAll(repl, cfg.Audiences)
	} else if !cfg.AnyAudience {
		cfg.Audiences = []string{noBearerAudience} // login without bearer tokens (checkConfig)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = h.Algorithms
	}
	if len(cfg.Types) == 0 {
		cfg.Types = h.TokenTypes
	}
	if su.leeway == 0 {
		cfg.Leeway = -1 // the library treats 0 as "default"
	} else {
		cfg.Leeway = su.leeway
	}

	switch {
	case is.JWKSFile != "":
		path := repl.ReplaceKnown(is.JWKSFile, "")
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, nil, fmt.Errorf("jwks_file: %w", err)
		}
		ks, err := identity.ParseKeySet(data)
		if err != nil {
			return cfg, nil, fmt.Errorf("jwks_file %s: %w", path, err)
		}
		cfg.Keys = ks
	default:
		p, err := h.auth.keys.acquire(ctx, su.metrics, su.logger, su.slog, issuer, repl.ReplaceKnown(is.JWKSURL, ""), is.InsecureAllowHTTP, replaceAll(repl, is.JWKSURIBases))
		if err != nil {
			return cfg, nil, err
		}
		cfg.Keys = p
	}

	pol := &issuerPolicy{issuer: issuer, keys: cfg.Keys}
	pol.scopes = append(slices.Clone(h.RequireScopes), is.RequireScopes...)
	for _, r := range slices.Concat(h.RequireClaims, is.RequireClaims) {
		pol.claims = append(pol.claims, claimRule{path: r.Claim, values: r.Values})
	}
	pol.compileChallenge(su.realm)
	return cfg, pol, nil
}

// checkJWKSURIBases requires absolute https URL prefixes (http on a
// loopback host or with insecure_allow_http), and discovery to apply them
// to.
func checkJWKSURIBases(is *IssuerConfig) error {
	if len(is.JWKSURIBases) == 0 {
		return nil
	}
	if is.JWKSURL != "" || is.JWKSFile != "" {
		return errors.New("jwks_uri_bases apply to discovery; with jwks_url or jwks_file there is none")
	}
	for _, b := range is.JWKSURIBases {
		if strings.Contains(b, "{") {
			continue // a placeholder, checked once replaced
		}
		u, err := url.Parse(b)
		httpOK := is.InsecureAllowHTTP || (err == nil && isLoopback(u.Hostname()))
		if err != nil || u.Host == "" || (u.Scheme != "https" && (u.Scheme != "http" || !httpOK)) ||
			u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("jwks_uri base %q must be an https URL prefix (scheme, host, optional path)", b)
		}
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback address, where
// plain http is as safe as https (the library's rule for issuers).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkPlaceholders refuses an option whose value is empty only because
// its placeholders are, such as `issuer {env.OIDC_ISSUER}` with the
// variable unset: the value would otherwise fail far from its cause (an
// issuer "" that is "not an absolute URL"). It names the placeholder.
func (h *Handler) checkPlaceholders(repl *caddy.Replacer) error {
	type value struct{ option, raw string }
	vals := make([]value, 0, 8)
	add := func(option string, raws ...string) {
		for _, r := range raws {
			vals = append(vals, value{option, r})
		}
	}
	add("audience", h.Audiences...)
	add("authorized_party", h.AuthorizedParties...)
	if o := h.DPoPOptions; o != nil && o.Nonce != nil {
		add("dpop nonce secret", o.Nonce.Secret)
	}
	for i := range h.Issuers {
		is := &h.Issuers[i]
		add("issuer", is.Issuer)
		add("jwks_url", is.JWKSURL)
		add("jwks_file", is.JWKSFile)
		add("alias", is.Aliases...)
		add("tenants", is.Tenants...)
		add("audience", is.Audiences...)
		add("authorized_party", is.AuthorizedParties...)
		add("jwks_uri_base", is.JWKSURIBases...)
		if c := is.Introspection; c != nil {
			add("introspection endpoint", c.Endpoint)
			add("introspection client_id", c.ClientID)
			add("introspection client_secret", c.ClientSecret)
			add("introspection key_file", c.KeyFile)
		}
	}
	add("introspection_order", h.IntrospectionOrder...)
	for _, v := range vals {
		if v.raw == "" || !strings.Contains(v.raw, "{") || repl.ReplaceKnown(v.raw, "") != "" {
			continue
		}
		ph := v.raw
		if start := strings.IndexByte(ph, '{'); start >= 0 {
			if end := strings.IndexByte(ph[start:], '}'); end > 0 {
				ph = ph[start : start+end+1]
			}
		}
		if name, ok := strings.CutPrefix(strings.Trim(ph, "{}"), "env."); ok {
			return fmt.Errorf("%s %s is empty: the environment variable %s is not set (or empty)", v.option, ph, name)
		}
		return fmt.Errorf("%s %s is empty: its placeholder has no value when the configuration is loaded", v.option, ph)
	}
	return nil
}

// replaceAll expands global placeholders such as {env.*} in every element.
func replaceAll(repl *caddy.Replacer, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = repl.ReplaceKnown(s, "")
	}
	return out
}

// Validate checks the provisioned handler.
func (h *Handler) Validate() error {
	if h.auth.validator == nil {
		return errors.New("handler not provisioned")
	}
	return nil
}

// Cleanup has every stage release what it acquired: the shared key
// caches, the token and introspection caches and clients, the DPoP
// replay cache, the store, the sign-in stage's ended lists, the upstream
// token clients and the rejection summary. A stage Provision did not get
// to has nothing to release.
func (h *Handler) Cleanup() error {
	untrackHandler(&h.auth)
	errs := []error{h.auth.cleanup()}
	if h.login != nil {
		errs = append(errs, h.login.cleanup())
	}
	errs = append(errs, h.dpop.cleanup(), h.releaseStore())
	if h.upstream != nil {
		errs = append(errs, h.upstream.close())
	}
	h.refuser.cleanup()
	return errors.Join(errs...)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
