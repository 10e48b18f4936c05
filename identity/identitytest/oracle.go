package identitytest

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The oracles below judge, independently of the code under test, whether an
// accepted token or DPoP proof deserved to be accepted: go-jose parses and
// verifies the JWS, encoding/json reads the claims, and the checks are
// written out here again. Fuzz targets and attack suites call them on
// whatever the validator or the handler accepted, so that a bypassed check
// (a signature never verified, an allow-list dropped, an audience ignored)
// fails a test instead of passing unnoticed. They are deliberately simple:
// a token the code under test refuses may still pass them.

// TokenCheck is what an accepted access token must satisfy.
type TokenCheck struct {
	// Algorithms are the JWS algorithms that may be accepted.
	Algorithms []string
	// Keys are the public verification keys; a key with an "alg" verifies
	// only that algorithm, a key with a "kid" only tokens naming it.
	Keys jose.JSONWebKeySet
	// HMACSecret verifies HS256, HS384 and HS512 tokens.
	HMACSecret []byte
	// Issuer is the exact "iss"; Audience must be "aud" or one of its
	// members.
	Issuer, Audience string
	// Types, when set, are the accepted "typ" headers (compared without
	// letter case, "application/" optional).
	Types []string
	// Now is the time of the check; Leeway the clock skew tolerated on
	// exp, nbf and iat.
	Now    time.Time
	Leeway time.Duration
}

// TokenCheck returns the check of a token of this issuer for audience:
// its published keys (as PublicJWKS returns them) and algorithms, a minute
// of leeway, now.
func (i *Issuer) TokenCheck(audience string) TokenCheck {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(i.PublicJWKS(), &set); err != nil {
		panic(err)
	}
	return TokenCheck{
		Algorithms: i.Algorithms(),
		Keys:       set,
		Issuer:     i.URL,
		Audience:   audience,
		Now:        time.Now(),
		Leeway:     time.Minute,
	}
}

// Check verifies token: a compact JWS of an allowed algorithm whose
// signature verifies with a key of c (or the HMAC secret), issued by
// c.Issuer for c.Audience, with a numeric exp in the future, a numeric iat
// not in the future and, when present, a numeric nbf not in the future. It
// returns the claims.
func (c TokenCheck) Check(token string) (map[string]any, error) {
	sigAlgs := make([]jose.SignatureAlgorithm, len(c.Algorithms))
	for n, a := range c.Algorithms {
		sigAlgs[n] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(token, sigAlgs)
	if err != nil {
		return nil, fmt.Errorf("not a compact JWS of %v: %w", c.Algorithms, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if len(c.Types) > 0 {
		typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
		typ = strings.TrimPrefix(strings.ToLower(typ), "application/")
		if !slices.ContainsFunc(c.Types, func(t string) bool { return strings.TrimPrefix(strings.ToLower(t), "application/") == typ }) {
			return nil, fmt.Errorf("typ %q not one of %v", typ, c.Types)
		}
	}
	payload, err := c.verify(jws, h)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	if claims["iss"] != c.Issuer {
		return nil, fmt.Errorf("iss %v, want %q", claims["iss"], c.Issuer)
	}
	if !audienceHas(claims["aud"], c.Audience) {
		return nil, fmt.Errorf("aud %v does not contain %q", claims["aud"], c.Audience)
	}
	now := float64(c.Now.UnixNano()) / 1e9
	leeway := c.Leeway.Seconds() + 1 // a second more: the oracle must never be the stricter one
	exp, err := numericDate(claims, "exp")
	if err != nil {
		return nil, err
	}
	if exp+leeway <= now {
		return nil, fmt.Errorf("expired: exp %v, now %v", exp, now)
	}
	iat, err := numericDate(claims, "iat")
	if err != nil {
		return nil, err
	}
	if iat > now+leeway {
		return nil, fmt.Errorf("issued in the future: iat %v, now %v", iat, now)
	}
	if _, present := claims["nbf"]; present {
		nbf, err := numericDate(claims, "nbf")
		if err != nil {
			return nil, err
		}
		if nbf > now+leeway {
			return nil, fmt.Errorf("not valid yet: nbf %v, now %v", nbf, now)
		}
	}
	return claims, nil
}

// verify returns the payload once a key of c verified the signature.
func (c TokenCheck) verify(jws *jose.JSONWebSignature, h jose.Header) ([]byte, error) {
	if strings.HasPrefix(h.Algorithm, "HS") {
		if len(c.HMACSecret) == 0 {
			return nil, fmt.Errorf("%s without an HMAC secret", h.Algorithm)
		}
		return jws.Verify(c.HMACSecret)
	}
	tried := 0
	for _, k := range c.Keys.Keys {
		if (h.KeyID != "" && k.KeyID != h.KeyID) || (k.Algorithm != "" && k.Algorithm != h.Algorithm) {
			continue
		}
		tried++
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("the signature (%s, kid %q) verifies with none of the %d fitting keys", h.Algorithm, h.KeyID, tried)
}

// audienceHas reports whether aud (a string or an array) contains want.
func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.Contains(a, any(want))
	}
	return false
}

// numericDate returns claim name, which must be a finite JSON number, as
// seconds since the epoch.
func numericDate(claims map[string]any, name string) (float64, error) {
	v, present := claims[name]
	if !present {
		return 0, fmt.Errorf("no %s", name)
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s %v is not a number", name, v)
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%s %v is not a finite number", name, v)
	}
	return f, nil
}

// ProofCheck is what an accepted DPoP proof (RFC 9449 §4.3) must satisfy.
type ProofCheck struct {
	// Method and URI are those of the request; the proof's htu must be the
	// URI without query and fragment (scheme and host compared without
	// letter case, default ports and percent-encoding normalized).
	Method, URI string
	// AccessToken, when set, must be hashed in ath.
	AccessToken string
	// JKT is the thumbprint the proof's key must have (the token's
	// cnf.jkt).
	JKT string
	// Algorithms are the accepted proof algorithms.
	Algorithms []string
	// Now, MaxAge and ClockSkew bound iat: Now-MaxAge <= iat <= Now+ClockSkew.
	Now               time.Time
	MaxAge, ClockSkew time.Duration
}

// Check verifies proof: a compact JWS of an allowed asymmetric algorithm,
// typ dpop+jwt, signed by the public key of its jwk header whose RFC 7638
// thumbprint is c.JKT, with a jti, htm equal to the method, htu equal to
// the URI, iat inside the window and, with an access token, its ath.
func (c ProofCheck) Check(proof string) error {
	sigAlgs := make([]jose.SignatureAlgorithm, 0, len(c.Algorithms))
	for _, a := range c.Algorithms {
		if !strings.HasPrefix(a, "HS") && !strings.EqualFold(a, "none") {
			sigAlgs = append(sigAlgs, jose.SignatureAlgorithm(a))
		}
	}
	jws, err := jose.ParseSignedCompact(proof, sigAlgs)
	if err != nil {
		return fmt.Errorf("not a compact JWS of %v: %w", sigAlgs, err)
	}
	if len(jws.Signatures) != 1 {
		return fmt.Errorf("%d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return fmt.Errorf("typ %q", typ)
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return errors.New("no public jwk header")
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("jwk thumbprint: %w", err)
	}
	if got := base64.RawURLEncoding.EncodeToString(tp); got != c.JKT {
		return fmt.Errorf("jwk thumbprint %s, want %s", got, c.JKT)
	}
	payload, err := jws.Verify(h.JSONWebKey.Key)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return fmt.Errorf("payload is not a JSON object: %w", err)
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		return errors.New("no jti")
	}
	if claims["htm"] != c.Method {
		return fmt.Errorf("htm %v, want %q", claims["htm"], c.Method)
	}
	htu, _ := claims["htu"].(string)
	if !sameResource(htu, c.URI) {
		return fmt.Errorf("htu %q does not name %q", htu, c.URI)
	}
	iat, err := numericDate(claims, "iat")
	if err != nil {
		return err
	}
	now := float64(c.Now.UnixNano()) / 1e9
	if iat < now-c.MaxAge.Seconds()-1 || iat > now+c.ClockSkew.Seconds()+1 {
		return fmt.Errorf("iat %v outside [now-%v, now+%v] of %v", iat, c.MaxAge, c.ClockSkew, now)
	}
	if c.AccessToken != "" {
		sum := sha256.Sum256([]byte(c.AccessToken))
		if claims["ath"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return fmt.Errorf("ath %v is not the hash of the access token", claims["ath"])
		}
	}
	return nil
}

// sameResource reports whether a and b name the same resource once query
// and fragment are dropped: scheme and host without letter case, the
// default port of the scheme optional, an empty path "/", and the path
// compared percent-decoded.
func sameResource(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || ua.Host == "" || ub.Host == "" {
		return false
	}
	norm := func(u *url.URL) string {
		scheme := strings.ToLower(u.Scheme)
		host, port := strings.ToLower(u.Hostname()), u.Port()
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			port = ""
		}
		path := u.Path
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + ":" + port + path
	}
	return norm(ua) == norm(ub)
}
