package caddyidentity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-identity/caddy-identity/identity"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin API module admin.api.identity: it serves the state
// of the issuers of every loaded identity handler under /identity/ on
// Caddy's admin endpoint (so only when that endpoint is on):
//
//   - GET /identity/issuers: per issuer, the state of its keys
//     (fresh, stale, unavailable), their key ids, the last fetch and its
//     result, the next background refresh, and the token cache.
//   - POST /identity/issuers/refresh: refetch every issuer's keys now, at
//     most once per refresh cooldown per issuer (the limit that applies to
//     a token with an unknown kid), and answer the states after it.
//
// The answers hold no secret: no key material, no token, no client secret,
// URLs without query or user information.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.identity",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the /identity/issuers routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/identity/issuers", Handler: caddy.AdminHandlerFunc(a.handleIssuers)},
		{Pattern: "/identity/issuers/refresh", Handler: caddy.AdminHandlerFunc(a.handleRefresh)},
	}
}

// adminRefreshTimeout bounds a forced refresh of all issuers.
const adminRefreshTimeout = 30 * time.Second

// liveHandlers are the authenticate stages of the provisioned, not yet
// cleaned up handlers, for the admin API.
var liveHandlers struct {
	sync.Mutex
	m map[*authenticator]struct{}
}

// trackHandler makes a provisioned handler visible to the admin API.
func trackHandler(a *authenticator) {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	if liveHandlers.m == nil {
		liveHandlers.m = make(map[*authenticator]struct{})
	}
	liveHandlers.m[a] = struct{}{}
}

// untrackHandler hides a handler being cleaned up from the admin API.
func untrackHandler(a *authenticator) {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	delete(liveHandlers.m, a)
}

// issuerView is one issuer in the answers of the admin API.
type issuerView struct {
	Issuer string `json:"issuer"`
	// Source is "discovery", "jwks_url" or "jwks_file".
	Source string              `json:"source"`
	State  identity.CacheState `json:"state"`
	KeyIDs []string            `json:"key_ids"`
	// Keys and Discovery are the caches of a remote issuer.
	Keys      *identity.CacheStatus `json:"keys,omitempty"`
	Discovery *identity.CacheStatus `json:"discovery,omitempty"`
	Skipped   []skippedView         `json:"skipped,omitempty"`
	// Handlers is the number of loaded identity handlers trusting it.
	Handlers   int            `json:"handlers"`
	TokenCache tokenCacheView `json:"token_cache"`
	// RefreshError is the error of a forced refresh, in the answer of
	// POST /identity/issuers/refresh.
	RefreshError string `json:"refresh_error,omitempty"`
}

// skippedView is a JWKS entry that was left out, and why.
type skippedView struct {
	Index   int    `json:"index"`
	KeyID   string `json:"kid,omitempty"`
	KeyType string `json:"kty,omitempty"`
	Reason  string `json:"reason"`
}

// tokenCacheView describes the validated-token caches.
type tokenCacheView struct {
	// Entries is the number of tokens held by the caches of the handlers
	// trusting the issuer (a handler's cache is shared by its issuers).
	Entries int `json:"entries"`
	// Hits, Misses and HitRatio count the tokens of this issuer in every
	// handler since the process started (the caddy_identity_token_cache_*
	// metrics with its issuer label). A token a handler with several
	// issuers refused before knowing its issuer is a miss of none.
	Hits     uint64  `json:"hits"`
	Misses   uint64  `json:"misses"`
	HitRatio float64 `json:"hit_ratio"`
}

// issuerEntry gathers what the live handlers hold for one key source.
type issuerEntry struct {
	issuer   string
	keys     identity.KeySource
	handlers int
	entries  int
}

// liveIssuers returns the key sources of the live handlers, one entry per
// source, sorted by issuer.
func liveIssuers() []*issuerEntry {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	bySource := make(map[identity.KeySource]*issuerEntry)
	var out []*issuerEntry
	for a := range liveHandlers.m {
		n := 0
		if a.cache != nil {
			n = a.cache.len()
		}
		for _, pol := range a.policy.byIssuer {
			e := bySource[pol.keys]
			if e == nil {
				e = &issuerEntry{issuer: pol.issuer, keys: pol.keys}
				bySource[pol.keys] = e
				out = append(out, e)
			}
			e.handlers++
			e.entries += n
		}
	}
	slices.SortFunc(out, func(a, b *issuerEntry) int {
		switch {
		case a.issuer < b.issuer:
			return -1
		case a.issuer > b.issuer:
			return 1
		}
		return 0
	})
	return out
}

// view describes one issuer.
func (e *issuerEntry) view() issuerView {
	v := issuerView{Issuer: e.issuer, Handlers: e.handlers, KeyIDs: []string{}}
	hits, misses := cacheCounts(e.issuer)
	v.TokenCache = tokenCacheView{Entries: e.entries, Hits: hits, Misses: misses}
	if hits+misses > 0 {
		v.TokenCache.HitRatio = float64(hits) / float64(hits+misses)
	}
	switch ks := e.keys.(type) {
	case *identity.Provider:
		st := ks.Status()
		v.Source = "jwks_url"
		if st.Discovery != nil {
			v.Source = "discovery"
			v.Discovery = st.Discovery
		}
		v.State = st.State()
		if st.Keys != nil {
			v.Keys = &st.Keys.CacheStatus
			v.KeyIDs = st.Keys.KeyIDs
			for _, s := range st.Keys.Skipped {
				v.Skipped = append(v.Skipped, skippedView{Index: s.Index, KeyID: s.KeyID, KeyType: s.KeyType, Reason: s.Reason})
			}
		}
	case *identity.KeySet:
		v.Source = "jwks_file"
		v.State = identity.StateFresh
		for _, k := range ks.Keys() {
			v.KeyIDs = append(v.KeyIDs, k.JWK.KeyID)
		}
		for _, s := range ks.Skipped() {
			v.Skipped = append(v.Skipped, skippedView{Index: s.Index, KeyID: s.KeyID, KeyType: s.KeyType, Reason: s.Reason})
		}
	}
	return v
}

// cacheCounts reads the token cache counters of an issuer.
func cacheCounts(issuer string) (hits, misses uint64) {
	m := processMetrics()
	return counterValue(m.cacheHits.WithLabelValues(issuer)), counterValue(m.cacheMisses.WithLabelValues(issuer))
}

// counterValue reads a counter's current value.
func counterValue(c interface{ Write(*dto.Metric) error }) uint64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return uint64(m.Counter.GetValue())
}

// handleIssuers answers GET /identity/issuers.
func (adminAPI) handleIssuers(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	views := []issuerView{}
	for _, e := range liveIssuers() {
		views = append(views, e.view())
	}
	return writeAdminJSON(w, views)
}

// handleRefresh answers POST /identity/issuers/refresh: every remote
// issuer's keys are refreshed (rate-limited, see identity.Provider.Refresh)
// concurrently, and the states after it are returned.
func (adminAPI) handleRefresh(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, http.MethodPost)
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminRefreshTimeout)
	defer cancel()
	entries := liveIssuers()
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		if p, ok := e.keys.(*identity.Provider); ok {
			wg.Go(func() { errs[i] = p.Refresh(ctx) })
		}
	}
	wg.Wait()
	views := make([]issuerView, 0, len(entries))
	for i, e := range entries {
		v := e.view()
		if errs[i] != nil {
			v.RefreshError = errs[i].Error()
		}
		views = append(views, v)
	}
	return writeAdminJSON(w, views)
}

// methodNotAllowed is the admin API's refusal of another method.
func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
}

// writeAdminJSON writes v as the JSON answer.
func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
