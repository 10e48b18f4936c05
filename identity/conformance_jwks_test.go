package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

func TestConformanceJWKS(t *testing.T) {
	ctx := context.Background()
	const jwksPath = "/jwks"
	jwksURL := specProvider + jwksPath
	runConformance(t, "jwks.json", map[string]func(t *testing.T, c conformanceCase){
		"JWKS-001": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(jwksPath, specFixture(t, c.Fixture))
			set, _, err := identity.FetchKeySet(ctx, h.client, jwksURL, identity.FetchKeySetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := kids(set.Keys()); len(got) != 2 || got[0] != "rsa-sig-key" || got[1] != "ec-sig-key" {
				t.Errorf("keys = %v, want both fixture keys in order", got)
			}
			if len(set.Skipped()) != 0 {
				t.Errorf("skipped = %+v", set.Skipped())
			}
		},
		"JWKS-002": func(t *testing.T, c conformanceCase) {
			raw := specFixture(t, c.Fixture)
			set, err := identity.ParseKeySet(raw)
			if err != nil {
				t.Fatal(err)
			}
			var fixture struct {
				Keys []map[string]string `json:"keys"`
			}
			if err := json.Unmarshal(raw, &fixture); err != nil {
				t.Fatal(err)
			}
			for i, k := range set.Keys() {
				want := fixture.Keys[i]
				if k.JWK.KeyID != want["kid"] || k.JWK.Use != want["use"] || k.JWK.Algorithm != want["alg"] {
					t.Errorf("key %d: kid/use/alg = %s/%s/%s, want %v", i, k.JWK.KeyID, k.JWK.Use, k.JWK.Algorithm, want)
				}
				got := jwkJSON(t, k.JWK)
				params := []string{"kty", "n", "e"}
				switch pub := k.JWK.Key.(type) {
				case *rsa.PublicKey:
					if pub.E != 65537 || pub.N.BitLen() != 2048 {
						t.Errorf("RSA key: e=%d, %d bits", pub.E, pub.N.BitLen())
					}
				case *ecdsa.PublicKey:
					params = []string{"kty", "crv", "x", "y"}
					if pub.Curve != elliptic.P256() {
						t.Errorf("EC key on %s", pub.Curve.Params().Name)
					}
				default:
					t.Fatalf("key %d of type %T", i, pub)
				}
				for _, p := range params {
					if got[p] != want[p] {
						t.Errorf("key %d: %s = %v, want %s", i, p, got[p], want[p])
					}
				}
			}
		},
		"JWKS-003": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(jwksPath, specFixture(t, c.Fixture))
			r, err := identity.NewRemoteKeySet(jwksURL, identity.RemoteKeySetOptions{HTTPClient: h.client})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for kid, alg := range map[string]string{"rsa-sig-key": "RS256", "ec-sig-key": "ES256"} {
				keys, err := r.CandidateKeys(ctx, kid, alg)
				if err != nil || len(keys) != 1 || keys[0].JWK.KeyID != kid {
					t.Errorf("resolve %s: %v, %v", kid, kids(keys), err)
				}
			}
		},
		"JWKS-004": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(jwksPath, specFixture(t, "jwks/valid.json"))
			clock := newOPClock()
			r, err := identity.NewRemoteKeySet(jwksURL, identity.RemoteKeySetOptions{HTTPClient: h.client, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.KeySet(ctx); err != nil {
				t.Fatal(err)
			}
			clock.Advance(identity.DefaultRefreshCooldown)
			_, err = r.CandidateKeys(ctx, "not-in-the-set", "RS256")
			if !errors.Is(err, identity.ErrKeyNotFound) {
				t.Fatalf("err = %v, want ErrKeyNotFound", err)
			}
			if n := h.hits.Load(); n != 2 {
				t.Errorf("%d fetches, want the initial one and one forced refresh", n)
			}
			// The retry uses the refreshed set: a key published meanwhile is found.
			ec := newECJWK(t, "rotated", "ES256")
			h.serve(jwksPath, jwksOf(t, ec))
			clock.Advance(identity.DefaultRefreshCooldown)
			if keys, err := r.CandidateKeys(ctx, "rotated", "ES256"); err != nil || len(keys) != 1 {
				t.Fatalf("after rotation: %v, %v", kids(keys), err)
			}
		},
		"JWKS-005": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(jwksPath, specFixture(t, "jwks/valid.json"))
			r, err := identity.NewRemoteKeySet(jwksURL, identity.RemoteKeySetOptions{HTTPClient: h.client})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			first, err := r.KeySet(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				if s, err := r.KeySet(ctx); err != nil || s != first {
					t.Fatalf("KeySet within the TTL: %v (same set %v)", err, s == first)
				}
			}
			if n := h.hits.Load(); n != 1 {
				t.Errorf("%d fetches, want 1", n)
			}
		},
		"JWKS-006": func(t *testing.T, c conformanceCase) {
			h := newFixtureHost(t)
			h.serve(jwksPath, specFixture(t, "jwks/valid.json"))
			clock := newOPClock()
			r, err := identity.NewRemoteKeySet(jwksURL, identity.RemoteKeySetOptions{HTTPClient: h.client, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			first, err := r.KeySet(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// After a signature failure the validator calls Refresh.
			ec := newECJWK(t, "new", "ES256")
			h.serve(jwksPath, jwksOf(t, ec))
			clock.Advance(identity.DefaultRefreshCooldown)
			if err := r.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			second, err := r.KeySet(ctx)
			if err != nil || second == first || second.Len() != 1 || !r.HasKey(thumb(t, ec.Public)) {
				t.Fatalf("after Refresh: %v, keys %v", err, kids(second.Keys()))
			}
			if n := h.hits.Load(); n != 2 {
				t.Errorf("%d fetches, want 2", n)
			}
		},
		"JWKS-007": func(t *testing.T, c conformanceCase) {
			cases := map[string]struct {
				body    []byte
				message string
				notJSON bool
			}{
				"empty set":    {specFixture(t, c.Fixture), "empty key set", false},
				"invalid JSON": {[]byte(`{"keys": [`), "invalid JSON", true},
			}
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					h := newFixtureHost(t)
					h.serve(jwksPath, tc.body)
					_, _, err := identity.FetchKeySet(ctx, h.client, jwksURL, identity.FetchKeySetOptions{})
					if !errors.Is(err, identity.ErrInvalidKeySet) || errors.Is(err, identity.ErrNotJSON) != tc.notJSON {
						t.Fatalf("err = %v", err)
					}
					if !strings.Contains(err.Error(), tc.message) {
						t.Errorf("error %q does not say %q", err, tc.message)
					}
					r, err := identity.NewRemoteKeySet(jwksURL, identity.RemoteKeySetOptions{HTTPClient: h.client})
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					_, err = r.CandidateKeys(ctx, "any", "RS256")
					if !errors.Is(err, identity.ErrProviderUnavailable) || !errors.Is(err, identity.ErrInvalidKeySet) {
						t.Errorf("through RemoteKeySet: err = %v, want ErrProviderUnavailable wrapping ErrInvalidKeySet", err)
					}
				})
			}
		},
	})
}
