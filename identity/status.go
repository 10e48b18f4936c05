package identity

import (
	"slices"
	"time"
)

// CacheState says whether a cached document may be used.
type CacheState string

// The states of a cached document.
const (
	// StateFresh: a document is held and within its lifetime.
	StateFresh CacheState = "fresh"
	// StateStale: the document's lifetime is over but it is still served
	// (within the stale window) while refreshes are attempted.
	StateStale CacheState = "stale"
	// StateUnavailable: no document may be served; requests that need it
	// fail with ErrProviderUnavailable.
	StateUnavailable CacheState = "unavailable"
)

// CacheStatus is a snapshot of one cached remote document (a discovery
// document or a key set), for operators: what is held, until when, and how
// the last fetch went. It holds nothing secret (URLs are redacted).
type CacheStatus struct {
	// URL is the document's address, without query or user information.
	URL string `json:"url"`
	// State is the document's state at the time of the snapshot.
	State CacheState `json:"state"`
	// Fetched and Expires are when the held document was fetched and when
	// its lifetime ends; ServableUntil is Expires plus the stale window.
	// Zero when none is held.
	Fetched       time.Time `json:"fetched,omitzero"`
	Expires       time.Time `json:"expires,omitzero"`
	ServableUntil time.Time `json:"servable_until,omitzero"`
	// LastAttempt is when a fetch was last attempted, LastError its error
	// ("" when it succeeded), and Failures the number of failed attempts
	// in a row.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Failures    int       `json:"failures"`
	// NextRefresh is when the background refresher fetches next; zero when
	// it waits for a request (no document was fetched yet).
	NextRefresh time.Time `json:"next_refresh,omitzero"`
}

// KeySetStatus is a [CacheStatus] of a key set with the ids of its keys.
type KeySetStatus struct {
	CacheStatus
	// KeyIDs are the "kid" values of the held keys, in set order ("" for a
	// key without one).
	KeyIDs []string `json:"key_ids"`
	// Skipped are the entries of the held set that were left out.
	Skipped []SkippedKey `json:"skipped,omitempty"`
}

// ProviderStatus is a snapshot of a [Provider]'s caches.
type ProviderStatus struct {
	Issuer string `json:"issuer"`
	// Discovery is the discovery document's cache; nil when the provider
	// fetches keys from a configured JWKS URL without discovery.
	Discovery *CacheStatus `json:"discovery,omitempty"`
	// Keys is the key set's cache; nil before the jwks_uri is known.
	Keys *KeySetStatus `json:"keys,omitempty"`
}

// State is the provider's overall state: that of its key set, or
// unavailable when it has none yet.
func (s ProviderStatus) State() CacheState {
	if s.Keys == nil {
		return StateUnavailable
	}
	return s.Keys.State
}

// Status returns a snapshot of the provider's caches without I/O.
func (p *Provider) Status() ProviderStatus {
	st := ProviderStatus{Issuer: p.issuer}
	if p.ready() != nil {
		return st
	}
	if p.opts.JWKSURL == "" {
		ds := p.disc.status()
		st.Discovery = &ds
	}
	if cur := p.keys.Load(); cur != nil {
		ks := cur.set.Status()
		st.Keys = &ks
	}
	return st
}

// Status returns a snapshot of the key set's cache without I/O.
func (r *RemoteKeySet) Status() KeySetStatus {
	if r.ready() != nil {
		return KeySetStatus{CacheStatus: CacheStatus{State: StateUnavailable}}
	}
	st := KeySetStatus{CacheStatus: r.c.status(), KeyIDs: []string{}}
	if e := r.c.cur.Load(); e != nil {
		for _, k := range e.val.keys {
			st.KeyIDs = append(st.KeyIDs, k.JWK.KeyID)
		}
		st.Skipped = slices.Clone(e.val.skipped)
	}
	return st
}

// status returns the cache's snapshot.
func (c *refreshCache[T]) status() CacheStatus {
	now := c.cfg.now()
	st := CacheStatus{URL: redactURL(c.cfg.url), State: StateUnavailable}
	if e := c.cur.Load(); e != nil {
		st.Fetched, st.Expires, st.ServableUntil = e.fetched, e.expires, e.servableUntil
		switch {
		case now.Before(e.expires):
			st.State = StateFresh
		case now.Before(e.servableUntil):
			st.State = StateStale
		}
	}
	c.mu.Lock()
	st.LastAttempt, st.Failures = c.lastAttempt, c.failures
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	c.mu.Unlock()
	if n := c.nextAt.Load(); n != 0 {
		st.NextRefresh = time.Unix(0, n)
	}
	return st
}
