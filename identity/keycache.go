package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of [RemoteKeySetOptions], also used for discovery documents by
// [Provider].
const (
	// DefaultCacheTTL is the lifetime of a document whose response has no
	// usable Cache-Control max-age.
	DefaultCacheTTL = time.Hour
	// DefaultMinCacheTTL and DefaultMaxCacheTTL bound the lifetime taken
	// from Cache-Control max-age.
	DefaultMinCacheTTL = 5 * time.Minute
	// DefaultMaxCacheTTL is the upper bound of a cached document's lifetime.
	DefaultMaxCacheTTL = 24 * time.Hour
	// DefaultRefreshCooldown is the least time between two fetch attempts
	// of one document, whatever triggers them (unknown kid, Refresh,
	// failures).
	DefaultRefreshCooldown = 5 * time.Second
	// DefaultStaleWindow is how long the last good document keeps being
	// served after it expired while refreshes fail.
	DefaultStaleWindow = 12 * time.Hour
)

const (
	// maxRetryBackoff caps the wait between background retries after
	// failures (it starts at the cooldown and doubles).
	maxRetryBackoff = 5 * time.Minute
	// minLoopDelay keeps the refresher from spinning.
	minLoopDelay = 10 * time.Millisecond
)

var (
	// errClosed is the cause of ErrProviderUnavailable after Close.
	errClosed = errors.New("identity: cache closed")
	// errRefreshWait is the cause with which a validation stops waiting
	// for a fetch after [ValidatorOptions].RefreshWait; the fetch goes on.
	errRefreshWait = errors.New("identity: keys not fetched within the refresh wait")
)

// RemoteKeySetOptions configures a [RemoteKeySet]. The zero value gives the
// defaults.
type RemoteKeySetOptions struct {
	// HTTPClient makes the requests; nil means a client with
	// DefaultHTTPTimeout. Redirects are followed only on the same host.
	HTTPClient *http.Client
	// Logger receives skipped keys, failures and recoveries; nil discards.
	Logger *slog.Logger
	// DefaultTTL is the lifetime of a set whose response has no
	// Cache-Control max-age, or says no-cache or no-store (a key set must
	// be cached to be usable); 0 means DefaultCacheTTL. It is clamped to
	// [MinTTL, MaxTTL] like max-age.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL clamp the lifetime; 0 means DefaultMinCacheTTL and
	// DefaultMaxCacheTTL.
	MinTTL, MaxTTL time.Duration
	// RefreshCooldown is the least time between two fetch attempts; 0
	// means DefaultRefreshCooldown. An unknown kid forces at most one
	// refresh per cooldown.
	RefreshCooldown time.Duration
	// StaleWindow is how long an expired set keeps being served while
	// refreshes fail; 0 means DefaultStaleWindow, negative means none.
	// Past it, lookups fail with ErrProviderUnavailable.
	StaleWindow time.Duration
	// MaxBytes caps the response body; 0 means DefaultMaxDocumentBytes.
	MaxBytes int64
	// MaxKeys refuses larger sets; 0 means DefaultMaxKeys.
	MaxKeys int
	// AllowHTTP allows http URLs beyond loopback hosts (never in
	// production).
	AllowHTTP bool
	// Now is the clock; nil means time.Now. Lifetimes, cooldowns and the
	// stale window are measured with it.
	Now func() time.Time
	// OnFetch, when set, is called after every fetch attempt with the URL
	// and its error (nil on success), for metrics. It must not block.
	OnFetch func(url string, err error)
	// OnStateChange, when set, is called once per transition between
	// healthy (the last fetch succeeded) and failing, with the failure's
	// error or nil on recovery. It must not block. The caller then owns
	// the reporting of the transitions: Logger gets them at DEBUG only.
	OnStateChange func(available bool, err error)
}

// cacheConfig is the normalized configuration of a refreshCache.
type cacheConfig struct {
	url                        string
	what                       string // "key set" or "discovery document", for logs
	defaultTTL, minTTL, maxTTL time.Duration
	cooldown, stale            time.Duration
	now                        func() time.Time
	log                        *slog.Logger
	onFetch                    func(string, error)
	onState                    func(bool, error)
}

// newCacheConfig normalizes o for the document at url.
func newCacheConfig(url, what string, o RemoteKeySetOptions) cacheConfig {
	c := cacheConfig{
		url: url, what: what,
		defaultTTL: o.DefaultTTL, minTTL: o.MinTTL, maxTTL: o.MaxTTL,
		cooldown: o.RefreshCooldown, stale: o.StaleWindow,
		now: o.Now, log: o.Logger, onFetch: o.OnFetch, onState: o.OnStateChange,
	}
	if c.defaultTTL <= 0 {
		c.defaultTTL = DefaultCacheTTL
	}
	if c.minTTL <= 0 {
		c.minTTL = DefaultMinCacheTTL
	}
	if c.maxTTL <= 0 {
		c.maxTTL = DefaultMaxCacheTTL
	}
	if c.maxTTL < c.minTTL {
		c.maxTTL = c.minTTL
	}
	if c.cooldown <= 0 {
		c.cooldown = DefaultRefreshCooldown
	}
	switch {
	case c.stale == 0:
		c.stale = DefaultStaleWindow
	case c.stale < 0:
		c.stale = 0
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// cacheEntry is one successfully fetched document.
type cacheEntry[T any] struct {
	val              T
	fetched, expires time.Time
	// servableUntil is expires plus the stale window: the entry is served
	// until then.
	servableUntil time.Time
	// seq numbers the entries of one cache from 1 in the order they were
	// stored, so that a reader can tell cheaply that the document changed.
	seq uint64
}

// rateLimitedError says a fetch was not attempted because the previous
// attempt is more recent than the cooldown; it unwraps to that attempt's
// error (nil when it succeeded).
type rateLimitedError struct{ last error }

func (e *rateLimitedError) Error() string {
	if e.last == nil {
		return "identity: refresh rate-limited"
	}
	return "identity: refresh rate-limited after failure: " + e.last.Error()
}

func (e *rateLimitedError) Unwrap() error { return e.last }

// refreshCache holds one remote document: it fetches on demand (single
// flight, at most one attempt per cooldown), refreshes in the background
// before expiry, keeps the last good copy through failures for the stale
// window, and never stores an error as a document. Its goroutines end with
// close.
type refreshCache[T any] struct {
	cfg     cacheConfig
	load    func(ctx context.Context) (T, http.Header, error)
	onStore func(old *cacheEntry[T], cur *cacheEntry[T])

	cur atomic.Pointer[cacheEntry[T]]
	seq atomic.Uint64 // the seq of the last entry stored
	// nextAt is when the background refresher fetches next, in Unix
	// nanoseconds of the cache's clock; 0 when it waits for a kick.
	nextAt atomic.Int64
	sf     singleflight.Group

	ctx    context.Context // cancelled by close; parent of every fetch
	cancel context.CancelFunc
	wake   chan struct{} // fetch now
	sched  chan struct{} // recompute the next refresh time
	wg     sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	fetching    bool // a fetch is in flight
	lastAttempt time.Time
	lastErr     error
	failures    int
}

// newRefreshCache starts the background refresher; it does no I/O until
// the document is first asked for.
func newRefreshCache[T any](cfg cacheConfig, load func(context.Context) (T, http.Header, error), onStore func(old, cur *cacheEntry[T])) *refreshCache[T] {
	ctx, cancel := context.WithCancel(context.Background())
	c := &refreshCache[T]{cfg: cfg, load: load, onStore: onStore, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), sched: make(chan struct{}, 1)}
	c.wg.Add(1)
	go c.loop()
	return c
}

// servable returns the current entry when it may still be served.
func (c *refreshCache[T]) servable() *cacheEntry[T] {
	return c.servableAt(c.cfg.now())
}

// servableAt returns the current entry when it may still be served at now.
// It reads no clock: a cache of validated tokens passes the time it read for
// its own expiry check (see KeySetVersion).
func (c *refreshCache[T]) servableAt(now time.Time) *cacheEntry[T] {
	e := c.cur.Load()
	if e == nil || !now.Before(e.servableUntil) {
		return nil
	}
	return e
}

// get returns a servable entry: the fresh one, an expired one within the
// stale window (and a background refresh is requested), or the result of a
// fetch. With nothing to serve it fails with ErrProviderUnavailable wrapping
// the cause.
func (c *refreshCache[T]) get(ctx context.Context) (*cacheEntry[T], error) {
	if e := c.peek(); e != nil {
		return e, nil
	}
	ne, err := c.refresh(ctx, c.cur.Load())
	if err != nil {
		return nil, c.unavailable(err)
	}
	return ne, nil
}

// peek returns what get returns without fetching: the fresh entry, or an
// expired one within the stale window (a background refresh is then
// requested); nil when get would have to fetch.
func (c *refreshCache[T]) peek() *cacheEntry[T] {
	e := c.cur.Load()
	if e == nil {
		return nil
	}
	now := c.cfg.now()
	if now.Before(e.expires) {
		return e
	}
	if now.Before(e.expires.Add(c.cfg.stale)) {
		c.kick()
		return e
	}
	return nil
}

// rateLimited reports whether a refresh would return at once: no fetch in
// flight and the last attempt more recent than the cooldown. The caller
// holds c.mu.
func (c *refreshCache[T]) rateLimited(now time.Time) bool {
	return !c.fetching && !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.cfg.cooldown
}

// pending reports whether a refresh would fetch or wait for a fetch in
// flight; it allocates nothing.
func (c *refreshCache[T]) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && !c.rateLimited(c.cfg.now())
}

// unavailable wraps err as ErrProviderUnavailable.
func (c *refreshCache[T]) unavailable(err error) error {
	if errors.Is(err, ErrProviderUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %s %s: %w", ErrProviderUnavailable, c.cfg.what, redactURL(c.cfg.url), err)
}

// refresh fetches the document unless an entry other than seen is already
// current (someone refreshed meanwhile) or, with no fetch in flight, an
// attempt is more recent than the cooldown (then the error is a
// *rateLimitedError, returned at once). Concurrent callers share one fetch
// and no waiter costs a goroutine; each waits at most until its ctx ends
// (the error is then the context's cause), while the fetch itself is
// bounded by the HTTP timeout and close.
func (c *refreshCache[T]) refresh(ctx context.Context, seen *cacheEntry[T]) (*cacheEntry[T], error) {
	if e := c.cur.Load(); e != nil && e != seen {
		return e, nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	if c.rateLimited(c.cfg.now()) {
		last := c.lastErr
		c.mu.Unlock()
		return nil, &rateLimitedError{last: last}
	}
	c.mu.Unlock()
	select {
	case r := <-c.sf.DoChan("fetch", c.fetchAny):
		e, _ := r.Val.(*cacheEntry[T])
		return e, r.Err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// fetchShared runs fetch once for all concurrent callers.
func (c *refreshCache[T]) fetchShared() (*cacheEntry[T], error) {
	v, err, _ := c.sf.Do("fetch", c.fetchAny)
	e, _ := v.(*cacheEntry[T])
	return e, err
}

// fetchAny is fetch for singleflight.
func (c *refreshCache[T]) fetchAny() (any, error) { return c.fetch() }

// fetch makes one attempt, unless rate-limited, and stores a success. An
// attempt counts in c.wg, so that close waits for it.
func (c *refreshCache[T]) fetch() (*cacheEntry[T], error) {
	c.mu.Lock()
	now := c.cfg.now()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	if !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.cfg.cooldown {
		last := c.lastErr
		c.mu.Unlock()
		return nil, &rateLimitedError{last: last}
	}
	c.lastAttempt = now
	c.fetching = true
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()

	v, hdr, err := c.load(c.ctx)
	if c.cfg.onFetch != nil {
		c.cfg.onFetch(c.cfg.url, err)
	}

	c.mu.Lock()
	c.fetching = false
	wasFailing := c.failures > 0
	if err != nil {
		c.lastErr = err
		c.failures++
		c.mu.Unlock()
		has := c.servable() != nil
		if wasFailing {
			c.cfg.log.Debug("identity: fetch failed again", "what", c.cfg.what, "url", redactURL(c.cfg.url), "error", err, "serving_cached", has)
			return nil, err
		}
		if c.cfg.onState != nil {
			c.cfg.log.Debug("identity: fetch failing", "what", c.cfg.what, "url", redactURL(c.cfg.url), "error", err, "serving_cached", has)
			c.cfg.onState(false, err)
			return nil, err
		}
		c.cfg.log.Warn("identity: fetch failing", "what", c.cfg.what, "url", redactURL(c.cfg.url), "error", err, "serving_cached", has)
		return nil, err
	}
	now = c.cfg.now()
	e := &cacheEntry[T]{val: v, fetched: now, expires: now.Add(c.ttl(hdr)), seq: c.seq.Add(1)}
	e.servableUntil = e.expires.Add(c.cfg.stale)
	old := c.cur.Swap(e)
	c.lastErr = nil
	c.failures = 0
	c.mu.Unlock()
	select {
	case c.sched <- struct{}{}:
	default:
	}
	if c.onStore != nil {
		c.onStore(old, e)
	}
	c.cfg.log.Debug("identity: fetched", "what", c.cfg.what, "url", redactURL(c.cfg.url), "expires", e.expires)
	if wasFailing {
		if c.cfg.onState != nil {
			c.cfg.log.Debug("identity: fetch recovered", "what", c.cfg.what, "url", redactURL(c.cfg.url))
			c.cfg.onState(true, nil)
		} else {
			c.cfg.log.Info("identity: fetch recovered", "what", c.cfg.what, "url", redactURL(c.cfg.url))
		}
	}
	return e, nil
}

// ttl is the lifetime given by the response header, clamped.
func (c *refreshCache[T]) ttl(h http.Header) time.Duration {
	d := c.cfg.defaultTTL
	if ma, ok := cacheMaxAge(h); ok {
		d = ma
	}
	return min(max(d, c.cfg.minTTL), c.cfg.maxTTL)
}

// cacheMaxAge reads Cache-Control max-age minus Age. no-cache and no-store
// give no lifetime: the caller uses its default, since a key set or
// metadata document has to be cached to be usable.
func cacheMaxAge(h http.Header) (time.Duration, bool) {
	var (
		maxAge int64
		found  bool
	)
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache", "no-store":
				return 0, false
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
				if err == nil && n >= 0 && !found {
					maxAge, found = n, true
				}
			}
		}
	}
	if !found {
		return 0, false
	}
	if age, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64); err == nil && age > 0 {
		maxAge = max(maxAge-age, 0)
	}
	const maxSeconds = int64(100 * 365 * 24 * 3600)
	return time.Duration(min(maxAge, maxSeconds)) * time.Second, true
}

// kick asks the background refresher for a refresh without waiting.
func (c *refreshCache[T]) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// loop refreshes the document in the background: at about 80% of its
// lifetime (jittered), and after failures with a doubling backoff. Before
// the first successful fetch it only reacts to kicks.
func (c *refreshCache[T]) loop() {
	defer c.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		var tc <-chan time.Time
		c.nextAt.Store(0)
		if d, ok := c.nextDelay(); ok {
			c.nextAt.Store(c.cfg.now().Add(d).UnixNano())
			t.Reset(d)
			tc = t.C
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.sched:
			t.Stop()
			continue
		case <-c.wake:
		case <-tc:
		}
		t.Stop()
		_, _ = c.fetchShared()
	}
}

// nextDelay says when the background refresher should fetch next.
func (c *refreshCache[T]) nextDelay() (time.Duration, bool) {
	e := c.cur.Load()
	if e == nil {
		return 0, false
	}
	c.mu.Lock()
	failures, last := c.failures, c.lastAttempt
	c.mu.Unlock()
	var at time.Time
	if failures == 0 {
		ttl := e.expires.Sub(e.fetched)
		lead := ttl / 5
		if j := int64(ttl / 10); j > 0 {
			lead += time.Duration(rand.Int64N(j))
		}
		at = e.expires.Add(-lead)
	} else {
		backoff := c.cfg.cooldown
		for i := 1; i < failures && backoff < maxRetryBackoff; i++ {
			backoff *= 2
		}
		at = last.Add(min(backoff, max(maxRetryBackoff, c.cfg.cooldown)))
	}
	if floor := last.Add(c.cfg.cooldown); at.Before(floor) {
		at = floor
	}
	return max(at.Sub(c.cfg.now()), minLoopDelay), true
}

// close stops the refresher and waits for every fetch to end; idempotent.
func (c *refreshCache[T]) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// RemoteKeySet is a JWK Set fetched from a jwks_uri and cached for a proxy:
// lifetime from Cache-Control max-age (clamped), background refresh before
// expiry, single-flight fetches, at most one forced refresh per cooldown on
// an unknown kid, last-known-good keys kept through failed, empty or garbage
// refreshes for the stale window, then [ErrProviderUnavailable]. It is a
// [RefreshableKeySource] and an [AlgorithmAdvertiser], safe for concurrent
// use. Close it when done: it runs a background goroutine.
type RemoteKeySet struct {
	url string
	cfg cacheConfig
	c   *refreshCache[*KeySet]
	// advertised remembers AdvertisedAlgorithms, which a validator asks
	// for on every token.
	advertised advertisedMemo
}

// NewRemoteKeySet returns a key set for jwksURL, which must be https (or
// http on a loopback host, or anywhere with AllowHTTP). It does no I/O: keys
// are fetched when first needed. It starts a background goroutine that
// Close stops.
func NewRemoteKeySet(jwksURL string, opts RemoteKeySetOptions) (*RemoteKeySet, error) {
	if err := checkFetchURL(jwksURL, opts.AllowHTTP); err != nil {
		return nil, err
	}
	cfg := newCacheConfig(jwksURL, "key set", opts)
	client := opts.HTTPClient
	parse := ParseKeySetOptions{MaxKeys: opts.MaxKeys}
	maxBytes := opts.MaxBytes
	load := func(ctx context.Context) (*KeySet, http.Header, error) {
		return fetchKeySet(ctx, client, jwksURL, maxBytes, parse)
	}
	r := &RemoteKeySet{url: jwksURL, cfg: cfg}
	r.c = newRefreshCache(cfg, load, r.logSkipped)
	return r, nil
}

// logSkipped logs the skipped entries of a new set when they differ from
// the previous set's.
func (r *RemoteKeySet) logSkipped(old, cur *cacheEntry[*KeySet]) {
	if old != nil && slices.Equal(old.val.skipped, cur.val.skipped) {
		return
	}
	for _, s := range cur.val.skipped {
		r.cfg.log.Warn("identity: JWKS key skipped", "url", redactURL(r.url), "index", s.Index, "kid", s.KeyID, "kty", s.KeyType, "reason", s.Reason)
	}
}

// URL returns the jwks_uri.
func (r *RemoteKeySet) URL() string { return r.url }

// ready fails with [ErrNotInitialized] for a RemoteKeySet not made by
// [NewRemoteKeySet].
func (r *RemoteKeySet) ready() error {
	if r == nil || r.c == nil {
		return notInitialized("RemoteKeySet", "NewRemoteKeySet")
	}
	return nil
}

// KeySet returns the current set, fetching it (single flight) when there
// is none or it is past the stale window. An expired set within the stale
// window is returned at once while a refresh runs in the background.
func (r *RemoteKeySet) KeySet(ctx context.Context) (*KeySet, error) {
	if err := r.ready(); err != nil {
		return nil, err
	}
	e, err := r.c.get(ctx)
	if err != nil {
		return nil, err
	}
	return e.val, nil
}

// CandidateKeys implements [KeySource]. When no key matches (an unknown
// kid, typically after a rotation) it forces a refresh, at most one per
// cooldown, waits for it (bounded by ctx and the HTTP timeout) and uses its
// result. It fails with ErrKeyNotFound when still nothing matches and with
// ErrProviderUnavailable when it has no usable set at all.
func (r *RemoteKeySet) CandidateKeys(ctx context.Context, kid, alg string) ([]Key, error) {
	if err := r.ready(); err != nil {
		return nil, err
	}
	e, err := r.c.get(ctx)
	if err != nil {
		return nil, err
	}
	if keys := e.val.Candidates(kid, alg); len(keys) > 0 {
		return keys, nil
	}
	ne, err := r.c.refresh(ctx, e)
	if err == nil {
		if keys := ne.val.Candidates(kid, alg); len(keys) > 0 {
			return keys, nil
		}
	} else if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errRefreshWait) {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w: kid %q, alg %q", ErrKeyNotFound, kid, alg)
}

// cachedCandidates implements keyCache: the candidates in the set in hand
// (an expired set within the stale window asks for a background refresh),
// without I/O; ok is false when CandidateKeys would fetch.
func (r *RemoteKeySet) cachedCandidates(kid, alg string) ([]Key, bool) {
	if r.ready() != nil {
		return nil, false
	}
	e := r.c.peek()
	if e == nil {
		return nil, false
	}
	keys := e.val.Candidates(kid, alg)
	return keys, len(keys) > 0
}

// refreshPending implements keyCache.
func (r *RemoteKeySet) refreshPending() bool { return r.ready() == nil && r.c.pending() }

// HasKey reports, without I/O, whether a key with this thumbprint is in the
// current set (false once the set is past the stale window).
func (r *RemoteKeySet) HasKey(thumbprint string) bool {
	if r.ready() != nil {
		return false
	}
	e := r.c.servable()
	return e != nil && e.val.HasKey(thumbprint)
}

// KeySetVersion implements [KeySetVersioner]: the sequence number of the
// current set, which changes with every successful fetch, and 0 once the set
// is past the stale window at now (HasKey is then false for every key).
func (r *RemoteKeySet) KeySetVersion(now time.Time) uint64 {
	if r.ready() != nil {
		return 0
	}
	e := r.c.servableAt(now)
	if e == nil {
		return 0
	}
	return e.seq
}

// Refresh fetches the set now, unless a fetch attempt is more recent than
// the cooldown: then it returns that attempt's error (nil if it succeeded)
// without fetching. A failed refresh keeps the current keys.
func (r *RemoteKeySet) Refresh(ctx context.Context) error {
	if err := r.ready(); err != nil {
		return err
	}
	_, err := r.c.refresh(ctx, r.c.cur.Load())
	if rl, ok := errors.AsType[*rateLimitedError](err); ok {
		return rl.last
	}
	return err
}

// AdvertisedAlgorithms implements [AlgorithmAdvertiser]: the asymmetric
// "alg" values of the current keys, nil when unknown (no set yet, or no key
// names its algorithm). The list is shared: callers must not modify it.
func (r *RemoteKeySet) AdvertisedAlgorithms() []string {
	if r.ready() != nil {
		return nil
	}
	e := r.c.cur.Load()
	if e == nil {
		return nil
	}
	return r.advertised.get(nil, e, func() []string { return filterAsymmetric(e.val.algs) })
}

// advertisedMemo remembers the advertised algorithms computed from one
// discovery document and key set, so that a validator asking on every
// token pays for a comparison of two pointers.
type advertisedMemo struct {
	last atomic.Pointer[advertisedAlgs]
}

type advertisedAlgs struct {
	disc *cacheEntry[*DiscoveryDocument]
	keys *cacheEntry[*KeySet]
	algs []string
}

// get returns the algorithms of disc and keys, from compute the first time.
func (m *advertisedMemo) get(disc *cacheEntry[*DiscoveryDocument], keys *cacheEntry[*KeySet], compute func() []string) []string {
	if a := m.last.Load(); a != nil && a.disc == disc && a.keys == keys {
		return a.algs
	}
	algs := compute()
	m.last.Store(&advertisedAlgs{disc: disc, keys: keys, algs: algs})
	return algs
}

// Close stops the background refresher and waits for fetches in flight. It
// is idempotent and always returns nil. A closed set keeps serving the
// keys it has but fetches nothing more.
func (r *RemoteKeySet) Close() error {
	if r.ready() != nil {
		return nil
	}
	r.c.close()
	return nil
}

// filterAsymmetric returns the asymmetric algorithms present in algs, in
// the order of asymmetricAlgorithms, or nil.
func filterAsymmetric(algs []string) []string {
	var out []string
	for _, a := range asymmetricAlgorithms() {
		if slices.Contains(algs, a) {
			out = append(out, a)
		}
	}
	return out
}
