package identity_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// newProvider creates a Provider for op, closed at cleanup.
func newProvider(t *testing.T, issuer string, o identity.ProviderOptions) *identity.Provider {
	t.Helper()
	p, err := identity.NewProvider(issuer, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Compile-time checks: the provider and the key sets are the key sources
// the validator expects.
var (
	_ identity.RefreshableKeySource = (*identity.Provider)(nil)
	_ identity.AlgorithmAdvertiser  = (*identity.Provider)(nil)
	_ identity.RefreshableKeySource = (*identity.RemoteKeySet)(nil)
	_ identity.AlgorithmAdvertiser  = (*identity.RemoteKeySet)(nil)
	_ identity.KeySource            = (*identity.KeySet)(nil)
)

func TestNewProviderDoesNoIO(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	p := newProvider(t, op.URL, identity.ProviderOptions{})
	time.Sleep(50 * time.Millisecond)
	if d, k := op.discHits.Load(), op.jwksHits.Load(); d != 0 || k != 0 {
		t.Fatalf("%d discovery and %d JWKS fetches at construction", d, k)
	}
	if p.Issuer() != op.URL {
		t.Errorf("Issuer = %q", p.Issuer())
	}
	if p.AdvertisedAlgorithms() != nil || p.HasKey("x") {
		t.Error("a provider that never fetched claims to know keys")
	}
}

func TestNewProviderRejects(t *testing.T) {
	cases := []struct {
		name   string
		issuer string
		opts   identity.ProviderOptions
		want   error
	}{
		{"http issuer", "http://idp.example.com", identity.ProviderOptions{}, identity.ErrHTTPSRequired},
		{"relative issuer", "/idp", identity.ProviderOptions{}, identity.ErrEndpointNotAllowed},
		{"issuer with query", "https://idp.example.com?tenant=1", identity.ProviderOptions{}, identity.ErrEndpointNotAllowed},
		{"http JWKSURL", "https://idp.example.com", identity.ProviderOptions{JWKSURL: "http://idp.example.com/jwks"}, identity.ErrHTTPSRequired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := identity.NewProvider(c.issuer, c.opts)
			if p != nil {
				defer p.Close()
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	p, err := identity.NewProvider("http://idp.example.com", identity.ProviderOptions{Policy: identity.DiscoveryPolicy{AllowHTTP: true}})
	if err != nil {
		t.Fatalf("http issuer with AllowHTTP: %v", err)
	}
	_ = p.Close()
}

func TestProviderKeysThroughDiscovery(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	p := newProvider(t, op.URL, identity.ProviderOptions{})
	ctx := context.Background()
	for range 10 {
		keys, err := p.CandidateKeys(ctx, "k1", "ES256")
		if err != nil || len(keys) != 1 {
			t.Fatalf("CandidateKeys = %v, %v", kids(keys), err)
		}
	}
	if d, k := op.discHits.Load(), op.jwksHits.Load(); d != 1 || k != 1 {
		t.Errorf("%d discovery and %d JWKS fetches, want 1 and 1", d, k)
	}
	d, err := p.Discovery(ctx)
	if err != nil || d.JWKSURI != op.URL+"/jwks" {
		t.Fatalf("Discovery = %+v, %v", d, err)
	}
	set, err := p.KeySet(ctx)
	if err != nil || set.Len() != 1 {
		t.Fatalf("KeySet = %v, %v", set, err)
	}
	if !p.HasKey(set.Keys()[0].Thumbprint) {
		t.Error("HasKey of the published key = false")
	}
	rks, err := p.RemoteKeySet(ctx)
	if err != nil || rks.URL() != op.URL+"/jwks" {
		t.Fatalf("RemoteKeySet = %v, %v", rks, err)
	}
	if _, err := p.CandidateKeys(ctx, "unknown", "ES256"); !errors.Is(err, identity.ErrKeyNotFound) {
		t.Errorf("unknown kid: %v", err)
	}
}

// TestProviderDiscoveryCache covers DISC-004 and DISC-005.
func TestProviderDiscoveryCache(t *testing.T) {
	checkNoGoroutineLeak(t)
	t.Run("hit within the TTL", func(t *testing.T) {
		op := newFakeOP(t)
		clock := newOPClock()
		p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now}})
		first, err := p.Discovery(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(identity.DefaultCacheTTL - time.Second)
		second, err := p.Discovery(context.Background())
		if err != nil || second != first || op.discHits.Load() != 1 {
			t.Fatalf("second Discovery within the TTL: %d fetches, same document %v, err %v", op.discHits.Load(), second == first, err)
		}
	})
	t.Run("miss after the TTL", func(t *testing.T) {
		op := newFakeOP(t)
		clock := newOPClock()
		p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now, StaleWindow: -1}})
		first, err := p.Discovery(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		op.SetMeta(func(m map[string]any) { m["scopes_supported"] = []string{"openid", "new"} })
		clock.Advance(identity.DefaultCacheTTL)
		second, err := p.Discovery(context.Background())
		if err != nil || op.discHits.Load() != 2 || second == first || len(second.ScopesSupported) != 2 {
			t.Fatalf("after the TTL: %d fetches, err %v, new document %+v", op.discHits.Load(), err, second)
		}
	})
	t.Run("expired document served while refreshed in the background", func(t *testing.T) {
		op := newFakeOP(t)
		clock := newOPClock()
		p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now}})
		first, err := p.Discovery(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(identity.DefaultCacheTTL + time.Second)
		if d, err := p.Discovery(context.Background()); err != nil || d != first {
			t.Fatalf("expired document not served at once: %v", err)
		}
		waitFor(t, "the background refresh", func() bool {
			d, _ := p.Discovery(context.Background())
			return d != first
		})
	})
}

func TestProviderDiscoveryFailuresAreTypedAndNotCached(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	op.SetMeta(func(m map[string]any) { m["issuer"] = "https://attacker.example.com" })
	clock := newOPClock()
	p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now}})
	ctx := context.Background()
	for range 5 {
		_, err := p.CandidateKeys(ctx, "k1", "ES256")
		if !errors.Is(err, identity.ErrProviderUnavailable) || !errors.Is(err, identity.ErrIssuerMismatch) {
			t.Fatalf("err = %v, want ErrProviderUnavailable wrapping ErrIssuerMismatch", err)
		}
	}
	if n := op.discHits.Load(); n != 1 {
		t.Errorf("%d discovery fetches within one cooldown, want 1", n)
	}
	if n := op.jwksHits.Load(); n != 0 {
		t.Errorf("the JWKS of a provider with an invalid document was fetched %d times", n)
	}
	op.SetMeta(func(m map[string]any) { m["issuer"] = op.URL })
	clock.Advance(identity.DefaultRefreshCooldown)
	if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatalf("after the fix: %v", err)
	}
}

func TestProviderJWKSURIChangeRecreatesKeySet(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	clock := newOPClock()
	p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now, StaleWindow: -1}})
	ctx := context.Background()
	if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	first, _ := p.RemoteKeySet(ctx)
	op.SetMeta(func(m map[string]any) { m["jwks_uri"] = op.URL + "/jwks2" })
	clock.Advance(identity.DefaultCacheTTL)
	if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	second, _ := p.RemoteKeySet(ctx)
	if first == second || second.URL() != op.URL+"/jwks2" {
		t.Fatalf("the key set was not recreated for the new jwks_uri (%s)", second.URL())
	}
	if got := op.JWKSPaths(); !slices.Equal(got, []string{"/jwks", "/jwks2"}) {
		t.Errorf("JWKS requests = %v", got)
	}
}

func TestProviderWithJWKSURLSkipsDiscovery(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	p := newProvider(t, op.URL, identity.ProviderOptions{JWKSURL: op.URL + "/jwks2"})
	ctx := context.Background()
	if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	if n := op.discHits.Load(); n != 0 {
		t.Errorf("%d discovery fetches with JWKSURL set", n)
	}
	if got := op.JWKSPaths(); !slices.Equal(got, []string{"/jwks2"}) {
		t.Errorf("JWKS requests = %v, want the configured URL", got)
	}
	if _, err := p.Discovery(ctx); err != nil || op.discHits.Load() != 1 {
		t.Errorf("Discovery on demand: %v", err)
	}
}

func TestProviderAdvertisedAlgorithms(t *testing.T) {
	op := newFakeOP(t, newEdJWK(t, "ed", "EdDSA"), newECJWK(t, "es", ""))
	op.SetMeta(func(m map[string]any) {
		m["id_token_signing_alg_values_supported"] = []string{"RS256", "HS256", "none"}
		m["userinfo_signing_alg_values_supported"] = []string{"ES256"}
		m["x_custom_signing_alg_values_supported"] = []string{"PS384"}
		m["id_token_encryption_alg_values_supported"] = []string{"RSA-OAEP"}
		// What the provider accepts from clients, not what it signs with.
		m["dpop_signing_alg_values_supported"] = []string{"PS512"}
		m["token_endpoint_auth_signing_alg_values_supported"] = []string{"ES512"}
		m["request_object_signing_alg_values_supported"] = []string{"RS384"}
		m["backchannel_authentication_request_signing_alg_values_supported"] = []string{"PS256"}
	})
	p := newProvider(t, op.URL, identity.ProviderOptions{})
	ctx := context.Background()
	if got := p.AdvertisedAlgorithms(); got != nil {
		t.Errorf("before any fetch: %v, want nil", got)
	}
	if _, err := p.Discovery(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.AdvertisedAlgorithms(); !slices.Equal(got, []string{"RS256", "PS384", "ES256"}) {
		t.Errorf("from discovery: %v, want [RS256 PS384 ES256]", got)
	}
	if _, err := p.KeySet(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.AdvertisedAlgorithms(); !slices.Equal(got, []string{"RS256", "PS384", "ES256", "EdDSA"}) {
		t.Errorf("from discovery and keys: %v, want [RS256 PS384 ES256 EdDSA]", got)
	}

	symmetric := newFakeOP(t, newECJWK(t, "es", ""))
	symmetric.SetMeta(func(m map[string]any) { m["id_token_signing_alg_values_supported"] = []string{"HS256"} })
	p2 := newProvider(t, symmetric.URL, identity.ProviderOptions{})
	if _, err := p2.KeySet(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p2.AdvertisedAlgorithms(); got != nil {
		t.Errorf("only symmetric algorithms known: %v, want nil", got)
	}
}

func TestProviderDownThenBack(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1, k2 := newECJWK(t, "k1", "ES256"), newECJWK(t, "k2", "ES256")
	op := newFakeOP(t, k1)
	clock := newOPClock()
	p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{
		Now: clock.Now, DefaultTTL: 10 * time.Minute, StaleWindow: time.Hour,
	}})
	ctx := context.Background()
	if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	op.SetDown(true)
	for _, step := range []time.Duration{9 * time.Minute, 2 * time.Minute, 58 * time.Minute} {
		clock.Advance(step)
		if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
			t.Fatalf("while down, within the stale window: %v", err)
		}
	}
	clock.Advance(2 * time.Minute)
	_, err := p.CandidateKeys(ctx, "k1", "ES256")
	if !errors.Is(err, identity.ErrProviderUnavailable) || !errors.Is(err, identity.ErrHTTPStatus) {
		t.Fatalf("past the stale window: err = %v, want ErrProviderUnavailable wrapping ErrHTTPStatus", err)
	}
	op.SetDown(false)
	op.SetKeys(k2)
	clock.Advance(identity.DefaultRefreshCooldown)
	if _, err := p.CandidateKeys(ctx, "k2", "ES256"); err != nil {
		t.Fatalf("after the provider came back: %v", err)
	}
}

func TestProviderRefreshAndClose(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1, k2 := newECJWK(t, "k1", "ES256"), newECJWK(t, "k2", "ES256")
	op := newFakeOP(t, k1)
	clock := newOPClock()
	p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now}})
	ctx := context.Background()
	if err := p.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	op.SetKeys(k2)
	clock.Advance(identity.DefaultRefreshCooldown)
	if err := p.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.HasKey(thumb(t, k2.Public)) || p.HasKey(thumb(t, k1.Public)) {
		t.Error("Refresh did not replace the keys")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	hits := op.discHits.Load() + op.jwksHits.Load()
	if _, err := p.CandidateKeys(ctx, "k2", "ES256"); err != nil {
		t.Errorf("a closed provider no longer serves its keys: %v", err)
	}
	clock.Advance(identity.DefaultRefreshCooldown)
	_ = p.Refresh(ctx)
	if n := op.discHits.Load() + op.jwksHits.Load(); n != hits {
		t.Errorf("%d fetches after Close", n-hits)
	}
}

// TestProviderWithTestIssuer runs the provider against identitytest, the
// test issuer shared with the validator and the Caddy handler.
func TestProviderWithTestIssuer(t *testing.T) {
	checkNoGoroutineLeak(t)
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"))
	clock := newOPClock()
	p := newProvider(t, iss.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now}})
	ctx := context.Background()
	for _, alg := range []string{"RS256", "ES256"} {
		if _, err := p.CandidateKeys(ctx, iss.CurrentKeyID(alg), alg); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
	}
	kid := iss.RotateKey("ES256")
	clock.Advance(identity.DefaultRefreshCooldown)
	keys, err := p.CandidateKeys(ctx, kid, "ES256")
	if err != nil || len(keys) != 1 || keys[0].JWK.KeyID != kid {
		t.Fatalf("rotated key: %v, %v", kids(keys), err)
	}
	if got := p.AdvertisedAlgorithms(); !slices.Contains(got, "RS256") || !slices.Contains(got, "ES256") {
		t.Errorf("AdvertisedAlgorithms = %v", got)
	}
	_ = p.Close()
	iss.Close()
}

func TestProviderKeySetVersion(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1 := newECJWK(t, "k1", "ES256")
	op := newFakeOP(t, k1)
	clock := newOPClock()
	p := newProvider(t, op.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{Now: clock.Now, StaleWindow: -1}})
	if v := p.KeySetVersion(clock.Now()); v != 0 {
		t.Fatalf("version before any fetch = %d, want 0", v)
	}
	ctx := context.Background()
	if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	v1 := p.KeySetVersion(clock.Now())
	if v1 == 0 {
		t.Fatal("version after a fetch is 0")
	}

	// A new jwks_uri gives a new key set whose own sequence starts again
	// at 1: the provider's version must still differ from the old one.
	op.SetMeta(func(m map[string]any) { m["jwks_uri"] = op.URL + "/jwks2" })
	clock.Advance(identity.DefaultCacheTTL)
	if _, err := p.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	if v2 := p.KeySetVersion(clock.Now()); v2 == 0 || v2 == v1 {
		t.Errorf("version after a jwks_uri change = %d (was %d): want a new non-zero value", v2, v1)
	}
	if !p.HasKey(thumb(t, k1.Public)) {
		t.Error("HasKey is false for a key of the new set")
	}
}
