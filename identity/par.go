package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// PushedAuthorizationRequest pushes the parameters of an authorization
// request to the pushed_authorization_request_endpoint (RFC 9126 §2.1),
// authenticated like a token request.
type PushedAuthorizationRequest struct {
	// ProtocolRequest.Address is the PAR endpoint.
	ProtocolRequest
	// Authorization holds the authorization parameters. Its Address (the
	// authorization endpoint) is not sent; its ClientID defaults to
	// ClientAuth.ClientID.
	Authorization AuthorizationRequest
}

// PushedAuthorizationResponse is the answer of a PAR endpoint (RFC 9126
// §2.2).
type PushedAuthorizationResponse struct {
	// RequestURI references the pushed request.
	RequestURI string
	// ExpiresIn is its lifetime in seconds.
	ExpiresIn int64
	// Expiry is when it expires (zero when unknown).
	Expiry time.Time
	// Raw is the response body.
	Raw []byte

	members wireObject
}

// Extra returns the raw JSON value of any member of the response.
func (r *PushedAuthorizationResponse) Extra(name string) (json.RawMessage, bool) {
	return r.members.extra(name)
}

// PushAuthorizationRequest pushes req. Redirect the browser to
// [PushedAuthorizationResponse.AuthorizationURL] afterwards. Errors as for
// [RequestClientCredentialsToken].
func PushAuthorizationRequest(ctx context.Context, client *http.Client, req PushedAuthorizationRequest) (*PushedAuthorizationResponse, error) {
	auth := req.Authorization
	if auth.ClientID == "" {
		auth.ClientID = req.ClientAuth.ClientID
	}
	auth.RequestURI = ""
	form, err := auth.values()
	if err != nil {
		return nil, err
	}
	res, err := req.postForm(ctx, client, form)
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusCreated && res.status != http.StatusOK {
		return nil, res.errorFor()
	}
	obj, err := decodeWireObject(res.body)
	if err != nil {
		return nil, err
	}
	if !obj.present("request_uri") {
		return nil, &MissingMembersError{Members: []string{"request_uri"}}
	}
	r := &PushedAuthorizationResponse{Raw: res.body, members: obj}
	if r.RequestURI, err = obj.str("request_uri"); err != nil {
		return nil, err
	}
	if r.ExpiresIn, err = obj.seconds("expires_in"); err != nil {
		return nil, err
	}
	if r.ExpiresIn > 0 {
		r.Expiry = res.sentAt.Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	return r, nil
}

// AuthorizationURL returns the URL of the authorization endpoint carrying
// only client_id and request_uri (RFC 9126 §4).
func (r *PushedAuthorizationResponse) AuthorizationURL(authorizationEndpoint, clientID string) (string, error) {
	return AuthorizationRequest{Address: authorizationEndpoint, ClientID: clientID, RequestURI: r.RequestURI}.URL()
}
