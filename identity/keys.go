package identity

import (
	"context"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key is one published verification key, with its RFC 7638 thumbprint so
// that caches of validated tokens can tell when the key that verified a token
// has been withdrawn.
type Key struct {
	// JWK is the public key. JWK.Algorithm is empty when the set did not
	// say which algorithm the key is for.
	JWK jose.JSONWebKey
	// Thumbprint is the base64url (unpadded) SHA-256 RFC 7638 thumbprint.
	Thumbprint string
}

// KeySource yields the keys that may verify a token. A [*KeySet] is a static
// source; [*RemoteKeySet] and [*Provider] fetch, cache and refresh.
type KeySource interface {
	// CandidateKeys returns the keys that may have signed a token with the
	// given kid ("" when the token has none) and alg, in a deterministic
	// order; the caller tries each. A source that can refresh does so,
	// rate-limited, when no key matches. It returns ErrKeyNotFound when no
	// key matches and ErrProviderUnavailable when it has no usable keys at
	// all.
	CandidateKeys(ctx context.Context, kid, alg string) ([]Key, error)
	// HasKey reports, without I/O, whether a key with this thumbprint is in
	// the current set.
	HasKey(thumbprint string) bool
}

// KeySetVersioner is implemented by key sources that can tell, more cheaply
// than HasKey, that their key set has not changed: a cache of validated
// tokens then asks HasKey again only when the version moves, instead of on
// every hit. [*KeySet], [*RemoteKeySet] and [*Provider] implement it.
type KeySetVersioner interface {
	// KeySetVersion returns a number that changes whenever the set HasKey
	// answers from is replaced, and 0 when there is no set usable at now
	// (HasKey is then false for every thumbprint). Equal non-zero versions
	// mean that HasKey gives the same answers. now is the caller's reading
	// of the clock: a token cache has one already for its expiry check, and
	// a second reading would be a good part of the cost of a hit.
	KeySetVersion(now time.Time) uint64
}

// RefreshableKeySource is a KeySource that can be asked to fetch its keys
// again, for instance after a signature failure. Refresh is rate-limited by
// the source, so callers may call it on any failure.
type RefreshableKeySource interface {
	KeySource
	Refresh(ctx context.Context) error
}

// AlgorithmAdvertiser is implemented by key sources that know which
// algorithms their provider uses (from discovery metadata and key "alg"
// members). A validator with no explicit allow-list uses the advertised
// asymmetric algorithms; nil means not known yet.
type AlgorithmAdvertiser interface {
	AdvertisedAlgorithms() []string
}
