package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// checkIntrospectionOrder checks Handler.IntrospectionOrder against the
// issuers: with more than one introspecting issuer it is required and
// names each of them exactly once; with one it may name that one; it
// never names an issuer without introspection. An opaque token names no
// issuer, so only the operator can say which endpoints may receive it.
func checkIntrospectionOrder(issuers []IssuerConfig, order []string) error {
	var with []string
	for i := range issuers {
		if issuers[i].Introspection != nil {
			with = append(with, issuers[i].Issuer)
		}
	}
	if len(order) == 0 {
		if len(with) > 1 {
			return fmt.Errorf("issuers %q have introspection: an opaque token names no issuer, so introspection_order must list "+
				"them in the order they are asked (each endpoint asked receives the token, and costs a round trip on a cache miss)",
				with)
		}
		return nil
	}
	for i, iss := range order {
		switch {
		case !slices.Contains(with, iss):
			return fmt.Errorf("introspection_order: %q is not an issuer with introspection", iss)
		case slices.Contains(order[:i], iss):
			return fmt.Errorf("introspection_order: %q named twice", iss)
		}
	}
	for _, iss := range with {
		if !slices.Contains(order, iss) {
			return fmt.Errorf("introspection_order: the introspecting issuer %q is missing", iss)
		}
	}
	return nil
}

// orderIntrospectors puts a.introspectors in the order of
// introspection_order (issuer identifiers, placeholders resolved with
// repl; checkIntrospectionOrder made sure it names each one), and logs
// where opaque tokens go when that is more than one place.
func (a *authenticator) orderIntrospectors(repl *caddy.Replacer, order []string) {
	if len(order) == 0 {
		return
	}
	resolved := replaceAll(repl, order)
	slices.SortStableFunc(a.introspectors, func(x, y *introspector) int {
		return slices.Index(resolved, x.issuer) - slices.Index(resolved, y.issuer)
	})
	if len(a.introspectors) > 1 {
		a.logger.Info("opaque tokens are introspected by several issuers, in this order, until one answers active",
			zap.Strings("introspection_order", resolved))
	}
}

// introspect returns the entry of an active opaque token, or why it is
// refused. An entry cached by any issuer answers at once. Otherwise the
// issuers are asked in introspection_order, skipping those that said
// inactive within inactiveCacheTTL: the first that answers active decides
// (its rules accept or refuse the token; no later issuer is asked), an
// inactive answer passes the token on to the next, and so does an issuer
// that could not answer or, its endpoint in outage, was not asked
// (introspect_breaker.go). When none answers
// active and one could not answer, the verdict is provider_unavailable
// (503): that issuer may have issued the token. Else the token is
// inactive (401).
func (a *authenticator) introspect(ctx context.Context, token string) (*cacheEntry, reason, error) {
	key := hashToken(token)
	now := a.now()
	caching := false
	for _, in := range a.introspectors {
		if e, ok := in.cached(key, now); ok {
			e.cacheHits.Inc()
			return e, reasonNone, nil
		}
		caching = caching || in.cache != nil
	}
	var unavailable error
	asked := false
	for _, in := range a.introspectors {
		if in.knownInactive(key, now) {
			continue
		}
		asked = true
		e, rsn, err := a.introspectAt(ctx, in, key, token)
		switch {
		case rsn == reasonInactive:
			continue
		case rsn == reasonProviderUnavailable && ctx.Err() == nil:
			if len(a.introspectors) > 1 {
				err = fmt.Errorf("%s: %w", in.issuer, err)
			}
			unavailable = errors.Join(unavailable, err)
			continue
		}
		if caching {
			a.counters.misses(in.issuer).Inc() // the issuer that answered active
		}
		return e, rsn, err
	}
	if caching {
		// No issuer vouched for the token: the cache counters of the one
		// introspecting issuer, or with several the unattributed ones.
		issuer := ""
		if len(a.introspectors) == 1 {
			issuer = a.introspectors[0].issuer
		}
		if asked {
			a.counters.misses(issuer).Inc()
		} else {
			a.counters.hits(issuer).Inc()
		}
	}
	if unavailable != nil {
		return nil, reasonProviderUnavailable, unavailable
	}
	return nil, reasonInactive, nil
}
