package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// pooledProvider makes a provider a caddy.Destructor.
type pooledProvider struct {
	*identity.Provider
}

// Destruct closes the provider when its last user is cleaned up.
func (p pooledProvider) Destruct() error {
	return p.Close()
}

// fmtProviderKey is the pool key of a provider: everything that makes two
// providers behave differently.
func fmtProviderKey(issuer, jwksURL string, allowHTTP bool, jwksBases ...string) string {
	return fmt.Sprintf("%s\x00%s\x00%t\x00%s", issuer, jwksURL, allowHTTP, strings.Join(jwksBases, "\x00"))
}

// acquireProvider returns the shared provider for issuer (with an optional
// JWKS URL that skips discovery, and the URL prefixes besides the issuer's
// where discovery may place jwks_uri), creating it without any network I/O
// when it does not exist yet. A new provider is warmed up in the background,
// bounded by the config's context. The handler's Cleanup releases it.
func (rt *runtime) acquireProvider(ctx caddy.Context, issuer, jwksURL string, allowHTTP bool, jwksBases []string) (*identity.Provider, error) {
	key := fmtProviderKey(issuer, jwksURL, allowHTTP, jwksBases...)
	m := rt.metrics
	logger := rt.logger.With(zap.String("issuer", issuer))
	val, loaded, err := providerPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		p, err := identity.NewProvider(issuer, identity.ProviderOptions{
			Logger:  rt.slog,
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
				OnStateChange: func(available bool, err error) {
					if errors.Is(err, context.Canceled) {
						return // a config being unloaded, not an outage
					}
					if available {
						logger.Info("identity provider available again")
						return
					}
					logger.Error("identity provider unavailable: tokens cannot be verified without keys", zap.Error(err))
				},
			},
		})
		if err != nil {
			return nil, err
		}
		return pooledProvider{p}, nil
	})
	if err != nil {
		return nil, err
	}
	rt.acquired = append(rt.acquired, key)
	p := val.(pooledProvider).Provider
	if !loaded {
		go func() {
			// Short-lived contexts (caddy validate, a config replaced at
			// once) end before the delay: no fetch, no misleading outage.
			delay := time.NewTimer(warmUpDelay)
			defer delay.Stop()
			select {
			case <-ctx.Done():
				return
			case <-delay.C:
			}
			wctx, cancel := context.WithTimeout(ctx, warmUpTimeout)
			defer cancel()
			if err := p.Refresh(wctx); err != nil && wctx.Err() == nil {
				logger.Warn("identity provider warm-up failed; will retry in the background and on demand", zap.Error(err))
			}
		}()
	}
	return p, nil
}
