package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	// authentication, scopes, resources, DPoP key). Request.Address may be
	// empty when Provider is set.
	Request ClientCredentialsTokenRequest
	// Provider, when Request.Address is empty, supplies the token endpoint
	// from its discovery document at each token request, so a manager
	// needs only the issuer.
	Provider *Provider
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
// no Close; it is safe for concurrent use. Create it with
// [NewTokenManager]; the methods of a zero TokenManager fail with
// [ErrNotInitialized].
type TokenManager struct {
	opts  TokenManagerOptions
	group singleflight.Group

	mu        sync.Mutex
	current   *TokenResponse
	expiry    time.Time // when current expires (by the manager's clock)
	refreshAt time.Time // when to replace current
}

// NewTokenManager returns a manager for opts. It does no I/O. It needs the
// token endpoint (opts.Request.Address) or a Provider ([ErrMissingAddress]).
func NewTokenManager(opts TokenManagerOptions) (*TokenManager, error) {
	if opts.Request.Address == "" && opts.Provider == nil {
		return nil, fmt.Errorf("%w: the token manager needs Request.Address (the token endpoint) or a Provider", ErrMissingAddress)
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
	if m == nil || m.opts.Now == nil {
		return nil, notInitialized("TokenManager", "NewTokenManager")
	}
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
	if m == nil {
		return
	}
	m.invalidate(nil)
}

// invalidate drops the cached token when it is tok (any token when tok is
// nil), so that requests rejected with an old token do not throw away a
// newer one.
func (m *TokenManager) invalidate(tok *TokenResponse) {
	m.mu.Lock()
	if tok == nil || m.current == tok {
		m.current, m.expiry, m.refreshAt = nil, time.Time{}, time.Time{}
	}
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
		ctx := context.WithoutCancel(ctx)
		req := m.opts.Request
		if req.Address == "" {
			d, err := m.opts.Provider.Discovery(ctx)
			if err != nil {
				return nil, err
			}
			if d.TokenEndpoint == "" {
				return nil, fmt.Errorf("%w: the discovery document of %s has no token_endpoint", ErrMissingAddress, m.opts.Provider.Issuer())
			}
			req.Address = d.TokenEndpoint
		}
		tok, err := RequestClientCredentialsToken(ctx, m.opts.HTTPClient, req)
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

// Transport returns an http.RoundTripper that authorizes every request it
// sends through base (nil: http.DefaultTransport) with m's token:
//
//   - a Bearer token as "Authorization: Bearer <token>";
//   - a DPoP-bound token (token_type DPoP, issued because
//     Request.DPoP is set) as "Authorization: DPoP <token>" with a fresh
//     DPoP proof of the key for the request's method and URL carrying the
//     token's ath (RFC 9449 §7.1). When the resource server answers a DPoP
//     challenge with error "use_dpop_nonce" and a DPoP-Nonce, the request
//     is sent once more with a proof carrying that nonce (§9);
//   - after a 401 (other than a nonce challenge), the cached token is
//     invalidated, a new one obtained and the request sent once more.
//
// A request is sent again only when its body can be replayed: no body, or
// GetBody set (as [http.NewRequest] does for in-memory bodies); otherwise
// the first response is returned. Requests that already carry an
// Authorization header are sent unchanged. The token goes to whatever host
// a request is for, redirect targets included: use the transport only in
// a client for the APIs the token is meant for.
func (m *TokenManager) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &tokenTransport{manager: m, base: base}
}

// tokenTransport adds the manager's token to requests.
type tokenTransport struct {
	manager *TokenManager
	base    http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(req)
	}
	tok, err := t.manager.Token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	resp, err := t.send(req, tok, req.Body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable {
		return resp, err
	}
	key := t.manager.opts.Request.DPoP
	if tok.DPoPBound() && key != nil && key.observeResponse(req.URL.String(), resp.StatusCode, resp.Header, nil) {
		if resp, err = t.resend(req, resp, tok); err != nil || resp.StatusCode != http.StatusUnauthorized {
			return resp, err
		}
	}
	t.manager.invalidate(tok)
	fresh, err := t.manager.Token(req.Context())
	if err != nil {
		return resp, nil
	}
	return t.resend(req, resp, fresh)
}

// resend closes the previous response and sends req again with a copy of
// its body.
func (t *tokenTransport) resend(req *http.Request, prev *http.Response, tok *TokenResponse) (*http.Response, error) {
	body := req.Body
	if req.GetBody != nil {
		var err error
		if body, err = req.GetBody(); err != nil {
			return prev, nil
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(prev.Body, 4<<10))
	prev.Body.Close()
	return t.send(req, tok, body)
}

// send sends a copy of req with body, authorized with tok: DPoP with a new
// proof when tok is DPoP-bound, else Bearer.
func (t *tokenTransport) send(req *http.Request, tok *TokenResponse, body io.ReadCloser) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Body = body
	if tok.DPoPBound() {
		key := t.manager.opts.Request.DPoP
		if key == nil {
			closeBody(r)
			return nil, errors.New("identity: the token is DPoP-bound but the token manager has no DPoP key (TokenManagerOptions.Request.DPoP)")
		}
		if err := key.AuthorizeRequest(r, tok.AccessToken); err != nil {
			closeBody(r)
			return nil, err
		}
		resp, err := t.base.RoundTrip(r)
		if err == nil {
			key.observeResponse(req.URL.String(), resp.StatusCode, resp.Header, nil)
		}
		return resp, err
	}
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return t.base.RoundTrip(r)
}

// closeBody closes the body of a request that will not be sent, as an
// http.RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
