package caddyidentity

import (
	"crypto/sha256"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// cacheUnitBytes is the token length covered by one unit of cache_size.
const cacheUnitBytes = 1024

// tokenKey is the cache key of a token: the SHA-256 of the raw token, so the
// cache never holds the token itself.
type tokenKey = [sha256.Size]byte

// hashToken returns the SHA-256 of the token without copying it.
func hashToken(token string) tokenKey {
	// sha256 only reads its input, so hashing the string's bytes in place
	// is safe and avoids a copy per request.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// tokenCache caches the outcome of verifying a token: only tokens whose
// signature and claims were verified are admitted, with everything the
// handler needs to answer without parsing (see cacheEntry). An entry never
// outlives the token's exp plus the configured leeway, and a hit is
// re-checked against the clock and against the current key set, so a token
// whose key was withdrawn from the JWKS is verified again (and refused).
type tokenCache struct {
	c   *otter.Cache[tokenKey, *cacheEntry]
	now func() time.Time
}

// newTokenCache returns a cache bounded to units (see Handler.CacheSize).
// Otter's eviction policy is frequency-aware (W-TinyLFU), so a flood of new
// valid tokens does not push out hot entries.
func newTokenCache(units int, now func() time.Time) (*tokenCache, error) {
	c, err := otter.New(&otter.Options[tokenKey, *cacheEntry]{
		MaximumWeight: uint64(units),
		Weigher: func(_ tokenKey, e *cacheEntry) uint32 {
			return e.weight
		},
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[tokenKey, *cacheEntry]) time.Duration {
			return e.Value.ttl
		}),
		// Run otter's maintenance (buffer drains, eviction) inline instead of
		// on a new goroutine every few reads: cheaper per hit, and the cache
		// stays within its bound. Safe because nothing here (no loader,
		// Compute or deletion listener) calls back into the cache.
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, err
	}
	return &tokenCache{c: c, now: now}, nil
}

// weightOf returns the number of cache units a token of n bytes takes.
func weightOf(n int) uint32 {
	w := (n + cacheUnitBytes - 1) / cacheUnitBytes
	if w < 1 {
		w = 1
	}
	return uint32(w)
}

// get returns the live entry of key. keyValid reports whether the key that
// verified the entry's token is still published by its issuer; an entry
// that has expired or whose key was withdrawn is removed and not returned.
func (tc *tokenCache) get(key tokenKey, keyValid func(issuer, thumbprint string) bool) (*cacheEntry, bool) {
	e, ok := tc.c.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	if !tc.now().Before(e.expires) || (e.thumbprint != "" && !keyValid(e.issuer, e.thumbprint)) {
		tc.c.Invalidate(key)
		return nil, false
	}
	return e, true
}

// put admits a verified token's entry, unless it is already expired.
func (tc *tokenCache) put(key tokenKey, e *cacheEntry) {
	e.ttl = e.expires.Sub(tc.now())
	if e.ttl <= 0 {
		return
	}
	tc.c.Set(key, e)
}

// len returns the approximate number of entries.
func (tc *tokenCache) len() int {
	return tc.c.EstimatedSize()
}

// close drops every entry and stops the cache's goroutines.
func (tc *tokenCache) close() {
	tc.c.InvalidateAll()
	tc.c.StopAllGoroutines()
}
