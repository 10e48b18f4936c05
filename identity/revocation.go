package identity

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// RevocationRequest asks a revocation_endpoint to revoke a token (RFC 7009
// §2.1), authenticated with ProtocolRequest.ClientAuth.
type RevocationRequest struct {
	ProtocolRequest
	// Token is the token to revoke (required).
	Token string
	// TokenTypeHint is "access_token" or "refresh_token" (optional).
	TokenTypeHint string
}

// RevokeToken revokes req.Token. HTTP 200 is success whatever the body
// (RFC 7009 §2.2: the server answers the same for unknown tokens); other
// 2xx statuses, which some servers send, are accepted too.
// Errors: [*ProtocolError] (e.g. unsupported_token_type, invalid_client;
// a 503 may carry Retry-After), [*HTTPStatusError], [ErrBodyTooLarge], or
// the transport or context error.
func RevokeToken(ctx context.Context, client *http.Client, req RevocationRequest) error {
	if req.Token == "" {
		return fmt.Errorf("%w: the revocation request needs Token", ErrMissingToken)
	}
	form := url.Values{"token": {req.Token}}
	setFormValue(form, "token_type_hint", req.TokenTypeHint)
	res, err := req.postForm(ctx, client, form)
	if err != nil {
		return err
	}
	if res.status < 200 || res.status > 299 {
		return res.errorFor()
	}
	return nil
}
