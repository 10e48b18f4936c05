package identity

import (
	"crypto/sha256"
	"encoding/base64"
)

// PKCE is a Proof Key for Code Exchange pair (RFC 7636): send Challenge and
// Method with the authorization request, Verifier with the code.
type PKCE struct {
	// Verifier is the code_verifier: 43 unreserved characters.
	Verifier string
	// Challenge is BASE64URL(SHA256(Verifier)).
	Challenge string
	// Method is "S256".
	Method string
}

// NewPKCE returns a fresh verifier with its S256 challenge.
func NewPKCE() PKCE {
	v := GenerateCodeVerifier()
	return PKCE{Verifier: v, Challenge: S256Challenge(v), Method: CodeChallengeMethodS256}
}

// GenerateCodeVerifier returns a code verifier of 43 characters from the
// unreserved set [A-Za-z0-9-._~]: 32 random bytes, base64url-encoded
// (RFC 7636 §4.1).
func GenerateCodeVerifier() string {
	return randomToken(32)
}

// S256Challenge returns the S256 code challenge of verifier:
// BASE64URL-ENCODE(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ValidCodeVerifier reports whether v is a well-formed code verifier:
// 43 to 128 characters from [A-Za-z0-9-._~] (RFC 7636 §4.1).
func ValidCodeVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}
