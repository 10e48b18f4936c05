package identity_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/caddy-identity/caddy-identity/identity"
)

// checkNoGoroutineLeak fails the test if goroutines started during it are
// still running once its other cleanups (registered later, run earlier)
// have closed the caches and servers.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	current := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, current) })
}

// newRemote creates a RemoteKeySet on op's JWKS, closed at cleanup.
func newRemote(t *testing.T, op *fakeOP, o identity.RemoteKeySetOptions) *identity.RemoteKeySet {
	t.Helper()
	r, err := identity.NewRemoteKeySet(op.URL+"/jwks", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewRemoteKeySetDoesNoIO(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	r := newRemote(t, op, identity.RemoteKeySetOptions{})
	time.Sleep(50 * time.Millisecond)
	if n := op.jwksHits.Load(); n != 0 {
		t.Fatalf("%d fetches at construction", n)
	}
	if r.URL() != op.URL+"/jwks" {
		t.Errorf("URL = %q", r.URL())
	}
	if r.AdvertisedAlgorithms() != nil || r.HasKey("x") {
		t.Error("a set that never fetched claims to know keys")
	}
}

func TestNewRemoteKeySetURLRules(t *testing.T) {
	cases := []struct {
		name  string
		url   string
		allow bool
		want  error
	}{
		{"https", "https://idp.example.com/jwks", false, nil},
		{"http on localhost", "http://localhost:8080/jwks", false, nil},
		{"http on 127.0.0.1", "http://127.0.0.1/jwks", false, nil},
		{"http on ::1", "http://[::1]:9000/jwks", false, nil},
		{"http elsewhere", "http://idp.example.com/jwks", false, identity.ErrHTTPSRequired},
		{"http elsewhere with AllowHTTP", "http://idp.example.com/jwks", true, nil},
		{"relative", "/jwks", false, identity.ErrEndpointNotAllowed},
		{"other scheme", "ftp://idp.example.com/jwks", true, identity.ErrEndpointNotAllowed},
		{"garbage", "::::", false, identity.ErrEndpointNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := identity.NewRemoteKeySet(c.url, identity.RemoteKeySetOptions{AllowHTTP: c.allow})
			if r != nil {
				defer r.Close()
			}
			if c.want == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestRemoteKeySetTTL observes the lifetime through the fetch count: with
// no stale window an expired set is fetched again synchronously.
func TestRemoteKeySetTTL(t *testing.T) {
	cases := []struct {
		name         string
		cacheControl string
		age          string
		opts         identity.RemoteKeySetOptions
		want         time.Duration
	}{
		{"no header: default 1h", "", "", identity.RemoteKeySetOptions{}, time.Hour},
		{"max-age inside the window", "max-age=600", "", identity.RemoteKeySetOptions{}, 10 * time.Minute},
		{"max-age with other directives", "public, max-age=1800, must-revalidate", "", identity.RemoteKeySetOptions{}, 30 * time.Minute},
		{"max-age minus Age", "max-age=1800", "600", identity.RemoteKeySetOptions{}, 20 * time.Minute},
		{"max-age below MinTTL is raised", "max-age=10", "", identity.RemoteKeySetOptions{}, 5 * time.Minute},
		{"max-age=0 is raised", "max-age=0", "", identity.RemoteKeySetOptions{}, 5 * time.Minute},
		{"max-age above MaxTTL is lowered", "max-age=999999999999", "", identity.RemoteKeySetOptions{}, 24 * time.Hour},
		{"no-cache ignored: default", "no-cache", "", identity.RemoteKeySetOptions{}, time.Hour},
		{"no-store ignored: default", "no-store, max-age=0", "", identity.RemoteKeySetOptions{}, time.Hour},
		{"invalid max-age: default", "max-age=soon", "", identity.RemoteKeySetOptions{}, time.Hour},
		{"configured default", "", "", identity.RemoteKeySetOptions{DefaultTTL: 2 * time.Hour}, 2 * time.Hour},
		{"configured MinTTL", "max-age=90", "", identity.RemoteKeySetOptions{MinTTL: time.Minute}, 90 * time.Second},
		{"configured MaxTTL", "max-age=86400", "", identity.RemoteKeySetOptions{MaxTTL: 2 * time.Hour}, 2 * time.Hour},
		{"default clamped too", "", "", identity.RemoteKeySetOptions{DefaultTTL: time.Minute}, 5 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
			op.SetCacheControl(c.cacheControl)
			op.SetJWKSHeader("Age", c.age)
			clock := newOPClock()
			o := c.opts
			o.Now, o.StaleWindow = clock.Now, -1
			r := newRemote(t, op, o)
			ctx := context.Background()
			if _, err := r.KeySet(ctx); err != nil {
				t.Fatal(err)
			}
			clock.Advance(c.want - time.Second)
			if _, err := r.KeySet(ctx); err != nil || op.jwksHits.Load() != 1 {
				t.Fatalf("1s before the expected expiry: %d fetches, err %v; want the cached set", op.jwksHits.Load(), err)
			}
			clock.Advance(time.Second)
			if _, err := r.KeySet(ctx); err != nil || op.jwksHits.Load() != 2 {
				t.Fatalf("at the expected expiry: %d fetches, err %v; want a new fetch", op.jwksHits.Load(), err)
			}
		})
	}
}

func TestRemoteKeySetSingleFlight(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	op.setHang(true)
	r := newRemote(t, op, identity.RemoteKeySetOptions{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 50 {
		wg.Go(func() {
			if _, err := r.CandidateKeys(context.Background(), "k1", "ES256"); err != nil {
				failures.Add(1)
			}
		})
	}
	waitFor(t, "the first fetch", func() bool { return op.jwksHits.Load() == 1 })
	time.Sleep(20 * time.Millisecond)
	op.setHang(false)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of 50 concurrent lookups failed", n)
	}
	if n := op.jwksHits.Load(); n != 1 {
		t.Errorf("50 concurrent lookups made %d fetches, want 1", n)
	}
}

func TestRemoteKeySetUnknownKidsAreRateLimited(t *testing.T) {
	checkNoGoroutineLeak(t)
	t.Run("200 concurrent random kids", func(t *testing.T) {
		op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
		r := newRemote(t, op, identity.RemoteKeySetOptions{})
		if _, err := r.KeySet(context.Background()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var wrong atomic.Int64
		for range 200 {
			wg.Go(func() {
				_, err := r.CandidateKeys(context.Background(), fmt.Sprintf("kid-%d", rand.Int64()), "ES256")
				if !errors.Is(err, identity.ErrKeyNotFound) {
					wrong.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wrong.Load(); n != 0 {
			t.Errorf("%d lookups did not fail with ErrKeyNotFound", n)
		}
		if n := op.jwksHits.Load(); n > 2 {
			t.Errorf("200 random kids made %d fetches, want at most 2", n)
		}
	})
	t.Run("200 random kids over 20s of clock", func(t *testing.T) {
		op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
		clock := newOPClock()
		r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now})
		for range 200 {
			_, err := r.CandidateKeys(context.Background(), fmt.Sprintf("kid-%d", rand.Int64()), "ES256")
			if !errors.Is(err, identity.ErrKeyNotFound) {
				t.Fatalf("err = %v, want ErrKeyNotFound", err)
			}
			clock.Advance(100 * time.Millisecond)
		}
		// One initial fetch plus at most one forced refresh per 5 s cooldown.
		if n := op.jwksHits.Load(); n > 5 {
			t.Errorf("%d fetches, want at most 5", n)
		}
		// Known kids never fetch.
		before := op.jwksHits.Load()
		for range 100 {
			if _, err := r.CandidateKeys(context.Background(), "k1", "ES256"); err != nil {
				t.Fatal(err)
			}
		}
		if n := op.jwksHits.Load(); n != before {
			t.Errorf("lookups of a known kid fetched %d times", n-before)
		}
	})
}

func TestRemoteKeySetRotationPickedUpWithoutRestart(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1, k2 := newECJWK(t, "k1", "ES256"), newECJWK(t, "k2", "ES256")
	op := newFakeOP(t, k1)
	clock := newOPClock()
	r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now})
	ctx := context.Background()
	if _, err := r.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	op.SetKeys(k1, k2) // the provider rotates

	// Within the cooldown of the last fetch no forced refresh happens.
	if _, err := r.CandidateKeys(ctx, "k2", "ES256"); !errors.Is(err, identity.ErrKeyNotFound) {
		t.Fatalf("err = %v, want ErrKeyNotFound within the cooldown", err)
	}
	if n := op.jwksHits.Load(); n != 1 {
		t.Fatalf("%d fetches within the cooldown", n)
	}
	// After it, the lookup forces one refresh and uses its result.
	clock.Advance(identity.DefaultRefreshCooldown)
	keys, err := r.CandidateKeys(ctx, "k2", "ES256")
	if err != nil || len(keys) != 1 || keys[0].JWK.KeyID != "k2" {
		t.Fatalf("after rotation: %v, %v", kids(keys), err)
	}
	if n := op.jwksHits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	// The old key is withdrawn; an explicit refresh drops it.
	op.SetKeys(k2)
	clock.Advance(identity.DefaultRefreshCooldown)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if r.HasKey(thumb(t, k1.Public)) || !r.HasKey(thumb(t, k2.Public)) {
		t.Error("HasKey does not follow the withdrawal of k1")
	}
}

func TestRemoteKeySetBackgroundRefreshBeforeExpiry(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1, k2 := newECJWK(t, "k1", "ES256"), newECJWK(t, "k2", "ES256")
	op := newFakeOP(t, k1)
	r := newRemote(t, op, identity.RemoteKeySetOptions{
		DefaultTTL: 400 * time.Millisecond, MinTTL: time.Millisecond, RefreshCooldown: 10 * time.Millisecond,
	})
	start := time.Now()
	if _, err := r.KeySet(context.Background()); err != nil {
		t.Fatal(err)
	}
	op.SetKeys(k2)
	// Nobody asks: the refresher picks up the rotation on its own, before
	// the 400 ms lifetime ends.
	waitFor(t, "the background refresh", func() bool { return r.HasKey(thumb(t, k2.Public)) })
	if d := time.Since(start); d >= 400*time.Millisecond && op.jwksHits.Load() == 2 {
		t.Logf("background refresh after %v (slow host)", d)
	}
	waitFor(t, "further background refreshes", func() bool { return op.jwksHits.Load() >= 3 })
}

func TestRemoteKeySetExpiredServesStaleAndRefreshesInBackground(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1, k2 := newECJWK(t, "k1", "ES256"), newECJWK(t, "k2", "ES256")
	op := newFakeOP(t, k1)
	clock := newOPClock()
	r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now})
	ctx := context.Background()
	if _, err := r.KeySet(ctx); err != nil {
		t.Fatal(err)
	}
	op.SetKeys(k1, k2)
	clock.Advance(identity.DefaultCacheTTL + time.Minute)
	// The expired set answers at once; the refresh happens behind it.
	if _, err := r.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refresh after expiry", func() bool { return r.HasKey(thumb(t, k2.Public)) })
}

func TestRemoteKeySetProviderDownThenBack(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1, k2 := newECJWK(t, "k1", "ES256"), newECJWK(t, "k2", "ES256")
	op := newFakeOP(t, k1)
	clock := newOPClock()
	var mu sync.Mutex
	var states []bool
	var fetchErrs []error
	r := newRemote(t, op, identity.RemoteKeySetOptions{
		Now:         clock.Now,
		DefaultTTL:  10 * time.Minute,
		StaleWindow: time.Hour,
		OnStateChange: func(available bool, err error) {
			mu.Lock()
			defer mu.Unlock()
			states = append(states, available)
			if available != (err == nil) {
				t.Errorf("OnStateChange(%v, %v)", available, err)
			}
		},
		OnFetch: func(url string, err error) {
			mu.Lock()
			defer mu.Unlock()
			fetchErrs = append(fetchErrs, err)
			if url != op.URL+"/jwks" {
				t.Errorf("OnFetch url = %q", url)
			}
		},
	})
	ctx := context.Background()
	if _, err := r.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	op.SetDown(true)

	// Down, but the keys are cached and then stale: they keep working.
	for _, step := range []time.Duration{5 * time.Minute, 6 * time.Minute, 30 * time.Minute, 28 * time.Minute} {
		clock.Advance(step)
		if _, err := r.CandidateKeys(ctx, "k1", "ES256"); err != nil {
			t.Fatalf("at +%v: %v (cached keys must keep working)", step, err)
		}
	}
	if !r.HasKey(thumb(t, k1.Public)) {
		t.Error("HasKey is false within the stale window")
	}
	// Past expiry (10m) plus the stale window (1h): unavailable, with the cause.
	clock.Advance(2 * time.Minute)
	_, err := r.CandidateKeys(ctx, "k1", "ES256")
	if !errors.Is(err, identity.ErrProviderUnavailable) || !errors.Is(err, identity.ErrHTTPStatus) {
		t.Fatalf("past the stale window: err = %v, want ErrProviderUnavailable wrapping ErrHTTPStatus", err)
	}
	var se *identity.HTTPStatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("the cause is not the 503: %v", err)
	}
	if r.HasKey(thumb(t, k1.Public)) {
		t.Error("HasKey is true past the stale window")
	}
	if _, err := r.KeySet(ctx); !errors.Is(err, identity.ErrProviderUnavailable) {
		t.Errorf("KeySet: err = %v", err)
	}

	// Back up with a rotated key: recovery without restart.
	op.SetDown(false)
	op.SetKeys(k2)
	clock.Advance(identity.DefaultRefreshCooldown)
	keys, err := r.CandidateKeys(ctx, "k2", "ES256")
	if err != nil || len(keys) != 1 {
		t.Fatalf("after recovery: %v, %v", kids(keys), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(states, []bool{false, true}) {
		t.Errorf("state changes = %v, want [false true] (once per transition)", states)
	}
	if len(fetchErrs) < 3 || fetchErrs[0] != nil || fetchErrs[len(fetchErrs)-1] != nil {
		t.Errorf("OnFetch errors = %v", fetchErrs)
	}
}

func TestRemoteKeySetBadRefreshKeepsGoodKeys(t *testing.T) {
	k1 := newECJWK(t, "k1", "ES256")
	cases := []struct {
		name  string
		setup func(op *fakeOP)
		want  error
	}{
		{"503", func(op *fakeOP) { op.SetDown(true) }, identity.ErrHTTPStatus},
		{"empty set", func(op *fakeOP) { op.SetJWKS([]byte(`{"keys":[]}`), "") }, identity.ErrInvalidKeySet},
		{"garbage", func(op *fakeOP) { op.SetJWKS([]byte("\x00garbage"), "") }, identity.ErrNotJSON},
		{"HTML error page", func(op *fakeOP) { op.SetJWKS([]byte("<html>"), "text/html") }, identity.ErrContentType},
		{"only unusable keys", func(op *fakeOP) { op.SetJWKS(jwksOf(t, map[string]any{"kty": "oct", "k": "AAAA"}), "") }, identity.ErrInvalidKeySet},
		{"body too large", func(op *fakeOP) { op.SetJWKS(bytes.Repeat([]byte(" "), 1<<20+1), "") }, identity.ErrBodyTooLarge},
		{"timeout", func(op *fakeOP) { op.setHang(true) }, context.DeadlineExceeded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op := newFakeOP(t, k1)
			clock := newOPClock()
			r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now, HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
			ctx := context.Background()
			before, err := r.KeySet(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c.setup(op)
			clock.Advance(identity.DefaultRefreshCooldown)
			if err := r.Refresh(ctx); !errors.Is(err, c.want) {
				t.Fatalf("Refresh: err = %v, want %v", err, c.want)
			}
			after, err := r.KeySet(ctx)
			if err != nil || after != before {
				t.Fatalf("the good set was replaced: %v", err)
			}
			if _, err := r.CandidateKeys(ctx, "k1", "ES256"); err != nil {
				t.Errorf("k1 no longer found: %v", err)
			}
			if !r.HasKey(thumb(t, k1.Public)) {
				t.Error("HasKey(k1) = false")
			}
		})
	}
}

func TestRemoteKeySetFailuresAreNotCached(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	op.SetDown(true)
	clock := newOPClock()
	r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now})
	ctx := context.Background()
	for i := range 20 {
		_, err := r.CandidateKeys(ctx, "k1", "ES256")
		if !errors.Is(err, identity.ErrProviderUnavailable) || !errors.Is(err, identity.ErrHTTPStatus) {
			t.Fatalf("attempt %d: err = %v, want ErrProviderUnavailable wrapping ErrHTTPStatus", i, err)
		}
	}
	if n := op.jwksHits.Load(); n != 1 {
		t.Errorf("20 lookups without keys made %d fetches within one cooldown, want 1", n)
	}
	// The failure is not kept as a document: after the cooldown the
	// provider is asked again and its answer used.
	op.SetDown(false)
	clock.Advance(identity.DefaultRefreshCooldown)
	if _, err := r.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatalf("after the provider came up: %v", err)
	}
	if n := op.jwksHits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestRemoteKeySetRefreshIsRateLimited(t *testing.T) {
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	clock := newOPClock()
	r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now, RefreshCooldown: time.Minute})
	ctx := context.Background()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(ctx); err != nil {
		t.Errorf("rate-limited Refresh after a success: %v, want nil", err)
	}
	if n := op.jwksHits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	op.SetDown(true)
	clock.Advance(time.Minute)
	if err := r.Refresh(ctx); !errors.Is(err, identity.ErrHTTPStatus) {
		t.Fatalf("failing Refresh: %v", err)
	}
	if err := r.Refresh(ctx); !errors.Is(err, identity.ErrHTTPStatus) {
		t.Errorf("rate-limited Refresh after a failure: %v, want that failure", err)
	}
	if n := op.jwksHits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestRemoteKeySetForcedRefreshWaitIsBounded(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	clock := newOPClock()
	r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now})
	if _, err := r.KeySet(context.Background()); err != nil {
		t.Fatal(err)
	}
	op.setHang(true)
	clock.Advance(identity.DefaultRefreshCooldown)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.CandidateKeys(ctx, "unknown", "ES256")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the caller waited %v", d)
	}
	// Known keys are served meanwhile without waiting.
	if _, err := r.CandidateKeys(context.Background(), "k1", "ES256"); err != nil {
		t.Error(err)
	}
	// Close does not wait for the hanging provider.
	start = time.Now()
	_ = r.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestRemoteKeySetClose(t *testing.T) {
	checkNoGoroutineLeak(t)
	op := newFakeOP(t, newECJWK(t, "k1", "ES256"))
	used := newRemote(t, op, identity.RemoteKeySetOptions{})
	unused := newRemote(t, op, identity.RemoteKeySetOptions{})
	ctx := context.Background()
	if _, err := used.KeySet(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*identity.RemoteKeySet{used, unused} {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	hits := op.jwksHits.Load()
	// A closed set serves what it has and fetches nothing more.
	if _, err := used.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Errorf("closed set with keys: %v", err)
	}
	if _, err := used.CandidateKeys(ctx, "other", "ES256"); !errors.Is(err, identity.ErrKeyNotFound) {
		t.Errorf("closed set, unknown kid: %v", err)
	}
	if _, err := unused.KeySet(ctx); !errors.Is(err, identity.ErrProviderUnavailable) {
		t.Errorf("closed set without keys: %v, want ErrProviderUnavailable", err)
	}
	if err := used.Refresh(ctx); err == nil {
		t.Error("Refresh after Close succeeded")
	}
	if n := op.jwksHits.Load(); n != hits {
		t.Errorf("%d fetches after Close", n-hits)
	}
}

func TestRemoteKeySetAdvertisedAlgorithms(t *testing.T) {
	op := newFakeOP(t, newEdJWK(t, "ed", "EdDSA"), newECJWK(t, "es", "ES256"), newECJWK(t, "none", ""), newRSAJWK(t, 2048, "ps", "PS256"))
	r := newRemote(t, op, identity.RemoteKeySetOptions{})
	if got := r.AdvertisedAlgorithms(); got != nil {
		t.Errorf("before any fetch: %v, want nil", got)
	}
	if _, err := r.KeySet(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.AdvertisedAlgorithms(); !slices.Equal(got, []string{"PS256", "ES256", "EdDSA"}) {
		t.Errorf("AdvertisedAlgorithms = %v, want [PS256 ES256 EdDSA]", got)
	}
	noAlg := newFakeOP(t, newECJWK(t, "none", ""))
	r2 := newRemote(t, noAlg, identity.RemoteKeySetOptions{})
	if _, err := r2.KeySet(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r2.AdvertisedAlgorithms(); got != nil {
		t.Errorf("keys without alg: %v, want nil", got)
	}
}

func TestRemoteKeySetLogsSkippedKeysOnce(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	op := newFakeOP(t, newECJWK(t, "good", "ES256"), map[string]any{"kty": "OKP", "crv": "X25519", "kid": "xkey", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"})
	clock := newOPClock()
	r := newRemote(t, op, identity.RemoteKeySetOptions{Logger: log, Now: clock.Now})
	ctx := context.Background()
	if _, err := r.KeySet(ctx); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "JWKS key skipped") || !strings.Contains(out, "kid=xkey") || !strings.Contains(out, "reason=") {
		t.Fatalf("no log line for the skipped key:\n%s", out)
	}
	clock.Advance(identity.DefaultRefreshCooldown)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "JWKS key skipped"); n != 1 {
		t.Errorf("the same skipped key was logged %d times", n)
	}
	// A failure is logged as a warning once.
	op.SetDown(true)
	for range 3 {
		clock.Advance(identity.DefaultRefreshCooldown)
		_ = r.Refresh(ctx)
	}
	if n := strings.Count(buf.String(), "fetch failing"); n != 1 {
		t.Errorf("failure logged %d times, want once per transition:\n%s", n, buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRemoteKeySetVersion(t *testing.T) {
	checkNoGoroutineLeak(t)
	k1, k2 := newECJWK(t, "k1", "ES256"), newECJWK(t, "k2", "ES256")
	op := newFakeOP(t, k1)
	clock := newOPClock()
	r := newRemote(t, op, identity.RemoteKeySetOptions{Now: clock.Now, DefaultTTL: 10 * time.Minute, StaleWindow: time.Hour})
	if v := r.KeySetVersion(clock.Now()); v != 0 {
		t.Fatalf("version before the first fetch = %d, want 0", v)
	}
	ctx := context.Background()
	if _, err := r.CandidateKeys(ctx, "k1", "ES256"); err != nil {
		t.Fatal(err)
	}
	v1 := r.KeySetVersion(clock.Now())
	if v1 == 0 || r.KeySetVersion(clock.Now()) != v1 {
		t.Fatalf("version after a fetch = %d, then %d: want the same non-zero value", v1, r.KeySetVersion(clock.Now()))
	}

	// A refetch that drops k1 moves the version, so a cache keyed on it
	// asks HasKey again and learns that k1 is gone.
	op.SetKeys(k2)
	clock.Advance(identity.DefaultRefreshCooldown)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	v2 := r.KeySetVersion(clock.Now())
	if v2 == 0 || v2 == v1 {
		t.Fatalf("version after a refetch = %d (was %d): want a new non-zero value", v2, v1)
	}
	if r.HasKey(thumb(t, k1.Public)) || !r.HasKey(thumb(t, k2.Public)) {
		t.Error("HasKey does not follow the new set")
	}

	// Past expiry plus the stale window the set is unusable: version 0.
	op.SetDown(true)
	clock.Advance(10*time.Minute + time.Hour)
	if v := r.KeySetVersion(clock.Now()); v != 0 {
		t.Errorf("version past the stale window = %d, want 0", v)
	}
}
