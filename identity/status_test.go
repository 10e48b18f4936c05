package identity_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// stepClock is a clock that tests move forward.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestProviderStatus(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithCacheControl("max-age=600"))
	clock := &stepClock{now: time.Now()}
	p := newProvider(t, iss.URL, identity.ProviderOptions{Keys: identity.RemoteKeySetOptions{
		Now: clock.Now, StaleWindow: time.Hour,
	}})

	st := p.Status()
	if st.State() != identity.StateUnavailable || st.Keys != nil || st.Discovery == nil ||
		st.Discovery.State != identity.StateUnavailable || !st.Discovery.Fetched.IsZero() {
		t.Fatalf("before any fetch: %+v", st)
	}
	if err := p.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	iss.SetDown(true)
	for _, c := range []struct {
		name    string
		advance time.Duration
		want    identity.CacheState
	}{
		{"within max-age", 0, identity.StateFresh},
		{"expired, within the stale window", 11 * time.Minute, identity.StateStale},
		{"past the stale window", time.Hour, identity.StateUnavailable},
	} {
		clock.Add(c.advance)
		st := p.Status()
		if st.State() != c.want || st.Keys.State != c.want || st.Discovery.State != c.want {
			t.Errorf("%s: state %s (keys %s, discovery %s), want %s", c.name, st.State(), st.Keys.State, st.Discovery.State, c.want)
		}
		if !slices.Equal(st.Keys.KeyIDs, iss.KeyIDs()) || st.Keys.URL != iss.JWKSURL() ||
			st.Keys.Expires.Sub(st.Keys.Fetched) != 10*time.Minute || st.Keys.ServableUntil != st.Keys.Expires.Add(time.Hour) {
			t.Errorf("%s: keys %+v", c.name, st.Keys)
		}
	}
	// A failed refresh is reported with its error; the keys stay listed.
	clock.Add(time.Minute)
	_ = p.Refresh(context.Background())
	st = p.Status()
	if st.Discovery.Failures != 1 || !strings.Contains(st.Discovery.LastError, "503") || st.Discovery.LastAttempt != clock.Now() {
		t.Errorf("after a failed refresh: %+v", st.Discovery)
	}
}
