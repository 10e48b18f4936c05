package identity_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// tokenServer issues numbered tokens valid for expiresIn seconds, or fails
// while failing is set.
type tokenServer struct {
	*fakeEndpoint
	issued    atomic.Int64
	failing   atomic.Bool
	expiresIn int
	delay     time.Duration
}

func newTokenServer(t *testing.T, expiresIn int) *tokenServer {
	ts := &tokenServer{expiresIn: expiresIn}
	ts.fakeEndpoint = newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		time.Sleep(ts.delay)
		if ts.failing.Load() {
			writeJSON(w, 503, `{"error":"temporarily_unavailable"}`)
			return
		}
		n := ts.issued.Add(1)
		writeJSON(w, 200, fmt.Sprintf(`{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, n, ts.expiresIn))
	})
	return ts
}

func newManager(t *testing.T, ts *tokenServer, clock *fakeClock) *identity.TokenManager {
	t.Helper()
	m, err := identity.NewTokenManager(identity.TokenManagerOptions{
		Request: identity.ClientCredentialsTokenRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: ts.URL, ClientAuth: identity.ClientSecretBasicAuth("svc", "s")},
			Scopes:          []string{"api"},
		},
		RefreshMargin: 60 * time.Second,
		Now:           clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTokenManagerCachesAndRefreshes(t *testing.T) {
	ts := newTokenServer(t, 3600)
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	m := newManager(t, ts, clock)
	ctx := context.Background()

	for range 3 {
		if tok, err := m.AccessToken(ctx); err != nil || tok != "tok-1" {
			t.Fatalf("got %q %v", tok, err)
		}
	}
	if ts.count() != 1 || ts.last(t).Form.Get("scope") != "api" {
		t.Fatalf("%d requests", ts.count())
	}
	clock.Add(3600*time.Second - 61*time.Second)
	if tok, _ := m.AccessToken(ctx); tok != "tok-1" {
		t.Errorf("refreshed before the margin: %s", tok)
	}
	clock.Add(2 * time.Second) // inside the 60 s margin
	if tok, _ := m.AccessToken(ctx); tok != "tok-2" {
		t.Errorf("not refreshed inside the margin: %s", tok)
	}

	// Refresh fails inside the margin: the still-valid token is served.
	ts.failing.Store(true)
	clock.Add(3600*time.Second - 30*time.Second)
	if tok, err := m.AccessToken(ctx); err != nil || tok != "tok-2" {
		t.Errorf("valid cached token not served during an outage: %q %v", tok, err)
	}
	// Past expiry: never the expired token.
	clock.Add(31 * time.Second)
	tok, err := m.AccessToken(ctx)
	var pe *identity.ProtocolError
	if tok != "" || !errors.As(err, &pe) || pe.Code != "temporarily_unavailable" {
		t.Errorf("expired token handed out: %q %v", tok, err)
	}
	ts.failing.Store(false)
	if tok, _ := m.AccessToken(ctx); tok != "tok-3" {
		t.Errorf("after recovery: %s", tok)
	}
	m.Invalidate()
	if tok, _ := m.AccessToken(ctx); tok != "tok-4" {
		t.Errorf("after Invalidate: %s", tok)
	}
}

func TestTokenManagerShortLivedAndNoExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	ts := newTokenServer(t, 10) // margin capped at half the lifetime: 5 s
	m := newManager(t, ts, clock)
	_, _ = m.Token(context.Background())
	clock.Add(4 * time.Second)
	if tok, _ := m.AccessToken(context.Background()); tok != "tok-1" {
		t.Errorf("short-lived token refreshed too early: %s", tok)
	}
	clock.Add(2 * time.Second)
	if tok, _ := m.AccessToken(context.Background()); tok != "tok-2" {
		t.Errorf("short-lived token not refreshed: %s", tok)
	}

	ts = newTokenServer(t, 0) // no expires_in: DefaultTokenLifetime
	m = newManager(t, ts, clock)
	_, _ = m.Token(context.Background())
	clock.Add(identity.DefaultTokenLifetime - 61*time.Second)
	if tok, _ := m.AccessToken(context.Background()); tok != "tok-1" {
		t.Errorf("no-expiry token: %s", tok)
	}
	clock.Add(2 * time.Second)
	if tok, _ := m.AccessToken(context.Background()); tok != "tok-2" {
		t.Errorf("no-expiry token kept past default lifetime margin: %s", tok)
	}
}

func TestTokenManagerCoalescesConcurrentRefreshes(t *testing.T) {
	ts := newTokenServer(t, 3600)
	ts.delay = 50 * time.Millisecond
	m := newManager(t, ts, &fakeClock{now: time.Now()})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := m.AccessToken(context.Background())
			if err == nil && tok != "tok-1" {
				err = fmt.Errorf("got %s", tok)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := ts.count(); n != 1 {
		t.Errorf("%d token requests for 50 concurrent callers", n)
	}
}

func TestTokenManagerCallerCancellation(t *testing.T) {
	ts := newTokenServer(t, 3600)
	ts.delay = 200 * time.Millisecond
	m := newManager(t, ts, &fakeClock{now: time.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	// The shared request went on and its token serves the next caller.
	time.Sleep(300 * time.Millisecond)
	if tok, err := m.AccessToken(context.Background()); err != nil || tok != "tok-1" || ts.count() != 1 {
		t.Errorf("got %q %v after %d requests", tok, err, ts.count())
	}
}

func TestTokenManagerTransport(t *testing.T) {
	ts := newTokenServer(t, 3600)
	m := newManager(t, ts, &fakeClock{now: time.Now()})
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
	}))
	defer api.Close()
	c := &http.Client{Transport: m.Transport(nil)}
	for _, preset := range []string{"", "Basic x"} {
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		if preset != "" {
			req.Header.Set("Authorization", preset)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(seen) != 2 || seen[0] != "Bearer tok-1" || seen[1] != "Basic x" {
		t.Errorf("upstream saw %v", seen)
	}
	ts.failing.Store(true)
	m.Invalidate()
	req, _ := http.NewRequest(http.MethodPost, api.URL, http.NoBody)
	if _, err := c.Do(req); err == nil {
		t.Error("request sent without a token")
	}
	if _, err := identity.NewTokenManager(identity.TokenManagerOptions{}); err == nil {
		t.Error("manager without token endpoint accepted")
	}
}
