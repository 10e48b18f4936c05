package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
)

// maxJSONDepth bounds the nesting of arrays and objects in a token header
// or payload; real claims nest two or three levels.
const maxJSONDepth = 32

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
	m, err := parseJSONObject(raw)
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

// claims decodes the payload: base64url, then a JSON object without
// duplicate member names.
func (j *compactJWS) claims() (map[string]any, error) {
	raw, err := decodeSegment(j.payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	m, err := parseJSONObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	return m, nil
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
	n, err := enc.Decode(buf, []byte(s))
	if err != nil {
		return nil, errors.New("invalid base64url")
	}
	return buf[:n], nil
}

// parseJSONObject parses data, which must be one JSON object, into a map
// as encoding/json would with UseNumber (numbers as [json.Number]), but
// refuses duplicate member names at any depth, invalid UTF-8, nesting deeper
// than maxJSONDepth and trailing data. Duplicate names are how two parsers
// are made to disagree about a claim, so they are never resolved silently.
func parseJSONObject(data []byte) (map[string]any, error) {
	p := jsonParser{data: data}
	p.skipSpace()
	if p.pos >= len(data) || data[p.pos] != '{' {
		return nil, errors.New("not a JSON object")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(data) {
		return nil, errors.New("trailing data after JSON object")
	}
	return v.(map[string]any), nil
}

// jsonParser is a small strict recursive-descent JSON parser.
type jsonParser struct {
	data []byte
	pos  int
}

var errJSONSyntax = errors.New("invalid JSON")

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, errJSONSyntax
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return nil, errJSONSyntax
}

func (p *jsonParser) literal(lit string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(lit)) {
		return errJSONSyntax
	}
	p.pos += len(lit)
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	p.pos++ // '{'
	m := make(map[string]any, 8)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, errJSONSyntax
		}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, errJSONSyntax
		}
		p.pos++
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("duplicate member %q", truncate(k, 64))
		}
		m[k] = v
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errJSONSyntax
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	p.pos++ // '['
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return a, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errJSONSyntax
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return a, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

// key parses a member name, returning the registered header and claim
// names as constants so that decoding them does not allocate.
func (p *jsonParser) key() (string, error) {
	start := p.pos + 1
	end := bytes.IndexByte(p.data[start:], '"')
	if end > 0 && bytes.IndexByte(p.data[start:start+end], '\\') < 0 {
		if k, ok := internedName(p.data[start : start+end]); ok {
			p.pos = start + end + 1
			return k, nil
		}
	}
	return p.str()
}

// internedName maps the common header and claim names to constants.
func internedName(b []byte) (string, bool) {
	switch string(b) {
	case HeaderAlgorithm:
		return HeaderAlgorithm, true
	case HeaderKeyID:
		return HeaderKeyID, true
	case HeaderType:
		return HeaderType, true
	case ClaimIssuer:
		return ClaimIssuer, true
	case ClaimSubject:
		return ClaimSubject, true
	case ClaimAudience:
		return ClaimAudience, true
	case ClaimExpiration:
		return ClaimExpiration, true
	case ClaimNotBefore:
		return ClaimNotBefore, true
	case ClaimIssuedAt:
		return ClaimIssuedAt, true
	case ClaimJWTID:
		return ClaimJWTID, true
	case ClaimScope:
		return ClaimScope, true
	case ClaimScp:
		return ClaimScp, true
	case ClaimClientID:
		return ClaimClientID, true
	case ClaimAuthorizedParty:
		return ClaimAuthorizedParty, true
	case ClaimNonce:
		return ClaimNonce, true
	case ClaimAuthTime:
		return ClaimAuthTime, true
	case ClaimSessionID:
		return ClaimSessionID, true
	case ClaimRoles:
		return ClaimRoles, true
	case ClaimGroups:
		return ClaimGroups, true
	case ClaimEmail:
		return ClaimEmail, true
	case ClaimName:
		return ClaimName, true
	case ClaimPreferredUsername:
		return ClaimPreferredUsername, true
	}
	return "", false
}

// str parses a string starting at the opening quote.
func (p *jsonParser) str() (string, error) {
	p.pos++ // '"'
	start := p.pos
	ascii := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			raw := p.data[start:p.pos]
			p.pos++
			if !ascii && !utf8.Valid(raw) {
				return "", errors.New("invalid UTF-8 in JSON string")
			}
			return string(raw), nil
		case c == '\\':
			return p.escapedStr(start)
		case c < 0x20:
			return "", errJSONSyntax
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.pos++
	}
	return "", errJSONSyntax
}

// escapedStr continues parsing a string that contains escapes; p.pos is at
// the first backslash.
func (p *jsonParser) escapedStr(start int) (string, error) {
	buf := make([]byte, 0, p.pos-start+16)
	buf = append(buf, p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(buf) {
				return "", errors.New("invalid UTF-8 in JSON string")
			}
			return string(buf), nil
		case c < 0x20:
			return "", errJSONSyntax
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		// Escape sequence.
		if p.pos+1 >= len(p.data) {
			return "", errJSONSyntax
		}
		e := p.data[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", errJSONSyntax
			}
			if utf16.IsSurrogate(r) {
				// A valid pair becomes one rune; anything else is
				// replaced, as encoding/json does.
				r2 := rune(-1)
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					var ok2 bool
					if r2, ok2 = p.hex4(); !ok2 {
						return "", errJSONSyntax
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
					} else {
						p.pos = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errJSONSyntax
		}
	}
	return "", errJSONSyntax
}

// hex4 reads four hex digits.
func (p *jsonParser) hex4() (rune, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// number parses a JSON number per RFC 8259 §6 and keeps its text.
func (p *jsonParser) number() (any, error) {
	start := p.pos
	d := p.data
	if d[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(d) && '0' <= d[p.pos] && d[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos < len(d) && d[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, errJSONSyntax
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	return json.Number(d[start:p.pos]), nil
}

// truncate shortens untrusted text for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
