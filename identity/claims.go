package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxNumericDate is 9999-12-31T23:59:59Z; NumericDate values beyond it (in
// either direction) are treated as malformed rather than overflowing.
const maxNumericDate = 253402300799

// Claims is the validated payload of a token: the registered claims as Go
// values, plus every member as decoded JSON for [Claims.Get].
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

	raw map[string]any
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
	m, err := parseJSONObject(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	return newClaims(m)
}

// newClaims builds the typed view of a decoded claims object.
func newClaims(m map[string]any) (*Claims, error) {
	c := &Claims{raw: m}
	var err error
	if c.Issuer, err = claimString(m, ClaimIssuer); err != nil {
		return nil, err
	}
	if c.Subject, err = claimString(m, ClaimSubject); err != nil {
		return nil, err
	}
	if c.ID, err = claimString(m, ClaimJWTID); err != nil {
		return nil, err
	}
	if v, ok := m[ClaimAudience]; ok {
		if c.Audience, ok = stringOrStrings(v); !ok {
			return nil, malformedClaim(ClaimAudience)
		}
	}
	if c.Expiry, err = claimTime(m, ClaimExpiration); err != nil {
		return nil, err
	}
	if c.NotBefore, err = claimTime(m, ClaimNotBefore); err != nil {
		return nil, err
	}
	if c.IssuedAt, err = claimTime(m, ClaimIssuedAt); err != nil {
		return nil, err
	}
	for _, name := range [...]string{ClaimScope, ClaimScp} {
		v, ok := m[name]
		if !ok {
			continue
		}
		var scopes []string
		if s, isStr := v.(string); isStr {
			scopes = strings.Fields(s)
		} else if scopes, ok = stringOrStrings(v); !ok {
			return nil, malformedClaim(name)
		}
		for _, s := range scopes {
			if s != "" && !c.HasScope(s) {
				c.Scopes = append(c.Scopes, s)
			}
		}
	}
	if c.Roles, err = claimStrings(m, ClaimRoles); err != nil {
		return nil, err
	}
	if c.Groups, err = claimStrings(m, ClaimGroups); err != nil {
		return nil, err
	}
	return c, nil
}

// claimStrings returns a claim that is a string or an array of strings, nil
// when absent.
func claimStrings(m map[string]any, name string) ([]string, error) {
	v, ok := m[name]
	if !ok {
		return nil, nil
	}
	out, ok := stringOrStrings(v)
	if !ok {
		return nil, malformedClaim(name)
	}
	return out, nil
}

func malformedClaim(name string) error {
	return &ClaimError{Claim: name, Reason: "malformed"}
}

// claimString returns a string claim, "" when absent.
func claimString(m map[string]any, name string) (string, error) {
	v, ok := m[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", malformedClaim(name)
	}
	return s, nil
}

// stringOrStrings accepts a string or an array of strings.
func stringOrStrings(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

// claimTime decodes a NumericDate claim (seconds since the epoch, possibly
// fractional); the zero time when absent.
func claimTime(m map[string]any, name string) (time.Time, error) {
	v, ok := m[name]
	if !ok {
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, malformedClaim(name)
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i > maxNumericDate || i < -maxNumericDate {
			return time.Time{}, malformedClaim(name)
		}
		return time.Unix(i, 0), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return time.Time{}, malformedClaim(name)
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), nil
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
	return lookupPath(c.raw, path)
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

// Raw returns every claim as decoded JSON (see [Claims.Get]). The map is
// shared with c: callers must not modify it.
func (c *Claims) Raw() map[string]any {
	if c == nil {
		return nil
	}
	return c.raw
}

// MarshalJSON encodes all claims as a JSON object, numbers as in the token.
func (c *Claims) MarshalJSON() ([]byte, error) {
	if c == nil || c.raw == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(c.raw)
}
