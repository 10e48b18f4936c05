package caddyidentity

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// withCaches is the store of instance i sharing the given caches.
func withCaches(srv *redisServer, i int, caches ...string) *StoreConfig {
	s := srv.storeOf(i, "")
	s.Redis.Caches = caches
	return s
}

// storeEntries returns the store's keys of a token in a cache, each
// checked to be the prefix, kind, scope hash and the token's SHA-256, with
// a TTL within max; values must not contain the token.
func storeEntries(t *testing.T, srv *redisServer, kind, token string, max time.Duration) []string {
	t.Helper()
	c := srv.client()
	sum := hashToken(token)
	keys, err := c.Keys(context.Background(), defaultStorePrefix+kind+":*:"+hex.EncodeToString(sum[:])).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		parts := strings.Split(strings.TrimPrefix(k, defaultStorePrefix), ":")
		if len(parts) != 3 || len(parts[1]) != 32 || len(parts[2]) != 64 || strings.Contains(k, token) {
			t.Errorf("key %q is not prefix, kind, scope hash and token hash", k)
		}
		if ttl := c.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > max {
			t.Errorf("key %q TTL %v, want within %v", k, ttl, max)
		}
		if strings.Contains(c.Get(context.Background(), k).Val(), token) {
			t.Errorf("entry %q holds the token", k)
		}
	}
	return keys
}

// TestStoreSharedIntrospectionCache: an opaque token introspected at one
// instance is not introspected again at another sharing the cache; the
// entry never outlives the cache TTL nor the token; an instance without
// the shared cache asks the endpoint itself; a store that cannot answer
// is a miss.
func TestStoreSharedIntrospectionCache(t *testing.T) {
	srv := startRedis(t)
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	newInstance := func(i int, store *StoreConfig, ttl time.Duration) *hx {
		h := introHandler(iss, ep.srv.URL)
		h.Issuers[0].Introspection.CacheTTL = durPtr(ttl)
		h.Store = store
		return newHX(t, h)
	}
	// B would keep answers longer than A: what it gets from A's entry it
	// keeps no longer than that entry.
	a := newInstance(1, withCaches(srv, 1, cacheIntrospection), time.Minute)
	b := newInstance(2, withCaches(srv, 2, cacheIntrospection), 10*time.Minute)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	tok := opaqueToken(t)
	roundTrips := func(x *hx, do func()) int64 {
		before := x.h.store.commands.Load()
		do()
		return x.h.store.commands.Load() - before
	}
	// A miss everywhere: GET, then SET of the answer; a miss here that
	// another instance answered: GET; a hit in the local cache: none.
	if n := roundTrips(a, func() { wantStatus(t, a.get("/", bearer(tok)), 200) }); n != 2 {
		t.Errorf("first introspection: %d round trips, want 2", n)
	}
	if n := roundTrips(b, func() { wantStatus(t, b.get("/", bearer(tok)), 200) }); n != 1 {
		t.Errorf("introspection answered by the shared cache: %d round trips, want 1", n)
	}
	if n := roundTrips(b, func() { wantStatus(t, b.get("/", bearer(tok)), 200) }); n != 0 {
		t.Errorf("local cache hit: %d round trips, want 0", n)
	}
	if _, ok := b.h.auth.introspectors[0].cache.get(hashToken(tok), time.Now().Add(time.Minute+time.Second)); ok {
		t.Error("B keeps the answer it read from A's entry longer than that entry lives")
	}
	if n := ep.callCount(); n != 1 {
		t.Errorf("endpoint called %d times by two instances sharing the cache, want 1", n)
	}
	if keys := storeEntries(t, srv, cacheIntrospection, tok, time.Minute); len(keys) != 1 {
		t.Errorf("shared entries %v, want 1", keys)
	}

	// The token's exp bounds the entry when it comes before the TTL.
	short := opaqueToken(t) + "-short"
	ep.set(200, activeResponse(iss.URL, time.Now(), map[string]any{"exp": time.Now().Add(20 * time.Second).Unix()}))
	wantStatus(t, a.get("/", bearer(short)), 200)
	if keys := storeEntries(t, srv, cacheIntrospection, short, 20*time.Second+time.Second); len(keys) != 1 {
		t.Errorf("shared entries %v, want 1", keys)
	}

	// Inactive answers are not shared.
	ep.set(200, map[string]any{"active": false})
	revoked := opaqueToken(t) + "-revoked"
	wantRefusal(t, a.get("/", bearer(revoked)), 401, "inactive")
	calls := ep.callCount()
	wantRefusal(t, b.get("/", bearer(revoked)), 401, "inactive")
	if ep.callCount() != calls+1 {
		t.Error("an inactive answer was shared")
	}

	// Without the shared cache an instance asks itself.
	c := newInstance(3, srv.storeOf(3, ""), time.Minute)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	calls = ep.callCount()
	wantStatus(t, c.get("/", bearer(tok)), 200)
	if ep.callCount() != calls+1 {
		t.Error("an instance without the shared cache used it")
	}

	// Redis down: a miss, the endpoint answers.
	srv.stop()
	fresh := opaqueToken(t) + "-down"
	calls = ep.callCount()
	wantStatus(t, b.get("/", bearer(fresh)), 200)
	if ep.callCount() != calls+1 {
		t.Error("with the store down the endpoint was not asked")
	}
}

// TestStoreSharedUserinfoCache: the userinfo claims fetched for a token at
// one instance serve another; the entry lives no longer than the userinfo
// cache TTL.
func TestStoreSharedUserinfoCache(t *testing.T) {
	srv := startRedis(t)
	iss := identitytest.NewIssuer(t)
	ui := newFakeUserInfo(t)
	ui.set(200, "application/json", `{"sub":"alice","email":"alice@example.com","groups":["ops","dev"]}`)
	newInstance := func(i int, ttl time.Duration) *hx {
		h := userInfoHandler(iss, ui.srv.URL, "")
		h.Issuers[0].UserInfo.CacheTTL = durPtr(ttl)
		h.Store = withCaches(srv, i, cacheUserinfo)
		return newHX(t, h)
	}
	// B would keep claims longer than A: what it gets from A's entry it
	// keeps no longer than that entry.
	a, b := newInstance(1, time.Minute), newInstance(2, 10*time.Minute)
	tok := iss.Token(t, "alice", nil)
	wantStatus(t, a.get("/", bearer(tok)), 200)
	res := b.get("/", bearer(tok))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Groups"); got != "ops, dev" {
		t.Errorf("X-User-Groups at the other instance = %q", got)
	}
	if n := ui.calls.Load(); n != 1 {
		t.Errorf("userinfo asked %d times by two instances sharing the cache, want 1", n)
	}
	if keys := storeEntries(t, srv, cacheUserinfo, tok, time.Minute); len(keys) != 1 {
		t.Errorf("shared entries %v, want 1", keys)
	}
	if e, ok := b.h.auth.cache.get(tok); !ok {
		t.Error("B did not cache the token")
	} else if e.expires.After(time.Now().Add(time.Minute)) {
		t.Errorf("B's entry made of A's claims lives until %v, past A's entry (a minute)", e.expires)
	}
	// Another subject's token does not read alice's entry.
	bob := iss.Token(t, "bob", nil)
	ui.set(200, "application/json", `{"sub":"bob","email":"bob@example.com","groups":["x"]}`)
	if got := b.get("/", bearer(bob)).up.header.Get("X-User-Email"); got != "bob@example.com" {
		t.Errorf("bob's X-User-Email = %q", got)
	}
}
