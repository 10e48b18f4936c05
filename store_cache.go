package caddyidentity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-identity/caddy-identity/identity"
)

// The caches the store may share (store redis { caches ... }).
const (
	cacheIntrospection = "introspection"
	cacheUserinfo      = "userinfo"
)

// storeCacheProbe is how often a shared cache tries the store while it is
// known to be down: in between, the cache is skipped (a miss without a
// round trip), so an outage does not add the store's timeout to every
// request that only wanted a cache.
const storeCacheProbe = time.Second

// sharedCache is one answer cache shared by the instances through the
// store: the introspection answers or the userinfo claims of tokens. Keys
// are the SHA-256 of the token under a scope (issuer, client), never a
// token; values are the endpoint's answer (the userinfo claims merged
// under the token's own), which holds no token; each entry lives no longer
// than its token nor the configured cache TTL. The cache is an
// optimization only: a store that cannot answer is a miss, whatever the
// failure policy.
type sharedCache struct {
	store *sharedStore
	kind  string
}

// sharedCacheOf returns the store's cache of kind, nil when the store does
// not share it (or there is no store).
func (a *authenticator) sharedCacheOf(kind string) *sharedCache {
	if a.store == nil || !slices.Contains(a.store.caches, kind) {
		return nil
	}
	return &sharedCache{store: a.store, kind: kind}
}

// key is the store key of a token's entry in scope.
func (c *sharedCache) key(scope string, token tokenKey) string {
	sum := sha256.Sum256([]byte(scope))
	return c.store.prefix + c.kind + ":" + hex.EncodeToString(sum[:16]) + ":" + hex.EncodeToString(token[:])
}

// get returns the entry under key, nil on a miss or when the store does
// not answer.
func (c *sharedCache) get(ctx context.Context, key string) []byte {
	if !c.store.usable() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.store.timeout)
	defer cancel()
	val, err := c.store.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	c.store.note(err)
	return val
}

// put stores val under key until the given time (nothing when it is past).
func (c *sharedCache) put(ctx context.Context, key string, val []byte, until time.Time, now time.Time) {
	ttl := until.Sub(now)
	if ttl < time.Millisecond || !c.store.usable() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.store.timeout)
	defer cancel()
	c.store.note(c.store.client.Set(ctx, key, val, ttl).Err())
}

// usable reports whether the store may be tried: it is not known to be
// down, or the last try during the outage is storeCacheProbe old.
func (s *sharedStore) usable() bool {
	if !s.down.Load() {
		return true
	}
	now := time.Now().UnixNano()
	last := s.probed.Load()
	return now-last >= int64(storeCacheProbe) && s.probed.CompareAndSwap(last, now)
}

// introspectShared is the introspection of a token the local cache does
// not know: from the shared cache when another instance asked already,
// else from the endpoint, whose active answer is shared until the token's
// exp or the cache TTL, whichever is first. The answer is checked by
// admitIntrospection either way, under this handler's own policy; one
// from the store has its exp moved back so that the local entry made of
// it dies with the shared one. fromStore says that the endpoint was not
// asked (so says nothing about its health).
func (a *authenticator) introspectShared(ctx context.Context, in *introspector, key tokenKey, token string) (res *identity.IntrospectionResponse, fromStore bool, err error) {
	c := a.sharedCacheOf(cacheIntrospection)
	if c == nil || in.ttl <= 0 {
		res, err = in.askShared(ctx, key, token)
		return res, false, err
	}
	skey := c.key(in.issuer+"\x00"+in.auth.ClientID, key)
	if until, raw, ok := c.getEntry(ctx, skey); ok {
		if res, err := identity.ParseIntrospectionResponse(raw); err == nil && res.Active && !res.Expiry.IsZero() {
			if until.Before(res.Expiry.Add(a.leeway)) {
				res.Expiry = until.Add(-a.leeway) // admitIntrospection adds the leeway
			}
			return res, true, nil
		}
	}
	res, err = in.askShared(ctx, key, token)
	if err == nil && res.Active && !res.Expiry.IsZero() {
		now := a.now()
		until := now.Add(in.ttl)
		if res.Expiry.Before(until) {
			until = res.Expiry
		}
		c.putEntry(ctx, skey, res.Raw, until, now)
	}
	return res, false, err
}

// userinfoShared returns the claims c of a token of issuer merged with its userinfo
// answer: from the shared cache when another instance fetched them
// already (with the time that entry dies, for the local one), else from
// the endpoint (sharedUntil zero), shared until the token's exp or the
// userinfo cache TTL, whichever is first.
func (a *authenticator) userinfoShared(ctx context.Context, u *userInfoSource, issuer string, claims *identity.Claims, token string) (merged *identity.Claims, sharedUntil time.Time, err error) {
	c := a.sharedCacheOf(cacheUserinfo)
	if c == nil {
		merged, err = u.fetchShared(ctx, claims, token)
		return merged, time.Time{}, err
	}
	skey := c.key(issuer, hashToken(token))
	if until, raw, ok := c.getEntry(ctx, skey); ok {
		if merged, err := identity.ParseClaims(raw); err == nil && merged.Subject == claims.Subject {
			return merged, until, nil
		}
	}
	if merged, err = u.fetchShared(ctx, claims, token); err != nil {
		return nil, time.Time{}, err
	}
	now := a.now()
	until := now.Add(u.ttl)
	if exp := claims.Expiry; !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	raw, err := json.Marshal(merged.Raw())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("identity: userinfo: %w", err)
	}
	c.putEntry(ctx, skey, raw, until, now)
	return merged, time.Time{}, nil
}

// getEntry reads an entry written by putEntry: the time it dies and the
// answer. A malformed or dead entry is a miss.
func (c *sharedCache) getEntry(ctx context.Context, key string) (time.Time, []byte, bool) {
	val := c.get(ctx, key)
	untilS, raw, ok := bytes.Cut(val, []byte(" "))
	ms, err := strconv.ParseInt(string(untilS), 10, 64)
	until := time.UnixMilli(ms)
	if !ok || err != nil || !time.Now().Before(until) {
		return time.Time{}, nil, false
	}
	return until, raw, true
}

// putEntry stores val until the given time, which it writes first: an
// instance that reads the entry keeps what it made of it no longer.
func (c *sharedCache) putEntry(ctx context.Context, key string, val []byte, until, now time.Time) {
	entry := append([]byte(strconv.FormatInt(until.UnixMilli(), 10)+" "), val...)
	c.put(ctx, key, entry, until, now)
}
