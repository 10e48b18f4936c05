package identity

import (
	"encoding/json"
	"strings"
	"time"
)

// TokenResponse is a successful token endpoint response (RFC 6749 §5.1,
// OpenID Connect Core §3.1.3.3, RFC 8693 §2.2.1). Members this type does
// not name stay readable with [TokenResponse.Extra].
type TokenResponse struct {
	// AccessToken is the access_token member.
	AccessToken string
	// TokenType is the token_type member as sent (e.g. "Bearer", "bearer",
	// "DPoP" or "N_A"); compare it case-insensitively.
	TokenType string
	// ExpiresIn is the expires_in member in seconds, 0 when absent.
	ExpiresIn int64
	// Expiry is when the access token expires, computed from ExpiresIn and
	// the time the request was sent; zero when the server did not say.
	Expiry time.Time
	// RefreshToken is the refresh_token member, if any.
	RefreshToken string
	// IDToken is the id_token member (OpenID Connect), if any. It is not
	// validated here: use a [Validator].
	IDToken string
	// Scope is the scope member: the granted scope when it differs from
	// the requested one.
	Scope string
	// IssuedTokenType is the issued_token_type member of a token exchange
	// response (RFC 8693), e.g. "urn:ietf:params:oauth:token-type:jwt".
	IssuedTokenType string
	// Raw is the response body.
	Raw []byte

	members wireObject
}

// Scopes returns Scope split on spaces.
func (r *TokenResponse) Scopes() []string { return strings.Fields(r.Scope) }

// Extra returns the raw JSON value of any member of the response, known
// or not.
func (r *TokenResponse) Extra(name string) (json.RawMessage, bool) { return r.members.extra(name) }

// Expired reports whether the access token has expired at now (never when
// Expiry is unknown).
func (r *TokenResponse) Expired(now time.Time) bool {
	return !r.Expiry.IsZero() && !now.Before(r.Expiry)
}

// parseTokenResponse turns an endpoint result into a TokenResponse, or the
// error the server reported. required lists members that must be present
// besides access_token.
func parseTokenResponse(res *endpointResult, required ...string) (*TokenResponse, error) {
	if res.status < 200 || res.status > 299 {
		return nil, res.errorFor()
	}
	obj, err := decodeWireObject(res.body)
	if err != nil {
		return nil, err
	}
	if !obj.present("access_token") && obj.present("error") {
		if pe := protocolErrorFromBody(res.status, res.header, res.body); pe != nil {
			return nil, pe
		}
	}
	var missing []string
	for _, name := range append([]string{"access_token"}, required...) {
		if !obj.present(name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, &MissingMembersError{Members: missing}
	}
	r := &TokenResponse{Raw: res.body, members: obj}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"access_token", &r.AccessToken},
		{"token_type", &r.TokenType},
		{"refresh_token", &r.RefreshToken},
		{"id_token", &r.IDToken},
		{"scope", &r.Scope},
		{"issued_token_type", &r.IssuedTokenType},
	} {
		if *f.dst, err = obj.str(f.name); err != nil {
			return nil, err
		}
	}
	if r.ExpiresIn, err = obj.seconds("expires_in"); err != nil {
		return nil, err
	}
	if r.ExpiresIn > 0 {
		r.Expiry = res.sentAt.Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	return r, nil
}
