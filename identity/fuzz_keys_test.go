package identity_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// FuzzParseKeySet feeds arbitrary documents to the JWK Set parser: it must
// never panic, fail only with ErrInvalidKeySet, and return only public,
// findable keys. Seeds live in testdata/fuzz/FuzzParseKeySet.
func FuzzParseKeySet(f *testing.F) {
	f.Add(jwksOf(f, newECJWK(f, "ec", "ES256"), newEdJWK(f, "ed", ""), newRSAJWK(f, 2048, "rsa", "PS256")))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","key_ops":["verify"],"alg":"EdDSA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[1,"x",null,[],{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := identity.ParseKeySet(data)
		if err != nil {
			if !errors.Is(err, identity.ErrInvalidKeySet) {
				t.Fatalf("error %v does not match ErrInvalidKeySet", err)
			}
			if set != nil {
				t.Fatal("a set was returned with the error")
			}
			return
		}
		if set.Len() == 0 || set.Len()+len(set.Skipped()) > identity.DefaultMaxKeys {
			t.Fatalf("Len %d, skipped %d", set.Len(), len(set.Skipped()))
		}
		for _, k := range set.Keys() {
			if !k.JWK.IsPublic() || k.Thumbprint == "" || !set.HasKey(k.Thumbprint) {
				t.Fatalf("key %q: public %v, thumbprint %q", k.JWK.KeyID, k.JWK.IsPublic(), k.Thumbprint)
			}
			if k.JWK.Algorithm != "" {
				if !identity.AlgorithmFitsKey(k.JWK.Algorithm, k.JWK) {
					t.Fatalf("key %q kept with an alg %q that does not fit", k.JWK.KeyID, k.JWK.Algorithm)
				}
				if k.JWK.KeyID != "" && !slices.ContainsFunc(set.Candidates(k.JWK.KeyID, k.JWK.Algorithm), func(c identity.Key) bool {
					return c.Thumbprint == k.Thumbprint
				}) {
					t.Fatalf("key %q is not a candidate for its own kid and alg", k.JWK.KeyID)
				}
			}
		}
		for _, a := range set.Algorithms() {
			if a == "none" || a == "HS256" || a == "HS384" || a == "HS512" {
				t.Fatalf("algorithm %q advertised by a public set", a)
			}
		}
	})
}

// FuzzParseDiscovery feeds arbitrary documents to the discovery parser and
// validator: no panic, ErrNotJSON as the only parse failure, and a parsed
// document that survives a JSON round trip. Seeds live in
// testdata/fuzz/FuzzParseDiscovery.
func FuzzParseDiscovery(f *testing.F) {
	f.Add(mustJSON(discoveryMeta("https://idp.example.com")))
	f.Add([]byte(`{"issuer":"https://idp.example.com/","jwks_uri":"https://idp.example.com:99999/x","x_endpoint":"//evil"}`))
	f.Add([]byte(`{"issuer":"https://idp.example.com","mtls_endpoint_aliases":{"token_endpoint":"https://m/t"},"claims_parameter_supported":true}`))
	f.Add([]byte(`{"issuer":null,"token_endpoint":"http://[::1]:80/t"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := identity.ParseDiscovery(data)
		if err != nil {
			if !errors.Is(err, identity.ErrNotJSON) {
				t.Fatalf("error %v does not match ErrNotJSON", err)
			}
			return
		}
		for _, policy := range []identity.DiscoveryPolicy{
			{},
			{Kind: identity.OAuthAuthorizationServer, AllowHTTP: true, AllowMissingJWKSURI: true},
			{AdditionalEndpointBases: []string{"https://login.example.net/t"}, ExcludedEndpoints: []string{"token_endpoint"}},
		} {
			_ = d.Validate("https://idp.example.com", policy)
			_ = d.Validate(d.Issuer, policy)
		}
		_ = d.SigningAlgorithms()
		for _, m := range d.Members() {
			if _, ok := d.Extra(m); !ok {
				t.Fatalf("member %q listed but not readable", m)
			}
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := identity.ParseDiscovery(b)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if back.Issuer != d.Issuer || back.JWKSURI != d.JWKSURI || len(back.Members()) != len(d.Members()) {
			t.Fatalf("round trip changed the document")
		}
	})
}
