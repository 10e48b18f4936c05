package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// DeviceAuthorizationRequest starts the device authorization grant
// (RFC 8628 §3.1) at the device_authorization_endpoint.
type DeviceAuthorizationRequest struct {
	ProtocolRequest
	// Scopes are sent space-delimited as scope.
	Scopes []string
	// Resource lists RFC 8707 resource indicators.
	Resource []string
}

// DeviceAuthorizationResponse tells the device what to show the user and
// how to poll (RFC 8628 §3.2).
type DeviceAuthorizationResponse struct {
	// DeviceCode is the device verification code, for the token request.
	DeviceCode string
	// UserCode is what the user types.
	UserCode string
	// VerificationURI is where the user goes (also read from the
	// non-standard verification_url some servers send).
	VerificationURI string
	// VerificationURIComplete includes the user code, when sent.
	VerificationURIComplete string
	// ExpiresIn is the lifetime of the codes in seconds.
	ExpiresIn int64
	// Expiry is when the codes expire.
	Expiry time.Time
	// Interval is the minimum polling interval; 0 when the server sent
	// none (then [DefaultDevicePollInterval] applies).
	Interval time.Duration
	// Raw is the response body.
	Raw []byte

	members wireObject
}

// Extra returns the raw JSON value of any member of the response.
func (r *DeviceAuthorizationResponse) Extra(name string) (json.RawMessage, bool) {
	return r.members.extra(name)
}

// TokenRequest returns the request that polls for the token of this
// device code with p (the token endpoint and client authentication).
func (r *DeviceAuthorizationResponse) TokenRequest(p ProtocolRequest) DeviceTokenRequest {
	return DeviceTokenRequest{ProtocolRequest: p, DeviceCode: r.DeviceCode, Interval: r.Interval, Expiry: r.Expiry}
}

// RequestDeviceAuthorization performs the device authorization request.
// Errors as for [RequestClientCredentialsToken]; device_code, user_code
// and verification_uri are required in the response.
func RequestDeviceAuthorization(ctx context.Context, client *http.Client, req DeviceAuthorizationRequest) (*DeviceAuthorizationResponse, error) {
	form := url.Values{}
	setFormValue(form, "scope", scopeParam(req.Scopes))
	addFormValues(form, "resource", req.Resource)
	res, err := req.postForm(ctx, client, form)
	if err != nil {
		return nil, err
	}
	if res.status < 200 || res.status > 299 {
		return nil, res.errorFor()
	}
	obj, err := decodeWireObject(res.body)
	if err != nil {
		return nil, err
	}
	r := &DeviceAuthorizationResponse{Raw: res.body, members: obj}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"device_code", &r.DeviceCode},
		{"user_code", &r.UserCode},
		{"verification_uri", &r.VerificationURI},
		{"verification_uri_complete", &r.VerificationURIComplete},
	} {
		if *f.dst, err = obj.str(f.name); err != nil {
			return nil, err
		}
	}
	if r.VerificationURI == "" {
		if r.VerificationURI, err = obj.str("verification_url"); err != nil {
			return nil, err
		}
	}
	var missing []string
	for name, v := range map[string]string{"device_code": r.DeviceCode, "user_code": r.UserCode, "verification_uri": r.VerificationURI} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, &MissingMembersError{Members: missing}
	}
	if r.ExpiresIn, err = obj.seconds("expires_in"); err != nil {
		return nil, err
	}
	if r.ExpiresIn > 0 {
		r.Expiry = res.sentAt.Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	interval, err := obj.seconds("interval")
	if err != nil {
		return nil, err
	}
	r.Interval = time.Duration(interval) * time.Second
	return r, nil
}
