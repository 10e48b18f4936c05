package identity

import (
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
)

// DefaultDPoPReplayEntries is the default bound of a [DPoPReplayCache].
const DefaultDPoPReplayEntries = 100_000

// DPoPReplayCache remembers the jti of accepted DPoP proofs, per key, for
// as long as each proof could still be accepted, so that a proof captured
// on the way is refused the second time (RFC 9449 §11.1). It is bounded:
// when more proofs arrive within the acceptance window than it holds, the
// least valuable entries are evicted and a replay of those could pass, so
// size it for the peak rate of proofs times [DPoPVerifyOptions.MaxAge], or
// use server nonces for a hard guarantee.
//
// The owner closes it; it starts no goroutine of its own and is safe for
// concurrent use.
type DPoPReplayCache struct {
	c *otter.Cache[string, time.Duration]
}

// NewDPoPReplayCache returns a cache of at most maxEntries proofs; 0 means
// [DefaultDPoPReplayEntries].
func NewDPoPReplayCache(maxEntries int) (*DPoPReplayCache, error) {
	if maxEntries < 0 {
		return nil, fmt.Errorf("identity: DPoP replay cache size %d is negative", maxEntries)
	}
	if maxEntries == 0 {
		maxEntries = DefaultDPoPReplayEntries
	}
	c, err := otter.New(&otter.Options[string, time.Duration]{
		MaximumSize: maxEntries,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[string, time.Duration]) time.Duration {
			return e.Value
		}),
		// Maintenance runs inline, on the caller's goroutine: nothing calls
		// back into the cache, and no goroutine outlives Close.
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, fmt.Errorf("identity: DPoP replay cache: %w", err)
	}
	return &DPoPReplayCache{c: c}, nil
}

// admit records the proof's jti for ttl and reports whether it was new.
func (r *DPoPReplayCache) admit(p *DPoPProof, ttl time.Duration) bool {
	if ttl < time.Second {
		ttl = time.Second
	}
	_, added := r.c.SetIfAbsent(p.Thumbprint+" "+p.ID, ttl)
	return added
}

// Close drops every entry and stops the cache's timers. A closed cache
// must not be used again.
func (r *DPoPReplayCache) Close() error {
	if r == nil || r.c == nil {
		return nil
	}
	r.c.InvalidateAll()
	r.c.StopAllGoroutines()
	return nil
}
