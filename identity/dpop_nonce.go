package identity

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
)

// Bounds and defaults of [DPoPNonces].
const (
	// MinDPoPNonceSecretBytes is the shortest secret [NewDPoPNonces]
	// accepts: 256 bits, the size of the HMAC-SHA256 key derived from it.
	MinDPoPNonceSecretBytes = 32
	// DefaultDPoPNonceLifetime is the slot length of [NewDPoPNonces] when
	// none is given: a nonce is accepted for one to two of them.
	DefaultDPoPNonceLifetime = 5 * time.Minute
	// MinDPoPNonceLifetime bounds the slot length from below: shorter slots
	// would have clients fetch a new nonce every few requests.
	MinDPoPNonceLifetime = 10 * time.Second
	// dpopNonceBytes is the length of a nonce's MAC: 128 bits cannot be
	// guessed, and the nonce stays 22 characters.
	dpopNonceBytes = 16
)

// dpopNonceInfo separates the key derived for nonces from any other use
// of the same secret.
const dpopNonceInfo = "identity DPoP-Nonce v1"

// DPoPNonces issues and checks the server-provided nonces of RFC 9449
// §8–9 without keeping state: the nonce of a time slot is the base64url
// HMAC-SHA256, truncated to 128 bits, of the slot's number and length
// under a key derived (HKDF) from a secret. Every server holding the same
// secret and lifetime issues the same nonce in a slot and accepts the
// others', so a fleet behind a load balancer needs no shared store for
// them, and a restart loses nothing.
//
// A nonce is accepted in its own slot and the next, so it lives between
// one and two lifetimes; the nonce of the following slot is accepted in
// the last [DefaultDPoPClockSkew] of a slot as well, for servers whose
// clocks run a little ahead. A nonce bounds how long a proof made in
// advance (or taken from a compromised client) stays usable; it does not
// replace the jti replay check, since every client gets the same nonce
// in a slot. Safe for concurrent use.
type DPoPNonces struct {
	key      []byte
	lifetime time.Duration
	// slots caches the nonces around the most recently used slot, so that
	// a check costs no HMAC until the slot rolls.
	slots atomic.Pointer[dpopNonceSlots]
}

// dpopNonceSlots are the nonces of slot and its neighbours.
type dpopNonceSlots struct {
	slot                    int64
	previous, current, next string
}

// NewDPoPNonces returns nonces keyed from secret (at least
// [MinDPoPNonceSecretBytes]; high-entropy, such as 32 random bytes) with
// slots of lifetime (0 means [DefaultDPoPNonceLifetime]; at least
// [MinDPoPNonceLifetime]).
func NewDPoPNonces(secret []byte, lifetime time.Duration) (*DPoPNonces, error) {
	if len(secret) < MinDPoPNonceSecretBytes {
		return nil, fmt.Errorf("identity: DPoP nonce secret has %d bytes, want at least %d", len(secret), MinDPoPNonceSecretBytes)
	}
	if lifetime == 0 {
		lifetime = DefaultDPoPNonceLifetime
	}
	if lifetime < MinDPoPNonceLifetime {
		return nil, fmt.Errorf("identity: DPoP nonce lifetime %v is shorter than %v", lifetime, MinDPoPNonceLifetime)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, dpopNonceInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("identity: DPoP nonce key: %w", err)
	}
	return &DPoPNonces{key: key, lifetime: lifetime}, nil
}

// Lifetime is the slot length.
func (n *DPoPNonces) Lifetime() time.Duration { return n.lifetime }

// Nonce returns the nonce to send in a DPoP-Nonce header at now.
func (n *DPoPNonces) Nonce(now time.Time) string {
	return n.around(now).current
}

// Valid reports whether nonce is one these nonces (or those of any server
// with the same secret and lifetime) accept at now: issued in the current
// or the previous slot, or in the next one during the last
// [DefaultDPoPClockSkew] of the current slot.
func (n *DPoPNonces) Valid(nonce string, now time.Time) bool {
	s := n.around(now)
	ok := equalNonce(nonce, s.current) | equalNonce(nonce, s.previous)
	if n.slotOf(now.Add(DefaultDPoPClockSkew)) != s.slot {
		ok |= equalNonce(nonce, s.next)
	}
	return ok == 1
}

// equalNonce compares in constant time: 1 when equal, 0 otherwise.
func equalNonce(a, b string) int {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b))
}

// slotOf numbers the slot now falls in.
func (n *DPoPNonces) slotOf(now time.Time) int64 {
	return now.UnixNano() / int64(n.lifetime)
}

// around returns the nonces of the slot of now and its neighbours,
// computing them when the slot differs from the cached one.
func (n *DPoPNonces) around(now time.Time) *dpopNonceSlots {
	slot := n.slotOf(now)
	if s := n.slots.Load(); s != nil && s.slot == slot {
		return s
	}
	s := &dpopNonceSlots{slot: slot, previous: n.mac(slot - 1), current: n.mac(slot), next: n.mac(slot + 1)}
	n.slots.Store(s)
	return s
}

// mac is the nonce of slot: the slot length and number, MACed.
func (n *DPoPNonces) mac(slot int64) string {
	var msg [16]byte
	binary.BigEndian.PutUint64(msg[:8], uint64(n.lifetime))
	binary.BigEndian.PutUint64(msg[8:], uint64(slot))
	m := hmac.New(sha256.New, n.key)
	m.Write(msg[:])
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0])[:dpopNonceBytes])
}
