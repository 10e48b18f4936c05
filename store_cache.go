package caddyidentity

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

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
// store: the introspection answers or the userinfo claims of tokens.
// Entries are sealed (see cacheSealer): Redis holds no token and no claim
// in the clear, and an entry opens only with both the fleet's
// cache_secret and the token it is about. Each entry lives no longer than
// its token nor the configured cache TTL. The cache is an optimization
// only: a store that cannot answer, or an entry that does not open, is a
// miss, whatever the failure policy.
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

// key is the store key of a token's entry in scope: the scope's hash and
// the token's name under the cache secret, never the token or its hash.
func (c *sharedCache) key(scope string, token tokenKey) string {
	sum := sha256.Sum256([]byte(scope))
	return c.store.prefix + c.kind + ":" + hex.EncodeToString(sum[:16]) + ":" + c.store.sealer.name(token)
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
	scope := in.issuer + "\x00" + in.auth.ClientID
	if until, raw, ok := c.getEntry(ctx, scope, key, token); ok {
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
		c.putEntry(ctx, scope, key, token, res.Raw, until, now)
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
	key := hashToken(token)
	if until, raw, ok := c.getEntry(ctx, issuer, key, token); ok {
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
	c.putEntry(ctx, issuer, key, token, raw, until, now)
	return merged, time.Time{}, nil
}

// getEntry reads the entry of token in scope, written by putEntry: the
// time it dies and the answer. A dead entry is a miss; so is one that does
// not open, which is also logged (unopened).
func (c *sharedCache) getEntry(ctx context.Context, scope string, key tokenKey, token string) (time.Time, []byte, bool) {
	val := c.get(ctx, c.key(scope, key))
	if val == nil {
		return time.Time{}, nil, false
	}
	until, raw, ok := c.store.sealer.open(c.kind, scope, token, val)
	if !ok {
		c.store.unopened(c.kind)
		return time.Time{}, nil, false
	}
	if !time.Now().Before(until) {
		return time.Time{}, nil, false
	}
	return until, raw, true
}

// putEntry stores val for token in scope until the given time, which the
// entry carries: an instance that reads the entry keeps what it made of it
// no longer.
func (c *sharedCache) putEntry(ctx context.Context, scope string, key tokenKey, token string, val []byte, until, now time.Time) {
	entry, err := c.store.sealer.seal(c.kind, scope, token, until, val)
	if err != nil {
		return
	}
	c.put(ctx, c.key(scope, key), entry, until, now)
}

// unopened notes an entry that did not open, logging it at most once a
// minute with the number of such entries since the last line: someone
// writing to the store would otherwise make it log on every request.
// Instances with another secret, and earlier versions, write under other
// names, so only a writer other than the handlers makes such entries.
func (s *sharedStore) unopened(kind string) {
	n := s.unopenedN.Add(1)
	now := time.Now().UnixNano()
	last := s.unopenedAt.Load()
	if (last != 0 && now-last < int64(time.Minute)) || !s.unopenedAt.CompareAndSwap(last, now) {
		return
	}
	s.unopenedN.Add(-n)
	s.logger.Warn("shared cache entries that do not open are misses: something other than the handlers with this cache_secret writes to their keys in the store",
		zap.String("cache", kind), zap.Int64("entries", n))
}

// minCacheSecret is the least length of cache_secret, in bytes.
const minCacheSecret = 32

// cacheSealer seals the shared cache's entries. From cache_secret it
// derives (HKDF-SHA256) a name key and a seal key. An entry's name is the
// HMAC-SHA256 of the token's SHA-256 under the name key, so that names
// cannot be computed from a guessed token without the secret, and the
// token's hash, which logs show the start of, is not in Redis. An entry
// is sealed with AES-256-GCM (random 96-bit nonce) under a key derived
// from the token itself with the seal key as salt: a reader of Redis
// without the token learns nothing, and a writer without the secret
// cannot make an entry that opens, not even for a token of their own
// choosing. The kind, the expiry and the scope (issuer, client) are the
// additional data, so an entry moved to another kind or scope, or given
// a later expiry, does not open.
type cacheSealer struct {
	nameKey []byte
	sealKey []byte
}

// cacheEntryPrefix starts every sealed entry: the format's version.
const cacheEntryPrefix = "s1 "

// newCacheSealer derives the keys from the secret.
func newCacheSealer(secret []byte) (*cacheSealer, error) {
	nameKey, err := hkdf.Key(sha256.New, secret, nil, "caddy-identity shared cache v1 name", sha256.Size)
	if err != nil {
		return nil, err
	}
	sealKey, err := hkdf.Key(sha256.New, secret, nil, "caddy-identity shared cache v1 seal", sha256.Size)
	if err != nil {
		return nil, err
	}
	return &cacheSealer{nameKey: nameKey, sealKey: sealKey}, nil
}

// name is the hex name of a token's entries.
func (s *cacheSealer) name(token tokenKey) string {
	m := hmac.New(sha256.New, s.nameKey)
	m.Write(token[:])
	return hex.EncodeToString(m.Sum(nil))
}

// aead is the cipher of a token's entries of kind.
func (s *cacheSealer) aead(kind, token string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(token), s.sealKey, "caddy-identity shared cache v1 "+kind, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// cacheAdditionalData binds an entry to its kind, expiry and scope.
func cacheAdditionalData(kind, until, scope string) []byte {
	return []byte("caddy-identity shared cache v1\x00" + kind + "\x00" + until + "\x00" + scope)
}

// seal returns the entry of val for token: "s1 ", the expiry in Unix
// milliseconds, a space, then nonce, ciphertext and tag.
func (s *cacheSealer) seal(kind, scope, token string, until time.Time, val []byte) ([]byte, error) {
	aead, err := s.aead(kind, token)
	if err != nil {
		return nil, err
	}
	u := strconv.FormatInt(until.UnixMilli(), 10)
	entry := make([]byte, 0, len(cacheEntryPrefix)+len(u)+1+aead.NonceSize()+len(val)+aead.Overhead())
	entry = append(append(append(entry, cacheEntryPrefix...), u...), ' ')
	return aead.Seal(entry, nil, val, cacheAdditionalData(kind, u, scope)), nil
}

// open returns the expiry and value of an entry sealed for token, kind
// and scope; false for anything else (another secret, token, kind or
// scope, a changed expiry, a tampered or truncated entry, an entry in the
// unsealed format of earlier versions).
func (s *cacheSealer) open(kind, scope, token string, entry []byte) (time.Time, []byte, bool) {
	rest, ok := bytes.CutPrefix(entry, []byte(cacheEntryPrefix))
	if !ok {
		return time.Time{}, nil, false
	}
	u, sealed, ok := bytes.Cut(rest, []byte(" "))
	ms, err := strconv.ParseInt(string(u), 10, 64)
	if !ok || err != nil {
		return time.Time{}, nil, false
	}
	aead, err := s.aead(kind, token)
	if err != nil {
		return time.Time{}, nil, false
	}
	val, err := aead.Open(nil, nil, sealed, cacheAdditionalData(kind, string(u), scope))
	if err != nil {
		return time.Time{}, nil, false
	}
	return time.UnixMilli(ms), val, true
}
