package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxNumericDate is 9999-12-31T23:59:59Z; NumericDate values beyond it (in
// either direction) are treated as malformed rather than overflowing.
const maxNumericDate = 253402300799

// Claims is the validated payload of a token: the registered claims as Go
// values, plus every member as decoded JSON for [Claims.Get].
//
// Claims from [Validator.Validate] hold the payload text and decode the
// members no check read (see [ValidatorOptions].DecodeClaims) the first
// time [Claims.Get], [Claims.String], [Claims.Strings], [Claims.Raw] or
// [Claims.MarshalJSON] asks for one of them: a proxy that forwards two
// claims of a token of thirty decodes two. The whole payload was checked
// when the token was validated, so that decoding cannot fail.
//
// Claims is read-only once built and safe for concurrent use.
type Claims struct {
	Issuer   string   // "iss"
	Subject  string   // "sub"
	ID       string   // "jti"
	Audience []string // "aud", a string or an array of strings in the token

	// Expiry, NotBefore and IssuedAt are "exp", "nbf" and "iat"; the zero
	// time when the claim is absent.
	Expiry, NotBefore, IssuedAt time.Time

	// Scopes are the values of "scope" (a space-separated string, or an
	// array of strings) followed by those of "scp" (a string or an array),
	// without duplicates.
	Scopes []string

	// Roles and Groups are the values of "roles" and "groups" (RFC 9068
	// §2.2.3.1; Entra ID app roles and group IDs, Okta and Hydra groups),
	// each a string or an array of strings in the token; nil when absent.
	// Providers that put them elsewhere stay readable through
	// [Claims.Strings]: Keycloak "realm_access.roles" and
	// "resource_access.<client>.roles", AWS Cognito "cognito:groups",
	// Auth0 namespaced claims such as "https://example.com/roles" and its
	// RBAC "permissions"; [ClaimsPrincipal] can be pointed at any of them.
	Roles, Groups []string

	// raw holds the decoded members: all of them when lazy is nil, else
	// those named in lazy.names that the token has.
	raw  map[string]any
	lazy *lazyClaims
	// present and malformed are sets of typedClaims indexes: the claims
	// the token has, and those of the wrong type (see typeError).
	present, malformed uint16
}

// lazyClaims is what a Claims needs to decode the members it has not.
type lazyClaims struct {
	payload string     // the JSON object, checked in full
	names   claimNames // the top-level names decoded into Claims.raw
	all     atomic.Pointer[map[string]any]
}

// lazyBlock allocates a Claims and its lazyClaims at once.
type lazyBlock struct {
	c    Claims
	lazy lazyClaims
}

// claimNames is a set of top-level member names.
type claimNames map[string]struct{}

// add adds the names [Claims.Get] may read path from: path itself and
// each of its prefixes before a dot.
func (n claimNames) add(path string) {
	n[path] = struct{}{}
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		n[path[:i]] = struct{}{}
	}
}

// covers reports whether every name [Claims.Get] may read path from is in
// n.
func (n claimNames) covers(path string) bool {
	if _, ok := n[path]; !ok {
		return false
	}
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		if _, ok := n[path[:i]]; !ok {
			return false
		}
	}
	return true
}

// typedClaims are the registered claims held in the fields of Claims, in
// the order their types are checked; the typed* constants index it.
var typedClaims = [...]string{
	ClaimIssuer, ClaimSubject, ClaimJWTID, ClaimAudience, ClaimExpiration, ClaimNotBefore, ClaimIssuedAt,
	ClaimScope, ClaimScp, ClaimRoles, ClaimGroups,
}

const (
	typedIss = iota
	typedSub
	typedJTI
	typedAud
	typedExp
	typedNbf
	typedIat
	typedScope
	typedScp
	typedRoles
	typedGroups
)

// typedClaim returns the typedClaims index of name, -1 for other names.
func typedClaim(name string) int {
	switch name {
	case ClaimIssuer:
		return typedIss
	case ClaimSubject:
		return typedSub
	case ClaimJWTID:
		return typedJTI
	case ClaimAudience:
		return typedAud
	case ClaimExpiration:
		return typedExp
	case ClaimNotBefore:
		return typedNbf
	case ClaimIssuedAt:
		return typedIat
	case ClaimScope:
		return typedScope
	case ClaimScp:
		return typedScp
	case ClaimRoles:
		return typedRoles
	case ClaimGroups:
		return typedGroups
	}
	return -1
}

// ParseClaims decodes a JWT payload (or any JSON object of claims, such as
// an introspection or userinfo response): a JSON object without duplicate
// member names, numbers kept as [json.Number]. It fails with [ErrMalformed]
// when the input is not such an object, and with a [*ClaimError] whose
// Reason is "malformed" when a registered claim has the wrong type: "iss",
// "sub", "jti" not strings; "aud" not a string or an array of strings;
// "exp", "nbf", "iat" not numbers (a string "exp" is malformed, not absent);
// "scope", "scp", "roles", "groups" not a string or an array of strings.
func ParseClaims(payload []byte) (*Claims, error) {
	c, err := decodeClaims(string(payload), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if err := c.typeError(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeClaims checks that payload is a JSON object without duplicate
// member names at any depth and decodes it in one pass: the registered
// claims into the fields of Claims, and into raw every member when names
// is nil, else only the members named in names (the others are decoded
// on first use); keys is scratch space for the parser, or nil. The error
// is malformed JSON; a registered claim of the
// wrong type is recorded for typeError, so that the caller can report it
// after what it must check first.
func decodeClaims(payload string, names claimNames, keys []string) (*Claims, error) {
	d := claimsDecoder{p: jsonParser{data: payload, keys: keys[:0]}, names: names}
	if names == nil {
		d.c = &Claims{raw: make(map[string]any, 8)}
	} else {
		b := &lazyBlock{lazy: lazyClaims{payload: payload, names: names}}
		b.c.lazy = &b.lazy
		d.c = &b.c
	}
	if err := d.p.start(); err != nil {
		return nil, err
	}
	if err := d.p.members(1, d.member); err != nil {
		return nil, err
	}
	if err := d.p.end(); err != nil {
		return nil, err
	}
	// Scopes are kept in the slices decoded, which belong to no one else.
	scopes := d.scope
	if scopes == nil {
		scopes = d.scp
	} else {
		scopes = append(scopes, d.scp...)
	}
	kept := scopes[:0]
	for _, s := range scopes {
		if s != "" && !slices.Contains(kept, s) {
			kept = append(kept, s)
		}
	}
	if len(kept) > 0 {
		d.c.Scopes = kept
	}
	return d.c, nil
}

// claimsDecoder is the state of decodeClaims.
type claimsDecoder struct {
	p          jsonParser
	c          *Claims
	names      claimNames
	scope, scp []string
}

// member decodes the value of the top-level member name (see
// decodeClaims).
func (d *claimsDecoder) member(name string) error {
	start := d.p.pos
	i := typedClaim(name)
	if i >= 0 {
		if err := d.typed(i); err != nil {
			return err
		}
	}
	if d.names != nil {
		if _, ok := d.names[name]; !ok {
			if i >= 0 {
				return nil
			}
			return d.p.skip(1)
		}
	}
	d.p.pos = start
	v, err := d.p.value(1)
	if err != nil {
		return err
	}
	if d.c.raw == nil {
		d.c.raw = make(map[string]any, 4)
	}
	d.c.raw[name] = v
	return nil
}

// typed decodes the value of typedClaims[i] into its field.
func (d *claimsDecoder) typed(i int) error {
	c := d.c
	c.present |= 1 << i
	var ok bool
	var err error
	switch i {
	case typedIss:
		c.Issuer, ok, err = d.stringValue()
	case typedSub:
		c.Subject, ok, err = d.stringValue()
	case typedJTI:
		c.ID, ok, err = d.stringValue()
	case typedAud:
		c.Audience, ok, err = d.stringsValue()
	case typedExp:
		c.Expiry, ok, err = d.dateValue()
	case typedNbf:
		c.NotBefore, ok, err = d.dateValue()
	case typedIat:
		c.IssuedAt, ok, err = d.dateValue()
	case typedScope:
		d.scope, ok, err = d.scopesValue()
	case typedScp:
		d.scp, ok, err = d.scopesValue()
	case typedRoles:
		c.Roles, ok, err = d.stringsValue()
	case typedGroups:
		c.Groups, ok, err = d.stringsValue()
	}
	if !ok {
		c.malformed |= 1 << i
	}
	return err
}

// stringValue decodes a string value; ok is false for any other value, which
// is checked all the same.
func (d *claimsDecoder) stringValue() (s string, ok bool, err error) {
	if d.p.peek() != '"' {
		return "", false, d.p.skip(1)
	}
	s, err = d.p.str()
	return s, true, err
}

// stringsValue decodes a string or an array of strings.
func (d *claimsDecoder) stringsValue() (out []string, ok bool, err error) {
	switch d.p.peek() {
	case '"':
		s, err := d.p.str()
		return []string{s}, true, err
	case '[':
		out, ok = []string{}, true
		err = d.p.elements(2, func() error {
			if d.p.peek() != '"' {
				ok = false
				return d.p.skip(2)
			}
			s, err := d.p.str()
			out = append(out, s)
			return err
		})
		return out, ok, err
	}
	return nil, false, d.p.skip(1)
}

// scopesValue decodes a space-separated string or an array of strings.
func (d *claimsDecoder) scopesValue() ([]string, bool, error) {
	if d.p.peek() != '"' {
		return d.stringsValue()
	}
	s, err := d.p.str()
	return strings.Fields(s), true, err
}

// dateValue decodes a NumericDate (see numericDate).
func (d *claimsDecoder) dateValue() (time.Time, bool, error) {
	if c := d.p.peek(); c != '-' && (c < '0' || c > '9') {
		return time.Time{}, false, d.p.skip(1)
	}
	n, err := d.p.number()
	if err != nil {
		return time.Time{}, false, err
	}
	t, ok := numericDate(n)
	return t, ok, nil
}

// typeError returns the first registered claim, in the order of
// typedClaims, that has the wrong type.
func (c *Claims) typeError() error {
	if c.malformed == 0 {
		return nil
	}
	return malformedClaim(typedClaims[bits.TrailingZeros16(c.malformed)])
}

// has reports whether the token has typedClaims[i].
func (c *Claims) has(i int) bool {
	return c.present&(1<<i) != 0
}

func malformedClaim(name string) error {
	return &ClaimError{Claim: name, Reason: "malformed"}
}

// numericDate decodes the text of a NumericDate (seconds since the epoch,
// possibly fractional); ok is false beyond maxNumericDate either way.
func numericDate(n string) (time.Time, bool) {
	if i, err := strconv.ParseInt(n, 10, 64); err == nil {
		if i > maxNumericDate || i < -maxNumericDate {
			return time.Time{}, false
		}
		return time.Unix(i, 0), true
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return time.Time{}, false
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true
}

// HasScope reports whether s is one of the token's scopes.
func (c *Claims) HasScope(s string) bool {
	if c == nil {
		return false
	}
	for _, have := range c.Scopes {
		if have == s {
			return true
		}
	}
	return false
}

// Get returns the decoded JSON value of a claim: string, [json.Number],
// bool, nil (JSON null), []any or map[string]any. path is first looked up as
// an exact member name, so URL-style names containing dots
// ("https://example.com/roles") work; otherwise dots separate the members of
// nested objects ("realm_access.roles"), the longest existing member name
// being preferred at each level.
func (c *Claims) Get(path string) (any, bool) {
	if c == nil {
		return nil, false
	}
	return lookupPath(c.members(path), path)
}

// member returns the top-level member name.
func (c *Claims) member(name string) (any, bool) {
	v, ok := c.members(name)[name]
	return v, ok
}

// members returns decoded members among which [Claims.Get] finds path:
// raw when it holds every member path may be read from, else all of them,
// decoded now if no call did before.
func (c *Claims) members(path string) map[string]any {
	if c.lazy == nil || c.lazy.names.covers(path) {
		return c.raw
	}
	return c.lazy.decodeAll(c.raw)
}

// decodeAll returns every member, decoding the payload the first time
// (concurrent first calls may each decode it; all get equal maps). The
// payload passed the same parser when the claims were built, so the
// fallback to the members in hand, partial, is never taken.
func (l *lazyClaims) decodeAll(partial map[string]any) map[string]any {
	if m := l.all.Load(); m != nil {
		return *m
	}
	m, err := parseJSONText(l.payload)
	if err != nil {
		return partial
	}
	l.all.Store(&m)
	return m
}

func lookupPath(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		sub, ok := m[path[:i]].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := lookupPath(sub, path[i+1:]); ok {
			return v, true
		}
	}
	return nil, false
}

// String returns a claim as text: strings as they are, numbers and
// booleans in their JSON form, null as "", arrays as their elements (each
// rendered the same way, objects as JSON) joined with ", ", objects as
// JSON. ok is false when the claim is absent.
func (c *Claims) String(path string) (string, bool) {
	v, ok := c.Get(path)
	if !ok {
		return "", false
	}
	if a, isArray := v.([]any); isArray {
		parts := make([]string, len(a))
		for i, e := range a {
			parts[i] = jsonText(e)
		}
		return strings.Join(parts, ", "), true
	}
	return jsonText(v), true
}

// Strings returns a claim as a list: an array gives one entry per element
// (strings as they are, other values as JSON), a string or other value a
// single entry, null or an absent claim nil.
func (c *Claims) Strings(path string) []string {
	v, ok := c.Get(path)
	if !ok || v == nil {
		return nil
	}
	if a, isArray := v.([]any); isArray {
		out := make([]string, 0, len(a))
		for _, e := range a {
			out = append(out, jsonText(e))
		}
		return out
	}
	return []string{jsonText(v)}
}

// jsonText renders a decoded JSON value as text: strings unquoted, null as
// "", anything else as compact JSON.
func jsonText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Raw returns every claim as decoded JSON (see [Claims.Get]), decoding
// the claims not decoded yet. The map is shared with c: callers must not
// modify it.
func (c *Claims) Raw() map[string]any {
	if c == nil {
		return nil
	}
	if c.lazy != nil {
		return c.lazy.decodeAll(c.raw)
	}
	return c.raw
}

// MarshalJSON encodes all claims as a JSON object, numbers as in the token.
func (c *Claims) MarshalJSON() ([]byte, error) {
	m := c.Raw()
	if m == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}
