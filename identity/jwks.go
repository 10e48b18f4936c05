package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Limits applied when parsing a JWK Set.
const (
	// DefaultMaxKeys is the largest number of keys a JWK Set may hold
	// before it is refused as a whole. Real sets hold a handful.
	DefaultMaxKeys = 100
	// DefaultMinRSABits is the smallest RSA modulus accepted (RFC 7518
	// §3.3 requires 2048 bits). It is also the floor: a smaller
	// [ParseKeySetOptions.MinRSABits] is raised to it.
	DefaultMinRSABits = 2048
)

// ParseKeySetOptions tunes [ParseKeySetWithOptions]. The zero value gives
// the defaults.
type ParseKeySetOptions struct {
	// MaxKeys refuses a set with more entries than this (usable or not);
	// 0 means DefaultMaxKeys.
	MaxKeys int
	// MinRSABits refuses smaller RSA keys; 0 or anything below
	// DefaultMinRSABits means DefaultMinRSABits.
	MinRSABits int
}

// SkippedKey describes an entry of a JWK Set that was left out because it
// cannot verify signatures here. Skipping is per key (RFC 7517 §5): one
// unusable key never makes the rest of the set unusable.
type SkippedKey struct {
	// Index is the position of the entry in the "keys" array.
	Index int
	// KeyID and KeyType are the entry's "kid" and "kty", when readable.
	KeyID, KeyType string
	// Reason says why the entry was skipped.
	Reason string
}

// KeySet is a parsed JWK Set holding only the public keys usable for
// signature verification. It is immutable and safe for concurrent use, and
// it is a static [KeySource].
type KeySet struct {
	keys    []Key
	skipped []SkippedKey
	thumbs  map[string]struct{}
	algs    []string
}

// ParseKeySet parses a JWK Set (RFC 7517 §5) with the default options. See
// [ParseKeySetWithOptions].
func ParseKeySet(data []byte) (*KeySet, error) {
	return ParseKeySetWithOptions(data, ParseKeySetOptions{})
}

// ParseKeySetWithOptions parses a JWK Set key by key and keeps the keys
// usable for signature verification: "use" absent or "sig", "key_ops"
// absent or containing "verify", a public RSA (at least MinRSABits), EC
// (P-256, P-384, P-521) or Ed25519 key, and an "alg", when present, that
// fits the key. Other entries are skipped with a reason (see
// [KeySet.Skipped]): private key material, symmetric "oct" keys, unknown key
// types and curves (X25519, secp256k1, …), encryption keys.
//
// It fails with [ErrInvalidKeySet] when the set is empty, has no usable key
// or has more than MaxKeys entries, and additionally with [ErrNotJSON] when
// the document is not a JSON object with a "keys" array.
func ParseKeySetWithOptions(data []byte, o ParseKeySetOptions) (*KeySet, error) {
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.MinRSABits < DefaultMinRSABits {
		o.MinRSABits = DefaultMinRSABits
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrInvalidKeySet, ErrNotJSON, err)
	}
	if top == nil {
		return nil, fmt.Errorf("%w: %w: not a JSON object", ErrInvalidKeySet, ErrNotJSON)
	}
	rawKeys, ok := top["keys"]
	if !ok {
		return nil, fmt.Errorf("%w: %w: no \"keys\" member", ErrInvalidKeySet, ErrNotJSON)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(rawKeys, &entries); err != nil {
		return nil, fmt.Errorf("%w: %w: \"keys\" is not an array", ErrInvalidKeySet, ErrNotJSON)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: empty key set", ErrInvalidKeySet)
	}
	if len(entries) > o.MaxKeys {
		return nil, fmt.Errorf("%w: %d keys, more than the limit of %d", ErrInvalidKeySet, len(entries), o.MaxKeys)
	}
	s := &KeySet{thumbs: make(map[string]struct{}, len(entries))}
	for i, raw := range entries {
		k, skip := parseJWK(raw, o.MinRSABits)
		if skip != nil {
			skip.Index = i
			s.skipped = append(s.skipped, *skip)
			continue
		}
		s.keys = append(s.keys, k)
		s.thumbs[k.Thumbprint] = struct{}{}
		if k.JWK.Algorithm != "" && !slices.Contains(s.algs, k.JWK.Algorithm) {
			s.algs = append(s.algs, k.JWK.Algorithm)
		}
	}
	if len(s.keys) == 0 {
		reasons := make([]string, 0, len(s.skipped))
		for _, sk := range s.skipped {
			reasons = append(reasons, fmt.Sprintf("#%d %s", sk.Index, sk.Reason))
		}
		return nil, fmt.Errorf("%w: no usable key (%s)", ErrInvalidKeySet, strings.Join(reasons, "; "))
	}
	return s, nil
}

// jwkHeader holds the members read before go-jose sees an entry.
type jwkHeader struct {
	Kty    any `json:"kty"`
	Kid    any `json:"kid"`
	Use    any `json:"use"`
	KeyOps any `json:"key_ops"`
	Alg    any `json:"alg"`
	D      any `json:"d"`
	P      any `json:"p"`
	Q      any `json:"q"`
	DP     any `json:"dp"`
	DQ     any `json:"dq"`
	QI     any `json:"qi"`
	Oth    any `json:"oth"`
	K      any `json:"k"`
	Priv   any `json:"priv"`
}

// parseJWK turns one entry into a Key, or says why it is skipped.
func parseJWK(raw json.RawMessage, minRSABits int) (Key, *SkippedKey) {
	var h jwkHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return Key{}, &SkippedKey{Reason: "not a JSON object"}
	}
	kty, _ := h.Kty.(string)
	kid, _ := h.Kid.(string)
	skip := func(format string, a ...any) (Key, *SkippedKey) {
		return Key{}, &SkippedKey{KeyID: kid, KeyType: kty, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case kty == "":
		return skip("missing or invalid \"kty\"")
	case h.Kid != nil && !isString(h.Kid):
		return skip("\"kid\" is not a string")
	case h.Alg != nil && !isString(h.Alg):
		return skip("\"alg\" is not a string")
	case h.D != nil || h.P != nil || h.Q != nil || h.DP != nil || h.DQ != nil || h.QI != nil || h.Oth != nil || h.Priv != nil:
		return skip("private key material in a public key set")
	case kty == "oct" || h.K != nil:
		return skip("symmetric key in a public key set")
	}
	if h.Use != nil {
		if u, ok := h.Use.(string); !ok || u != "sig" {
			return skip("\"use\" is %v, not \"sig\"", h.Use)
		}
	}
	if h.KeyOps != nil {
		ops, ok := h.KeyOps.([]any)
		if !ok || !slices.Contains(ops, any("verify")) {
			return skip("\"key_ops\" does not allow \"verify\"")
		}
	}
	switch kty {
	case "RSA", "EC", "OKP":
	default:
		return skip("unsupported key type %q", kty)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		if errors.Is(err, jose.ErrUnsupportedKeyType) {
			return skip("unsupported key parameters (curve or size)")
		}
		return skip("invalid key: %v", err)
	}
	if !k.IsPublic() || !k.Valid() {
		return skip("not a valid public key")
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSABits {
			return skip("RSA key of %d bits, less than %d", key.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
	case ed25519.PublicKey:
	default:
		return skip("unsupported key type %q", kty)
	}
	if k.Algorithm != "" && !AlgorithmFitsKey(k.Algorithm, k) {
		return skip("\"alg\" %q does not fit the key", k.Algorithm)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return skip("no thumbprint: %v", err)
	}
	return Key{JWK: k, Thumbprint: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// AlgorithmFitsKey reports whether a JWS alg can be verified with k: RS*
// and PS* need an RSA public key of at least DefaultMinRSABits bits, ES256,
// ES384 and ES512 an EC public key on P-256, P-384 and P-521, EdDSA an
// Ed25519 public key, and HS256, HS384 and HS512 a []byte secret at least
// as long as the hash output (RFC 7518 §3.2). It ignores the key's own
// "alg"; [KeySet.Candidates] checks that too.
func AlgorithmFitsKey(alg string, k jose.JSONWebKey) bool {
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return key.N != nil && key.N.BitLen() >= DefaultMinRSABits
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(key) == ed25519.PublicKeySize
	case []byte:
		switch alg {
		case "HS256":
			return len(key) >= 32
		case "HS384":
			return len(key) >= 48
		case "HS512":
			return len(key) >= 64
		}
	}
	return false
}

// asymmetricAlgorithms lists the asymmetric JWS algorithms this package
// verifies, in a fixed order.
func asymmetricAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// Keys returns the usable keys in set order.
func (s *KeySet) Keys() []Key { return slices.Clone(s.keys) }

// Len returns the number of usable keys.
func (s *KeySet) Len() int { return len(s.keys) }

// Skipped returns the entries that were left out, with the reason.
func (s *KeySet) Skipped() []SkippedKey { return slices.Clone(s.skipped) }

// Candidates returns the keys that may verify a token with header kid and
// alg, in set order. A key qualifies when alg fits its type and curve (see
// [AlgorithmFitsKey]) and equals the key's "alg" when it has one. With a kid,
// every qualifying key with that kid is returned (duplicate kids are all
// tried); without one, the single qualifying key is returned only when
// exactly one key qualifies.
func (s *KeySet) Candidates(kid, alg string) []Key {
	var out []Key
	for _, k := range s.keys {
		if kid != "" && k.JWK.KeyID != kid {
			continue
		}
		if !AlgorithmFitsKey(alg, k.JWK) || (k.JWK.Algorithm != "" && k.JWK.Algorithm != alg) {
			continue
		}
		out = append(out, k)
	}
	if kid == "" && len(out) != 1 {
		return nil
	}
	return out
}

// CandidateKeys implements [KeySource]: it returns [KeySet.Candidates] or
// an error matching [ErrKeyNotFound] when there are none.
func (s *KeySet) CandidateKeys(_ context.Context, kid, alg string) ([]Key, error) {
	if c := s.Candidates(kid, alg); len(c) > 0 {
		return c, nil
	}
	return nil, fmt.Errorf("%w: kid %q, alg %q", ErrKeyNotFound, kid, alg)
}

// HasKey reports whether the set holds a usable key with this RFC 7638
// thumbprint (base64url SHA-256).
func (s *KeySet) HasKey(thumbprint string) bool {
	_, ok := s.thumbs[thumbprint]
	return ok
}

// KeySetVersion implements [KeySetVersioner]: a KeySet never changes, so
// its version is always 1.
func (s *KeySet) KeySetVersion(time.Time) uint64 { return 1 }

// Algorithms returns the distinct "alg" values of the usable keys, in set
// order; keys without "alg" contribute nothing.
func (s *KeySet) Algorithms() []string { return slices.Clone(s.algs) }

// FetchKeySetOptions configures [FetchKeySet]. The zero value gives the
// defaults.
type FetchKeySetOptions struct {
	// MaxBytes caps the body; 0 means [DefaultMaxDocumentBytes].
	MaxBytes int64
	// AllowHTTP permits an http URL on a non-loopback host (development
	// only).
	AllowHTTP bool
	// Parse selects the keys kept, as for [ParseKeySetWithOptions].
	Parse ParseKeySetOptions
}

// FetchKeySet GETs a JWK Set from jwksURL and parses it. The URL must be
// https, or http on a loopback host or with opts.AllowHTTP. Redirects are
// followed only on the same host; the body is capped at opts.MaxBytes and
// must be declared as JSON. A nil client means one with
// [DefaultHTTPTimeout]. The response header is returned for caching
// decisions, also with most errors (as by [FetchDiscovery]); a
// [RemoteKeySet] or [Provider] does that caching.
func FetchKeySet(ctx context.Context, client *http.Client, jwksURL string, opts FetchKeySetOptions) (*KeySet, http.Header, error) {
	if err := checkFetchURL(jwksURL, opts.AllowHTTP); err != nil {
		return nil, nil, err
	}
	return fetchKeySet(ctx, client, jwksURL, opts.MaxBytes, opts.Parse)
}

// fetchKeySet is FetchKeySet without the URL check.
func fetchKeySet(ctx context.Context, client *http.Client, jwksURL string, maxBytes int64, o ParseKeySetOptions) (*KeySet, http.Header, error) {
	body, hdr, err := getJSON(ctx, client, jwksURL, maxBytes)
	if err != nil {
		return nil, hdr, err
	}
	s, err := ParseKeySetWithOptions(body, o)
	if err != nil {
		return nil, hdr, err
	}
	return s, hdr, nil
}

// checkFetchURL requires an absolute http(s) URL, https unless loopback or
// allowHTTP.
func checkFetchURL(rawURL string, allowHTTP bool) error {
	if rawURL == "" {
		return fmt.Errorf("%w: the key set URL is empty", ErrMissingAddress)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%w: %q is not an absolute http(s) URL", ErrEndpointNotAllowed, redactURL(rawURL))
	}
	return requireHTTPS(u, allowHTTP)
}
