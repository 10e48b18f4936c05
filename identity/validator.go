package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Validation defaults.
const (
	// DefaultLeeway is the clock skew tolerated, in both directions, on
	// "exp", "nbf" and "iat" when an [IssuerConfig] sets none.
	DefaultLeeway = 60 * time.Second
	// DefaultMaxTokenBytes caps the length of a token before any decoding.
	DefaultMaxTokenBytes = 8 << 10
	// DefaultRefreshWait bounds how long a validation waits for keys to
	// be fetched when [ValidatorOptions] sets no RefreshWait.
	DefaultRefreshWait = 3 * time.Second
)

// DefaultAlgorithms returns the asymmetric JWS algorithms accepted when an
// issuer's key source advertises none: RS256/384/512, PS256/384/512,
// ES256/384/512 and EdDSA. HMAC algorithms are never a default.
func DefaultAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// hmacMinSecret reports whether alg is an HMAC algorithm and the minimum
// length of its secret (the hash output size, RFC 7518 §3.2).
func hmacMinSecret(alg string) (int, bool) {
	switch alg {
	case "HS256":
		return 32, true
	case "HS384":
		return 48, true
	case "HS512":
		return 64, true
	}
	return 0, false
}

// isAsymmetric reports whether alg is one of [DefaultAlgorithms].
func isAsymmetric(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

// TenantPlaceholder marks the tenant segment of an issuer template, as in
// the literal "issuer" of Microsoft Entra ID's multi-tenant discovery
// documents: "https://login.microsoftonline.com/{tenantid}/v2.0".
const TenantPlaceholder = "{tenantid}"

// maxTenantIDLen bounds a tenant ID (an Entra tenant ID is a 36-character
// GUID); longer values are not tenant IDs.
const maxTenantIDLen = 128

// IssuerConfig is what a [Validator] accepts from one issuer.
type IssuerConfig struct {
	// Issuer is the exact "iss" value (no normalization, trailing slash
	// included), or an issuer template containing [TenantPlaceholder]
	// once (see Tenants). A validated token's [Token.Issuer] is this
	// string, whichever spelling or tenant the token's "iss" has.
	Issuer string
	// Aliases are further exact "iss" values accepted for this issuer,
	// for a provider that issues more than one spelling of its
	// identifier: Google ID tokens carry "https://accounts.google.com" or
	// "accounts.google.com". They select the same keys and rules as
	// Issuer; no other normalization is ever applied. Not allowed with an
	// issuer template.
	Aliases []string
	// Tenants makes Issuer a template for the issuers of several tenants
	// of one multi-tenant provider (Microsoft Entra ID "common" and
	// "organizations": "https://login.microsoftonline.com/{tenantid}/v2.0",
	// or v1 "https://sts.windows.net/{tenantid}/"). A token is then
	// accepted only when its "tid" claim is one of Tenants and its "iss"
	// equals the template with [TenantPlaceholder] replaced by that tid,
	// exactly. Tenant IDs are compared exactly. Required with a template
	// unless AnyTenant is set; not allowed without one.
	Tenants []string
	// AnyTenant accepts every tenant of a template issuer (still with
	// "iss" equal to the template filled in with "tid"). Risky: the
	// provider's keys sign for all its tenants, so a token any tenant's
	// administrator obtains for this audience is accepted; check the
	// tenant or the user in your application then.
	AnyTenant bool
	// AuthorizedParties, when set, lists the client IDs the token may have
	// been issued to: the claim named by AuthorizedPartyClaim must be
	// present, a string, and one of them. Empty means no check. It suits
	// access tokens; for ID tokens use [Validator.ValidateIDToken], whose
	// azp rules (OpenID Connect Core §3.1.3.7) accept the ordinary
	// single-audience ID token without azp, which this check would refuse.
	AuthorizedParties []string
	// AuthorizedPartyClaim names the claim (a path as in [Claims.Get])
	// holding the client ID checked against AuthorizedParties; "" means
	// "azp" (OpenID Connect, Entra v2, Keycloak, Google). Others put the
	// client elsewhere: "appid" (Entra v1), "cid" (Okta), "client_id"
	// (RFC 9068, AWS Cognito access tokens, Duende).
	AuthorizedPartyClaim string
	// Keys supplies the verification keys; required unless only HMAC
	// algorithms are used. Keys named by the token itself (jku, x5u, x5c,
	// jwk headers) are never used.
	Keys KeySource
	// Audiences lists the accepted "aud" values; the token's aud must
	// contain at least one. Required unless AnyAudience is set.
	Audiences []string
	// AnyAudience explicitly disables the audience check.
	AnyAudience bool
	// Algorithms is the allow-list of JWS algorithms. Empty means the
	// asymmetric algorithms the key source advertises (see
	// [AlgorithmAdvertiser]) or, when it advertises none,
	// [DefaultAlgorithms]. "none" is refused in any letter case. HS256,
	// HS384 and HS512 are accepted only when listed here and HMACSecret
	// is set, and HMAC tokens are verified with that secret only.
	Algorithms []string
	// HMACSecret is the shared secret for HS* algorithms; at least as long
	// as the hash output (32, 48 or 64 bytes).
	HMACSecret []byte
	// Leeway is the clock skew tolerated on exp, nbf and iat; 0 means
	// [DefaultLeeway], a negative value none.
	Leeway time.Duration
	// AllowMissingExp accepts tokens without "exp" (never expiring).
	AllowMissingExp bool
	// AllowMissingIssuedAt accepts tokens without "iat".
	AllowMissingIssuedAt bool
	// RequiredClaims must be present and not null; dotted paths as in
	// [Claims.Get].
	RequiredClaims []string
	// Types lists the accepted "typ" header values, compared without
	// letter case and with the "application/" prefix optional, e.g.
	// "at+jwt" for RFC 9068 access tokens. Empty means no check.
	Types []string
	// Nonce, when set, must equal the "nonce" claim. A nonce belongs to one
	// login: pass it in [IDTokenCheck] to [Validator.ValidateIDToken]
	// instead, so that one Validator serves every login.
	Nonce string
	// MaxAge, when positive, bounds now - iat (iat then required).
	MaxAge time.Duration
	// Now returns the current time; nil means [time.Now].
	Now func() time.Time
}

// ValidatorOptions are the settings shared by all issuers of a [Validator].
type ValidatorOptions struct {
	// MaxTokenBytes caps the token length; 0 or less means
	// [DefaultMaxTokenBytes].
	MaxTokenBytes int
	// Logger receives debug records about key refreshes; nil discards.
	Logger *slog.Logger
	// RefreshWait bounds, in all, how long one validation waits for its
	// key source to fetch keys: an unknown kid, no keys yet, or a refresh
	// after a signature failure. Past it the validation fails with
	// ErrKeyNotFound, or ErrProviderUnavailable when the source holds no
	// keys at all, while the fetch goes on in the background (bounded by
	// the source's HTTP timeout) for the requests that follow. A hanging
	// provider then holds no request longer than this. 0 means
	// [DefaultRefreshWait]; negative means no bound beyond ctx. Only
	// sources that refresh ([RefreshableKeySource]) are bounded.
	RefreshWait time.Duration
	// DecodeClaims names the claims (paths as in [Claims.Get]) the caller
	// reads from every validated token, such as the claims it forwards or
	// authorizes on. Validate decodes these with the claims its checks
	// read (the registered claims, and the tid, authorized party, nonce
	// and required claims the issuers' rules name); any other claim is
	// decoded from the payload the first time it is read, which is the
	// whole payload decoded a second time. The payload is checked in full
	// in every case, so the verdict on a token never depends on it.
	DecodeClaims []string
}

// Token is a token that passed validation.
type Token struct {
	Claims    *Claims // the verified payload
	Issuer    string  // the configured issuer that accepted it
	Algorithm string  // header "alg"
	KeyID     string  // header "kid", "" when absent
	Type      string  // header "typ", "" when absent
	// KeyThumbprint is the RFC 7638 thumbprint of the key that verified
	// the signature ("" for HMAC); see [Validator.KeyStillValid].
	KeyThumbprint string
}

// Validator validates signed JWTs (JWS compact serialization) from one or
// more issuers. It is immutable and safe for concurrent use; key sources do
// their own caching.
type Validator struct {
	// issuers holds every issuer by its configured name; exact by every
	// "iss" value accepted as is (issuers that are not templates, and
	// aliases); templates the template issuers in configuration order.
	issuers   map[string]*issuerRules
	exact     map[string]*issuerRules
	templates []*issuerRules
	names     []string
	anyAlg    map[string]bool // union of the static allow-lists
	maxBytes  int
	log       *slog.Logger
	// refreshWait is ValidatorOptions.RefreshWait normalized: 0 for no
	// bound.
	refreshWait time.Duration
	// decoded are the top-level claims Validate decodes with the checks
	// (see ValidatorOptions.DecodeClaims); idDecoded adds those
	// ValidateIDToken reads.
	decoded, idDecoded claimNames
}

// issuerRules is a checked, private copy of an IssuerConfig.
type issuerRules struct {
	cfg         IssuerConfig
	algs        map[string]bool // nil: advertised or default algorithms
	advertiser  AlgorithmAdvertiser
	refreshable RefreshableKeySource
	leeway      time.Duration
	types       []string
	now         func() time.Time
	// tmplPrefix and tmplSuffix surround TenantPlaceholder in a template
	// issuer; tenants is its allow-list (nil with AnyTenant).
	tmplPrefix, tmplSuffix string
	template               bool
	tenants                map[string]bool
	azpClaim               string
}

// NewValidator checks the configuration of each issuer and returns a
// validator for all of them. Issuers must be distinct.
func NewValidator(issuers []IssuerConfig, opts ValidatorOptions) (*Validator, error) {
	if len(issuers) == 0 {
		return nil, errors.New("identity: validator needs at least one issuer")
	}
	v := &Validator{
		issuers:  make(map[string]*issuerRules, len(issuers)),
		exact:    make(map[string]*issuerRules, len(issuers)),
		anyAlg:   map[string]bool{},
		maxBytes: opts.MaxTokenBytes,
		log:      opts.Logger,
	}
	if v.maxBytes <= 0 {
		v.maxBytes = DefaultMaxTokenBytes
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.RefreshWait == 0:
		v.refreshWait = DefaultRefreshWait
	case opts.RefreshWait > 0:
		v.refreshWait = opts.RefreshWait
	}
	for _, cfg := range issuers {
		r, err := newIssuerRules(cfg)
		if err != nil {
			return nil, err
		}
		if _, dup := v.issuers[cfg.Issuer]; dup {
			return nil, fmt.Errorf("identity: issuer %q configured twice", cfg.Issuer)
		}
		v.issuers[cfg.Issuer] = r
		if r.template {
			v.templates = append(v.templates, r)
		}
		for _, name := range r.exactNames() {
			if _, dup := v.exact[name]; dup {
				return nil, fmt.Errorf("identity: issuer %q: %q is already accepted for another issuer", cfg.Issuer, name)
			}
			v.exact[name] = r
		}
		v.names = append(v.names, cfg.Issuer)
		if r.algs == nil {
			for _, a := range DefaultAlgorithms() {
				v.anyAlg[a] = true
			}
		}
		for a := range r.algs {
			v.anyAlg[a] = true
		}
	}
	v.decoded, v.idDecoded = decodedNames(v.issuers, opts.DecodeClaims)
	return v, nil
}

// decodedNames returns the top-level claims a validation decodes up front:
// those the issuers' rules read and those the caller names; idNames adds
// the claims of an ID token that [Validator.ValidateIDToken] reads.
func decodedNames(issuers map[string]*issuerRules, extra []string) (names, idNames claimNames) {
	names = claimNames{}
	for _, r := range issuers {
		if r.template {
			names.add(ClaimTenantID)
		}
		if len(r.cfg.AuthorizedParties) > 0 {
			names.add(r.azpClaim)
		}
		if r.cfg.Nonce != "" {
			names.add(ClaimNonce)
		}
		for _, c := range r.cfg.RequiredClaims {
			names.add(c)
		}
	}
	for _, c := range extra {
		names.add(c)
	}
	idNames = maps.Clone(names)
	for _, c := range [...]string{ClaimAuthorizedParty, ClaimNonce, ClaimAuthTime, ClaimAccessTokenHash, ClaimCodeHash} {
		idNames.add(c)
	}
	return names, idNames
}

func newIssuerRules(cfg IssuerConfig) (*issuerRules, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("identity: issuer %q: "+format, append([]any{cfg.Issuer}, args...)...)
	}
	if cfg.Issuer == "" {
		return nil, fmt.Errorf("%w: IssuerConfig.Issuer is empty", ErrMissingIssuer)
	}
	if cfg.Keys == nil && cfg.HMACSecret == nil {
		return nil, fail("Keys or HMACSecret required")
	}
	if cfg.AnyAudience == (len(cfg.Audiences) > 0) {
		return nil, fail("set either Audiences or AnyAudience")
	}
	if slices.Contains(cfg.Audiences, "") {
		return nil, fail("empty audience")
	}
	if cfg.MaxAge < 0 {
		return nil, fail("negative MaxAge")
	}
	if slices.Contains(cfg.RequiredClaims, "") {
		return nil, fail("empty required claim name")
	}
	// Private copies: the caller may reuse its slices.
	cfg.Audiences = slices.Clone(cfg.Audiences)
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	cfg.HMACSecret = slices.Clone(cfg.HMACSecret)
	cfg.RequiredClaims = slices.Clone(cfg.RequiredClaims)
	cfg.Aliases = slices.Clone(cfg.Aliases)
	cfg.Tenants = slices.Clone(cfg.Tenants)
	cfg.AuthorizedParties = slices.Clone(cfg.AuthorizedParties)
	r := &issuerRules{cfg: cfg, leeway: cfg.Leeway, now: cfg.Now}
	if err := r.compileIssuerMatch(); err != nil {
		return nil, fail("%v", err)
	}
	if slices.Contains(cfg.AuthorizedParties, "") {
		return nil, fail("empty authorized party")
	}
	r.azpClaim = cfg.AuthorizedPartyClaim
	if r.azpClaim == "" {
		r.azpClaim = ClaimAuthorizedParty
	} else if len(cfg.AuthorizedParties) == 0 {
		return nil, fail("AuthorizedPartyClaim set without AuthorizedParties")
	}
	if r.leeway == 0 {
		r.leeway = DefaultLeeway
	} else if r.leeway < 0 {
		r.leeway = 0
	}
	if r.now == nil {
		r.now = time.Now
	}
	hasHMAC := false
	if len(cfg.Algorithms) > 0 {
		r.algs = make(map[string]bool, len(cfg.Algorithms))
		for _, a := range cfg.Algorithms {
			switch minLen, isHMAC := hmacMinSecret(a); {
			case strings.EqualFold(a, "none"):
				return nil, fmt.Errorf("%w: issuer %q: \"none\" cannot be allowed", ErrAlgNone, cfg.Issuer)
			case isHMAC:
				if len(cfg.HMACSecret) < minLen {
					return nil, fail("%s needs an HMACSecret of at least %d bytes", a, minLen)
				}
				hasHMAC = true
			case isAsymmetric(a):
				if cfg.Keys == nil {
					return nil, fail("%s needs Keys", a)
				}
			default:
				return nil, fmt.Errorf("%w: issuer %q: unknown algorithm %q", ErrUnsupportedAlg, cfg.Issuer, a)
			}
			r.algs[a] = true
		}
	} else if cfg.Keys == nil {
		return nil, fail("HMACSecret needs an HS algorithm listed in Algorithms")
	}
	if cfg.HMACSecret != nil && !hasHMAC {
		return nil, fail("HMACSecret set but no HS algorithm listed in Algorithms")
	}
	for _, t := range cfg.Types {
		n := normalizeType(t)
		if n == "" {
			return nil, fail("empty token type")
		}
		r.types = append(r.types, n)
	}
	if cfg.Keys != nil {
		r.advertiser, _ = cfg.Keys.(AlgorithmAdvertiser)
		r.refreshable, _ = cfg.Keys.(RefreshableKeySource)
	}
	return r, nil
}

// compileIssuerMatch checks the aliases and the tenant settings and splits
// a template issuer around its placeholder.
func (r *issuerRules) compileIssuerMatch() error {
	cfg := &r.cfg
	switch strings.Count(cfg.Issuer, TenantPlaceholder) {
	case 0:
		if len(cfg.Tenants) > 0 || cfg.AnyTenant {
			return fmt.Errorf("Tenants and AnyTenant need an issuer template containing %s", TenantPlaceholder)
		}
	case 1:
		r.template = true
		r.tmplPrefix, r.tmplSuffix, _ = strings.Cut(cfg.Issuer, TenantPlaceholder)
		if cfg.AnyTenant == (len(cfg.Tenants) > 0) {
			return errors.New("an issuer template needs either Tenants or AnyTenant")
		}
		if len(cfg.Aliases) > 0 {
			return errors.New("Aliases are not allowed with an issuer template")
		}
		if len(cfg.Tenants) > 0 {
			r.tenants = make(map[string]bool, len(cfg.Tenants))
			for _, t := range cfg.Tenants {
				if !validTenantID(t) {
					return fmt.Errorf("invalid tenant ID %q", truncate(t, 64))
				}
				r.tenants[t] = true
			}
		}
	default:
		return fmt.Errorf("an issuer template contains %s once", TenantPlaceholder)
	}
	for _, a := range cfg.Aliases {
		if a == "" || a == cfg.Issuer || strings.Contains(a, TenantPlaceholder) {
			return fmt.Errorf("invalid alias %q (empty, the issuer itself, or a template)", a)
		}
	}
	return nil
}

// exactNames returns the "iss" values accepted as they are: the issuer
// unless it is a template, and the aliases.
func (r *issuerRules) exactNames() []string {
	if r.template {
		return nil
	}
	return append([]string{r.cfg.Issuer}, r.cfg.Aliases...)
}

// validTenantID reports whether s can be a tenant segment of an issuer: a
// single path segment of letters, digits, '-', '_' and '.', not "." or "..",
// at most maxTenantIDLen bytes. Entra tenant IDs are GUIDs.
func validTenantID(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > maxTenantIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// lookupIssuer returns the rules for the token's iss: an exact issuer or
// alias first, else the first template (in configuration order) whose
// prefix and suffix surround a valid tenant segment, with that segment.
func (v *Validator) lookupIssuer(iss string) (*issuerRules, string, bool) {
	if r, ok := v.exact[iss]; ok {
		return r, "", true
	}
	for _, r := range v.templates {
		if len(iss) <= len(r.tmplPrefix)+len(r.tmplSuffix) ||
			!strings.HasPrefix(iss, r.tmplPrefix) || !strings.HasSuffix(iss, r.tmplSuffix) {
			continue
		}
		if seg := iss[len(r.tmplPrefix) : len(iss)-len(r.tmplSuffix)]; validTenantID(seg) {
			return r, seg, true
		}
	}
	return nil, "", false
}

// checkTenant applies a template issuer's tenant rules once the signature
// is verified: "tid" must be a string, the template filled in with it must
// be the token's "iss" (so tid names the segment the issuer was matched
// on), and it must be allowed.
func (r *issuerRules) checkTenant(c *Claims, segment string) error {
	v, ok := c.member(ClaimTenantID)
	if !ok {
		return &ClaimError{Claim: ClaimTenantID, Reason: "missing"}
	}
	tid, ok := v.(string)
	if !ok {
		return malformedClaim(ClaimTenantID)
	}
	if tid != segment || r.tmplPrefix+tid+r.tmplSuffix != c.Issuer {
		return &ClaimError{Claim: ClaimIssuer, Reason: "issuer does not match the tenant"}
	}
	if r.tenants != nil && !r.tenants[tid] {
		return &ClaimError{Claim: ClaimTenantID, Reason: "tenant not accepted"}
	}
	return nil
}

// normalizeType lower-cases a media type and drops "application/".
func normalizeType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}

// allows reports whether alg is on this issuer's allow-list, computed from
// the advertised algorithms when none is configured.
func (r *issuerRules) allows(alg string) bool {
	if r.algs != nil {
		return r.algs[alg]
	}
	if !isAsymmetric(alg) {
		return false
	}
	if r.advertiser != nil {
		if adv := r.advertiser.AdvertisedAlgorithms(); adv != nil {
			return slices.Contains(adv, alg)
		}
	}
	return true
}

// Issuers returns the configured issuers in configuration order.
func (v *Validator) Issuers() []string { return slices.Clone(v.names) }

// KeyStillValid reports, without I/O, whether the key with this thumbprint
// is still published by issuer's key source, so that a cache of validated
// tokens can drop tokens whose key was withdrawn. The empty thumbprint
// (HMAC) is valid while the issuer has a secret.
func (v *Validator) KeyStillValid(issuer, thumbprint string) bool {
	r, ok := v.issuers[issuer]
	if !ok {
		return false
	}
	if thumbprint == "" {
		return r.cfg.HMACSecret != nil
	}
	return r.cfg.Keys != nil && r.cfg.Keys.HasKey(thumbprint)
}

// unknownIssuerError is returned when the token's iss is absent or not
// configured. It matches both [ErrUnknownIssuer] and, through its
// [*ClaimError] for "iss", [ErrClaimValidation].
type unknownIssuerError struct {
	claim *ClaimError
	iss   string
}

func (e *unknownIssuerError) Error() string {
	if e.iss == "" {
		return "identity: unknown issuer: token has no iss"
	}
	return fmt.Sprintf("identity: unknown issuer %q", truncate(e.iss, 128))
}

func (e *unknownIssuerError) Unwrap() []error { return []error{ErrUnknownIssuer, e.claim} }

// Validate checks token and returns it with its claims. The checks run in
// this order, and the first failure is returned:
//
//   - length against the cap ([ErrTokenTooLarge]), before any decoding;
//   - compact JWS structure: exactly three base64url parts (a JWE is
//     refused), header and payload JSON objects without duplicate members
//     ([ErrMalformed]);
//   - alg "none" in any letter case ([ErrAlgNone]), then the allow-list
//     ([ErrUnsupportedAlg]), then crit and b64=false ([ErrUnsupportedHeader]);
//   - the unverified iss must be a configured issuer or alias, or fit an
//     issuer template around a tenant segment ([ErrUnknownIssuer], which is
//     also a [*ClaimError] for "iss");
//   - the header members go-jose interprets ("jwk", "x5c", "nonce") must
//     be well-formed, though never used ([ErrMalformed]);
//   - the signature, verified with the standard library over the bytes
//     already parsed, with that issuer's candidate keys for the token's kid
//     and alg (jku, x5u, x5c and jwk headers are ignored); when none
//     verifies and the source is a [RefreshableKeySource], it is refreshed
//     once (unless its rate limit answers at once) and the new keys are
//     tried, the waits for keys bounded by [ValidatorOptions].RefreshWait
//     in all ([ErrKeyNotFound], [ErrSignature], [ErrUnsupportedAlg] or
//     [ErrKeyConversion] for unusable keys, and [ErrProviderUnavailable]
//     wrapping any other key source failure, or the end of the wait with
//     no keys held);
//   - claim types; for a template issuer, tid present and allowed and iss
//     equal to the template filled in with it; aud, the authorized party,
//     exp, nbf, iat, max age, typ header, nonce and required claims
//     ([*ClaimError], Claim naming the claim or "typ").
func (v *Validator) Validate(ctx context.Context, token string) (*Token, error) {
	if v == nil || v.issuers == nil {
		return nil, notInitialized("Validator", "NewValidator")
	}
	return v.validate(ctx, token, v.decoded)
}

// validate is Validate decoding the claims named in names up front.
func (v *Validator) validate(ctx context.Context, token string, names claimNames) (*Token, error) {
	jws, err := parseCompact(token, v.maxBytes)
	if err != nil {
		return nil, err
	}
	h := &jws.header
	if strings.EqualFold(h.alg, "none") {
		return nil, ErrAlgNone
	}
	if !v.anyAlg[h.alg] {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlg, truncate(h.alg, 32))
	}
	if err := h.checkCritical(); err != nil {
		return nil, err
	}
	if err := h.checkJOSEMembers(); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	claims, err := jws.claims(names)
	if err != nil {
		return nil, err
	}
	if claims.malformed&(1<<typedIss) != 0 {
		return nil, malformedClaim(ClaimIssuer)
	}
	r, tenant, ok := v.lookupIssuer(claims.Issuer)
	if !ok {
		reason := "unknown issuer"
		if !claims.has(typedIss) {
			reason = "missing"
		}
		return nil, &unknownIssuerError{claim: &ClaimError{Claim: ClaimIssuer, Reason: reason}, iss: claims.Issuer}
	}
	if !r.allows(h.alg) {
		return nil, fmt.Errorf("%w: %q for issuer %q", ErrUnsupportedAlg, h.alg, r.cfg.Issuer)
	}
	if len(jws.signature) == 0 {
		return nil, fmt.Errorf("%w: no signature", ErrSignature)
	}
	thumbprint, err := v.verify(ctx, r, jws)
	if err != nil {
		return nil, err
	}
	if err := claims.typeError(); err != nil {
		return nil, err
	}
	if r.template {
		if err := r.checkTenant(claims, tenant); err != nil {
			return nil, err
		}
	}
	if err := r.checkClaims(claims, h.typ); err != nil {
		return nil, err
	}
	return &Token{
		Claims:        claims,
		Issuer:        r.cfg.Issuer,
		Algorithm:     h.alg,
		KeyID:         h.kid,
		Type:          h.typ,
		KeyThumbprint: thumbprint,
	}, nil
}

// verify checks the signature over the bytes parseCompact already holds
// and returns the thumbprint of the key that verified it. A request that
// has to wait for keys (none in hand for kid and alg, or a refresh after a
// failure) waits at most v.refreshWait in all, however many fetches that
// takes; the fetches themselves go on in the background.
func (v *Validator) verify(ctx context.Context, r *issuerRules, jws *compactJWS) (string, error) {
	h, sig := &jws.header, jws.signature
	if _, isHMAC := hmacMinSecret(h.alg); isHMAC {
		// Only the configured secret, never a key from the source.
		if verifySignature(h.alg, r.cfg.HMACSecret, jws.signingInput, sig) != nil {
			return "", ErrSignature
		}
		return "", nil
	}
	w := keyWait{v: v, ctx: ctx}
	defer w.done()
	keys, err := w.candidates(r.cfg.Keys, r.refreshable, h)
	if err == nil {
		var tp string
		if tp, err = tryKeys(keys, nil, h, jws.signingInput, sig); err == nil {
			return tp, nil
		}
	}
	if r.refreshable == nil || !(errors.Is(err, ErrSignature) || errors.Is(err, ErrKeyNotFound)) {
		return "", err
	}
	// The keys may have rotated: refresh once and try the keys not tried
	// yet. A flood of bad signatures under a published kid reaches no
	// further than this test while the source is rate-limited: no fetch,
	// no wait, no allocation, no log record.
	if kc, ok := r.refreshable.(keyCache); ok && !kc.refreshPending() {
		return "", err
	}
	ver, versioned := r.refreshable.(KeySetVersioner)
	var before uint64
	if versioned {
		before = ver.KeySetVersion(time.Now())
	}
	if rerr := r.refreshable.Refresh(w.bounded()); rerr != nil {
		v.log.DebugContext(ctx, "identity: key refresh after verification failure failed",
			slog.String("issuer", r.cfg.Issuer), slog.String("kid", h.kid), slog.Any("error", rerr))
		return "", err
	}
	if versioned && ver.KeySetVersion(time.Now()) == before {
		return "", err
	}
	fresh, err2 := r.refreshable.CandidateKeys(w.bounded(), h.kid, h.alg)
	if err2 != nil {
		if errors.Is(err2, ErrKeyNotFound) {
			return "", err
		}
		return "", w.sourceError(err2)
	}
	tp, err2 := tryKeys(fresh, keys, h, jws.signingInput, sig)
	if err2 == nil {
		return tp, nil
	}
	if errors.Is(err2, errNoNewKeys) {
		return "", err
	}
	return "", err2
}

// keyCache is implemented by this package's refreshing key sources
// ([*RemoteKeySet], [*Provider]) so that a validator pays for a bounded
// wait only when it waits.
type keyCache interface {
	// cachedCandidates returns the candidates from the keys in hand,
	// without I/O or waiting; ok is false when CandidateKeys would fetch.
	cachedCandidates(kid, alg string) (keys []Key, ok bool)
	// refreshPending reports whether Refresh would fetch now or wait for
	// a fetch in flight, rather than return at once rate-limited.
	refreshPending() bool
}

// keyWait bounds the time one validation waits for keys. The deadline is
// set the first time a wait may begin and shared by every later call, so
// that a discovery fetch, a JWKS fetch and a refresh in sequence do not add
// their waits up.
type keyWait struct {
	v      *Validator
	ctx    context.Context
	cancel context.CancelFunc
}

// bounded returns the context for a call that may wait for a fetch.
func (w *keyWait) bounded() context.Context {
	if w.cancel == nil && w.v.refreshWait > 0 {
		w.ctx, w.cancel = context.WithTimeoutCause(w.ctx, w.v.refreshWait, errRefreshWait)
	}
	return w.ctx
}

func (w *keyWait) done() {
	if w.cancel != nil {
		w.cancel()
	}
}

// candidates returns the keys for the token's kid and alg, from the keys
// in hand when the source can tell (no deadline set up then), else from
// CandidateKeys under the bounded wait.
func (w *keyWait) candidates(src KeySource, refreshable RefreshableKeySource, h *jwsHeader) ([]Key, error) {
	ctx := w.ctx
	if refreshable != nil {
		if kc, ok := refreshable.(keyCache); ok {
			if keys, ok := kc.cachedCandidates(h.kid, h.alg); ok {
				return keys, nil
			}
		}
		ctx = w.bounded()
	}
	keys, err := src.CandidateKeys(ctx, h.kid, h.alg)
	if err != nil {
		return nil, w.sourceError(err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: kid %q alg %s", ErrKeyNotFound, truncate(h.kid, 64), h.alg)
	}
	return keys, nil
}

// sourceError classifies a key source failure: anything but "no such key"
// and "provider unavailable" (e.g. the caller's context ended while keys
// were fetched) becomes ErrProviderUnavailable, since the client did
// nothing wrong; errors.Is still sees the cause.
func (w *keyWait) sourceError(err error) error {
	if errors.Is(err, ErrKeyNotFound) || errors.Is(err, ErrProviderUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
}

// errNoNewKeys means a retry found only keys already tried.
var errNoNewKeys = errors.New("identity: no new keys after refresh")

// tryKeys verifies sig over signingInput with each key that fits alg and
// is not in skip. It fails with ErrSignature when some key was tried, with
// the first key's unfitness when none fitted, and with errNoNewKeys when
// every key was skipped; a bad signature costs no allocation.
func tryKeys(keys, skip []Key, h *jwsHeader, signingInput string, sig []byte) (string, error) {
	var firstErr error
	verified := false
	for i := range keys {
		k := &keys[i]
		if slices.ContainsFunc(skip, func(s Key) bool { return s.Thumbprint == k.Thumbprint }) {
			continue
		}
		if err := checkKeyForAlg(h.alg, &k.JWK); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		verified = true
		if verifySignature(h.alg, k.JWK.Key, signingInput, sig) == nil {
			return k.Thumbprint, nil
		}
	}
	switch {
	case verified:
		return "", ErrSignature
	case firstErr != nil:
		return "", firstErr
	}
	return "", errNoNewKeys
}

// checkKeyForAlg refuses a key that go-jose would use without question:
// private material, an RSA modulus under 2048 bits, a key type or curve
// that does not fit alg, or a key whose own "alg" differs.
func checkKeyForAlg(alg string, k *jose.JSONWebKey) error {
	if k.Algorithm != "" && k.Algorithm != alg {
		return fmt.Errorf("%w: key %q is for %s, token uses %s", ErrUnsupportedAlg, k.KeyID, k.Algorithm, alg)
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("%w: key %q has use %q", ErrKeyConversion, k.KeyID, k.Use)
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		if key.N == nil || key.N.BitLen() < DefaultMinRSABits {
			return fmt.Errorf("%w: RSA key %q smaller than %d bits", ErrKeyConversion, k.KeyID, DefaultMinRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: key %q is not a public verification key (%T)", ErrKeyConversion, k.KeyID, k.Key)
	}
	if !AlgorithmFitsKey(alg, *k) {
		return fmt.Errorf("%w: %s does not fit key %q", ErrUnsupportedAlg, alg, k.KeyID)
	}
	return nil
}

// checkClaims applies the issuer's claim rules to verified claims (iss
// already selected this issuer).
func (r *issuerRules) checkClaims(c *Claims, typ string) error {
	if !r.cfg.AnyAudience {
		if !c.has(typedAud) {
			return &ClaimError{Claim: ClaimAudience, Reason: "missing"}
		}
		found := false
		for _, a := range c.Audience {
			if slices.Contains(r.cfg.Audiences, a) {
				found = true
				break
			}
		}
		if !found {
			return &ClaimError{Claim: ClaimAudience, Reason: "audience not accepted"}
		}
	}
	if len(r.cfg.AuthorizedParties) > 0 {
		v, ok := c.Get(r.azpClaim)
		if !ok || v == nil {
			return &ClaimError{Claim: r.azpClaim, Reason: "missing"}
		}
		azp, ok := v.(string)
		if !ok {
			return malformedClaim(r.azpClaim)
		}
		if !slices.Contains(r.cfg.AuthorizedParties, azp) {
			return &ClaimError{Claim: r.azpClaim, Reason: "authorized party not accepted"}
		}
	}
	now := r.now()
	if c.has(typedExp) {
		if !now.Before(c.Expiry.Add(r.leeway)) {
			return &ClaimError{Claim: ClaimExpiration, Reason: "token expired"}
		}
	} else if !r.cfg.AllowMissingExp {
		return &ClaimError{Claim: ClaimExpiration, Reason: "missing"}
	}
	if c.has(typedNbf) && now.Add(r.leeway).Before(c.NotBefore) {
		return &ClaimError{Claim: ClaimNotBefore, Reason: "token not valid yet"}
	}
	if c.has(typedIat) {
		if now.Add(r.leeway).Before(c.IssuedAt) {
			return &ClaimError{Claim: ClaimIssuedAt, Reason: "issued in the future"}
		}
		if r.cfg.MaxAge > 0 && now.Sub(c.IssuedAt) > r.cfg.MaxAge+r.leeway {
			return &ClaimError{Claim: ClaimIssuedAt, Reason: "token too old"}
		}
	} else if !r.cfg.AllowMissingIssuedAt || r.cfg.MaxAge > 0 {
		return &ClaimError{Claim: ClaimIssuedAt, Reason: "missing"}
	}
	if len(r.types) > 0 {
		if typ == "" {
			return &ClaimError{Claim: "typ", Reason: "missing token type"}
		}
		if !slices.Contains(r.types, normalizeType(typ)) {
			return &ClaimError{Claim: "typ", Reason: "token type not accepted"}
		}
	}
	if r.cfg.Nonce != "" {
		v, _ := c.member(ClaimNonce)
		n, ok := v.(string)
		if !ok || subtle.ConstantTimeCompare([]byte(n), []byte(r.cfg.Nonce)) != 1 {
			return &ClaimError{Claim: ClaimNonce, Reason: "nonce mismatch"}
		}
	}
	for _, name := range r.cfg.RequiredClaims {
		if v, ok := c.Get(name); !ok || v == nil {
			return &ClaimError{Claim: name, Reason: "missing"}
		}
	}
	return nil
}
