package identitytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
)

// RSAKeyBits is the size of the RSA keys the issuer generates for the RS*
// and PS* algorithms.
const RSAKeyBits = 2048

// SupportedAlgorithms returns the asymmetric JWS algorithms for which an
// Issuer can generate signing keys, in a stable order.
func SupportedAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// isSupportedAlgorithm reports whether alg is one of SupportedAlgorithms.
func isSupportedAlgorithm(alg string) bool {
	for _, a := range SupportedAlgorithms() {
		if a == alg {
			return true
		}
	}
	return false
}

// isHMACAlgorithm reports whether alg is one of the HS* algorithms.
func isHMACAlgorithm(alg string) bool {
	return alg == "HS256" || alg == "HS384" || alg == "HS512"
}

// generateKey creates a fresh private key suitable for alg: RSA 2048 for
// RS*/PS*, the matching NIST curve for ES*, Ed25519 for EdDSA.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return rsa.GenerateKey(rand.Reader, RSAKeyBits)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return priv, nil
	default:
		return nil, fmt.Errorf("identitytest: no key type for algorithm %q", alg)
	}
}
