package identity_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Hardening of the key and metadata caches: a provider that turns hostile
// or broken after keys were fetched must not take the good keys away, a
// flood of unknown kids must not turn into a flood of fetches, a hanging
// provider must not hang lookups of known keys, and a discovery document
// must not send us to another host.

// hardClock is a settable clock for the caches' Now option.
type hardClock struct{ ns atomic.Int64 }

func newHardClock() *hardClock {
	c := &hardClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *hardClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *hardClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newHardRemoteKeySet returns a remote key set on iss's JWKS with clock,
// closed when t ends.
func newHardRemoteKeySet(t *testing.T, iss *identitytest.Issuer, clock *hardClock) *identity.RemoteKeySet {
	t.Helper()
	r, err := identity.NewRemoteKeySet(iss.JWKSURL(), identity.RemoteKeySetOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestHardeningBadRefreshKeepsGoodKeys(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithCacheControl("max-age=3600"))
	kid := iss.CurrentKeyID("RS256")
	clock := newHardClock()
	r := newHardRemoteKeySet(t, iss, clock)
	ctx := context.Background()
	if keys, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil || len(keys) != 1 {
		t.Fatalf("initial keys: %v %v", keys, err)
	}

	bad := []struct {
		name  string
		apply func()
	}{
		{"empty set", func() { iss.SetJWKSBody([]byte(`{"keys":[]}`), "") }},
		{"empty body", func() { iss.SetJWKSBody([]byte{}, "") }},
		{"garbage", func() { iss.SetJWKSBody([]byte("\x00garbage{"), "") }},
		{"html", func() { iss.SetJWKSBody([]byte("<html>maintenance</html>"), "text/html") }},
		{"json null", func() { iss.SetJWKSBody([]byte("null"), "") }},
		{"keys null", func() { iss.SetJWKSBody([]byte(`{"keys":null}`), "") }},
		{"only unusable keys", func() {
			iss.SetJWKSBody([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`), "")
		}},
		{"too many keys", func() { iss.SetJWKSBody(rsaJWKS(t, identity.DefaultMaxKeys+1), "") }},
		{"too large", func() {
			iss.SetJWKSBody([]byte(`{"keys":[],"pad":"`+strings.Repeat("x", identity.DefaultMaxDocumentBytes)+`"}`), "")
		}},
		{"status 500", func() { iss.SetJWKSFailure(http.StatusInternalServerError, []byte("oops")) }},
		{"status 404", func() { iss.SetJWKSFailure(http.StatusNotFound, nil) }},
		{"down", func() { iss.SetDown(true) }},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			b.apply()
			defer func() {
				iss.SetJWKSBody(nil, "")
				iss.SetJWKSFailure(0, nil)
				iss.SetDown(false)
			}()
			clock.Advance(time.Minute) // past the refresh cooldown
			if err := r.Refresh(ctx); err == nil {
				t.Error("refresh from a broken provider reported success")
			}
			keys, err := r.CandidateKeys(ctx, kid, "RS256")
			if err != nil || len(keys) != 1 {
				t.Fatalf("after the bad refresh: keys %v, err %v", keys, err)
			}
			// A forced refresh for an unknown kid must not lose them
			// either.
			clock.Advance(time.Minute)
			if _, err := r.CandidateKeys(ctx, "unknown", "RS256"); !errors.Is(err, identity.ErrKeyNotFound) {
				t.Errorf("unknown kid: err = %v, want ErrKeyNotFound", err)
			}
			if keys, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil || len(keys) != 1 {
				t.Fatalf("after a forced refresh: keys %v, err %v", keys, err)
			}
		})
	}

	t.Run("expired set kept within the stale window", func(t *testing.T) {
		iss.SetJWKSBody([]byte(`{"keys":[]}`), "")
		defer iss.SetJWKSBody(nil, "")
		// The set was fetched about 25 minutes ago with max-age 1h: two
		// hours later it has expired but is within DefaultStaleWindow.
		clock.Advance(2 * time.Hour)
		if keys, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil || len(keys) != 1 {
			t.Fatalf("stale keys: %v %v", keys, err)
		}
	})
	t.Run("past the stale window: provider unavailable, then recovery", func(t *testing.T) {
		iss.SetDown(true)
		clock.Advance(identity.DefaultMaxCacheTTL + identity.DefaultStaleWindow + time.Hour)
		if _, err := r.CandidateKeys(ctx, kid, "RS256"); !errors.Is(err, identity.ErrProviderUnavailable) {
			t.Errorf("past the stale window: err = %v, want ErrProviderUnavailable", err)
		}
		iss.SetDown(false)
		clock.Advance(time.Minute)
		if keys, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil || len(keys) != 1 {
			t.Errorf("after recovery: keys %v, err %v", keys, err)
		}
	})
}

func TestHardeningUnknownKidFloodBounded(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	kid := iss.CurrentKeyID("RS256")
	clock := newHardClock()
	r := newHardRemoteKeySet(t, iss, clock)
	ctx := context.Background()
	if _, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil {
		t.Fatal(err)
	}
	iss.ResetCounters()
	clock.Advance(time.Minute) // past the cooldown: the first unknown kid may fetch
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				b := make([]byte, 9)
				_, _ = rand.Read(b)
				if _, err := r.CandidateKeys(ctx, base64.RawURLEncoding.EncodeToString(b), "RS256"); !errors.Is(err, identity.ErrKeyNotFound) {
					t.Errorf("worker %d, call %d: err = %v, want ErrKeyNotFound", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// 2000 unknown kids while the clock stands still: exactly one forced
	// refresh.
	if n := iss.JWKSFetches(); n != 1 {
		t.Errorf("2000 unknown kids caused %d JWKS fetches, want 1", n)
	}
}

// TestHardeningHangingProviderDoesNotBlockKnownKeys: while a refresh forced
// by an unknown kid hangs on the provider, lookups of a known kid are
// answered from the cache. No lookup is timed: the known-kid lookups must
// all return while the refresh is still hanging (it hangs until the client
// timeout, far longer than 50 cache lookups take even on a loaded machine),
// which they could not do if they waited for it.
func TestHardeningHangingProviderDoesNotBlockKnownKeys(t *testing.T) {
	const clientTimeout = 5 * time.Second
	iss := identitytest.NewIssuer(t)
	kid := iss.CurrentKeyID("RS256")
	clock := newHardClock()
	r, err := identity.NewRemoteKeySet(iss.JWKSURL(), identity.RemoteKeySetOptions{
		HTTPClient: &http.Client{Timeout: clientTimeout},
		Now:        clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if _, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil {
		t.Fatal(err)
	}
	iss.SetDelay(time.Minute)
	defer iss.SetDelay(0)
	iss.ResetCounters()
	clock.Advance(time.Minute) // past the cooldown: the next unknown kid fetches

	// An unknown kid forces a refresh that hangs until the client timeout.
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		_, _ = r.CandidateKeys(ctx, "unknown", "RS256")
		done <- time.Since(start)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for iss.JWKSFetches() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the unknown kid did not force a refresh")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 50 {
		if _, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil {
			t.Fatalf("known kid while the provider hangs: %v", err)
		}
	}
	select {
	case d := <-done:
		t.Fatalf("the refresh ended (after %v) before the known-kid lookups did: they may have waited for it", d)
	default:
	}
	select {
	case d := <-done:
		// Only a lower bound is timed: a slow machine makes it longer.
		if d < clientTimeout/2 {
			t.Errorf("unknown-kid lookup returned after %v: the refresh did not hang", d)
		}
	case <-time.After(clientTimeout + 30*time.Second):
		t.Fatalf("unknown-kid lookup still hanging %v after the %v client timeout", 30*time.Second, clientTimeout)
	}
	if _, err := r.CandidateKeys(ctx, kid, "RS256"); err != nil {
		t.Errorf("known kid after the timed-out refresh: %v", err)
	}

	t.Run("request context bounds the wait", func(t *testing.T) {
		// The lookup returns when its context ends, not when the hanging
		// refresh does: it must be done well before the client timeout.
		clock.Advance(time.Minute)
		c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _ = r.CandidateKeys(c, "other-unknown", "RS256")
		if d := time.Since(start); d >= clientTimeout*3/4 {
			t.Errorf("lookup with a 200ms context took %v (client timeout %v)", d, clientTimeout)
		}
	})
}

func TestHardeningDiscovery(t *testing.T) {
	ctx := context.Background()
	attacker := newCountingServer(t, jsonBody(rsaJWKS(t, 1)))

	t.Run("jwks_uri on another host", func(t *testing.T) {
		iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
			m["jwks_uri"] = attacker.URL + "/jwks"
		}))
		if _, _, err := identity.FetchDiscovery(ctx, nil, iss.URL, identity.DiscoveryPolicy{}); !errors.Is(err, identity.ErrEndpointNotAllowed) {
			t.Errorf("err = %v, want ErrEndpointNotAllowed", err)
		}
		p, err := identity.NewProvider(iss.URL, identity.ProviderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, err := p.CandidateKeys(ctx, "k", "RS256"); err == nil {
			t.Error("provider with a foreign jwks_uri returned keys")
		}
		if n := attacker.hits.Load(); n != 0 {
			t.Errorf("the foreign jwks_uri was fetched %d times", n)
		}
	})
	t.Run("issuer mismatch", func(t *testing.T) {
		for _, other := range []string{attacker.URL, "https://evil.example"} {
			iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) { m["issuer"] = other }))
			if _, _, err := identity.FetchDiscovery(ctx, nil, iss.URL, identity.DiscoveryPolicy{}); !errors.Is(err, identity.ErrIssuerMismatch) {
				t.Errorf("issuer %q: err = %v, want ErrIssuerMismatch", other, err)
			}
		}
	})
	t.Run("too large", func(t *testing.T) {
		iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
			m["padding"] = strings.Repeat("x", identity.DefaultMaxDocumentBytes)
		}))
		if _, _, err := identity.FetchDiscovery(ctx, nil, iss.URL, identity.DiscoveryPolicy{}); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("err = %v, want ErrBodyTooLarge", err)
		}
		if _, _, err := identity.FetchDiscovery(ctx, nil, iss.URL, identity.DiscoveryPolicy{MaxBytes: 1 << 10}); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("1 KiB cap: err = %v, want ErrBodyTooLarge", err)
		}
	})
	t.Run("endless", func(t *testing.T) {
		srv := newCountingServer(t, endlessJSON)
		start := time.Now()
		if _, _, err := identity.FetchDiscovery(ctx, nil, srv.URL, identity.DiscoveryPolicy{}); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("err = %v, want ErrBodyTooLarge", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("refused after %v", d)
		}
	})
	t.Run("cross-host redirect", func(t *testing.T) {
		attacker.hits.Store(0)
		src := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, attacker.URL+r.URL.Path, http.StatusFound)
		})
		if _, _, err := identity.FetchDiscovery(ctx, nil, src.URL, identity.DiscoveryPolicy{}); !errors.Is(err, identity.ErrRedirect) {
			t.Errorf("err = %v, want ErrRedirect", err)
		}
		if n := attacker.hits.Load(); n != 0 {
			t.Errorf("the other host was contacted %d times", n)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		iss := identitytest.NewIssuer(t)
		iss.SetDelay(time.Minute)
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, _, err := identity.FetchDiscovery(c, nil, iss.URL, identity.DiscoveryPolicy{}); err == nil {
			t.Error("hanging discovery: no error")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("returned after %v", d)
		}
	})
	t.Run("plain http issuer", func(t *testing.T) {
		if _, _, err := identity.FetchDiscovery(ctx, nil, "http://idp.example.com", identity.DiscoveryPolicy{}); !errors.Is(err, identity.ErrHTTPSRequired) {
			t.Errorf("err = %v, want ErrHTTPSRequired", err)
		}
	})
}

func TestHardeningIntrospection(t *testing.T) {
	const secret = "introspection-client-secret-value"
	const token = "opaque-access-token-value-1234567890"
	ctx := context.Background()
	req := func(addr string) identity.IntrospectionRequest {
		return identity.IntrospectionRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: addr, ClientAuth: identity.ClientSecretBasicAuth("rs", secret)},
			Token:           token,
		}
	}
	t.Run("size cap", func(t *testing.T) {
		srv := newCountingServer(t, jsonBody([]byte(`{"active":true,"pad":"`+strings.Repeat("x", 2<<20)+`"}`)))
		if _, err := identity.IntrospectToken(ctx, nil, req(srv.URL)); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("err = %v, want ErrBodyTooLarge", err)
		}
	})
	t.Run("endless", func(t *testing.T) {
		srv := newCountingServer(t, endlessJSON)
		if _, err := identity.IntrospectToken(ctx, nil, req(srv.URL)); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("err = %v, want ErrBodyTooLarge", err)
		}
	})
	t.Run("cross-host redirect", func(t *testing.T) {
		var leaked atomic.Bool
		other := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			if r.Header.Get("Authorization") != "" || r.PostForm.Get("token") != "" {
				leaked.Store(true)
			}
			jsonBody([]byte(`{"active":true}`))(w, r)
		})
		for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
			src := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/introspect", code)
			})
			if _, err := identity.IntrospectToken(ctx, nil, req(src.URL)); !errors.Is(err, identity.ErrRedirect) {
				t.Errorf("%d: err = %v, want ErrRedirect", code, err)
			}
		}
		if other.hits.Load() != 0 || leaked.Load() {
			t.Errorf("the other host was contacted (%d) or got credentials (%v)", other.hits.Load(), leaked.Load())
		}
	})
	t.Run("timeout", func(t *testing.T) {
		done := make(chan struct{})
		defer close(done)
		srv := newCountingServer(t, hangUntilClientGoes(done))
		start := time.Now()
		if _, err := identity.IntrospectToken(ctx, &http.Client{Timeout: 300 * time.Millisecond}, req(srv.URL)); err == nil {
			t.Error("hanging introspection: no error")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("returned after %v", d)
		}
	})
	t.Run("nothing secret in errors", func(t *testing.T) {
		for _, h := range []http.HandlerFunc{
			func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) },
			jsonBody([]byte(`{"active":"yes"}`)),
			jsonBody([]byte(`garbage`)),
			func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			},
		} {
			srv := newCountingServer(t, h)
			_, err := identity.IntrospectToken(ctx, nil, req(srv.URL))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), token) {
				t.Errorf("error %q contains the secret or the token", err)
			}
		}
	})
}
