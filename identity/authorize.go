package identity

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrStateMismatch: the state of an authorization response is not the one
// the client sent (RFC 6749 §10.12): a possible CSRF or mix-up.
var ErrStateMismatch = errors.New("identity: authorization response state mismatch")

// AuthorizationRequest describes a front-channel authorization request
// (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1) and builds its URL.
// Empty fields are not sent.
type AuthorizationRequest struct {
	// Address is the authorization_endpoint. A query it already has is
	// kept.
	Address string
	// ClientID is the client identifier (required).
	ClientID string
	// RedirectURI is where the browser returns.
	RedirectURI string
	// ResponseType defaults to "code".
	ResponseType string
	// Scopes are sent space-delimited; include "openid" for OpenID Connect.
	Scopes []string
	// State is an unguessable value bound to the user agent (see
	// [GenerateState]); check it with [ParseAuthorizationResponse].
	State string
	// Nonce binds the ID token to this request (OpenID Connect).
	Nonce string
	// CodeChallenge is the PKCE challenge (see [NewPKCE]).
	CodeChallenge string
	// CodeChallengeMethod defaults to "S256" when CodeChallenge is set.
	CodeChallengeMethod string
	// ResponseMode is e.g. "query", "fragment" or "form_post".
	ResponseMode string
	// Prompt is e.g. "login", "consent", "none" (space-delimited).
	Prompt string
	// LoginHint hints the user's identifier to the server.
	LoginHint string
	// IDTokenHint is a previously issued ID token.
	IDTokenHint string
	// MaxAge is sent as max_age (seconds) when positive.
	MaxAge time.Duration
	// UILocales and ACRValues are sent as ui_locales and acr_values.
	UILocales, ACRValues string
	// Resource lists RFC 8707 resource indicators.
	Resource []string
	// Claims is an OpenID Connect claims request (Core §5.5), a JSON
	// object.
	Claims json.RawMessage
	// DPoPJKT binds the authorization code to a DPoP key (RFC 9449 §10):
	// the key's thumbprint ([DPoPKey.Thumbprint]), sent as dpop_jkt, so
	// that the code can only be redeemed with proofs of that key.
	DPoPJKT string
	// RequestURI is a request_uri, e.g. from [PushAuthorizationRequest];
	// with it only client_id and request_uri are needed.
	RequestURI string
	// Parameters are additional parameters; they never replace the ones
	// above.
	Parameters url.Values
}

// values returns the request parameters (without Address).
func (r AuthorizationRequest) values() (url.Values, error) {
	if r.ClientID == "" {
		return nil, fmt.Errorf("%w: the authorization request needs ClientID", ErrMissingClientID)
	}
	v := url.Values{"client_id": {r.ClientID}}
	if r.RequestURI != "" && r.ResponseType == "" {
		v.Set("request_uri", r.RequestURI)
		mergeParameters(v, r.Parameters)
		return v, nil
	}
	rt := r.ResponseType
	if rt == "" {
		rt = "code"
	}
	v.Set("response_type", rt)
	setFormValue(v, "redirect_uri", r.RedirectURI)
	setFormValue(v, "scope", scopeParam(r.Scopes))
	setFormValue(v, "state", r.State)
	setFormValue(v, "nonce", r.Nonce)
	if r.CodeChallenge != "" {
		v.Set("code_challenge", r.CodeChallenge)
		m := r.CodeChallengeMethod
		if m == "" {
			m = CodeChallengeMethodS256
		}
		v.Set("code_challenge_method", m)
	}
	setFormValue(v, "response_mode", r.ResponseMode)
	setFormValue(v, "prompt", r.Prompt)
	setFormValue(v, "login_hint", r.LoginHint)
	setFormValue(v, "id_token_hint", r.IDTokenHint)
	if r.MaxAge > 0 {
		v.Set("max_age", strconv.FormatInt(int64(r.MaxAge/time.Second), 10))
	}
	setFormValue(v, "ui_locales", r.UILocales)
	setFormValue(v, "acr_values", r.ACRValues)
	addFormValues(v, "resource", r.Resource)
	setFormValue(v, ParamDPoPJKT, r.DPoPJKT)
	if len(r.Claims) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r.Claims, &obj); err != nil || obj == nil {
			return nil, errors.New("identity: claims request is not a JSON object")
		}
		v.Set("claims", string(r.Claims))
	}
	setFormValue(v, "request_uri", r.RequestURI)
	mergeParameters(v, r.Parameters)
	return v, nil
}

// mergeParameters adds extra to v, except names v already has.
func mergeParameters(v, extra url.Values) {
	for k, vs := range extra {
		if _, set := v[k]; !set {
			v[k] = append([]string(nil), vs...)
		}
	}
}

// URL returns the authorization request URL to send the browser to.
func (r AuthorizationRequest) URL() (string, error) {
	if r.Address == "" {
		return "", fmt.Errorf("%w: the authorization endpoint (AuthorizationRequest.Address)", ErrMissingAddress)
	}
	u, err := url.Parse(r.Address)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("identity: invalid authorization endpoint %q", redactURL(r.Address))
	}
	v, err := r.values()
	if err != nil {
		return "", err
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// GenerateState returns a random state value (256 bits, base64url).
func GenerateState() string { return randomToken(32) }

// GenerateNonce returns a random nonce value (256 bits, base64url).
func GenerateNonce() string { return randomToken(32) }

// AuthorizationResponse is a successful authorization response (RFC 6749
// §4.1.2, OpenID Connect Core §3.1.2.5).
type AuthorizationResponse struct {
	// Code is the authorization code.
	Code string
	// State is the state echoed by the server.
	State string
	// Issuer is the iss parameter of RFC 9207 when sent; compare it with
	// the expected issuer to defend against mix-up attacks.
	Issuer string
	// Values holds every parameter of the response.
	Values url.Values
}

// ParseAuthorizationResponse checks the parameters of an authorization
// callback (query or form_post body). The state must equal expectedState
// (compared in constant time; "" means the request carried none), else
// [ErrStateMismatch]. An error response (RFC 6749 §4.1.2.1) is returned as
// a [*ProtocolError] with StatusCode 0; a response without code as a
// [*MissingMembersError].
func ParseAuthorizationResponse(values url.Values, expectedState string) (*AuthorizationResponse, error) {
	state := values.Get("state")
	if subtle.ConstantTimeCompare([]byte(state), []byte(expectedState)) != 1 {
		return nil, ErrStateMismatch
	}
	if code := values.Get("error"); code != "" {
		return nil, &ProtocolError{
			Code:        code,
			Description: values.Get("error_description"),
			URI:         values.Get("error_uri"),
		}
	}
	code := values.Get("code")
	if code == "" {
		return nil, &MissingMembersError{Members: []string{"code"}}
	}
	return &AuthorizationResponse{Code: code, State: state, Issuer: values.Get("iss"), Values: values}, nil
}

// ParseAuthorizationCallbackURL parses the redirect URL the browser came
// back with: its query, or its fragment when the query has neither code
// nor error (response_mode=fragment). See [ParseAuthorizationResponse].
func ParseAuthorizationCallbackURL(rawURL, expectedState string) (*AuthorizationResponse, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("identity: invalid callback URL: %w", err)
	}
	values := u.Query()
	if values.Get("code") == "" && values.Get("error") == "" && u.Fragment != "" {
		if values, err = url.ParseQuery(strings.TrimPrefix(u.Fragment, "#")); err != nil {
			return nil, fmt.Errorf("identity: invalid callback fragment: %w", err)
		}
	}
	return ParseAuthorizationResponse(values, expectedState)
}
