package identity

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of [TokenManagerOptions].
const (
	// DefaultRefreshMargin is how long before expiry a cached token is
	// replaced (at most half its lifetime).
	DefaultRefreshMargin = 60 * time.Second
	// DefaultTokenLifetime is assumed for tokens whose response has no
	// expires_in.
	DefaultTokenLifetime = 5 * time.Minute
)

// TokenManagerOptions configures a [TokenManager].
type TokenManagerOptions struct {
	// HTTPClient performs the token requests (nil: a default client with
	// [DefaultHTTPTimeout]).
	HTTPClient *http.Client
	// Request is the client credentials request (token endpoint, client
	// authentication, scopes, resources).
	Request ClientCredentialsTokenRequest
	// RefreshMargin: a token is replaced this long before it expires, at
	// most half its lifetime; 0 means [DefaultRefreshMargin].
	RefreshMargin time.Duration
	// DefaultLifetime applies when the server sends no expires_in; 0 means
	// [DefaultTokenLifetime].
	DefaultLifetime time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// TokenManager keeps a client-credentials access token for a service: it
// requests one on first use, caches it, replaces it a margin before it
// expires, coalesces concurrent refreshes into one request, and never
// hands out an expired token. When a refresh inside the margin fails, the
// still-valid cached token is returned. It starts no goroutines and needs
// no Close; it is safe for concurrent use.
type TokenManager struct {
	opts  TokenManagerOptions
	group singleflight.Group

	mu        sync.Mutex
	current   *TokenResponse
	expiry    time.Time // when current expires (by the manager's clock)
	refreshAt time.Time // when to replace current
}

// NewTokenManager returns a manager for opts. It does no I/O.
func NewTokenManager(opts TokenManagerOptions) (*TokenManager, error) {
	if opts.Request.Address == "" {
		return nil, errors.New("identity: token manager needs the token endpoint address")
	}
	if opts.RefreshMargin <= 0 {
		opts.RefreshMargin = DefaultRefreshMargin
	}
	if opts.DefaultLifetime <= 0 {
		opts.DefaultLifetime = DefaultTokenLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &TokenManager{opts: opts}, nil
}

// Token returns a valid access token, requesting a new one when there is
// none, it has expired or it is within the refresh margin. The response is
// shared with other callers: do not modify it. ctx bounds the
// caller's wait; the shared request itself outlives a cancelled caller so
// that other waiters still get its result.
func (m *TokenManager) Token(ctx context.Context) (*TokenResponse, error) {
	m.mu.Lock()
	cur, expiry, refreshAt := m.current, m.expiry, m.refreshAt
	m.mu.Unlock()
	if cur != nil && m.opts.Now().Before(refreshAt) {
		return cur, nil
	}
	tok, err := m.refresh(ctx)
	if err != nil {
		if cur != nil && m.opts.Now().Before(expiry) {
			return cur, nil
		}
		return nil, err
	}
	return tok, nil
}

// AccessToken returns the access token string of [TokenManager.Token].
func (m *TokenManager) AccessToken(ctx context.Context) (string, error) {
	tok, err := m.Token(ctx)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// Invalidate drops the cached token, e.g. after an upstream rejected it;
// the next call to Token requests a new one.
func (m *TokenManager) Invalidate() {
	m.mu.Lock()
	m.current, m.expiry, m.refreshAt = nil, time.Time{}, time.Time{}
	m.mu.Unlock()
}

// refresh requests a new token, one request at a time.
func (m *TokenManager) refresh(ctx context.Context) (*TokenResponse, error) {
	ch := m.group.DoChan("token", func() (any, error) {
		m.mu.Lock()
		cur, refreshAt := m.current, m.refreshAt
		m.mu.Unlock()
		start := m.opts.Now()
		if cur != nil && start.Before(refreshAt) {
			return cur, nil // refreshed by a flight that just ended
		}
		tok, err := RequestClientCredentialsToken(context.WithoutCancel(ctx), m.opts.HTTPClient, m.opts.Request)
		if err != nil {
			return nil, err
		}
		life := time.Duration(tok.ExpiresIn) * time.Second
		if life <= 0 {
			life = m.opts.DefaultLifetime
		}
		margin := min(m.opts.RefreshMargin, life/2)
		m.mu.Lock()
		m.current, m.expiry, m.refreshAt = tok, start.Add(life), start.Add(life-margin)
		m.mu.Unlock()
		return tok, nil
	})
	select {
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*TokenResponse), nil
	}
}

// Transport returns an http.RoundTripper that sets "Authorization: Bearer
// <token>" from m on every request it sends through base (nil:
// http.DefaultTransport). Requests that already carry an Authorization
// header are sent unchanged.
func (m *TokenManager) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &bearerTransport{manager: m, base: base}
}

// bearerTransport adds the manager's token to requests.
type bearerTransport struct {
	manager *TokenManager
	base    http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(req)
	}
	tok, err := t.manager.AccessToken(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	r2 := req.Clone(req.Context())
	r2.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(r2)
}
