package identity

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// compactJWS is a compact JWS whose structure and protected header have been
// checked; nothing in it is trusted until the signature is verified.
type compactJWS struct {
	header  jwsHeader
	payload string // base64url payload segment, decoded on demand
	// signingInput is the header and payload segments with the dot
	// between them, as received: the bytes the signature covers.
	signingInput string
	signature    []byte // decoded signature, empty when the segment is
}

// jwsHeader holds the protected header members the validator looks at.
// jku, x5u, x5c and jwk are deliberately not read: keys are never chosen by
// the token.
type jwsHeader struct {
	alg, kid, typ string
	crit          []string
	hasCrit       bool
	b64False      bool
	// joseMembers is the decoded header when it has a "jwk", "x5c" or
	// "nonce" member, for checkJOSEMembers; nil otherwise.
	joseMembers map[string]any
}

// parseCompact checks the size of token, splits it into its three
// canonical base64url segments, decodes the signature and the protected
// header: a JSON object with
// no duplicate member names, a string "alg", and well-typed "kid", "typ",
// "cty", "crit" and "b64" when present. A five-part token (JWE) is
// malformed: only signed tokens are accepted.
func parseCompact(token string, maxBytes int) (*compactJWS, error) {
	if len(token) > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTokenTooLarge, len(token), maxBytes)
	}
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrMalformed)
	}
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s, ".") {
		if strings.Count(token, ".") == 4 {
			return nil, fmt.Errorf("%w: encrypted token (JWE) not accepted", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: a compact JWS has exactly three parts", ErrMalformed)
	}
	if h == "" || p == "" {
		return nil, fmt.Errorf("%w: empty header or payload", ErrMalformed)
	}
	if !isBase64URL(h) || !isBase64URL(p) || !isBase64URL(s) {
		return nil, fmt.Errorf("%w: invalid base64url", ErrMalformed)
	}
	raw, err := decodeSegment(h)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	m, err := parseJSONText(bytesText(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	hdr, err := readHeader(m)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	sig, err := decodeSegment(s)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	return &compactJWS{header: hdr, payload: p, signingInput: token[:len(h)+1+len(p)], signature: sig}, nil
}

// readHeader extracts and type-checks the members of a decoded header.
func readHeader(m map[string]any) (jwsHeader, error) {
	var h jwsHeader
	alg, ok := m["alg"].(string)
	if !ok || alg == "" {
		return h, errors.New(`"alg" missing or not a string`)
	}
	h.alg = alg
	var err error
	if h.kid, err = optionalString(m, "kid"); err != nil {
		return h, err
	}
	if h.typ, err = optionalString(m, "typ"); err != nil {
		return h, err
	}
	cty, err := optionalString(m, "cty")
	if err != nil {
		return h, err
	}
	if strings.EqualFold(strings.TrimPrefix(strings.ToLower(cty), "application/"), "jwt") {
		return h, errors.New("nested JWT (cty JWT) not accepted")
	}
	if v, present := m["crit"]; present {
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			return h, errors.New(`"crit" must be a non-empty array of strings`)
		}
		for _, e := range arr {
			s, ok := e.(string)
			if !ok || s == "" {
				return h, errors.New(`"crit" must be a non-empty array of strings`)
			}
			h.crit = append(h.crit, s)
		}
		h.hasCrit = true
	}
	if m["jwk"] != nil || m["x5c"] != nil || m["nonce"] != nil {
		h.joseMembers = m
	}
	if v, present := m["b64"]; present {
		b, ok := v.(bool)
		if !ok {
			return h, errors.New(`"b64" is not a boolean`)
		}
		h.b64False = !b
	}
	return h, nil
}

// checkJOSEMembers applies go-jose's rules to the header members it
// interprets and a [Validator] never uses: "nonce" a string, "x5c" an array
// of base64 DER certificates, "jwk" a valid public key; null counts as
// absent, as there. Access tokens were verified with go-jose before this
// package verified them itself, and a token it refused is still refused.
func (h *jwsHeader) checkJOSEMembers() error {
	m := h.joseMembers
	if v := m["nonce"]; v != nil {
		if _, ok := v.(string); !ok {
			return errors.New(`"nonce" is not a string`)
		}
	}
	if v := m["x5c"]; v != nil {
		arr, ok := v.([]any)
		if !ok {
			return errors.New(`"x5c" is not an array of strings`)
		}
		for _, e := range arr {
			s, _ := e.(string)
			der, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return errors.New(`"x5c" holds invalid base64`)
			}
			if _, err := x509.ParseCertificate(der); err != nil {
				return errors.New(`"x5c" holds an invalid certificate`)
			}
		}
	}
	if v := m["jwk"]; v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return errors.New(`invalid "jwk"`)
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(b); err != nil || !k.Valid() || !k.IsPublic() {
			return errors.New(`"jwk" is not a valid public key`)
		}
	}
	return nil
}

// optionalString returns member name of m, "" when absent, and an error
// when it is present but not a string.
func optionalString(m map[string]any, name string) (string, error) {
	v, present := m[name]
	if !present {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%q is not a string", name)
	}
	return s, nil
}

// checkCritical refuses critical extensions: this package understands none
// (RFC 7515 §4.1.11), and it never accepts unencoded payloads (RFC 7797
// b64=false), listed in crit or not.
func (h *jwsHeader) checkCritical() error {
	if h.hasCrit {
		return fmt.Errorf("%w: %q", ErrUnsupportedHeader, h.crit)
	}
	if h.b64False {
		return fmt.Errorf("%w: unencoded payload (b64=false)", ErrUnsupportedHeader)
	}
	return nil
}

// claims decodes the payload (see decodeClaims): base64url, then a JSON
// object without duplicate member names, of which the members named in
// names are decoded.
func (j *compactJWS) claims(names claimNames) (*Claims, error) {
	raw, err := decodeSegment(j.payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	c, err := decodeClaims(bytesText(raw), names)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	return c, nil
}

// isBase64URL reports whether s uses only the unpadded base64url alphabet
// (the standard decoder would silently skip line breaks).
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// decodeSegment decodes canonical unpadded base64url.
func decodeSegment(s string) ([]byte, error) {
	enc := base64.RawURLEncoding.Strict()
	buf := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(buf, textBytes(s))
	if err != nil {
		return nil, errors.New("invalid base64url")
	}
	return buf[:n], nil
}

// truncate shortens untrusted text for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
