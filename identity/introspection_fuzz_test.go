package identity_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// FuzzParseIntrospection checks that ParseIntrospectionResponse never
// panics, fails only with the documented errors, and that what it accepts
// is consistent: active mirrors the JSON member, Scope joins Scopes, and
// parsing Raw again gives the same response.
func FuzzParseIntrospection(f *testing.F) {
	f.Add([]byte(`{"active":true,"scope":"read write","aud":"api","exp":1419356238}`))
	f.Add([]byte(`{"active":false}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := identity.ParseIntrospectionResponse(data)
		if err != nil {
			if !errors.Is(err, identity.ErrNotJSON) && !errors.Is(err, identity.ErrMissingMember) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		var doc map[string]json.RawMessage // member names are case-sensitive
		var active bool
		if json.Unmarshal(data, &doc) != nil || json.Unmarshal(doc["active"], &active) != nil || active != r.Active {
			t.Fatalf("active %v does not match the document %q", r.Active, data)
		}
		if r.Scope != strings.Join(r.Scopes, " ") {
			t.Fatalf("Scope %q vs Scopes %q", r.Scope, r.Scopes)
		}
		for _, s := range r.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\n") {
				t.Fatalf("scope value %q", s)
			}
		}
		again, err := identity.ParseIntrospectionResponse(r.Raw)
		if err != nil {
			t.Fatalf("Raw does not parse again: %v", err)
		}
		again.Raw, r.Raw = nil, nil
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("reparse differs:\n%+v\n%+v", again, r)
		}
	})
}
