package identitytest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Default claim values of minted tokens; see MintToken.
const (
	DefaultSubject  = "user-1"
	DefaultAudience = "api"
	DefaultLifetime = time.Hour
)

// mintConfig collects what the mint options set.
type mintConfig struct {
	alg        string
	kid        string
	kidSet     bool
	noKID      bool
	signingKID string
	hmacSecret []byte
	headers    map[string]any
}

// MintOption changes how MintToken signs a token.
type MintOption func(*mintConfig)

// Alg selects the signing algorithm; the token is signed with the current key
// of that algorithm. An asymmetric algorithm that has no key yet gets one,
// which is published in the JWKS but not advertised in discovery. "HS256",
// "HS384" and "HS512" need HMACSecret. "none" produces an unsecured token
// (empty signature). The default is the first configured algorithm, or the
// algorithm of the SigningKey, or HS256 with HMACSecret.
func Alg(alg string) MintOption {
	return func(c *mintConfig) { c.alg = alg }
}

// KeyID puts kid in the "kid" header instead of the signing key's own ID;
// the token is still signed with the key selected by Alg or SigningKey.
func KeyID(kid string) MintOption {
	return func(c *mintConfig) { c.kid, c.kidSet, c.noKID = kid, true, false }
}

// NoKeyID leaves the "kid" header out.
func NoKeyID() MintOption {
	return func(c *mintConfig) { c.noKID, c.kidSet = true, false }
}

// SigningKey signs with the issuer key kid (e.g. a key that was rotated out
// or removed) instead of the current key of the algorithm.
func SigningKey(kid string) MintOption {
	return func(c *mintConfig) { c.signingKID = kid }
}

// HMACSecret signs with HS256 (or the HS* algorithm given with Alg) using
// secret; such tokens carry no "kid" unless KeyID is given.
func HMACSecret(secret []byte) MintOption {
	return func(c *mintConfig) { c.hmacSecret = append([]byte{}, secret...) }
}

// Header sets a protected header member, e.g. Header("typ", "at+jwt") or
// Header("crit", []string{"exp"}). It is applied last, so it can also
// overwrite "alg" or "kid" to craft inconsistent tokens.
func Header(name string, value any) MintOption {
	return func(c *mintConfig) {
		if c.headers == nil {
			c.headers = make(map[string]any)
		}
		c.headers[name] = value
	}
}

// MintToken returns a compact JWS whose payload is claims merged over the
// defaults: iss = URL, sub = DefaultSubject, aud = DefaultAudience, iat =
// now, exp = now + DefaultLifetime. A claim with a nil value removes that
// default (e.g. {"exp": nil}); time.Time values are written as NumericDate
// (seconds since the epoch). The claims map is not modified.
func (i *Issuer) MintToken(claims map[string]any, opts ...MintOption) (string, error) {
	var c mintConfig
	for _, o := range opts {
		o(&c)
	}
	payload, err := json.Marshal(i.tokenClaims(claims))
	if err != nil {
		return "", fmt.Errorf("identitytest: marshal claims: %w", err)
	}

	var key any
	kid := ""
	switch {
	case c.hmacSecret != nil:
		if c.alg == "" {
			c.alg = "HS256"
		}
		if !isHMACAlgorithm(c.alg) {
			return "", fmt.Errorf("identitytest: HMACSecret needs an HS* algorithm, not %q", c.alg)
		}
		key = c.hmacSecret
	case c.signingKID != "":
		k := i.keyByID(c.signingKID)
		if k == nil {
			return "", fmt.Errorf("identitytest: no key with ID %q", c.signingKID)
		}
		if c.alg == "" {
			c.alg = k.alg
		}
		key, kid = k.signer, k.kid
	case c.alg == "none":
	default:
		if c.alg == "" {
			c.alg = i.cfg.algorithms[0]
		}
		if isHMACAlgorithm(c.alg) {
			return "", fmt.Errorf("identitytest: algorithm %s needs HMACSecret", c.alg)
		}
		k, err := i.currentKey(c.alg)
		if err != nil {
			return "", err
		}
		key, kid = k.signer, k.kid
	}
	switch {
	case c.noKID:
		kid = ""
	case c.kidSet:
		kid = c.kid
	}

	headers := make(map[jose.HeaderKey]any, len(c.headers)+1)
	if kid != "" {
		headers["kid"] = kid
	}
	for k, v := range c.headers {
		headers[jose.HeaderKey(k)] = v
	}
	if c.alg == "none" {
		return unsecuredToken(headers, payload)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(c.alg), Key: key},
		&jose.SignerOptions{ExtraHeaders: headers})
	if err != nil {
		return "", fmt.Errorf("identitytest: signer for %s: %w", c.alg, err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("identitytest: sign: %w", err)
	}
	return obj.CompactSerialize()
}

// Mint is MintToken for tests: it fails tb on error.
func (i *Issuer) Mint(tb testing.TB, claims map[string]any, opts ...MintOption) string {
	tb.Helper()
	tok, err := i.MintToken(claims, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// Token mints a token with the default claims for subject sub plus extra
// (which may override or, with nil values, remove defaults), signed with the
// current key of the default algorithm. It fails tb on error.
func (i *Issuer) Token(tb testing.TB, sub string, extra map[string]any) string {
	tb.Helper()
	claims := maps.Clone(extra)
	if claims == nil {
		claims = make(map[string]any, 1)
	}
	if _, ok := claims["sub"]; !ok {
		claims["sub"] = sub
	}
	return i.Mint(tb, claims)
}

// tokenClaims merges claims over the defaults.
func (i *Issuer) tokenClaims(claims map[string]any) map[string]any {
	now := time.Now()
	out := map[string]any{
		"iss": i.URL,
		"sub": DefaultSubject,
		"aud": DefaultAudience,
		"iat": now.Unix(),
		"exp": now.Add(DefaultLifetime).Unix(),
	}
	for k, v := range claims {
		switch v := v.(type) {
		case nil:
			delete(out, k)
		case time.Time:
			out[k] = v.Unix()
		default:
			out[k] = v
		}
	}
	return out
}

// unsecuredToken builds an "alg":"none" token with an empty signature.
func unsecuredToken(headers map[jose.HeaderKey]any, payload []byte) (string, error) {
	h := map[jose.HeaderKey]any{"alg": "none"}
	maps.Copy(h, headers)
	hdr, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("identitytest: marshal header: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload) + ".", nil
}
