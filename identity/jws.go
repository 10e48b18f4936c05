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
	// payloadBuf is where claims decodes the payload: the header, the
	// signature and the payload share one allocation.
	payloadBuf []byte
	keys       []string // the parser's scratch space, for the payload's turn
	// scratch is where keys starts, so that the parser's scratch space
	// comes with the compactJWS instead of an allocation of its own.
	scratch [2 * linearKeys]string
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
	enc := base64.RawURLEncoding
	hn, pn := enc.DecodedLen(len(h)), enc.DecodedLen(len(p))
	buf := make([]byte, hn+pn+enc.DecodedLen(len(s)))
	raw, err := decodeSegmentInto(buf[:hn:hn], h)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	j := &compactJWS{payload: p, signingInput: token[:len(h)+1+len(p)], payloadBuf: buf[hn : hn+pn : hn+pn]}
	if j.header, j.keys, err = readHeader(bytesText(raw), j.scratch[:0]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if j.signature, err = decodeSegmentInto(buf[hn+pn:], s); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	return j, nil
}

// headerDecoder decodes the members of a protected header that readHeader
// checks and only checks the others.
type headerDecoder struct {
	p                  jsonParser
	alg, kid, typ, cty headerString
	crit, b64          any
	hasCrit, hasB64    bool
	// jose holds "jwk", "x5c" and "nonce" when present.
	jose map[string]any
}

// headerString is a header member that must be a string.
type headerString struct {
	s                 string
	present, isString bool
}

func (d *headerDecoder) member(name string) error {
	var err error
	switch name {
	case HeaderAlgorithm:
		return d.str(&d.alg)
	case HeaderKeyID:
		return d.str(&d.kid)
	case HeaderType:
		return d.str(&d.typ)
	case "cty":
		return d.str(&d.cty)
	case "crit":
		d.hasCrit = true
		d.crit, err = d.p.value(1)
	case "b64":
		d.hasB64 = true
		d.b64, err = d.p.value(1)
	case HeaderJSONWebKey, "x5c", ClaimNonce:
		var v any
		v, err = d.p.value(1)
		if d.jose == nil {
			d.jose = make(map[string]any, 3)
		}
		d.jose[name] = v
	default:
		err = d.p.skip(1)
	}
	return err
}

func (d *headerDecoder) str(m *headerString) error {
	m.present = true
	if d.p.peek() != '"' {
		return d.p.skip(1)
	}
	m.isString = true
	var err error
	m.s, err = d.p.str()
	return err
}

// readHeader decodes the protected header: a JSON object without duplicate
// member names, with a string "alg" and well-typed "kid", "typ", "cty",
// "crit" and "b64" when present. keys is the parser's scratch space, which
// it returns for the payload's turn.
func readHeader(text string, keys []string) (jwsHeader, []string, error) {
	d := headerDecoder{p: jsonParser{data: text, keys: keys}}
	var h jwsHeader
	if err := d.p.start(); err != nil {
		return h, nil, err
	}
	if err := d.p.members(1, d.member); err != nil {
		return h, nil, err
	}
	if err := d.p.end(); err != nil {
		return h, nil, err
	}
	if !d.alg.isString || d.alg.s == "" {
		return h, nil, errors.New(`"alg" missing or not a string`)
	}
	h.alg = d.alg.s
	for _, m := range [...]struct {
		name string
		v    headerString
	}{{HeaderKeyID, d.kid}, {HeaderType, d.typ}, {"cty", d.cty}} {
		if m.v.present && !m.v.isString {
			return h, nil, fmt.Errorf("%q is not a string", m.name)
		}
	}
	h.kid, h.typ = d.kid.s, d.typ.s
	if strings.EqualFold(strings.TrimPrefix(strings.ToLower(d.cty.s), "application/"), "jwt") {
		return h, nil, errors.New("nested JWT (cty JWT) not accepted")
	}
	if d.hasCrit {
		arr, ok := d.crit.([]any)
		if !ok || len(arr) == 0 {
			return h, nil, errors.New(`"crit" must be a non-empty array of strings`)
		}
		for _, e := range arr {
			s, ok := e.(string)
			if !ok || s == "" {
				return h, nil, errors.New(`"crit" must be a non-empty array of strings`)
			}
			h.crit = append(h.crit, s)
		}
		h.hasCrit = true
	}
	if d.jose[HeaderJSONWebKey] != nil || d.jose["x5c"] != nil || d.jose[ClaimNonce] != nil {
		h.joseMembers = d.jose
	}
	if d.hasB64 {
		b, ok := d.b64.(bool)
		if !ok {
			return h, nil, errors.New(`"b64" is not a boolean`)
		}
		h.b64False = !b
	}
	return h, d.p.keys, nil
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
	raw, err := decodeSegmentInto(j.payloadBuf, j.payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	c, err := decodeClaims(bytesText(raw), names, j.keys)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	return c, nil
}

// isBase64URL reports whether s uses only the unpadded base64url alphabet
// (the standard decoder would silently skip line breaks).
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		if !base64URLAlphabet[s[i]] {
			return false
		}
	}
	return true
}

// base64URLAlphabet marks the bytes of the base64url alphabet: one table
// lookup per byte is half the time of comparing ranges (a token is checked
// byte by byte before it is decoded).
var base64URLAlphabet = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[c] = true
	}
	return t
}()

// decodeSegment decodes canonical unpadded base64url.
func decodeSegment(s string) ([]byte, error) {
	return decodeSegmentInto(make([]byte, base64.RawURLEncoding.DecodedLen(len(s))), s)
}

// decodeSegmentInto is decodeSegment into buf, which must be long enough.
func decodeSegmentInto(buf []byte, s string) ([]byte, error) {
	n, err := base64.RawURLEncoding.Strict().Decode(buf, textBytes(s))
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
