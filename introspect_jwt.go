package caddyidentity

import (
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Values of IntrospectionConfig.Accept.
const (
	introspectionAcceptJSON = "json"
	introspectionAcceptJWT  = "jwt"
)

// checkIntrospectionClient checks how the handler authenticates to the
// introspection endpoint and which answers it accepts.
func checkIntrospectionClient(c *IntrospectionConfig) error {
	if c.ClientSecret != "" && c.KeyFile != "" {
		return errors.New("client_secret and key_file are exclusive")
	}
	switch c.AuthMethod {
	case "", identity.AuthMethodClientSecretBasic, identity.AuthMethodClientSecretPost:
		if c.KeyFile != "" && c.AuthMethod != "" {
			return fmt.Errorf("key_file authenticates with %s, not %s", identity.AuthMethodPrivateKeyJWT, c.AuthMethod)
		}
	case identity.AuthMethodPrivateKeyJWT:
		if c.KeyFile == "" {
			return fmt.Errorf("auth_method %s needs key_file", identity.AuthMethodPrivateKeyJWT)
		}
	default:
		return fmt.Errorf("auth_method must be %s, %s or %s, not %q", identity.AuthMethodClientSecretBasic,
			identity.AuthMethodClientSecretPost, identity.AuthMethodPrivateKeyJWT, c.AuthMethod)
	}
	switch c.Accept {
	case "", introspectionAcceptJSON, introspectionAcceptJWT:
	default:
		return fmt.Errorf("accept must be %s or %s, not %q", introspectionAcceptJSON, introspectionAcceptJWT, c.Accept)
	}
	return nil
}

// introspectionClientAuth returns the client authentication of c, its
// placeholders resolved: private_key_jwt with the key of key_file (RFC
// 7523, an assertion signed for each request, its aud set by the caller
// from assertion_audience), else the client secret by auth_method.
func introspectionClientAuth(repl *caddy.Replacer, c *IntrospectionConfig) (identity.ClientAuth, error) {
	id := repl.ReplaceKnown(c.ClientID, "")
	if c.KeyFile != "" {
		key, err := loadPrivateKey(repl.ReplaceKnown(c.KeyFile, ""))
		if err != nil {
			return identity.ClientAuth{}, fmt.Errorf("key_file: %w", err)
		}
		return identity.PrivateKeyJWTAuth(id, key, ""), nil
	}
	method := c.AuthMethod
	if method == "" {
		method = identity.AuthMethodClientSecretBasic
	}
	return identity.ClientAuth{Method: method, ClientID: id, ClientSecret: repl.ReplaceKnown(c.ClientSecret, "")}, nil
}

// signedAnswers makes in verify RFC 9701 signed answers like the issuer's
// JWTs, with its key source (discovery's JWKS or jwks_file) under its
// algorithm allow-list, iss the issuer, aud the handler's client_id:
// whenever the endpoint sends one, and with accept jwt, taking no other.
func (in *introspector) signedAnswers(c *IntrospectionConfig, ic identity.IssuerConfig) {
	in.requireJWT = c.Accept == introspectionAcceptJWT
	in.keys = ic.Keys
	in.algorithms = ic.Algorithms
}

// request is the introspection request for token at endpoint, its
// client assertions (with key_file) for aud ("" for the endpoint).
func (in *introspector) request(endpoint, aud, token string) identity.IntrospectionRequest {
	auth := in.auth
	auth.Audience = aud
	return identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: endpoint, ClientAuth: auth, AllowHTTP: in.allowHTTP},
		Token:           token,
		TokenTypeHint:   identity.TokenTypeHintAccessToken,
		RequireJWT:      in.requireJWT,
		Keys:            in.keys,
		Issuer:          in.issuer,
		Algorithms:      in.algorithms,
	}
}

// unusableAnswer reports whether err is an answer the endpoint gave that
// cannot be used (a signed answer that fails verification, an unsigned
// one where a signed one is required, or not the document RFC 7662 or
// RFC 9701 describes), as opposed to an endpoint that does not answer or
// refuses the handler: both refuse opaque tokens with 503, but the log
// line says which, since the fix differs.
func unusableAnswer(err error) bool {
	for _, e := range []error{identity.ErrContentType, identity.ErrSignature, identity.ErrKeyNotFound,
		identity.ErrUnsupportedAlg, identity.ErrAlgNone, identity.ErrMalformed, identity.ErrClaimValidation,
		identity.ErrMissingMember, identity.ErrNotJSON} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
