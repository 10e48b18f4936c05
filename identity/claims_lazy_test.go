package identity_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// lazyPayload is a token payload with claims no check reads.
func lazyPayload(tb testing.TB, extra string) []byte {
	tb.Helper()
	base, err := json.Marshal(valClaims(map[string]any{"scope": "read write"}))
	if err != nil {
		tb.Fatal(err)
	}
	return append(base[:len(base)-1], ","+extra+"}"...)
}

// TestValidate_ClaimsDecodedLazily checks that the claims of a validated
// token read the same whether they were decoded with the checks
// (DecodeClaims) or on first use, also from many goroutines at once (run
// with -race), and that Raw and MarshalJSON hold every claim.
func TestValidate_ClaimsDecodedLazily(t *testing.T) {
	k := valNewKey(t, "ES256", "lazy", false)
	payload := lazyPayload(t, `"email":"alice@example.com","realm_access":{"roles":["admin","dev"]},`+
		`"https://example.com/tenant":"t1","cnf":{"jkt":"abc"},"n":12345678901234567890123`)
	tok := valMintRaw(t, "ES256", k.priv, []byte(`{"alg":"ES256","kid":"lazy"}`), payload)
	want, err := identity.ParseClaims(payload)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"email", "realm_access.roles", "realm_access", "https://example.com/tenant", "cnf.jkt", "n", "sub", "aud", "missing"}
	for _, decode := range [][]string{nil, {"email"}, paths} {
		v, err := identity.NewValidator([]identity.IssuerConfig{valConfig(valKeySet(t, k))},
			identity.ValidatorOptions{DecodeClaims: decode})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Validate(t.Context(), tok)
		if err != nil {
			t.Fatalf("DecodeClaims %q: %v", decode, err)
		}
		c := got.Claims
		if c.Subject != want.Subject || !reflect.DeepEqual(c.Audience, want.Audience) || !reflect.DeepEqual(c.Scopes, want.Scopes) {
			t.Fatalf("DecodeClaims %q: typed claims %+v, want %+v", decode, c, want)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for _, p := range paths {
					gv, gok := c.Get(p)
					wv, wok := want.Get(p)
					if gok != wok || !reflect.DeepEqual(gv, wv) {
						t.Errorf("DecodeClaims %q: Get(%q) = %#v, %v; want %#v, %v", decode, p, gv, gok, wv, wok)
					}
					gs, _ := c.String(p)
					ws, _ := want.String(p)
					if gs != ws {
						t.Errorf("DecodeClaims %q: String(%q) = %q, want %q", decode, p, gs, ws)
					}
				}
			})
		}
		wg.Wait()
		if !reflect.DeepEqual(c.Raw(), want.Raw()) {
			t.Fatalf("DecodeClaims %q: Raw %#v, want %#v", decode, c.Raw(), want.Raw())
		}
		gj, err1 := json.Marshal(c)
		wj, err2 := json.Marshal(want)
		if err1 != nil || err2 != nil || string(gj) != string(wj) {
			t.Fatalf("DecodeClaims %q: MarshalJSON %s (%v), want %s (%v)", decode, gj, err1, wj, err2)
		}
	}
}

// TestValidate_LazyClaimsVerdicts checks that a payload with a flaw in a
// claim no check reads (and no DecodeClaims names) is refused as before:
// the whole payload is checked whatever is decoded.
func TestValidate_LazyClaimsVerdicts(t *testing.T) {
	k := valNewKey(t, "ES256", "lazy", false)
	header := []byte(`{"alg":"ES256","kid":"lazy"}`)
	for name, extra := range map[string]string{
		"duplicate":               `"x":1,"x":2`,
		"escaped duplicate":       `"x":1,"\u0078":2`,
		"nested duplicate":        `"x":{"realm":{"roles":[],"roles":[]}}`,
		"duplicate registered":    `"sub":"other"`,
		"many members, duplicate": `"x":{` + manyMembers(40) + `,"m0":1}`,
		"nesting":                 `"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40),
		"invalid UTF-8 value":     "\"x\":\"\xff\xfe\"",
		"invalid UTF-8 name":      "\"x\xff\":1",
		"control character":       "\"x\":\"a\x01\"",
		"bad escape":              `"x":"\u12zz"`,
		"bad number":              `"x":1.`,
	} {
		tok := valMintRaw(t, "ES256", k.priv, header, lazyPayload(t, extra))
		for _, decode := range [][]string{nil, {"x"}} {
			v, err := identity.NewValidator([]identity.IssuerConfig{valConfig(valKeySet(t, k))},
				identity.ValidatorOptions{DecodeClaims: decode})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Validate(t.Context(), tok); !errors.Is(err, identity.ErrMalformed) {
				t.Errorf("%s, DecodeClaims %q: error %v, want ErrMalformed", name, decode, err)
			}
		}
	}
}

// manyMembers returns n members "m0" to "m<n-1>".
func manyMembers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"m` + strconv.Itoa(i) + `":0`
	}
	return strings.Join(parts, ",")
}
