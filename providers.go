package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity"
)

// providerPool shares one identity.Provider (discovery document and JWKS
// cache with its refresher) between every handler, in every loaded config,
// that uses the same issuer with the same key policy. The new config of a
// reload provisions before the old one cleans up, so caches stay warm.
var providerPool = caddy.NewUsagePool()

// warmUpDelay and warmUpTimeout delay and bound the background fetch
// started for a new provider.
const (
	warmUpDelay   = 200 * time.Millisecond
	warmUpTimeout = 30 * time.Second
)

// pooledProvider makes a provider a caddy.Destructor, with the outage
// state that the configurations using it report.
type pooledProvider struct {
	*identity.Provider
	health *providerHealth
}

// Destruct closes the provider when its last user is cleaned up.
func (p pooledProvider) Destruct() error {
	return p.Close()
}

// providerHealth tracks the outages of a pooled provider and reports each
// one once per loaded configuration that uses it: one ERROR with the cause
// when it starts, or when a configuration is loaded during it (a reload
// while the provider is down), and one INFO when it ends. Configurations
// are told apart by their context's Done channel.
type providerHealth struct {
	mu sync.Mutex
	// failing counts the provider's documents (discovery, key set) whose
	// last fetch failed; cause is the error that started the outage.
	failing  int
	cause    error
	watchers map[<-chan struct{}]*healthWatcher
}

// healthWatcher is a configuration's view of a provider's outages.
type healthWatcher struct {
	logger *zap.Logger
	users  int
	told   bool // the current outage was logged for this configuration
}

// watch registers a handler of the configuration whose context is done,
// logging the outage under way if the configuration has not yet.
func (ph *providerHealth) watch(done <-chan struct{}, logger *zap.Logger) {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	w := ph.watchers[done]
	if w == nil {
		w = &healthWatcher{logger: logger}
		ph.watchers[done] = w
	}
	w.users++
	if ph.cause != nil && !w.told {
		logOutage(w.logger, ph.cause)
		w.told = true
	}
}

// unwatch releases a handler registered by watch.
func (ph *providerHealth) unwatch(done <-chan struct{}) {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	if w := ph.watchers[done]; w != nil {
		if w.users--; w.users <= 0 {
			delete(ph.watchers, done)
		}
	}
}

// stateChanged is the provider's OnStateChange: a document's fetches
// started failing (err) or recovered.
func (ph *providerHealth) stateChanged(available bool, err error) {
	if errors.Is(err, context.Canceled) {
		return // a config being unloaded, not an outage
	}
	ph.mu.Lock()
	defer ph.mu.Unlock()
	if !available {
		ph.failing++
		if ph.cause == nil {
			ph.cause = err
		}
		for _, w := range ph.watchers {
			if !w.told {
				logOutage(w.logger, err)
				w.told = true
			}
		}
		return
	}
	if ph.failing > 0 {
		ph.failing--
	}
	if ph.failing > 0 || ph.cause == nil {
		return
	}
	ph.cause = nil
	for _, w := range ph.watchers {
		if w.told {
			w.logger.Info("identity provider available again")
			w.told = false
		}
	}
}

// logOutage logs the start of an outage at ERROR. A provider that answers
// with something that is not a usable document (404, an HTML page, another
// issuer) is a wrong URL that retrying will not fix, and says so.
func logOutage(logger *zap.Logger, err error) {
	var se *identity.HTTPStatusError
	switch {
	case errors.Is(err, identity.ErrIssuerMismatch):
		logger.Error("identity provider refused: its discovery document names another issuer; configure the issuer exactly as the document says", zap.Error(err))
	case errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 && se.StatusCode != 408 && se.StatusCode != 429,
		errors.Is(err, identity.ErrContentType), errors.Is(err, identity.ErrNotJSON),
		errors.Is(err, identity.ErrMissingMember), errors.Is(err, identity.ErrEndpointNotAllowed),
		errors.Is(err, identity.ErrHTTPSRequired), errors.Is(err, identity.ErrInvalidKeySet):
		logger.Error("identity provider unusable: check the issuer URL (and jwks_url or jwks_uri_base, if set); requests get 503 until it serves a valid document", zap.Error(err))
	default:
		logger.Error("identity provider unavailable: requests get 503 until its keys can be fetched; retrying in the background", zap.Error(err))
	}
}

// fmtProviderKey is the pool key of a provider: everything that makes two
// providers behave differently.
func fmtProviderKey(issuer, jwksURL string, allowHTTP bool, jwksBases ...string) string {
	return fmt.Sprintf("%s\x00%s\x00%t\x00%s", issuer, jwksURL, allowHTTP, strings.Join(jwksBases, "\x00"))
}

// providerSet is what a handler holds of providerPool: the keys of the
// providers it acquired, released by release, and their outage trackers,
// where its configuration (configDone) is registered.
type providerSet struct {
	acquired   []string
	watched    []*providerHealth
	configDone <-chan struct{}
}

// release gives the acquired providers back (the last user closes them)
// and leaves their outage trackers.
func (ps *providerSet) release() error {
	var errs []error
	for _, key := range ps.acquired {
		if _, err := providerPool.Delete(key); err != nil {
			errs = append(errs, err)
		}
	}
	ps.acquired = nil
	for _, ph := range ps.watched {
		ph.unwatch(ps.configDone)
	}
	ps.watched = nil
	return errors.Join(errs...)
}

// acquire returns the shared provider for issuer (with an optional
// JWKS URL that skips discovery, and the URL prefixes besides the issuer's
// where discovery may place jwks_uri), creating it without any network I/O
// when it does not exist yet. A new provider is warmed up in the background,
// bounded by the config's context. The handler's Cleanup releases it.
func (ps *providerSet) acquire(ctx caddy.Context, m *collectors, logger *zap.Logger, slogger *slog.Logger, issuer, jwksURL string, allowHTTP bool, jwksBases []string) (*identity.Provider, error) {
	key := fmtProviderKey(issuer, jwksURL, allowHTTP, jwksBases...)
	health := &providerHealth{watchers: make(map[<-chan struct{}]*healthWatcher)}
	val, loaded, err := providerPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		p, err := identity.NewProvider(issuer, identity.ProviderOptions{
			Logger:  slogger,
			JWKSURL: jwksURL,
			// The handler uses only jwks_uri: where the other endpoints
			// live is not its concern (see identity.DiscoveryPolicy).
			Policy: identity.DiscoveryPolicy{
				AllowHTTP:               allowHTTP,
				CheckedEndpoints:        []string{identity.DiscoveryJWKSURI},
				AdditionalEndpointBases: jwksBases,
			},
			Keys: identity.RemoteKeySetOptions{
				AllowHTTP: allowHTTP,
				OnFetch: func(url string, err error) {
					doc := "jwks"
					if strings.Contains(url, "/.well-known/") {
						doc = "discovery"
					}
					m.keyFetches.WithLabelValues(issuer, doc).Inc()
					if err != nil {
						m.keyFetchFailures.WithLabelValues(issuer, doc).Inc()
					}
				},
				OnStateChange: health.stateChanged,
			},
		})
		if err != nil {
			return nil, err
		}
		return pooledProvider{p, health}, nil
	})
	if err != nil {
		return nil, err
	}
	ps.acquired = append(ps.acquired, key)
	pp := val.(pooledProvider)
	pp.health.watch(ctx.Done(), logger.With(zap.String("issuer", issuer)))
	ps.watched = append(ps.watched, pp.health)
	ps.configDone = ctx.Done()
	p := pp.Provider
	if !loaded {
		go func() {
			// Short-lived contexts (caddy validate, a config replaced at
			// once) end before the delay: no fetch, no misleading outage.
			// A failure is reported by the provider's state change.
			delay := time.NewTimer(warmUpDelay)
			defer delay.Stop()
			select {
			case <-ctx.Done():
				return
			case <-delay.C:
			}
			wctx, cancel := context.WithTimeout(ctx, warmUpTimeout)
			defer cancel()
			_ = p.Refresh(wctx)
		}()
	}
	return p, nil
}
