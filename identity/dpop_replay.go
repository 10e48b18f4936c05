package identity

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
)

const (
	// DefaultDPoPReplayEntries is the default bound of a [DPoPReplayCache].
	DefaultDPoPReplayEntries = 100_000
	// MaxDPoPJTIBytes is the longest jti a proof may carry. RFC 9449 §4.2
	// asks for enough randomness to be unique (a UUID is 36 bytes, 128
	// random bits in base64url 22); nothing needs more, and a cap keeps a
	// client from sending proofs that are mostly jti.
	MaxDPoPJTIBytes = 256
)

// replayKey identifies an accepted proof: the first 128 bits of the
// SHA-256 of its key's thumbprint and its jti. A fixed-size key makes the
// memory of an entry independent of what the client sent; 128 bits keep
// accidental collisions (a fresh proof refused as a replay) out of reach
// at any number of entries the cache can hold, and finding a collision on
// purpose would only get the attacker's own proof refused.
type replayKey [16]byte

// DPoPReplayKey is the fixed-size key under which an accepted proof is
// remembered: the first 128 bits of the SHA-256 of its key's thumbprint
// and its jti (see replayKey). A shared store (Redis) keys its entries by
// it too, so that every instance refuses the same proofs and no store
// holds anything the client chose.
func DPoPReplayKey(p *DPoPProof) [16]byte {
	return newReplayKey(p.Thumbprint, p.ID)
}

// newReplayKey hashes the thumbprint and the jti, separated by a byte
// that occurs in neither a base64url thumbprint nor a JSON-decoded
// thumbprint: the pair is encoded unambiguously.
func newReplayKey(thumbprint, jti string) replayKey {
	h := sha256.New()
	h.Write([]byte(thumbprint))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var sum [sha256.Size]byte
	var k replayKey
	copy(k[:], h.Sum(sum[:0]))
	return k
}

// DPoPReplayCache remembers the jti of accepted DPoP proofs, per key, for
// as long as each proof could still be accepted, so that a proof captured
// on the way is refused the second time (RFC 9449 §11.1). An entry is a
// fixed-size hash of the key's thumbprint and the jti (see replayKey),
// about 120 bytes whatever the proof. It is bounded: when more
// proofs arrive within the acceptance window than it holds, the least
// valuable entries are evicted and a replay of those could pass, so size
// it for the peak rate of proofs times [DPoPVerifyOptions.MaxAge], or use
// server nonces for a hard guarantee.
//
// The owner closes it; it starts no goroutine of its own and is safe for
// concurrent use, so one cache may serve every verifier that should refuse
// each other's proofs.
type DPoPReplayCache struct {
	c *otter.Cache[replayKey, time.Duration]
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
	c, err := otter.New(&otter.Options[replayKey, time.Duration]{
		MaximumSize: maxEntries,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[replayKey, time.Duration]) time.Duration {
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

// Admit records the jti of a proof that passed every other check for ttl
// (at least a second) and reports whether it was new: what
// [VerifyDPoPProof] does with [DPoPVerifyOptions.Replay], for a caller
// that checks the jti elsewhere first (a shared store) and falls back to
// this cache.
func (r *DPoPReplayCache) Admit(p *DPoPProof, ttl time.Duration) bool {
	return r.admit(p, ttl)
}

// admit records the proof's jti for ttl and reports whether it was new.
func (r *DPoPReplayCache) admit(p *DPoPProof, ttl time.Duration) bool {
	if ttl < time.Second {
		ttl = time.Second
	}
	_, added := r.c.SetIfAbsent(newReplayKey(p.Thumbprint, p.ID), ttl)
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
