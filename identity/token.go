package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// DefaultDevicePollInterval is the polling interval of the device flow
// when the server sends none (RFC 8628 §3.2).
const DefaultDevicePollInterval = 5 * time.Second

// devicePollSlowDown is added to the interval on slow_down (RFC 8628 §3.5).
const devicePollSlowDown = 5 * time.Second

// ClientCredentialsTokenRequest asks for a token for the client itself
// (RFC 6749 §4.4).
type ClientCredentialsTokenRequest struct {
	ProtocolRequest
	// Scopes are sent space-delimited as scope.
	Scopes []string
	// Resource lists RFC 8707 resource indicators (one parameter each).
	Resource []string
	// Audience is the non-standard audience parameter some servers (Auth0)
	// use instead of resource.
	Audience string
}

// RequestClientCredentialsToken performs the client credentials grant.
// Errors: [*ProtocolError] for an OAuth error response, [*HTTPStatusError]
// for another failure status, [ErrNotJSON], [ErrBodyTooLarge],
// [*MissingMembersError], or the transport or context error.
func RequestClientCredentialsToken(ctx context.Context, client *http.Client, req ClientCredentialsTokenRequest) (*TokenResponse, error) {
	form := url.Values{"grant_type": {GrantTypeClientCredentials}}
	setFormValue(form, "scope", scopeParam(req.Scopes))
	addFormValues(form, "resource", req.Resource)
	setFormValue(form, "audience", req.Audience)
	return requestToken(ctx, client, &req.ProtocolRequest, form)
}

// RefreshTokenRequest redeems a refresh token (RFC 6749 §6).
type RefreshTokenRequest struct {
	ProtocolRequest
	// RefreshToken is the refresh token to redeem.
	RefreshToken string
	// Scopes optionally narrow the scope of the new access token.
	Scopes []string
	// Resource lists RFC 8707 resource indicators.
	Resource []string
}

// RequestRefreshToken performs the refresh token grant. Errors as for
// [RequestClientCredentialsToken].
func RequestRefreshToken(ctx context.Context, client *http.Client, req RefreshTokenRequest) (*TokenResponse, error) {
	if req.RefreshToken == "" {
		return nil, fmt.Errorf("%w: RefreshToken is empty", ErrMissingToken)
	}
	form := url.Values{"grant_type": {GrantTypeRefreshToken}, "refresh_token": {req.RefreshToken}}
	setFormValue(form, "scope", scopeParam(req.Scopes))
	addFormValues(form, "resource", req.Resource)
	return requestToken(ctx, client, &req.ProtocolRequest, form)
}

// AuthorizationCodeTokenRequest redeems an authorization code (RFC 6749
// §4.1.3), with its PKCE code verifier (RFC 7636 §4.5).
type AuthorizationCodeTokenRequest struct {
	ProtocolRequest
	// Code is the code from the authorization response.
	Code string
	// RedirectURI must equal the redirect_uri of the authorization request.
	RedirectURI string
	// CodeVerifier is the PKCE verifier whose challenge was sent.
	CodeVerifier string
	// Resource lists RFC 8707 resource indicators.
	Resource []string
}

// RequestAuthorizationCodeToken performs the authorization code grant.
// Errors as for [RequestClientCredentialsToken].
func RequestAuthorizationCodeToken(ctx context.Context, client *http.Client, req AuthorizationCodeTokenRequest) (*TokenResponse, error) {
	if req.Code == "" {
		return nil, fmt.Errorf("%w: the authorization Code is empty", ErrMissingParameter)
	}
	form := url.Values{"grant_type": {GrantTypeAuthorizationCode}, "code": {req.Code}}
	setFormValue(form, "redirect_uri", req.RedirectURI)
	setFormValue(form, "code_verifier", req.CodeVerifier)
	addFormValues(form, "resource", req.Resource)
	return requestToken(ctx, client, &req.ProtocolRequest, form)
}

// DeviceTokenRequest redeems a device code (RFC 8628 §3.4).
type DeviceTokenRequest struct {
	ProtocolRequest
	// DeviceCode is the device_code of the device authorization response.
	DeviceCode string
	// Interval is the polling interval for [PollDeviceToken]; 0 means
	// [DefaultDevicePollInterval].
	Interval time.Duration
	// Expiry, when set, stops [PollDeviceToken] once the device code has
	// expired.
	Expiry time.Time
	// OnWait, when set, is called by [PollDeviceToken] before each wait
	// with the error code of the answer that made it wait ("" before the
	// first request, then "authorization_pending" or "slow_down") and the
	// wait, so that a terminal can tell the user what is going on.
	OnWait func(code string, wait time.Duration)
}

// RequestDeviceToken asks once for the token of a device code. While the
// user has not finished, the error is a [*ProtocolError] with Code
// "authorization_pending" or "slow_down"; [PollDeviceToken] handles these.
func RequestDeviceToken(ctx context.Context, client *http.Client, req DeviceTokenRequest) (*TokenResponse, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {GrantTypeDeviceCode}, "device_code": {req.DeviceCode}}
	return requestToken(ctx, client, &req.ProtocolRequest, form)
}

// check refuses a request without a device code.
func (req *DeviceTokenRequest) check() error {
	if req.DeviceCode == "" {
		return fmt.Errorf("%w: DeviceCode is empty", ErrMissingParameter)
	}
	return nil
}

// PollDeviceToken polls the token endpoint for a device code until the
// user approves (the token is returned), denies (a [*ProtocolError] with
// Code "access_denied"), the code expires ("expired_token", or Expiry
// passes: an error matching [context.DeadlineExceeded]) or ctx ends. It
// waits Interval (default 5 s) before each request and adds 5 s on every
// "slow_down" (RFC 8628 §3.5).
func PollDeviceToken(ctx context.Context, client *http.Client, req DeviceTokenRequest) (*TokenResponse, error) {
	return pollDeviceToken(ctx, client, req, sleepContext)
}

// pollDeviceToken is PollDeviceToken with a replaceable wait, for tests.
func pollDeviceToken(ctx context.Context, client *http.Client, req DeviceTokenRequest, wait func(context.Context, time.Duration) error) (*TokenResponse, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	if !req.Expiry.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, req.Expiry)
		defer cancel()
	}
	interval := req.Interval
	if interval <= 0 {
		interval = DefaultDevicePollInterval
	}
	code := ""
	for {
		if req.OnWait != nil {
			req.OnWait(code, interval)
		}
		if err := wait(ctx, interval); err != nil {
			return nil, err
		}
		tok, err := RequestDeviceToken(ctx, client, req)
		var pe *ProtocolError
		if err == nil || !errors.As(err, &pe) {
			return tok, err
		}
		switch code = pe.Code; code {
		case ErrorAuthorizationPending:
		case ErrorSlowDown:
			interval += devicePollSlowDown
		default:
			return nil, err
		}
	}
}

// sleepContext waits d or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// TokenExchangeTokenRequest exchanges a token for another (RFC 8693 §2.1):
// impersonation with a subject token only, delegation with an actor token
// as well. Token types are the URIs of RFC 8693 §3 ([TokenTypeAccessToken],
// [TokenTypeRefreshToken], [TokenTypeIDToken], [TokenTypeSAML1],
// [TokenTypeSAML2], [TokenTypeJWT]), sent verbatim.
type TokenExchangeTokenRequest struct {
	ProtocolRequest
	// SubjectToken is the token to exchange (required).
	SubjectToken string
	// SubjectTokenType is its type URI (required).
	SubjectTokenType string
	// ActorToken is the token of the acting party (delegation).
	ActorToken string
	// ActorTokenType is its type URI, required with ActorToken.
	ActorTokenType string
	// RequestedTokenType is the type URI wanted in return.
	RequestedTokenType string
	// Audience lists the logical names of the target services.
	Audience []string
	// Resource lists the URIs of the target services.
	Resource []string
	// Scopes are sent space-delimited as scope.
	Scopes []string
}

// RequestTokenExchangeToken performs a token exchange. The response must
// carry access_token, issued_token_type and token_type (which may be
// "N_A" for tokens that are not access tokens). Errors as for
// [RequestClientCredentialsToken].
func RequestTokenExchangeToken(ctx context.Context, client *http.Client, req TokenExchangeTokenRequest) (*TokenResponse, error) {
	switch {
	case req.SubjectToken == "" || req.SubjectTokenType == "":
		return nil, fmt.Errorf("%w: token exchange needs SubjectToken and SubjectTokenType", ErrMissingToken)
	case req.ActorToken != "" && req.ActorTokenType == "":
		return nil, fmt.Errorf("%w: token exchange needs ActorTokenType with ActorToken", ErrMissingParameter)
	}
	form := url.Values{
		"grant_type":         {GrantTypeTokenExchange},
		"subject_token":      {req.SubjectToken},
		"subject_token_type": {req.SubjectTokenType},
	}
	setFormValue(form, "actor_token", req.ActorToken)
	setFormValue(form, "actor_token_type", req.ActorTokenType)
	setFormValue(form, "requested_token_type", req.RequestedTokenType)
	addFormValues(form, "audience", req.Audience)
	addFormValues(form, "resource", req.Resource)
	setFormValue(form, "scope", scopeParam(req.Scopes))
	res, err := req.postForm(ctx, client, form)
	if err != nil {
		return nil, err
	}
	return parseTokenResponse(res, "issued_token_type", "token_type")
}

// PasswordTokenRequest is the resource owner password credentials grant
// (RFC 6749 §4.3).
//
// Deprecated: the OAuth 2.0 Security Best Current Practice (RFC 9700 §2.4)
// forbids this grant; it exists for legacy systems only. Use the
// authorization code or device flow.
type PasswordTokenRequest struct {
	ProtocolRequest
	// UserName is the resource owner's user name.
	UserName string
	// Password is the resource owner's password.
	Password string
	// Scopes are sent space-delimited as scope.
	Scopes []string
	// Resource lists RFC 8707 resource indicators.
	Resource []string
}

// RequestPasswordToken performs the password grant.
//
// Deprecated: see [PasswordTokenRequest].
func RequestPasswordToken(ctx context.Context, client *http.Client, req PasswordTokenRequest) (*TokenResponse, error) {
	form := url.Values{"grant_type": {GrantTypePassword}, "username": {req.UserName}, "password": {req.Password}}
	setFormValue(form, "scope", scopeParam(req.Scopes))
	addFormValues(form, "resource", req.Resource)
	return requestToken(ctx, client, &req.ProtocolRequest, form)
}

// TokenRequest is a request with any grant type (an extension grant such
// as "urn:ietf:params:oauth:grant-type:jwt-bearer"); its parameters go in
// Parameters.
type TokenRequest struct {
	ProtocolRequest
	// GrantType is the grant_type parameter (required).
	GrantType string
}

// RequestToken performs a token request with req.GrantType and
// req.Parameters. Errors as for [RequestClientCredentialsToken].
func RequestToken(ctx context.Context, client *http.Client, req TokenRequest) (*TokenResponse, error) {
	if req.GrantType == "" {
		return nil, fmt.Errorf("%w: GrantType is empty", ErrMissingParameter)
	}
	return requestToken(ctx, client, &req.ProtocolRequest, url.Values{"grant_type": {req.GrantType}})
}

// requestToken posts form to the token endpoint of p and parses the answer.
func requestToken(ctx context.Context, client *http.Client, p *ProtocolRequest, form url.Values) (*TokenResponse, error) {
	res, err := p.postForm(ctx, client, form)
	if err != nil {
		return nil, err
	}
	return parseTokenResponse(res)
}
