package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultAssertionLifetime is the lifetime of the client assertions
// (RFC 7523) that [ClientAuth] signs when it has no other.
const DefaultAssertionLifetime = 60 * time.Second

// ClientAuth says how a client authenticates to an endpoint (RFC 6749
// §2.3, OpenID Connect Core §9, RFC 7523). The zero value authenticates no
// one and sends no client_id.
//
// Method is one of [AuthMethodClientSecretBasic], [AuthMethodClientSecretPost],
// [AuthMethodPrivateKeyJWT], [AuthMethodClientSecretJWT] or [AuthMethodNone].
// When Method is empty it
// is chosen from what is set: Assertion or Key → private_key_jwt,
// ClientSecret → client_secret_basic (the RFC 6749 default), otherwise none.
type ClientAuth struct {
	// Method is the authentication method; see above.
	Method string
	// ClientID is the client identifier.
	ClientID string
	// ClientSecret is the shared secret for client_secret_basic,
	// client_secret_post and client_secret_jwt (the HMAC key).
	ClientSecret string
	// Key signs private_key_jwt assertions: an *rsa.PrivateKey,
	// *ecdsa.PrivateKey, ed25519.PrivateKey, a private jose.JSONWebKey (or
	// pointer to one) or a jose.OpaqueSigner.
	Key any
	// KeyID is the kid header of signed assertions (default: the kid of a
	// JSONWebKey Key, else none).
	KeyID string
	// Algorithm is the JWS algorithm of signed assertions. Default: the
	// JSONWebKey's alg, else RS256 for RSA, ES256/ES384/ES512 by curve,
	// EdDSA for Ed25519, HS256 for client_secret_jwt.
	Algorithm string
	// Audience is the aud of signed assertions. Default: the URL of the
	// endpoint called (RFC 7523 §3); some servers want their issuer.
	Audience string
	// AssertionLifetime bounds signed assertions; 0 means
	// [DefaultAssertionLifetime].
	AssertionLifetime time.Duration
	// Assertion is a ready-made client assertion (a JWT signed elsewhere)
	// sent as is with private_key_jwt or client_secret_jwt.
	Assertion string
}

// ClientSecretBasicAuth authenticates with HTTP Basic, the RFC 6749 default.
func ClientSecretBasicAuth(clientID, secret string) ClientAuth {
	return ClientAuth{Method: AuthMethodClientSecretBasic, ClientID: clientID, ClientSecret: secret}
}

// ClientSecretPostAuth sends client_id and client_secret in the form body.
func ClientSecretPostAuth(clientID, secret string) ClientAuth {
	return ClientAuth{Method: AuthMethodClientSecretPost, ClientID: clientID, ClientSecret: secret}
}

// PrivateKeyJWTAuth signs an RFC 7523 client assertion with key (see
// [ClientAuth.Key]) for every request; keyID is the kid header ("" for
// none, or the JSONWebKey's own).
func PrivateKeyJWTAuth(clientID string, key any, keyID string) ClientAuth {
	return ClientAuth{Method: AuthMethodPrivateKeyJWT, ClientID: clientID, Key: key, KeyID: keyID}
}

// ClientSecretJWTAuth signs an RFC 7523 client assertion with the client
// secret as HMAC key (HS256 by default; the secret must be at least 32
// bytes long).
func ClientSecretJWTAuth(clientID, secret string) ClientAuth {
	return ClientAuth{Method: AuthMethodClientSecretJWT, ClientID: clientID, ClientSecret: secret}
}

// PublicClientAuth identifies a public client (method none): client_id is
// sent in the form body, with no credential.
func PublicClientAuth(clientID string) ClientAuth {
	return ClientAuth{Method: AuthMethodNone, ClientID: clientID}
}

// method returns the effective authentication method.
func (a ClientAuth) method() string {
	switch {
	case a.Method != "":
		return a.Method
	case a.Assertion != "" || a.Key != nil:
		return AuthMethodPrivateKeyJWT
	case a.ClientSecret != "":
		return AuthMethodClientSecretBasic
	}
	return AuthMethodNone
}

// apply adds the client authentication to a request to endpoint.
func (a ClientAuth) apply(form url.Values, header http.Header, endpoint string) error {
	m := a.method()
	if m != AuthMethodNone && a.ClientID == "" && a.Assertion == "" {
		return fmt.Errorf("%w: client authentication %s needs a client ID", ErrMissingClientID, m)
	}
	switch m {
	case AuthMethodNone:
		setFormValue(form, "client_id", a.ClientID)
	case AuthMethodClientSecretBasic:
		if a.ClientSecret == "" {
			return fmt.Errorf("%w: client_secret_basic needs a client secret", ErrMissingParameter)
		}
		header.Set("Authorization", basicAuthorization(a.ClientID, a.ClientSecret))
	case AuthMethodClientSecretPost:
		if a.ClientSecret == "" {
			return fmt.Errorf("%w: client_secret_post needs a client secret", ErrMissingParameter)
		}
		form.Set("client_id", a.ClientID)
		form.Set("client_secret", a.ClientSecret)
	case AuthMethodPrivateKeyJWT, AuthMethodClientSecretJWT:
		assertion := a.Assertion
		if assertion == "" {
			var err error
			if assertion, err = a.signAssertion(endpoint, time.Now()); err != nil {
				return err
			}
		}
		setFormValue(form, "client_id", a.ClientID)
		form.Set("client_assertion_type", ClientAssertionTypeJWTBearer)
		form.Set("client_assertion", assertion)
	default:
		return fmt.Errorf("identity: unsupported client authentication method %q", m)
	}
	return nil
}

// basicAuthorization is the client_secret_basic header value: id and
// secret are form-url-encoded before base64 (RFC 6749 §2.3.1).
func basicAuthorization(id, secret string) string {
	creds := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(creds))
}

// signAssertion signs an RFC 7523 client assertion: iss = sub = client_id,
// aud, a random jti, iat and a short exp.
func (a ClientAuth) signAssertion(endpoint string, now time.Time) (string, error) {
	var (
		key   any
		alg   = a.Algorithm
		keyID = a.KeyID
	)
	switch a.method() {
	case AuthMethodClientSecretJWT:
		if a.ClientSecret == "" {
			return "", fmt.Errorf("%w: client_secret_jwt needs a client secret", ErrMissingParameter)
		}
		key = []byte(a.ClientSecret)
		if alg == "" {
			alg = string(jose.HS256)
		}
	default:
		if a.Key == nil {
			return "", fmt.Errorf("%w: private_key_jwt needs a signing key", ErrMissingParameter)
		}
		key = a.Key
		if jwk, ok := a.Key.(jose.JSONWebKey); ok {
			key = &jwk
		}
		if jwk, ok := key.(*jose.JSONWebKey); ok {
			if jwk.IsPublic() {
				return "", fmt.Errorf("%w: private_key_jwt needs a private key", ErrKeyConversion)
			}
			if keyID == "" {
				keyID = jwk.KeyID
			}
			if alg == "" {
				alg = jwk.Algorithm
			}
			key = jwk.Key
		}
		if alg == "" {
			alg = defaultSigningAlgorithm(key)
		}
		if alg == "" {
			return "", fmt.Errorf("%w: cannot infer an algorithm for a %T signing key", ErrKeyConversion, key)
		}
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if keyID != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), keyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("%w: client assertion signer: %v", ErrKeyConversion, err)
	}
	aud := a.Audience
	if aud == "" {
		aud = endpoint
	}
	life := a.AssertionLifetime
	if life <= 0 {
		life = DefaultAssertionLifetime
	}
	claims := jwt.Claims{
		Issuer:   a.ClientID,
		Subject:  a.ClientID,
		Audience: jwt.Audience{aud},
		ID:       randomToken(16),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(life)),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("%w: signing client assertion: %v", ErrKeyConversion, err)
	}
	return s, nil
}

// defaultSigningAlgorithm picks the usual JWS algorithm for a private key.
func defaultSigningAlgorithm(key any) string {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return string(jose.RS256)
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return string(jose.ES256)
		case elliptic.P384():
			return string(jose.ES384)
		case elliptic.P521():
			return string(jose.ES512)
		}
	case ed25519.PrivateKey:
		return string(jose.EdDSA)
	case jose.OpaqueSigner:
		if algs := k.Algs(); len(algs) > 0 {
			return string(algs[0])
		}
	}
	return ""
}

// randomToken returns n random bytes, base64url-encoded without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
