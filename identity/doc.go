// Package identity is an object model for the endpoints of OAuth 2.0 and
// OpenID Connect: discovery, JSON Web Key Sets, JWT access-token and ID-token
// validation, and the protocol clients (token, userinfo, introspection,
// revocation, registration, device authorization, PAR, token exchange), with
// DPoP (RFC 9449) proofs for clients and their verification for resource
// servers.
//
// It follows the ideas of Duende.IdentityModel and py-identity-model in
// idiomatic Go: every network call takes a [context.Context] and uses the
// caller's [*http.Client], every failure is an error usable with [errors.Is]
// and [errors.As], and every cache is a value that its owner closes. The
// package keeps no mutable state of its own. identity/README.md maps each
// call of those libraries to this package.
//
// # Validating access tokens
//
// One call, for scripts and tests ([ValidateAccessToken] discovers the keys
// each time):
//
//	tok, err := identity.ValidateAccessToken(ctx, raw, identity.ValidateOptions{
//		Issuer: "https://login.example.com", Audience: "orders-api"})
//
// In a server, keep a [Provider] (the discovery document and the JWKS,
// cached, refreshed before expiry and on unknown key IDs, served stale while
// the provider is down) and a [Validator] built on it:
//
//	p, err := identity.NewProvider("https://login.example.com", identity.ProviderOptions{})
//	defer p.Close()
//	v, err := identity.NewValidator([]identity.IssuerConfig{{
//		Issuer: "https://login.example.com", Keys: p, Audiences: []string{"orders-api"}}},
//		identity.ValidatorOptions{})
//	tok, err := v.Validate(ctx, raw) // tok.Claims.Subject, tok.Claims.Scopes, tok.Claims.Get("…")
//
// A validation checks the whole payload but decodes only the claims its
// checks read and those named in [ValidatorOptions].DecodeClaims; any other
// claim is decoded from the payload the first time [Claims.Get] (or String,
// Strings, Raw) asks for one.
//
// # Signing users in
//
// Build the authorization URL with [AuthorizationRequest] (PKCE from
// [NewPKCE], state and nonce from [GenerateState] and [GenerateNonce]), check
// the callback with [ParseAuthorizationCallbackURL], redeem the code with
// [RequestAuthorizationCodeToken], and validate the ID token for this login
// with [Validator.ValidateIDToken] and an [IDTokenCheck] (client ID, nonce,
// access token for at_hash). [RequestUserInfo] then returns the user's
// claims. Example (authorizationCodeFlow) runs the whole flow.
//
// # Calling APIs
//
// [RequestClientCredentialsToken] and the other Request* functions speak
// to the token endpoint; a [TokenManager] caches a client-credentials token,
// renews it before it expires and, through [TokenManager.Transport], adds it
// to outgoing requests (as a DPoP-bound token with a fresh proof per request
// when the client has a [DPoPKey]), replacing it after a 401.
//
// # Errors
//
// Validation failures match one of [ErrMalformed], [ErrTokenTooLarge],
// [ErrAlgNone], [ErrUnsupportedAlg], [ErrUnsupportedHeader], [ErrSignature],
// [ErrKeyNotFound], [ErrKeyConversion], [ErrClaimValidation] (a [*ClaimError]
// names the claim), [ErrUnknownIssuer] or [ErrProviderUnavailable]. OAuth
// error responses come back as a [*ProtocolError]. Caller mistakes are
// refused before any I/O with [ErrMissingAddress], [ErrMissingToken],
// [ErrMissingClientID], [ErrMissingIssuer] or [ErrMissingParameter], and a
// value used without its constructor with [ErrNotInitialized]: no method
// panics on a zero value.
//
// # Defaults
//
// Defaults are strict: HTTPS outside loopback, an exact issuer, an audience,
// an algorithm allow-list without "none", keys never chosen by the token, and
// "exp" and "iat" claims. Package identitytest provides an in-process
// provider (discovery, keys, token, userinfo, introspection and revocation
// endpoints) for tests and for trying every flow without a real one.
package identity
