package identity_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// hangWait is the RefreshWait of these tests, and hangSlack what the issue
// allows on top of it for the answer.
const (
	hangWait  = 500 * time.Millisecond
	hangSlack = 500 * time.Millisecond
)

// hangingSetup is a provider on a test issuer, a validator on it with
// RefreshWait hangWait, and a clock that the test moves past the refresh
// cooldown.
type hangingSetup struct {
	iss   *identitytest.Issuer
	p     *identity.Provider
	v     *identity.Validator
	shift atomic.Int64 // added to time.Now, in nanoseconds
}

func newHangingSetup(t *testing.T) *hangingSetup {
	t.Helper()
	checkNoGoroutineLeak(t)
	s := &hangingSetup{iss: identitytest.NewIssuer(t)}
	p, err := identity.NewProvider(s.iss.URL, identity.ProviderOptions{
		HTTPClient: s.iss.Client(),
		Keys: identity.RemoteKeySetOptions{
			Now: func() time.Time { return time.Now().Add(time.Duration(s.shift.Load())) },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the issuer's cleanup, so run before it: the
	// provider cancels the hanging fetches, then the server closes.
	t.Cleanup(func() { _ = p.Close() })
	s.p = p
	s.v, err = identity.NewValidator([]identity.IssuerConfig{{
		Issuer: s.iss.URL, Keys: p, Audiences: []string{identitytest.DefaultAudience},
	}}, identity.ValidatorOptions{RefreshWait: hangWait})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hang makes the issuer accept connections and never answer, and moves the
// clock past the refresh cooldown so that the next lookup fetches.
func (s *hangingSetup) hang() {
	s.iss.SetDelay(time.Hour)
	s.shift.Add(int64(2 * identity.DefaultRefreshCooldown))
}

// answeredInTime validates token with a deadline of hangWait + hangSlack
// and fails the test when the validator has not answered by then: the
// answer must come from its own bound, not from the caller's deadline.
func (s *hangingSetup) answeredInTime(t *testing.T, token string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangWait+hangSlack)
	defer cancel()
	_, err := s.v.Validate(ctx, token)
	if ctx.Err() != nil {
		t.Fatalf("not answered within refresh wait + %v: %v", hangSlack, err)
	}
	return err
}

// TestRefreshWaitHangingProvider: with keys cached, a token with an
// unknown kid is refused as ErrKeyNotFound after at most RefreshWait while
// the provider hangs, the fetch goes on, and tokens of the cached key are
// verified without waiting at all.
func TestRefreshWaitHangingProvider(t *testing.T) {
	s := newHangingSetup(t)
	valid := s.iss.Token(t, "alice", nil)
	if _, err := s.v.Validate(t.Context(), valid); err != nil {
		t.Fatalf("valid token before the provider hangs: %v", err)
	}
	s.hang()
	s.iss.RotateKey("RS256")
	rotated := s.iss.Token(t, "bob", nil)
	fetches := s.iss.JWKSFetches()

	err := s.answeredInTime(t, rotated)
	if !errors.Is(err, identity.ErrKeyNotFound) {
		t.Fatalf("unknown kid while the provider hangs: %v, want ErrKeyNotFound", err)
	}
	if s.iss.JWKSFetches() == fetches {
		t.Fatal("the unknown kid did not make the provider fetch its keys")
	}
	// A second request joins the fetch still in flight: bounded the same.
	if err := s.answeredInTime(t, rotated); !errors.Is(err, identity.ErrKeyNotFound) {
		t.Fatalf("second unknown-kid request: %v, want ErrKeyNotFound", err)
	}
	// A token of the cached key never waits: even a context that has
	// already ended does not stop it.
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.v.Validate(ended, valid); err != nil {
		t.Fatalf("cached key while a fetch hangs: %v", err)
	}
}

// TestRefreshWaitNoKeys: a provider that hangs before any key was fetched
// (discovery first, then the JWKS, under one wait) gives
// ErrProviderUnavailable after at most RefreshWait.
func TestRefreshWaitNoKeys(t *testing.T) {
	s := newHangingSetup(t)
	s.hang()
	err := s.answeredInTime(t, s.iss.Token(t, "alice", nil))
	if !errors.Is(err, identity.ErrProviderUnavailable) {
		t.Fatalf("no keys and a hanging provider: %v, want ErrProviderUnavailable", err)
	}
	if s.iss.DiscoveryFetches() == 0 {
		t.Fatal("the provider was not asked")
	}
}

// TestRefreshWaitBadSignatureNoFetch: tokens with a published kid and a
// wrong signature make at most one fetch per cooldown, and none at all
// while the cooldown runs.
func TestRefreshWaitBadSignatureNoFetch(t *testing.T) {
	s := newHangingSetup(t)
	valid := s.iss.Token(t, "alice", nil)
	if _, err := s.v.Validate(t.Context(), valid); err != nil {
		t.Fatal(err)
	}
	forged := valid[:len(valid)-4] + flipChar(valid[len(valid)-4]) + valid[len(valid)-3:]
	before := s.iss.JWKSFetches()
	for range 50 {
		if _, err := s.v.Validate(t.Context(), forged); !errors.Is(err, identity.ErrSignature) {
			t.Fatalf("forged token: %v, want ErrSignature", err)
		}
	}
	if got := s.iss.JWKSFetches() - before; got != 0 {
		t.Fatalf("%d fetches within the cooldown, want 0", got)
	}
	s.shift.Add(int64(2 * identity.DefaultRefreshCooldown))
	for range 50 {
		if _, err := s.v.Validate(t.Context(), forged); !errors.Is(err, identity.ErrSignature) {
			t.Fatalf("forged token: %v, want ErrSignature", err)
		}
	}
	if got := s.iss.JWKSFetches() - before; got != 1 {
		t.Fatalf("%d fetches after the cooldown, want 1", got)
	}
}

// flipChar returns another base64url character than c (used away from the
// last character, so that the signature stays canonical).
func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestRefreshWaitZeroSources: a validator whose keys are a zero
// RemoteKeySet or Provider (not made by their constructors) refuses with
// ErrNotInitialized, through the wait-free key lookup as through the
// other.
func TestRefreshWaitZeroSources(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	tok := iss.Token(t, "alice", nil)
	for _, src := range []identity.KeySource{&identity.RemoteKeySet{}, &identity.Provider{}} {
		v, err := identity.NewValidator([]identity.IssuerConfig{{
			Issuer: iss.URL, Keys: src, Audiences: []string{identitytest.DefaultAudience},
		}}, identity.ValidatorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Validate(t.Context(), tok); !errors.Is(err, identity.ErrNotInitialized) {
			t.Errorf("%T: %v, want ErrNotInitialized", src, err)
		}
	}
}
