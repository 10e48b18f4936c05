package identity

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ProviderOptions configures a [Provider]. The zero value gives the strict
// defaults.
type ProviderOptions struct {
	// HTTPClient makes every request; nil means a client with
	// DefaultHTTPTimeout. Keys.HTTPClient, when set, is used for the JWKS.
	HTTPClient *http.Client
	// Logger receives fetch failures, recoveries and skipped keys; nil
	// discards. Keys.Logger, when set, is used for the JWKS.
	Logger *slog.Logger
	// Policy validates the discovery document.
	Policy DiscoveryPolicy
	// Keys configures the key set cache; its lifetimes, cooldown, stale
	// window, clock and callbacks also apply to the discovery document.
	// Policy.AllowHTTP also allows an http jwks_uri.
	Keys RemoteKeySetOptions
	// JWKSURL, when set, is used instead of the discovery document's
	// jwks_uri: keys are fetched without discovery. Discovery still works
	// when asked for.
	JWKSURL string
}

// Provider is an OpenID Connect or OAuth 2.0 provider seen by a relying
// party or resource server: its discovery document, cached and refreshed
// like keys, and a [RemoteKeySet] on its jwks_uri, recreated when the
// jwks_uri changes. It is a [RefreshableKeySource] and an
// [AlgorithmAdvertiser], safe for concurrent use. It does no I/O until first
// used, keeps serving what it has while the provider is down (within the
// stale window), recovers by itself when it comes back, and must be closed.
type Provider struct {
	issuer  string
	opts    ProviderOptions
	keyOpts RemoteKeySetOptions
	disc    *refreshCache[*DiscoveryDocument]

	mu     sync.Mutex // serializes the replacement of keys, and closed
	closed bool
	keys   atomic.Pointer[providerKeys]
	// advertised remembers AdvertisedAlgorithms, which a validator asks
	// for on every token.
	advertised advertisedMemo
}

// providerKeys is the key set of the provider's current jwks_uri. gen
// counts the replacements of the key set (a new jwks_uri), so that
// KeySetVersion changes when the set is replaced by another whose own
// sequence numbers start again.
type providerKeys struct {
	set *RemoteKeySet
	url string
	gen uint64
}

// NewProvider returns a provider for issuer. The issuer must be an absolute
// URL, https unless loopback or opts.Policy.AllowHTTP (as must JWKSURL);
// its discovery address is accepted too (see [FetchDiscovery]). It
// does no I/O; it starts background goroutines that Close stops.
func NewProvider(issuer string, opts ProviderOptions) (*Provider, error) {
	issuer, err := issuerFromAddress(issuer, opts.Policy.Kind)
	if err != nil {
		return nil, err
	}
	au, err := parseAuthority(issuer)
	if err != nil {
		return nil, err
	}
	if err := requireHTTPS(au, opts.Policy.AllowHTTP); err != nil {
		return nil, err
	}
	discURL, err := DiscoveryURL(issuer, opts.Policy.Kind)
	if err != nil {
		return nil, err
	}
	ko := opts.Keys
	if ko.HTTPClient == nil {
		ko.HTTPClient = opts.HTTPClient
	}
	if ko.Logger == nil {
		ko.Logger = opts.Logger
	}
	ko.AllowHTTP = ko.AllowHTTP || opts.Policy.AllowHTTP
	p := &Provider{issuer: issuer, opts: opts, keyOpts: ko}
	if opts.JWKSURL != "" {
		ks, err := NewRemoteKeySet(opts.JWKSURL, ko)
		if err != nil {
			return nil, err
		}
		p.keys.Store(&providerKeys{set: ks, url: opts.JWKSURL, gen: 1})
	}
	client, policy := opts.HTTPClient, opts.Policy
	load := func(ctx context.Context) (*DiscoveryDocument, http.Header, error) {
		return FetchDiscovery(ctx, client, issuer, policy)
	}
	p.disc = newRefreshCache(newCacheConfig(discURL, "discovery document", ko), load, nil)
	return p, nil
}

// ready fails with [ErrNotInitialized] for a Provider not made by
// [NewProvider].
func (p *Provider) ready() error {
	if p == nil || p.disc == nil {
		return notInitialized("Provider", "NewProvider")
	}
	return nil
}

// Issuer returns the issuer the provider was created for.
func (p *Provider) Issuer() string { return p.issuer }

// Discovery returns the validated discovery document, fetching it when
// there is none yet or it is past the stale window (single flight, at most
// one attempt per cooldown). It fails with ErrProviderUnavailable, wrapping
// the cause (e.g. ErrIssuerMismatch or an *HTTPStatusError), when it has no
// usable document. Failures are never cached as documents.
func (p *Provider) Discovery(ctx context.Context) (*DiscoveryDocument, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	e, err := p.disc.get(ctx)
	if err != nil {
		return nil, err
	}
	return e.val, nil
}

// RemoteKeySet returns the key set of the provider's current jwks_uri,
// fetching the discovery document first when needed.
func (p *Provider) RemoteKeySet(ctx context.Context) (*RemoteKeySet, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	if p.opts.JWKSURL != "" {
		return p.keys.Load().set, nil
	}
	d, err := p.Discovery(ctx)
	if err != nil {
		return nil, err
	}
	if d.JWKSURI == "" {
		return nil, fmt.Errorf("%w: the discovery document of %s has no jwks_uri", ErrKeyNotFound, p.issuer)
	}
	if cur := p.keys.Load(); cur != nil && cur.url == d.JWKSURI {
		return cur.set, nil
	}
	p.mu.Lock()
	cur := p.keys.Load()
	if p.closed {
		p.mu.Unlock()
		if cur == nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrProviderUnavailable, p.issuer, errClosed)
		}
		return cur.set, nil
	}
	if cur != nil && cur.url == d.JWKSURI {
		p.mu.Unlock()
		return cur.set, nil
	}
	ks, err := NewRemoteKeySet(d.JWKSURI, p.keyOpts)
	if err != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %s: %w", ErrProviderUnavailable, p.issuer, err)
	}
	next := &providerKeys{set: ks, url: d.JWKSURI, gen: 1}
	if cur != nil {
		next.gen = cur.gen + 1
	}
	p.keys.Store(next)
	p.mu.Unlock()
	if cur != nil {
		ks.cfg.log.Info("identity: jwks_uri changed", "issuer", p.issuer, "jwks_uri", redactURL(d.JWKSURI))
		_ = cur.set.Close()
	}
	return ks, nil
}

// KeySet returns the current key set (see [RemoteKeySet.KeySet]).
func (p *Provider) KeySet(ctx context.Context) (*KeySet, error) {
	ks, err := p.RemoteKeySet(ctx)
	if err != nil {
		return nil, err
	}
	return ks.KeySet(ctx)
}

// CandidateKeys implements [KeySource] through the key set of the current
// jwks_uri (see [RemoteKeySet.CandidateKeys]).
func (p *Provider) CandidateKeys(ctx context.Context, kid, alg string) ([]Key, error) {
	ks, err := p.RemoteKeySet(ctx)
	if err != nil {
		return nil, err
	}
	return ks.CandidateKeys(ctx, kid, alg)
}

// cachedCandidates implements keyCache: the candidates in the key set in
// hand, without I/O; ok is false when CandidateKeys would fetch the
// discovery document or the keys.
func (p *Provider) cachedCandidates(kid, alg string) ([]Key, bool) {
	if p.ready() != nil {
		return nil, false
	}
	cur := p.keys.Load()
	if cur == nil {
		return nil, false
	}
	if p.opts.JWKSURL == "" {
		if d := p.disc.peek(); d == nil || d.val.JWKSURI != cur.url {
			return nil, false
		}
	}
	return cur.set.cachedCandidates(kid, alg)
}

// refreshPending implements keyCache: whether Refresh would fetch or wait.
func (p *Provider) refreshPending() bool {
	if p.ready() != nil {
		return false
	}
	cur := p.keys.Load()
	return cur == nil || cur.set.refreshPending()
}

// HasKey reports, without I/O, whether the current key set has a key with
// this thumbprint.
func (p *Provider) HasKey(thumbprint string) bool {
	cur := p.keys.Load()
	return cur != nil && cur.set.HasKey(thumbprint)
}

// KeySetVersion implements [KeySetVersioner] without I/O or locks: it
// changes when the current key set is refetched or replaced (a new
// jwks_uri), and is 0 when there is no usable set.
func (p *Provider) KeySetVersion(now time.Time) uint64 {
	cur := p.keys.Load()
	if cur == nil {
		return 0
	}
	v := cur.set.KeySetVersion(now)
	if v == 0 {
		return 0
	}
	// 32 bits for each part: 2^32 jwks_uri changes, or refetches of one
	// set, are centuries away at the fastest refresh rate.
	return cur.gen<<32 | v&(1<<32-1)
}

// Refresh refreshes the key set (rate-limited; see [RemoteKeySet.Refresh]).
func (p *Provider) Refresh(ctx context.Context) error {
	ks, err := p.RemoteKeySet(ctx)
	if err != nil {
		return err
	}
	return ks.Refresh(ctx)
}

// AdvertisedAlgorithms implements [AlgorithmAdvertiser] without I/O: the
// asymmetric algorithms (RS*, PS*, ES*, EdDSA) among the algorithms the
// discovery document says the provider signs with
// ([DiscoveryDocument.IssuedSigningAlgorithms]: not those it accepts from
// clients, such as DPoP proofs or client assertions) and the "alg" values
// of the keys, in a fixed order; nil when none is known yet. The list is
// computed once per discovery document and key set and shared: callers
// must not modify it.
func (p *Provider) AdvertisedAlgorithms() []string {
	if p.ready() != nil {
		return nil
	}
	d := p.disc.cur.Load()
	var k *cacheEntry[*KeySet]
	if cur := p.keys.Load(); cur != nil {
		k = cur.set.c.cur.Load()
	}
	return p.advertised.get(d, k, func() []string {
		var algs []string
		if d != nil {
			algs = d.val.IssuedSigningAlgorithms()
		}
		if k != nil {
			for _, a := range k.val.algs {
				if !slices.Contains(algs, a) {
					algs = append(algs, a)
				}
			}
		}
		return filterAsymmetric(algs)
	})
}

// Close stops the background refreshers and waits for fetches in flight.
// It is idempotent and returns nil. A closed provider serves what it has
// but fetches nothing more.
func (p *Provider) Close() error {
	if p.ready() != nil {
		return nil
	}
	p.mu.Lock()
	p.closed = true
	cur := p.keys.Load()
	p.mu.Unlock()
	p.disc.close()
	if cur != nil {
		_ = cur.set.Close()
	}
	return nil
}
