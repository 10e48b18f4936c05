package identity_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

func mustParseClaims(tb testing.TB, s string) *identity.Claims {
	tb.Helper()
	c, err := identity.ParseClaims([]byte(s))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestParseClaims_TypedView(t *testing.T) {
	c := mustParseClaims(t, `{
		"iss": "https://issuer.example.com", "sub": "user-1", "jti": "id-1",
		"aud": ["api", "other"], "exp": 1700003600, "nbf": 1699999999.25, "iat": -1.5,
		"scope": "read  write read", "scp": ["write", "admin"]
	}`)
	if c.Issuer != "https://issuer.example.com" || c.Subject != "user-1" || c.ID != "id-1" {
		t.Fatalf("strings: %+v", c)
	}
	if !slices.Equal(c.Audience, []string{"api", "other"}) {
		t.Fatalf("aud %v", c.Audience)
	}
	if !c.Expiry.Equal(time.Unix(1700003600, 0)) || !c.NotBefore.Equal(time.Unix(1699999999, 250_000_000)) ||
		!c.IssuedAt.Equal(time.Unix(-2, 500_000_000)) {
		t.Fatalf("times %v %v %v", c.Expiry, c.NotBefore, c.IssuedAt)
	}
	if !slices.Equal(c.Scopes, []string{"read", "write", "admin"}) {
		t.Fatalf("scopes %v", c.Scopes)
	}
	if !c.HasScope("admin") || c.HasScope("delete") {
		t.Fatal("HasScope")
	}

	single := mustParseClaims(t, `{"aud":"api","scp":"one two"}`)
	if !slices.Equal(single.Audience, []string{"api"}) || !slices.Equal(single.Scopes, []string{"one", "two"}) {
		t.Fatalf("single: aud %v scopes %v", single.Audience, single.Scopes)
	}
	empty := mustParseClaims(t, `{}`)
	if !empty.Expiry.IsZero() || empty.Audience != nil || empty.Scopes != nil {
		t.Fatalf("empty: %+v", empty)
	}
}

func TestParseClaims_TypeErrors(t *testing.T) {
	for _, tc := range []struct{ json, claim string }{
		{`{"iss": 1}`, "iss"},
		{`{"sub": null}`, "sub"},
		{`{"jti": []}`, "jti"},
		{`{"aud": 1}`, "aud"},
		{`{"aud": ["a", 1]}`, "aud"},
		{`{"aud": {"a": 1}}`, "aud"},
		{`{"exp": "1700000000"}`, "exp"},
		{`{"exp": null}`, "exp"},
		{`{"exp": 1e20}`, "exp"},
		{`{"exp": -1e20}`, "exp"},
		{`{"nbf": true}`, "nbf"},
		{`{"iat": [1]}`, "iat"},
		{`{"scope": 1}`, "scope"},
		{`{"scope": ["a", 2]}`, "scope"},
		{`{"scp": {"a": "b"}}`, "scp"},
	} {
		t.Run(tc.json, func(t *testing.T) {
			_, err := identity.ParseClaims([]byte(tc.json))
			var ce *identity.ClaimError
			if !errors.As(err, &ce) || ce.Claim != tc.claim || ce.Reason != "malformed" || !errors.Is(err, identity.ErrClaimValidation) {
				t.Fatalf("error %v, want malformed %s", err, tc.claim)
			}
		})
	}
}

func TestParseClaims_MalformedJSON(t *testing.T) {
	for _, in := range []string{
		``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1}{}`, `{"a":1} x`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":+1}`, `{"a":NaN}`, `{"a":tru}`, `{'a':1}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"\xc3\":1}",
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"o":{"b":1,"b":1}}`, `{"l":[{"c":1,"c":2}]}`,
		`{"a":[1,2}`, `{"a":[1 2]}`, `{"a":"unterminated}`,
		`{"d":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	} {
		if _, err := identity.ParseClaims([]byte(in)); !errors.Is(err, identity.ErrMalformed) {
			t.Errorf("%q: error %v, want ErrMalformed", in, err)
		}
	}
}

// TestParseClaims_MatchesEncodingJSON checks that the strict parser decodes
// valid input exactly as encoding/json with UseNumber does.
func TestParseClaims_MatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`,
		` { "a" : 1 , "b" : [ ] , "c" : { } } `,
		`{"n":[0,-0,1.5,-2.25e-3,1E+10,12345678901234567890123]}`,
		`{"s":"tab\tnl\nq\"bs\\sl\/u\u00e9\u20ac pair\ud83d\ude00 lone\ud800 end\udc00x","t":true,"f":false,"z":null}`,
		`{"unicode":"日本語 ✓","ключ":"значение"}`,
		`{"html":"<a href=\"x\">&amp;</a>"}`,
		`{"deep":{"a":{"b":{"c":[[1],[2,{"d":"e"}]]}}}}`,
		`{"high then escape":"\ud83d\u0041"}`,
		`{"https://example.com/claims.roles":["a"],"realm_access":{"roles":["x","y"]}}`,
	} {
		c, err := identity.ParseClaims([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var want map[string]any
		dec := json.NewDecoder(strings.NewReader(in))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Raw(), want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", in, c.Raw(), want)
		}
	}
}

func TestClaims_GetStringStrings(t *testing.T) {
	c := mustParseClaims(t, `{
		"sub": "u",
		"n": 42, "f": 1.5, "b": true, "z": null,
		"mixed": ["a", 1, {"k": "<v>"}, null],
		"obj": {"x": [1, 2], "y": "<b>"},
		"a.b": "exact",
		"a": {"b": "nested"},
		"https://example.com/claims": {"roles": ["r1", "r2"]},
		"https://example.com/claims.roles": "exact-url",
		"realm_access": {"roles": ["admin", "user"]}
	}`)
	get := []struct {
		path string
		want any
		ok   bool
	}{
		{"sub", "u", true},
		{"n", json.Number("42"), true},
		{"z", nil, true},
		{"missing", nil, false},
		{"a.b", "exact", true},
		{"realm_access.roles", []any{"admin", "user"}, true},
		{"https://example.com/claims.roles", "exact-url", true},
		{"obj.x", []any{json.Number("1"), json.Number("2")}, true},
		{"obj.x.y", nil, false},
		{"sub.x", nil, false},
		{"realm_access.missing", nil, false},
	}
	for _, tc := range get {
		got, ok := c.Get(tc.path)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Get(%q) = %#v, %v; want %#v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	// A URL-named object reached by its longest existing name.
	d := mustParseClaims(t, `{"https://ns.example.com/app": {"roles": ["r"]}}`)
	if got, ok := d.Get("https://ns.example.com/app.roles"); !ok || !reflect.DeepEqual(got, []any{"r"}) {
		t.Errorf("URL-named object: %#v %v", got, ok)
	}

	str := map[string]string{
		"sub": "u", "n": "42", "f": "1.5", "b": "true", "z": "",
		"mixed": `a, 1, {"k":"<v>"}, `, "obj": `{"x":[1,2],"y":"<b>"}`, "realm_access.roles": "admin, user",
	}
	for path, want := range str {
		if got, ok := c.String(path); !ok || got != want {
			t.Errorf("String(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
	if _, ok := c.String("missing"); ok {
		t.Error("String of a missing claim is ok")
	}

	strs := []struct {
		path string
		want []string
	}{
		{"sub", []string{"u"}},
		{"n", []string{"42"}},
		{"mixed", []string{"a", "1", `{"k":"<v>"}`, ""}},
		{"realm_access.roles", []string{"admin", "user"}},
		{"z", nil},
		{"missing", nil},
	}
	for _, tc := range strs {
		if got := c.Strings(tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("Strings(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}

	var nilClaims *identity.Claims
	if _, ok := nilClaims.Get("sub"); ok || nilClaims.Raw() != nil || nilClaims.Strings("sub") != nil {
		t.Error("nil Claims is not empty")
	}
}

func TestClaims_MarshalJSON(t *testing.T) {
	in := `{"big":12345678901234567890123,"f":1.50,"s":"x","o":{"a":[true,null]}}`
	c := mustParseClaims(t, in)
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var want, got bytes.Buffer
	if err := json.Compact(&want, []byte(`{"big":12345678901234567890123,"f":1.50,"o":{"a":[true,null]},"s":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if err := json.Compact(&got, out); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("MarshalJSON = %s, want %s", got.String(), want.String())
	}
	var nilClaims *identity.Claims
	if b, err := nilClaims.MarshalJSON(); err != nil || string(b) != "{}" {
		t.Fatalf("nil: %s %v", b, err)
	}
}
