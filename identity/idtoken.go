package identity

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"time"
)

// IDTokenCheck is what one sign-in expects of its ID token, beyond the
// issuer's rules in [IssuerConfig]: the checks of OpenID Connect Core
// §3.1.3.7 that depend on the login (client, nonce, max_age), the hashes
// binding the token to the access token and code it came with (§3.1.3.8,
// §3.3.2.11), and, for an ID token from a refresh, the rules of §12.2. It
// belongs to one login, so one [Validator] serves every login.
type IDTokenCheck struct {
	// ClientID is the relying party's client_id (required). The token's
	// aud must contain it, and any other audience must be listed in
	// TrustedAudiences. When aud has more than one value, azp must be
	// present; when azp is present, it must equal ClientID. An ordinary
	// single-audience ID token without azp is accepted.
	ClientID string
	// TrustedAudiences are further aud values accepted beside ClientID;
	// a token naming any other audience is refused (§3.1.3.7 step 3).
	TrustedAudiences []string
	// Nonce is the nonce sent in the authentication request; when set,
	// the "nonce" claim must be present and equal (compared in constant
	// time). Leave it empty only when the request sent none.
	Nonce string
	// AccessToken is the access token received with the ID token. When
	// set and the token has at_hash, at_hash must match it; with
	// FromAuthorizationEndpoint, at_hash is required.
	AccessToken string
	// Code is the authorization code received with the ID token. When set
	// and the token has c_hash, c_hash must match it; with
	// FromAuthorizationEndpoint, c_hash is required.
	Code string
	// FromAuthorizationEndpoint says the ID token came from the
	// authorization endpoint (implicit or hybrid flow) rather than the
	// token endpoint: at_hash and c_hash are then required for the
	// AccessToken and Code given (§3.2.2.10, §3.3.2.11).
	FromAuthorizationEndpoint bool
	// MaxAge is the max_age of the authentication request; when positive,
	// auth_time is required and may be at most MaxAge (plus the issuer's
	// leeway) in the past.
	MaxAge time.Duration
	// Previous, for an ID token returned by a refresh (§12.2), holds the
	// claims of the ID token of the sign-in: iss, sub and the audiences
	// must be the same, azp present in both or neither and then equal,
	// auth_time equal when both have it, and a nonce, if present, the
	// sign-in's. Nonce is then usually empty.
	Previous *Claims
}

// nonIDTokenTypes are "typ" values of JWTs that are signed by the same
// keys but must never be taken for an ID token.
var nonIDTokenTypes = []string{"at+jwt", "logout+jwt", "dpop+jwt", "token-introspection+jwt", "secevent+jwt"}

// ValidateIDToken validates an ID token for one sign-in: everything
// [Validator.Validate] checks under the issuer's [IssuerConfig], then the
// rules of check. It also requires what every ID token has (sub, exp and
// iat) and refuses a token whose typ marks it as something else (an RFC
// 9068 access token, a logout token, a DPoP proof). Failures of check are
// [*ClaimError]s naming the claim ("aud", "azp", "nonce", "at_hash",
// "c_hash", "auth_time", "sub", "typ"); a missing ClientID fails with
// [ErrMissingClientID] before the token is looked at.
func (v *Validator) ValidateIDToken(ctx context.Context, rawIDToken string, check IDTokenCheck) (*Token, error) {
	if check.ClientID == "" {
		return nil, fmt.Errorf("%w: IDTokenCheck.ClientID", ErrMissingClientID)
	}
	if v == nil || v.issuers == nil {
		return nil, notInitialized("Validator", "NewValidator")
	}
	tok, err := v.validate(ctx, rawIDToken, v.idDecoded)
	if err != nil {
		return nil, err
	}
	r := v.issuers[tok.Issuer]
	if err := check.apply(tok, r.leeway, r.now()); err != nil {
		return nil, err
	}
	return tok, nil
}

// apply checks the login-specific rules on a validated token.
func (check *IDTokenCheck) apply(tok *Token, leeway time.Duration, now time.Time) error {
	c := tok.Claims
	if tok.Type != "" && slices.Contains(nonIDTokenTypes, normalizeType(tok.Type)) {
		return &ClaimError{Claim: "typ", Reason: "not an ID token"}
	}
	for _, i := range [...]int{typedSub, typedExp, typedIat} {
		if !c.has(i) {
			return &ClaimError{Claim: typedClaims[i], Reason: "missing"}
		}
	}
	if c.Subject == "" {
		return &ClaimError{Claim: ClaimSubject, Reason: "empty"}
	}
	if err := check.audience(c); err != nil {
		return err
	}
	if check.Nonce != "" {
		v, _ := c.member(ClaimNonce)
		n, ok := v.(string)
		if !ok || subtle.ConstantTimeCompare([]byte(n), []byte(check.Nonce)) != 1 {
			return &ClaimError{Claim: ClaimNonce, Reason: "nonce mismatch"}
		}
	}
	if err := checkTokenHash(c, ClaimAccessTokenHash, tok.Algorithm, check.AccessToken, check.FromAuthorizationEndpoint); err != nil {
		return err
	}
	if err := checkTokenHash(c, ClaimCodeHash, tok.Algorithm, check.Code, check.FromAuthorizationEndpoint); err != nil {
		return err
	}
	if check.MaxAge > 0 {
		at, ok, err := authTime(c)
		if err != nil {
			return err
		}
		if !ok {
			return &ClaimError{Claim: ClaimAuthTime, Reason: "missing"}
		}
		if now.Sub(at) > check.MaxAge+leeway {
			return &ClaimError{Claim: ClaimAuthTime, Reason: "authentication too old"}
		}
		if at.After(now.Add(leeway)) {
			return &ClaimError{Claim: ClaimAuthTime, Reason: "authentication in the future"}
		}
	}
	if check.Previous != nil {
		return check.sameLogin(c)
	}
	return nil
}

// audience applies the aud and azp rules of §3.1.3.7 steps 3 to 5.
func (check *IDTokenCheck) audience(c *Claims) error {
	if !slices.Contains(c.Audience, check.ClientID) {
		return &ClaimError{Claim: ClaimAudience, Reason: "client is not an audience"}
	}
	for _, a := range c.Audience {
		if a != check.ClientID && !slices.Contains(check.TrustedAudiences, a) {
			return &ClaimError{Claim: ClaimAudience, Reason: "untrusted audience"}
		}
	}
	azpValue, present := c.member(ClaimAuthorizedParty)
	if !present {
		if len(c.Audience) > 1 {
			return &ClaimError{Claim: ClaimAuthorizedParty, Reason: "missing with several audiences"}
		}
		return nil
	}
	azp, ok := azpValue.(string)
	if !ok {
		return malformedClaim(ClaimAuthorizedParty)
	}
	if azp != check.ClientID {
		return &ClaimError{Claim: ClaimAuthorizedParty, Reason: "issued to another client"}
	}
	return nil
}

// sameLogin applies §12.2 to an ID token from a refresh.
func (check *IDTokenCheck) sameLogin(c *Claims) error {
	p := check.Previous
	if c.Issuer != p.Issuer {
		return &ClaimError{Claim: ClaimIssuer, Reason: "differs from the sign-in"}
	}
	if c.Subject != p.Subject {
		return &ClaimError{Claim: ClaimSubject, Reason: "differs from the sign-in"}
	}
	if !sameSet(c.Audience, p.Audience) {
		return &ClaimError{Claim: ClaimAudience, Reason: "differs from the sign-in"}
	}
	azp, inNew := c.member(ClaimAuthorizedParty)
	prevAzp, inOld := p.member(ClaimAuthorizedParty)
	if inNew != inOld || jsonText(azp) != jsonText(prevAzp) {
		return &ClaimError{Claim: ClaimAuthorizedParty, Reason: "differs from the sign-in"}
	}
	at, inNew := c.member(ClaimAuthTime)
	prevAt, inOld := p.member(ClaimAuthTime)
	if inNew && inOld && jsonText(at) != jsonText(prevAt) {
		return &ClaimError{Claim: ClaimAuthTime, Reason: "differs from the sign-in"}
	}
	if n, ok := c.member(ClaimNonce); ok {
		prevValue, _ := p.member(ClaimNonce)
		prev, had := prevValue.(string)
		s, isStr := n.(string)
		if !isStr || !had || subtle.ConstantTimeCompare([]byte(s), []byte(prev)) != 1 {
			return &ClaimError{Claim: ClaimNonce, Reason: "differs from the sign-in"}
		}
	}
	return nil
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	for _, s := range b {
		if !slices.Contains(a, s) {
			return false
		}
	}
	return true
}

// authTime returns the auth_time claim.
func authTime(c *Claims) (time.Time, bool, error) {
	v, present := c.member(ClaimAuthTime)
	if !present {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, malformedClaim(ClaimAuthTime)
	}
	t, ok := numericDate(string(n))
	if !ok {
		return time.Time{}, false, malformedClaim(ClaimAuthTime)
	}
	return t, true, nil
}

// checkTokenHash checks at_hash or c_hash (claim) against value: a present
// hash must match when value is set; required says it must be present.
func checkTokenHash(c *Claims, claim, alg, value string, required bool) error {
	if value == "" {
		return nil
	}
	got, present := c.member(claim)
	if !present {
		if required {
			return &ClaimError{Claim: claim, Reason: "missing"}
		}
		return nil
	}
	s, ok := got.(string)
	if !ok {
		return malformedClaim(claim)
	}
	want, err := TokenHash(alg, value)
	if err != nil {
		return &ClaimError{Claim: claim, Reason: err.Error()}
	}
	if subtle.ConstantTimeCompare([]byte(s), []byte(want)) != 1 {
		return &ClaimError{Claim: claim, Reason: "hash mismatch"}
	}
	return nil
}

// TokenHash is the at_hash or c_hash of value for an ID token signed with
// alg (OpenID Connect Core §3.1.3.6): the left half of the hash of the
// ASCII value with the hash function of alg (SHA-256 for *256, SHA-384
// for *384, SHA-512 for *512 and for EdDSA, whose curve Ed25519 uses
// SHA-512), base64url without padding.
func TokenHash(alg, value string) (string, error) {
	var h hash.Hash
	switch alg {
	case "RS256", "PS256", "ES256", "HS256":
		h = sha256.New()
	case "RS384", "PS384", "ES384", "HS384":
		h = sha512.New384()
	case "RS512", "PS512", "ES512", "HS512", "EdDSA":
		h = sha512.New()
	default:
		return "", fmt.Errorf("no hash for algorithm %q", truncate(alg, 32))
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}

// ValidateOptions configure [ValidateAccessToken] and [ValidateIDToken]:
// where the issuer is, and what else its tokens must satisfy.
type ValidateOptions struct {
	// Issuer is the issuer identifier, or its discovery address
	// (Issuer + "/.well-known/openid-configuration"). Required unless
	// Provider is set. Tokens must carry the issuer of the discovery
	// document unless Config.Issuer says otherwise.
	Issuer string
	// Audience is the accepted "aud" of an access token (ignored by
	// ValidateIDToken, which uses the client ID). Required for access
	// tokens unless Config sets Audiences or AnyAudience.
	Audience string
	// HTTPClient fetches discovery and keys; nil means a client with
	// [DefaultHTTPTimeout].
	HTTPClient *http.Client
	// Provider, when set, supplies discovery and keys from its caches and
	// is left open; otherwise each call fetches the discovery document and
	// the keys into a provider it closes before returning. Long-running
	// programs should keep a Provider (or a [Validator] built on one).
	Provider *Provider
	// Config holds any further rules ([IssuerConfig.Types],
	// Algorithms, Leeway, RequiredClaims, …). Its Issuer, Keys and
	// Audiences are filled from the fields above when empty.
	Config IssuerConfig
}

// ValidateAccessToken validates a JWT access token in one call, as
// py-identity-model's validate_token does: it discovers the issuer's keys
// (or uses opts.Provider), builds a [Validator] for opts and runs
// [Validator.Validate]. Errors are those of [NewProvider], [NewValidator]
// and [Validator.Validate]; a missing token fails with [ErrMissingToken].
func ValidateAccessToken(ctx context.Context, token string, opts ValidateOptions) (*Token, error) {
	if token == "" {
		return nil, ErrMissingToken
	}
	v, done, err := opts.validator(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer done()
	return v.Validate(ctx, token)
}

// ValidateIDToken validates an ID token for one sign-in in one call: like
// [ValidateAccessToken], with the audience check.ClientID and the rules of
// [Validator.ValidateIDToken].
func ValidateIDToken(ctx context.Context, rawIDToken string, opts ValidateOptions, check IDTokenCheck) (*Token, error) {
	if rawIDToken == "" {
		return nil, ErrMissingToken
	}
	if check.ClientID == "" {
		return nil, fmt.Errorf("%w: IDTokenCheck.ClientID", ErrMissingClientID)
	}
	v, done, err := opts.validator(ctx, []string{check.ClientID})
	if err != nil {
		return nil, err
	}
	defer done()
	return v.ValidateIDToken(ctx, rawIDToken, check)
}

// validator builds the validator of a one-call validation and the function
// that releases what it opened. audiences, when set, replace the access
// token audience.
func (o *ValidateOptions) validator(ctx context.Context, audiences []string) (*Validator, func(), error) {
	p, done := o.Provider, func() {}
	if p == nil {
		if o.Issuer == "" {
			return nil, nil, fmt.Errorf("%w: ValidateOptions.Issuer", ErrMissingIssuer)
		}
		var err error
		if p, err = NewProvider(o.Issuer, ProviderOptions{HTTPClient: o.HTTPClient}); err != nil {
			return nil, nil, err
		}
		done = func() { _ = p.Close() }
	}
	cfg := o.Config
	switch {
	case cfg.Issuer != "":
	case p.opts.JWKSURL != "":
		cfg.Issuer = p.Issuer() // keys without discovery
	default:
		// The "iss" of the tokens is the discovery document's issuer
		// (OpenID Connect Discovery §4.3), trailing slash included.
		d, err := p.Discovery(ctx)
		if err != nil {
			done()
			return nil, nil, err
		}
		cfg.Issuer = d.Issuer
	}
	if cfg.Keys == nil {
		cfg.Keys = p
	}
	switch {
	case audiences != nil && len(cfg.Audiences) == 0:
		cfg.Audiences, cfg.AnyAudience = audiences, false
	case len(cfg.Audiences) == 0 && !cfg.AnyAudience && o.Audience != "":
		cfg.Audiences = []string{o.Audience}
	}
	v, err := NewValidator([]IssuerConfig{cfg}, ValidatorOptions{})
	if err != nil {
		done()
		return nil, nil, err
	}
	return v, done, nil
}
