package identity

import (
	"errors"
	"fmt"
	"strings"
)

// Token validation failures. Every error returned by [Validator.Validate]
// matches exactly one of these with [errors.Is] (claim failures also match
// [ErrClaimValidation] through [*ClaimError]); they map onto the canonical
// error codes of the identity-model conformance specification.
var (
	// ErrMalformed: the token is not a compact JWS with a JSON header and
	// payload (wrong number of parts, bad base64url, non-JSON, duplicate
	// member names, a JWE, an unprotected or unsupported serialization).
	ErrMalformed = errors.New("identity: malformed token")
	// ErrTokenTooLarge: the token is longer than the configured limit and
	// was refused before any decoding.
	ErrTokenTooLarge = errors.New("identity: token too large")
	// ErrAlgNone: the token is unsigned (alg "none" in any letter case).
	ErrAlgNone = errors.New("identity: unsigned token (alg none)")
	// ErrUnsupportedAlg: the token's alg is not in the allow-list, or does
	// not fit the key that would verify it.
	ErrUnsupportedAlg = errors.New("identity: algorithm not allowed")
	// ErrUnsupportedHeader: the header carries a critical extension ("crit")
	// this package does not understand.
	ErrUnsupportedHeader = errors.New("identity: unsupported critical header")
	// ErrSignature: no candidate key verified the signature.
	ErrSignature = errors.New("identity: invalid signature")
	// ErrKeyNotFound: no published key matches the token's kid and alg,
	// even after a refresh of the key set.
	ErrKeyNotFound = errors.New("identity: no matching key")
	// ErrKeyConversion: a key could not be turned into a usable
	// verification key (wrong type, too small, private material, …).
	ErrKeyConversion = errors.New("identity: unusable key")
	// ErrClaimValidation: a claim is missing, of the wrong type or has a
	// value outside what the validator accepts. Use [errors.As] with
	// [*ClaimError] to learn which claim.
	ErrClaimValidation = errors.New("identity: claim validation failed")
	// ErrUnknownIssuer: the token's iss is not one of the configured issuers.
	ErrUnknownIssuer = errors.New("identity: unknown issuer")
	// ErrProviderUnavailable: the keys or metadata of the provider could not
	// be obtained and no usable cached copy is left. The client did nothing
	// wrong; a proxy should answer 503.
	ErrProviderUnavailable = errors.New("identity: provider unavailable")
)

// Discovery and fetch failures. Each is distinct so callers and logs can say
// precisely what the provider did wrong.
var (
	// ErrHTTPSRequired: a URL uses http outside loopback hosts.
	ErrHTTPSRequired = errors.New("identity: https required")
	// ErrIssuerMismatch: the document's issuer differs from the authority.
	ErrIssuerMismatch = errors.New("identity: issuer mismatch")
	// ErrMissingMember: a required member is absent; see [*MissingMembersError].
	ErrMissingMember = errors.New("identity: required member missing")
	// ErrEndpointNotAllowed: an endpoint is not absolute or not under the
	// authority or an allowed base.
	ErrEndpointNotAllowed = errors.New("identity: endpoint outside the authority")
	// ErrContentType: the response is not declared as JSON.
	ErrContentType = errors.New("identity: unexpected content type")
	// ErrNotJSON: the body does not parse as the expected JSON document.
	ErrNotJSON = errors.New("identity: invalid JSON document")
	// ErrBodyTooLarge: the body exceeds the size cap.
	ErrBodyTooLarge = errors.New("identity: response body too large")
	// ErrRedirect: the server redirected to another host (or too often).
	ErrRedirect = errors.New("identity: redirect refused")
	// ErrHTTPStatus: the server answered with an unexpected status; see
	// [*HTTPStatusError].
	ErrHTTPStatus = errors.New("identity: unexpected HTTP status")
	// ErrInvalidKeySet: a JWK Set is empty, has no usable keys, or has too
	// many.
	ErrInvalidKeySet = errors.New("identity: invalid key set")
)

// ClaimError says which claim failed validation and why. It matches
// [ErrClaimValidation] with [errors.Is].
type ClaimError struct {
	Claim  string // the claim name, e.g. "exp" or "realm_access.roles"
	Reason string // short, safe to show to a client
}

func (e *ClaimError) Error() string {
	return fmt.Sprintf("identity: claim %q: %s", e.Claim, e.Reason)
}

// Is reports whether target is [ErrClaimValidation].
func (e *ClaimError) Is(target error) bool { return target == ErrClaimValidation }

// MissingMembersError lists the required members a document lacks. It
// matches [ErrMissingMember].
type MissingMembersError struct {
	Members []string
}

func (e *MissingMembersError) Error() string {
	return "identity: required members missing: " + strings.Join(e.Members, ", ")
}

// Is reports whether target is [ErrMissingMember].
func (e *MissingMembersError) Is(target error) bool { return target == ErrMissingMember }

// HTTPStatusError is an unexpected HTTP status from a provider. Body holds
// at most the first few KiB of the response. It matches [ErrHTTPStatus].
type HTTPStatusError struct {
	URL        string
	StatusCode int
	Body       []byte
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("identity: %s: HTTP status %d", e.URL, e.StatusCode)
}

// Is reports whether target is [ErrHTTPStatus].
func (e *HTTPStatusError) Is(target error) bool { return target == ErrHTTPStatus }

// Caller mistakes: a required argument or field is missing, or a value of
// this package was used without its constructor. They are refused before
// any I/O, so a program can tell its own bugs from a provider's failures.
var (
	// ErrMissingAddress: an endpoint or issuer address is empty.
	ErrMissingAddress = errors.New("identity: address required")
	// ErrMissingToken: the token to send, validate, introspect or revoke
	// is empty.
	ErrMissingToken = errors.New("identity: token required")
	// ErrMissingClientID: a client ID is required (e.g. by
	// [IDTokenCheck]).
	ErrMissingClientID = errors.New("identity: client ID required")
	// ErrMissingIssuer: an issuer is required.
	ErrMissingIssuer = errors.New("identity: issuer required")
	// ErrMissingParameter: another required request field is empty (an
	// authorization code, a device code, a client secret, …); the error
	// names it.
	ErrMissingParameter = errors.New("identity: required parameter missing")
	// ErrNotInitialized: a value was used as its zero value although it
	// needs its constructor (NewValidator, NewProvider, NewTokenManager,
	// …); the error names the constructor.
	ErrNotInitialized = errors.New("identity: not initialized")
)

// notInitialized is the error of a method called on a zero or nil value
// of typ, which needs the constructor ctor.
func notInitialized(typ, ctor string) error {
	return fmt.Errorf("%w: %s must be created with %s", ErrNotInitialized, typ, ctor)
}
