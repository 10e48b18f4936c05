package caddyidentity

import (
	"crypto/sha256"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// cacheUnitBytes is the token length covered by one unit of cache_size.
const cacheUnitBytes = 1024

// tokenKey is the cache key of a token: the SHA-256 of its signature.
type tokenKey = [sha256.Size]byte

// splitToken splits a token after its second dot into the signing input
// (header.payload) and the signature, the two halves of a cache lookup (see
// tokenCache); any further dot stays in the signature, so the split is
// one-to-one. ok is false with fewer than two dots: such a token is no JWS
// and never cached. It looks for the dots from the front because
// strings.IndexByte is vectorized and LastIndexByte is not.
func splitToken(token string) (signingInput, signature string, ok bool) {
	i := strings.IndexByte(token, '.')
	if i < 0 {
		return "", "", false
	}
	j := strings.IndexByte(token[i+1:], '.')
	if j < 0 {
		return "", "", false
	}
	j += i + 1
	return token[:j], token[j+1:], true
}

// hashToken returns the SHA-256 of s without copying it.
func hashToken(s string) tokenKey {
	// sha256 only reads its input, so hashing the string's bytes in place
	// is safe and avoids a copy per request.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// tokenCache caches the outcome of verifying a token: only tokens whose
// signature and claims were verified are admitted, with everything the
// handler needs to answer without parsing (see cacheEntry). An entry never
// outlives the token's exp plus the configured leeway, and a hit is
// re-checked against the clock and against the current key set, so a token
// whose key was withdrawn from the JWKS is verified again (and refused).
//
// An entry is found by the SHA-256 of the token's signature and holds the
// token's signing input (header.payload), which a hit must equal byte for
// byte. So a hit means the very token that was verified (a forged token
// reusing a cached signature differs in its signing input; finding another
// signature with the same hash is finding a SHA-256 collision), while the
// cache never holds a signature, without which the signing input (the
// claims, which the entry holds decoded anyway) is no credential. Hashing
// only the signature rather than the whole token halves the hashing per
// request for a typical RS256 token.
type tokenCache struct {
	c *otter.Cache[tokenKey, *cacheEntry]
	// now is an injected clock (tests), read on every hit; nil means the
	// real clock, which hits read through ticks (see hitNow).
	now func() time.Time
	// ticks is the wall clock in Unix nanoseconds as last read by the
	// ticker goroutine, every clockTick.
	ticks atomic.Int64

	stop      chan struct{} // closed by close: the ticker returns
	done      chan struct{} // closed by the ticker when it has returned
	closeOnce sync.Once
}

// clockTick is how often the cache reads the wall clock for its hits, and
// clockMargin how far ahead of that reading a hit assumes the time may be:
// the ticker may run late by up to clockMargin - clockTick.
const (
	clockTick   = 100 * time.Millisecond
	clockMargin = time.Second
)

// sweepInterval is how often the cache drops the entries of expired tokens.
// Between sweeps get refuses them: the interval bounds only the memory they
// hold, which the cache's bound covers anyway.
const sweepInterval = time.Minute

// frozenClock is otter's clock. The cache has no time-based policy in otter
// (get checks each hit against the clock, and the sweeper drops dead
// entries), so otter need not read the time on every access; its expiry
// bookkeeping would double the cost of a lookup.
type frozenClock struct{}

func (frozenClock) NowNano() int64                      { return 0 }
func (frozenClock) Tick(time.Duration) <-chan time.Time { return nil }

// newTokenCache returns a cache bounded to units (see Handler.CacheSize),
// with a ticker goroutine that close stops. now is nil for the real clock.
// Otter's eviction policy is frequency-aware (W-TinyLFU), so a flood of new
// valid tokens does not push out hot entries.
func newTokenCache(units int, now func() time.Time) (*tokenCache, error) {
	c, err := otter.New(&otter.Options[tokenKey, *cacheEntry]{
		Clock:         frozenClock{},
		MaximumWeight: uint64(units),
		Weigher: func(_ tokenKey, e *cacheEntry) uint32 {
			return e.weight
		},
		// Run otter's maintenance (buffer drains, eviction) inline instead of
		// on a new goroutine every few reads: cheaper per hit, and the cache
		// stays within its bound. Safe because nothing here (no loader,
		// Compute or deletion listener) calls back into the cache.
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, err
	}
	tc := &tokenCache{c: c, now: now, stop: make(chan struct{}), done: make(chan struct{})}
	tc.ticks.Store(time.Now().UnixNano())
	go tc.tickEvery(clockTick, sweepInterval)
	return tc, nil
}

// tickEvery reads the clock at each tick and sweeps at each sweep interval,
// until close.
func (tc *tokenCache) tickEvery(tick, sweep time.Duration) {
	defer close(tc.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-tc.stop:
			return
		case now := <-t.C:
			tc.ticks.Store(time.Now().UnixNano())
			if now.Sub(lastSweep) >= sweep {
				lastSweep = now
				tc.sweep()
			}
		}
	}
}

// hitNow is the time a hit is checked against. With the real clock it is
// the last tick's reading plus clockMargin: later than the current time
// unless the ticker is more than 900 ms late, so an entry is given up a
// little before its token expires (the token, verified again, is then
// accepted for its last second), never after. A hit thus reads one atomic
// where time.Now costs 60 ns on these machines, and more when the clock's
// memory has gone cold between requests. The ticker can fall that far
// behind only when the whole process stops running: after the host resumes
// a suspended machine, the next tick comes at most one tick later.
func (tc *tokenCache) hitNow() time.Time {
	if tc.now != nil {
		return tc.now()
	}
	return time.Unix(0, tc.ticks.Load()+int64(clockMargin))
}

// sweep drops the entries that a hit would find dead: those whose token
// has expired (exp plus the leeway), or is about to (see hitNow).
func (tc *tokenCache) sweep() {
	now := tc.hitNow()
	for key, e := range tc.c.All() {
		if !now.Before(e.expires) {
			tc.c.Invalidate(key)
		}
	}
}

// weightOf returns the number of cache units a token of n bytes takes.
func weightOf(n int) uint32 {
	w := (n + cacheUnitBytes - 1) / cacheUnitBytes
	if w < 1 {
		w = 1
	}
	return uint32(w)
}

// get returns the live entry of the token: one that has not expired and
// whose token's key is still published by its issuer. A dead entry is
// removed and not returned.
func (tc *tokenCache) get(token string) (*cacheEntry, bool) {
	signingInput, signature, ok := splitToken(token)
	if !ok {
		return nil, false
	}
	key := hashToken(signature)
	e, ok := tc.c.GetIfPresent(key)
	if !ok || e.signingInput != signingInput {
		return nil, false
	}
	if now := tc.hitNow(); !now.Before(e.expires) || !e.keyPublished(now) {
		tc.c.Invalidate(key)
		return nil, false
	}
	return e, true
}

// put admits a verified token's entry, unless a hit would already find it
// dead (see hitNow): a token in its last second is verified on every
// request rather than admitted and dropped again each time.
func (tc *tokenCache) put(token string, e *cacheEntry) {
	signingInput, signature, ok := splitToken(token)
	if !ok {
		return
	}
	if !tc.hitNow().Before(e.expires) {
		return
	}
	// A copy: a substring would keep the whole token, signature included,
	// in memory for as long as the entry lives.
	e.signingInput = strings.Clone(signingInput)
	e.detach()
	tc.c.Set(hashToken(signature), e)
}

// len returns the approximate number of entries.
func (tc *tokenCache) len() int {
	return tc.c.EstimatedSize()
}

// close stops the ticker and drops every entry. It may be called more than
// once (Caddy may clean a handler up twice).
func (tc *tokenCache) close() {
	tc.closeOnce.Do(func() {
		close(tc.stop)
		<-tc.done
		tc.c.InvalidateAll()
		tc.c.StopAllGoroutines()
	})
}
