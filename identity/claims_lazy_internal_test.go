package identity

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// lazyCases are payloads with the name sets to decode them with; every
// test below decodes each payload lazily with each set and in full, and
// wants the same result.
var lazyCases = []string{
	`{}`,
	`{"iss":"https://i","sub":"u","aud":["a","b"],"exp":1700003600,"nbf":1.5,"iat":-1,"jti":"j","scope":"a b a","scp":["c","a"],"roles":"r","groups":[]}`,
	`{"sub":"u","email":"e@x","realm_access":{"roles":["admin","dev"]},"resource_access":{"api":{"roles":["r"]}}}`,
	`{"https://example.com/claims":{"roles":["r1"]},"https://example.com/claims.roles":"exact","a.b":"dotted","a":{"b":"nested"}}`,
	`{"cnf":{"jkt":"abc","x5t#S256":"def"},"scope":"","scp":"x  y","n":[1,-0,2.5e3,{"o":null}],"t":true,"f":false,"z":null}`,
	`{"esc\u0061ped":"v\n\"\u00e9\ud83d\ude00\ud800","unicode":"日本語","ключ":"значение"}`,
	`{"iss":1,"sub":null,"aud":[1],"exp":"1","scope":{"a":1},"roles":[null],"x":"kept"}`,
	`{"m1":1,"m2":2,"m3":3,"m4":4,"m5":5,"m6":6,"m7":7,"m8":8,"m9":9,"m10":10,"m11":11,"m12":12,"m13":13,"m14":14,"m15":15,"m16":16,"m17":17,"m18":18,"o":{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18}}`,
	`{"d":` + strings.Repeat(`[`, 31) + strings.Repeat(`]`, 31) + `,"e":` + strings.Repeat(`{"a":`, 31) + `1` + strings.Repeat(`}`, 31) + `}`,
	` { "ws" : [ 1 , { "k" : "v" } ] , "sub" : "u" } `,
}

// lazyNameSets are the name sets of lazyCases: none, the registered claims,
// one top-level claim, nested paths, and every name the payloads use.
var lazyNameSets = [][]string{
	nil,
	{"iss", "sub", "aud", "exp", "scope"},
	{"email"},
	{"realm_access.roles", "https://example.com/claims.roles", "cnf"},
	{"a.b", "o", "d", "x", "esc" + "aped", "ws", "groups"},
}

// lazyPaths are read from every decoded Claims: names in some set and in
// none, nested, dotted and missing.
var lazyPaths = []string{
	"iss", "sub", "aud", "exp", "scope", "scp", "roles", "groups", "email", "realm_access", "realm_access.roles",
	"resource_access.api.roles", "https://example.com/claims.roles", "a.b", "a", "cnf", "cnf.jkt", "n", "z",
	"escaped", "unicode", "m17", "o", "o.k18", "d", "e.a.a", "ws", "x", "missing", "missing.deeper",
}

// checkLazySame decodes payload in full and lazily with names and fails
// unless both give the same verdict, the same typed claims and type
// error, and the same value for every path and for Raw.
func checkLazySame(t *testing.T, payload string, names []string) {
	t.Helper()
	full, errFull := decodeClaims(payload, nil, nil)
	set := claimNames{}
	for _, n := range names {
		set.add(n)
	}
	lazy, errLazy := decodeClaims(payload, set, nil)
	if (errFull == nil) != (errLazy == nil) || errFull != nil && errFull.Error() != errLazy.Error() {
		t.Fatalf("names %q: full decoding says %v, lazy %v", names, errFull, errLazy)
	}
	if errFull != nil {
		return
	}
	if !reflect.DeepEqual(typedView(full), typedView(lazy)) {
		t.Fatalf("names %q: typed claims differ:\nfull %+v\nlazy %+v", names, typedView(full), typedView(lazy))
	}
	if !reflect.DeepEqual(full.typeError(), lazy.typeError()) {
		t.Fatalf("names %q: type error %v, lazily %v", names, full.typeError(), lazy.typeError())
	}
	for _, p := range append(lazyPaths, names...) {
		fv, fok := full.Get(p)
		lv, lok := lazy.Get(p)
		if fok != lok || !reflect.DeepEqual(fv, lv) {
			t.Fatalf("names %q: Get(%q) = %#v, %v; lazily %#v, %v", names, p, fv, fok, lv, lok)
		}
	}
	if !reflect.DeepEqual(full.Raw(), lazy.Raw()) {
		t.Fatalf("names %q: Raw differs:\nfull %#v\nlazy %#v", names, full.Raw(), lazy.Raw())
	}
	var want map[string]any
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&want); err != nil || !reflect.DeepEqual(lazy.Raw(), want) {
		t.Fatalf("names %q: Raw %#v, encoding/json %#v (%v)", names, lazy.Raw(), want, err)
	}
}

// typedView is the typed part of c, for comparison.
func typedView(c *Claims) Claims {
	return Claims{
		Issuer: c.Issuer, Subject: c.Subject, ID: c.ID, Audience: c.Audience,
		Expiry: c.Expiry, NotBefore: c.NotBefore, IssuedAt: c.IssuedAt,
		Scopes: c.Scopes, Roles: c.Roles, Groups: c.Groups,
		present: c.present, malformed: c.malformed,
	}
}

func TestDecodeClaims_LazyMatchesFull(t *testing.T) {
	for _, payload := range lazyCases {
		for _, names := range lazyNameSets {
			checkLazySame(t, payload, names)
		}
	}
}

// TestDecodeClaims_LazyVerdicts checks that a payload is refused the same
// way whether the bad part lies in a member that is decoded or in one
// that is only checked: duplicate names (at the top, nested, spelled with
// an escape, past the count where a set takes over), nesting, invalid
// UTF-8, control characters and broken escapes.
func TestDecodeClaims_LazyVerdicts(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(`"k` + strings.Repeat("x", i) + `":1,`)
		}
		return b.String()
	}
	for _, payload := range []string{
		`{"x":1,"x":2}`,
		`{"x":{"a":1,"a":2}}`,
		`{"x":[{"a":1},{"b":1,"b":2}]}`,
		`{"x":1,"\u0078":2}`,
		`{"x":{"a":1,"\u0061":2}}`,
		`{"sub":"u","sub":"v"}`,
		`{"sub":"u","s\u0075b":"v"}`,
		`{` + many(linearKeys+5) + `"kxxx":2}`,
		`{"x":{` + many(3*linearKeys) + `"k":2}}`,
		`{"x":` + strings.Repeat(`[`, maxJSONDepth) + strings.Repeat(`]`, maxJSONDepth) + `}`,
		`{"x":` + strings.Repeat(`{"a":`, maxJSONDepth) + `1` + strings.Repeat(`}`, maxJSONDepth) + `}`,
		`{"x":` + strings.Repeat(`[`, 10000) + `}`,
		"{\"x\":\"\xff\"}",
		"{\"\xc3\":1}",
		"{\"x\":{\"k\xff\":1}}",
		"{\"x\":\"a\\n\xff\"}",
		"{\"x\":\"\x01\"}",
		`{"x":"\q"}`,
		`{"x":"\u12"}`,
		`{"x":"\ud800\u12"}`,
		`{"x":[1,]}`,
		`{"x":tru}`,
		`{"x":01}`,
		`{"x":1}x`,
		`{"x":1`,
		`[]`,
	} {
		if _, err := decodeClaims(payload, nil, nil); err == nil {
			t.Fatalf("%q accepted", payload)
		}
		for _, names := range [][]string{nil, {"x"}, {"sub"}, {"other"}} {
			checkLazySame(t, payload, names)
		}
	}
}

// FuzzDecodeClaimsLazy checks lazy decoding against full decoding on any
// payload and name set (comma-separated).
func FuzzDecodeClaimsLazy(f *testing.F) {
	for _, p := range lazyCases {
		f.Add(p, "sub,email,realm_access.roles")
	}
	f.Add(`{"x":1,"x":2}`, "")
	f.Add(`{"x":{"a":1,"\u0061":2}}`, "y")
	f.Fuzz(func(t *testing.T, payload, names string) {
		var set []string
		if names != "" {
			set = strings.Split(names, ",")
		}
		checkLazySame(t, payload, set)
	})
}
