package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// introspectionJWTMediaType is the media type of signed introspection
// responses (RFC 9701 §5).
const introspectionJWTMediaType = "application/token-introspection+jwt"

// IntrospectionRequest asks an introspection_endpoint about a token
// (RFC 7662 §2.1), authenticated with ProtocolRequest.ClientAuth. For a
// server that authenticates the caller with a bearer token instead, leave
// ClientAuth zero and set an Authorization header in
// ProtocolRequest.Header.
type IntrospectionRequest struct {
	ProtocolRequest
	// Token is the token to introspect (required).
	Token string
	// TokenTypeHint is "access_token" or "refresh_token" (optional).
	TokenTypeHint string
	// RequestJWT asks for a signed response (RFC 9701) with Accept:
	// application/token-introspection+jwt. A signed response is verified
	// whenever the server sends one, asked or not.
	RequestJWT bool
	// RequireJWT asks for a signed response like RequestJWT and refuses
	// any other answer with [ErrContentType]: a caller that trusts only
	// what the issuer signed must not fall back to the plain JSON a
	// proxy or a misconfigured server could send instead. It needs Keys,
	// Issuer and an audience (Audience or ClientAuth.ClientID), so that
	// every check of RFC 9701 §5 is made.
	RequireJWT bool
	// Keys verifies signed responses (the issuer's key set or
	// [*Provider]); a signed response without Keys fails with
	// [ErrKeyNotFound].
	Keys KeySource
	// Issuer, when set, must equal the iss of a signed response.
	Issuer string
	// Audience must be in the aud of a signed response; "" means
	// ClientAuth.ClientID (RFC 9701 §5), when that is set.
	Audience string
	// Algorithms is the allow-list for signed responses; empty means the
	// advertised asymmetric algorithms of Keys, else RS256…EdDSA.
	Algorithms []string
	// MaxAge bounds the age of a signed response by its iat, which RFC
	// 9701 §5 requires: the answer was signed for this very request, so
	// an old one is a replay or a server whose clock is wrong. 0 means
	// [DefaultIntrospectionResponseMaxAge]. A 60 s leeway applies both
	// ways.
	MaxAge time.Duration
}

// DefaultIntrospectionResponseMaxAge is the default
// IntrospectionRequest.MaxAge.
const DefaultIntrospectionResponseMaxAge = 5 * time.Minute

// IntrospectionResponse is the answer of an introspection endpoint (RFC
// 7662 §2.2). When Active is false nothing else is meaningful. Members not
// named here stay readable with [IntrospectionResponse.Extra].
type IntrospectionResponse struct {
	// Active reports whether the token is currently active.
	Active bool
	// Scope is the space-delimited scope (an array, as some servers send,
	// is joined).
	Scope string
	// Scopes is Scope split into its values.
	Scopes []string
	// ClientID is the client the token was issued to.
	ClientID string
	// Username is a human-readable identifier of the resource owner.
	Username string
	// TokenType is the token_type, e.g. "Bearer".
	TokenType string
	// Expiry, IssuedAt and NotBefore are exp, iat and nbf; zero when
	// absent.
	Expiry, IssuedAt, NotBefore time.Time
	// Subject is the sub member.
	Subject string
	// Audience is aud (a string or an array on the wire).
	Audience []string
	// Issuer is the iss member.
	Issuer string
	// ID is the jti member.
	ID string
	// Signed reports that the response was an RFC 9701 JWT verified with
	// the request's Keys.
	Signed bool
	// Raw is the JSON response object (for a signed response: the
	// token_introspection member).
	Raw []byte

	members wireObject
}

// Extra returns the raw JSON value of any member of the response.
func (r *IntrospectionResponse) Extra(name string) (json.RawMessage, bool) {
	return r.members.extra(name)
}

// HasScope reports whether scope is among the token's scopes.
func (r *IntrospectionResponse) HasScope(scope string) bool { return slices.Contains(r.Scopes, scope) }

// IntrospectToken introspects req.Token. Errors: [*ProtocolError] (e.g.
// invalid_client with HTTP 401), [*HTTPStatusError], [ErrNotJSON] (also for
// members of the wrong type), [ErrBodyTooLarge], [*MissingMembersError]
// without active, verification errors of signed responses,
// [ErrContentType] for an unsigned answer with RequireJWT, or the transport
// or context error.
func IntrospectToken(ctx context.Context, client *http.Client, req IntrospectionRequest) (*IntrospectionResponse, error) {
	if req.Token == "" {
		return nil, fmt.Errorf("%w: the introspection request needs Token", ErrMissingToken)
	}
	form := url.Values{"token": {req.Token}}
	setFormValue(form, "token_type_hint", req.TokenTypeHint)
	aud := req.Audience
	if aud == "" {
		aud = req.ClientAuth.ClientID
	}
	if req.RequireJWT {
		switch {
		case req.Keys == nil:
			return nil, fmt.Errorf("%w: RequireJWT needs Keys", ErrKeyNotFound)
		case req.Issuer == "":
			return nil, fmt.Errorf("%w: RequireJWT needs Issuer", ErrMissingIssuer)
		case aud == "":
			return nil, fmt.Errorf("%w: RequireJWT needs Audience or ClientAuth.ClientID", ErrMissingClientID)
		}
	}
	p := req.ProtocolRequest
	if req.RequestJWT || req.RequireJWT {
		p.Header = p.Header.Clone()
		if p.Header == nil {
			p.Header = http.Header{}
		}
		p.Header.Set("Accept", introspectionJWTMediaType)
	}
	res, err := p.postForm(ctx, client, form)
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusOK {
		return nil, res.errorFor()
	}
	if mt := res.mediaType(); mt != introspectionJWTMediaType {
		if req.RequireJWT {
			return nil, fmt.Errorf("%w: %q where a signed introspection response (%s) was required", ErrContentType, mt, introspectionJWTMediaType)
		}
		return ParseIntrospectionResponse(res.body)
	}
	maxAge := req.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultIntrospectionResponseMaxAge
	}
	payload, err := verifySignedResponse(ctx, string(res.body), signedResponseCheck{
		keys:       req.Keys,
		algorithms: req.Algorithms,
		issuer:     req.Issuer,
		audience:   aud,
		types:      []string{JWTTypeTokenIntrospection},
		issuedAt:   true,
		maxAge:     maxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("identity: signed introspection response: %w", err)
	}
	claims, err := decodeWireObject(payload)
	if err != nil {
		return nil, err
	}
	if !claims.present("token_introspection") {
		return nil, &MissingMembersError{Members: []string{"token_introspection"}}
	}
	r, err := ParseIntrospectionResponse(claims["token_introspection"])
	if err != nil {
		return nil, err
	}
	r.Signed = true
	return r, nil
}

// ParseIntrospectionResponse decodes an RFC 7662 response object: active
// is required and must be a boolean; scope and aud may be strings or
// arrays of strings; exp, iat and nbf are NumericDates. Wrong member types
// give [ErrNotJSON].
func ParseIntrospectionResponse(data []byte) (*IntrospectionResponse, error) {
	obj, err := decodeWireObject(data)
	if err != nil {
		return nil, err
	}
	active, ok, err := obj.boolean("active")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &MissingMembersError{Members: []string{"active"}}
	}
	r := &IntrospectionResponse{Active: active, Raw: append([]byte(nil), data...), members: obj}
	scopes, err := obj.strList("scope")
	if err != nil {
		return nil, err
	}
	for _, s := range scopes {
		r.Scopes = append(r.Scopes, strings.Fields(s)...)
	}
	r.Scope = strings.Join(r.Scopes, " ")
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"client_id", &r.ClientID}, {"username", &r.Username}, {"token_type", &r.TokenType},
		{"sub", &r.Subject}, {"iss", &r.Issuer}, {"jti", &r.ID},
	} {
		if *f.dst, err = obj.str(f.name); err != nil {
			return nil, err
		}
	}
	if r.Audience, err = obj.strList("aud"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"exp", &r.Expiry}, {"iat", &r.IssuedAt}, {"nbf", &r.NotBefore}} {
		if *f.dst, err = obj.unixTime(f.name); err != nil {
			return nil, err
		}
	}
	return r, nil
}
