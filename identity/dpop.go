package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"
)

// DefaultDPoPRSABits is the modulus size of RSA keys made by [NewDPoPKey]:
// the minimum RFC 7518 §3.3 and this package accept, and fast to sign with.
const DefaultDPoPRSABits = 2048

// maxDPoPNonceOrigins bounds the nonces a [DPoPKey] remembers, so a client
// that talks to many servers (or is steered to many) cannot grow it
// without limit.
const maxDPoPNonceOrigins = 64

// ErrDPoPUnsupportedAlgorithm: a DPoP key was asked for an algorithm this
// package cannot make or use for proofs. It also matches
// [ErrUnsupportedAlg], so one check serves every algorithm refusal.
var ErrDPoPUnsupportedAlgorithm = fmt.Errorf("%w for DPoP keys", ErrUnsupportedAlg)

// DPoPKey is a client's proof-of-possession key (RFC 9449 §4.1): the
// private key that signs DPoP proofs, its algorithm, its public JWK (sent
// in every proof) and that JWK's RFC 7638 thumbprint (the cnf.jkt a bound
// token carries, and the dpop_jkt authorization parameter).
//
// A DPoPKey also remembers the latest DPoP-Nonce of each server (origin) it
// has talked to, so later proofs to that server carry it (RFC 9449 §8).
// Use it through a pointer; it is safe for concurrent use. Keep one key for
// as long as the tokens bound to it live: a new key cannot use them.
type DPoPKey struct {
	key        crypto.Signer
	alg        jose.SignatureAlgorithm
	public     jose.JSONWebKey
	thumbprint string
	nonces     dpopNonces
}

// NewDPoPKey generates a key for alg: "ES256" makes an EC P-256 key,
// "RS256" an RSA key of [DefaultDPoPRSABits] bits. Any other algorithm
// fails with an error matching [ErrDPoPUnsupportedAlgorithm]: ES256 is
// what most servers list in dpop_signing_alg_values_supported, RS256 the
// fallback for those that only do RSA.
func NewDPoPKey(alg string) (*DPoPKey, error) {
	var (
		key crypto.Signer
		err error
	)
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, DefaultDPoPRSABits)
	default:
		return nil, fmt.Errorf("%w: %q (use ES256 or RS256)", ErrDPoPUnsupportedAlgorithm, alg)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: generating DPoP key: %w", err)
	}
	return newDPoPKey(key, jose.SignatureAlgorithm(alg))
}

// LoadDPoPKey turns a stored private JWK back into a DPoPKey, so a client
// keeps its binding (and its bound tokens) across restarts. The algorithm
// is the JWK's alg, else ES256 for P-256 and RS256 for RSA; the key must
// be ES256 (P-256) or RS256 with at least [DefaultMinRSABits] bits.
func LoadDPoPKey(private jose.JSONWebKey) (*DPoPKey, error) {
	if private.IsPublic() {
		return nil, fmt.Errorf("%w: a DPoP key needs the private key", ErrKeyConversion)
	}
	key, ok := private.Key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: a DPoP key must be asymmetric, not %T", ErrDPoPUnsupportedAlgorithm, private.Key)
	}
	alg := private.Algorithm
	if alg == "" {
		alg = defaultSigningAlgorithm(key)
	}
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256, jose.RS256:
	default:
		return nil, fmt.Errorf("%w: %q (use ES256 or RS256)", ErrDPoPUnsupportedAlgorithm, alg)
	}
	return newDPoPKey(key, jose.SignatureAlgorithm(alg))
}

// newDPoPKey checks that key fits alg and computes its public JWK and
// thumbprint.
func newDPoPKey(key crypto.Signer, alg jose.SignatureAlgorithm) (*DPoPKey, error) {
	public := jose.JSONWebKey{Key: key.Public(), Algorithm: string(alg), Use: "sig"}
	if !AlgorithmFitsKey(string(alg), public) {
		return nil, fmt.Errorf("%w: %s does not fit a %T", ErrDPoPUnsupportedAlgorithm, alg, key)
	}
	tp, err := JWKThumbprint(public)
	if err != nil {
		return nil, err
	}
	return &DPoPKey{key: key, alg: alg, public: public, thumbprint: tp}, nil
}

// JWKThumbprint is the RFC 7638 SHA-256 thumbprint of a public key,
// base64url without padding: the form of cnf.jkt (RFC 9449 §6.1) and
// dpop_jkt (RFC 9449 §10), for comparing keys without comparing JWKs.
func JWKThumbprint(public jose.JSONWebKey) (string, error) {
	tp, err := public.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("%w: JWK thumbprint: %v", ErrKeyConversion, err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// Algorithm is the JWS algorithm of the key's proofs ("ES256" or "RS256").
func (k *DPoPKey) Algorithm() string { return string(k.alg) }

// PublicJWK is the public key as sent in the jwk header of every proof;
// it never holds private material.
func (k *DPoPKey) PublicJWK() jose.JSONWebKey { return k.public }

// PrivateJWK is the private key as a JWK, for a client to store and later
// restore with [LoadDPoPKey]. Keep it as secret as a client secret.
func (k *DPoPKey) PrivateJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.key, Algorithm: string(k.alg), Use: "sig"}
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of the public key,
// base64url without padding: the cnf.jkt of tokens bound to this key and
// the value of the dpop_jkt authorization request parameter (RFC 9449 §10).
func (k *DPoPKey) Thumbprint() string { return k.thumbprint }

// Nonce returns the latest DPoP-Nonce remembered for the server (origin)
// of uri, "" when there is none.
func (k *DPoPKey) Nonce(uri string) string { return k.nonces.get(uri) }

// RememberNonce stores nonce as the DPoP-Nonce of the server (origin) of
// uri; later proofs to that server carry it. The clients of this package
// do this themselves; call it when sending proofs through another HTTP
// stack. An empty nonce is ignored.
func (k *DPoPKey) RememberNonce(uri, nonce string) { k.nonces.set(uri, nonce) }

// DPoPBound reports whether the token is DPoP-bound (token_type "DPoP" in
// any letter case, RFC 9449 §5): it must then be sent with
// [DPoPKey.AuthorizeRequest], never as a Bearer token.
func (r *TokenResponse) DPoPBound() bool { return strings.EqualFold(r.TokenType, TokenTypeDPoP) }

// dpopNonces maps origins to their latest DPoP-Nonce.
type dpopNonces struct {
	mu sync.Mutex
	m  map[string]string
}

// nonceOrigin is the key of uri in the nonce store: the lower-cased
// scheme and host, without the default port; "" when uri is not absolute.
func nonceOrigin(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme + "://" + strings.ToLower(hostWithPort(u.Hostname(), u.Port(), scheme))
}

func (n *dpopNonces) get(uri string) string {
	origin := nonceOrigin(uri)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[origin]
}

func (n *dpopNonces) set(uri, nonce string) {
	origin := nonceOrigin(uri)
	if origin == "" || nonce == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]string{}
	}
	if _, known := n.m[origin]; !known && len(n.m) >= maxDPoPNonceOrigins {
		for o := range n.m {
			delete(n.m, o)
			break
		}
	}
	n.m[origin] = nonce
}
