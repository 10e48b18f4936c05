package caddyidentity

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// testCacheSecret is the cache_secret of the test instances.
const testCacheSecret = "test-cache-secret-of-32-bytes-at-least"

// withCaches is the store of instance i sharing the given caches.
func withCaches(srv *redisServer, i int, caches ...string) *StoreConfig {
	s := srv.storeOf(i, "")
	s.Redis.Caches = caches
	s.Redis.CacheSecret = testCacheSecret
	return s
}

// storeEntries returns the store's keys of a token in a cache, each
// checked to be the prefix, kind, scope hash and the token's name under
// testCacheSecret (not its SHA-256), with a TTL within max; values must
// contain neither the token nor any of clear.
func storeEntries(t *testing.T, srv *redisServer, kind, token string, max time.Duration, clear ...string) []string {
	t.Helper()
	c := srv.client()
	sealer, err := newCacheSealer([]byte(testCacheSecret))
	if err != nil {
		t.Fatal(err)
	}
	sum := hashToken(token)
	name := sealer.name(sum)
	if name == hex.EncodeToString(sum[:]) {
		t.Fatal("the entry's name is the token's SHA-256")
	}
	keys, err := c.Keys(context.Background(), defaultStorePrefix+kind+":*:"+name).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		parts := strings.Split(strings.TrimPrefix(k, defaultStorePrefix), ":")
		if len(parts) != 3 || len(parts[1]) != 32 || len(parts[2]) != 64 || strings.Contains(k, token) {
			t.Errorf("key %q is not prefix, kind, scope hash and token name", k)
		}
		if ttl := c.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > max {
			t.Errorf("key %q TTL %v, want within %v", k, ttl, max)
		}
		val := c.Get(context.Background(), k).Val()
		for _, s := range append(clear, token) {
			if strings.Contains(val, s) {
				t.Errorf("entry %q holds %q in the clear", k, s)
			}
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
	if keys := storeEntries(t, srv, cacheIntrospection, tok, time.Minute, `"sub"`, "alice", "alice@example.com", "read write"); len(keys) != 1 {
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
	newInstance := func(i int, ttl time.Duration, secret string) *hx {
		h := userInfoHandler(iss, ui.srv.URL, "")
		h.Issuers[0].UserInfo.CacheTTL = durPtr(ttl)
		h.Store = withCaches(srv, i, cacheUserinfo)
		h.Store.Redis.CacheSecret = secret
		return newHX(t, h)
	}
	// B would keep claims longer than A: what it gets from A's entry it
	// keeps no longer than that entry.
	a, b := newInstance(1, time.Minute, testCacheSecret), newInstance(2, 10*time.Minute, testCacheSecret)
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
	if keys := storeEntries(t, srv, cacheUserinfo, tok, time.Minute, "alice", "alice@example.com", "ops"); len(keys) != 1 {
		t.Errorf("shared entries %v, want 1", keys)
	}
	if e, ok := b.h.auth.cache.get(tok); !ok {
		t.Error("B did not cache the token")
	} else if e.expires.After(time.Now().Add(time.Minute)) {
		t.Errorf("B's entry made of A's claims lives until %v, past A's entry (a minute)", e.expires)
	}
	// An instance with another cache_secret does not read the entry.
	other := newInstance(3, time.Minute, strings.Repeat("o", minCacheSecret))
	if got := other.get("/", bearer(tok)).up.header.Get("X-User-Groups"); got != "ops, dev" {
		t.Errorf("X-User-Groups at the instance with another secret = %q", got)
	}
	if n := ui.calls.Load(); n != 2 {
		t.Errorf("userinfo asked %d times after an instance with another secret, want 2", n)
	}
	// Another subject's token does not read alice's entry.
	bob := iss.Token(t, "bob", nil)
	ui.set(200, "application/json", `{"sub":"bob","email":"bob@example.com","groups":["x"]}`)
	if got := b.get("/", bearer(bob)).up.header.Get("X-User-Email"); got != "bob@example.com" {
		t.Errorf("bob's X-User-Email = %q", got)
	}
}

// TestStoreCacheSealer: an entry opens only for the secret, kind, scope,
// token and expiry it was sealed for, and holds its value sealed.
func TestStoreCacheSealer(t *testing.T) {
	sealer, err := newCacheSealer([]byte(testCacheSecret))
	if err != nil {
		t.Fatal(err)
	}
	other, err := newCacheSealer([]byte(strings.Repeat("o", minCacheSecret)))
	if err != nil {
		t.Fatal(err)
	}
	const scope, token = "https://op.example.com\x00caddy", "opaque-token"
	val := []byte(`{"active":true,"sub":"alice","email":"alice@example.com"}`)
	until := time.Now().Add(time.Minute)
	entry, err := sealer.seal(cacheIntrospection, scope, token, until, val)
	if err != nil {
		t.Fatal(err)
	}
	if got, pt, ok := sealer.open(cacheIntrospection, scope, token, entry); !ok || !bytes.Equal(pt, val) || got.UnixMilli() != until.UnixMilli() {
		t.Fatalf("open = %v, %q, %v; want %v, %q", got, pt, ok, until, val)
	}
	for _, clear := range []string{"alice", "active", token} {
		if bytes.Contains(entry, []byte(clear)) {
			t.Errorf("the entry holds %q in the clear", clear)
		}
	}
	if k := hashToken(token); sealer.name(k) == other.name(k) {
		t.Error("two secrets give one name")
	}
	u := strconv.FormatInt(until.UnixMilli(), 10)
	altered := func(f func(e []byte)) []byte {
		e := bytes.Clone(entry)
		f(e)
		return e
	}
	for _, tc := range []struct {
		name               string
		sealer             *cacheSealer
		kind, scope, token string
		entry              []byte
	}{
		{"another secret", other, cacheIntrospection, scope, token, entry},
		{"another token", sealer, cacheIntrospection, scope, token + "x", entry},
		{"another kind", sealer, cacheUserinfo, scope, token, entry},
		{"another scope", sealer, cacheIntrospection, "https://op.example.com\x00other", token, entry},
		{"a later expiry", sealer, cacheIntrospection, scope, token,
			[]byte(strings.Replace(string(entry), u, strconv.FormatInt(until.Add(time.Hour).UnixMilli(), 10), 1))},
		{"the expiry spelled otherwise", sealer, cacheIntrospection, scope, token, []byte(strings.Replace(string(entry), " "+u, " 0"+u, 1))},
		{"a flipped tag bit", sealer, cacheIntrospection, scope, token, altered(func(e []byte) { e[len(e)-1] ^= 1 })},
		{"a flipped ciphertext bit", sealer, cacheIntrospection, scope, token, altered(func(e []byte) { e[len(e)-20] ^= 1 })},
		{"truncated", sealer, cacheIntrospection, scope, token, entry[:len(entry)-1]},
		{"no ciphertext", sealer, cacheIntrospection, scope, token, []byte(cacheEntryPrefix + u + " ")},
		{"the unsealed format of earlier versions", sealer, cacheIntrospection, scope, token, []byte(u + " " + string(val))},
		{"empty", sealer, cacheIntrospection, scope, token, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, pt, ok := tc.sealer.open(tc.kind, tc.scope, tc.token, tc.entry); ok {
				t.Errorf("opened: %q", pt)
			}
		})
	}
}

// TestStoreSharedCacheSealed: instances with the same cache_secret share
// entries, one with another secret does not see them; an entry altered in
// Redis is a miss (the endpoint is asked again), logged once however many
// there are; an entry planted for a made-up token by a writer without the
// secret, at the very key the handler reads, never makes it accepted.
func TestStoreSharedCacheSealed(t *testing.T) {
	srv := startRedis(t)
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	newInstance := func(i int, secret string) *hx {
		h := introHandler(iss, ep.srv.URL)
		h.Issuers[0].Introspection.CacheTTL = durPtr(time.Minute)
		h.Store = withCaches(srv, i, cacheIntrospection)
		h.Store.Redis.CacheSecret = secret
		return newHX(t, h)
	}
	a, b := newInstance(1, testCacheSecret), newInstance(2, testCacheSecret)
	other := newInstance(3, strings.Repeat("o", minCacheSecret))
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	ctx, c := context.Background(), srv.client()
	in := a.h.auth.introspectors[0]
	scope := in.issuer + "\x00" + in.auth.ClientID
	keyOf := func(token string) string {
		return (&sharedCache{store: a.h.store, kind: cacheIntrospection}).key(scope, hashToken(token))
	}

	tok := opaqueToken(t)
	wantStatus(t, a.get("/", bearer(tok)), 200)
	calls := ep.callCount()
	wantStatus(t, b.get("/", bearer(tok)), 200)
	if ep.callCount() != calls {
		t.Error("an instance with the same secret asked the endpoint")
	}
	wantStatus(t, other.get("/", bearer(tok)), 200)
	if ep.callCount() != calls+1 {
		t.Error("an instance with another secret used the entry")
	}
	if n := len(c.Keys(ctx, defaultStorePrefix+cacheIntrospection+":*").Val()); n != 2 {
		t.Errorf("%d entries for one token at two secrets, want 2 (one each)", n)
	}
	entryOfTok, err := c.Get(ctx, keyOf(tok)).Bytes()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		alter func(e []byte) []byte
	}{
		{"a flipped tag bit", func(e []byte) []byte { e[len(e)-1] ^= 1; return e }},
		{"a flipped ciphertext bit", func(e []byte) []byte { e[len(e)-20] ^= 1; return e }},
		{"a later expiry", func(e []byte) []byte {
			u, rest, _ := bytes.Cut(bytes.TrimPrefix(e, []byte(cacheEntryPrefix)), []byte(" "))
			ms, _ := strconv.ParseInt(string(u), 10, 64)
			return append([]byte(cacheEntryPrefix+strconv.FormatInt(ms+3600_000, 10)+" "), rest...)
		}},
		{"truncated", func(e []byte) []byte { return e[:len(e)-4] }},
		{"the unsealed format of earlier versions", func([]byte) []byte {
			b, _ := json.Marshal(activeResponse(iss.URL, time.Now(), nil))
			return append([]byte(strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10)+" "), b...)
		}},
		{"another token's entry", func([]byte) []byte { return entryOfTok }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := opaqueToken(t)
			wantStatus(t, a.get("/", bearer(token)), 200)
			entry, err := c.Get(ctx, keyOf(token)).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Set(ctx, keyOf(token), tc.alter(entry), redis.KeepTTL).Err(); err != nil {
				t.Fatal(err)
			}
			calls := ep.callCount()
			wantStatus(t, b.get("/", bearer(token)), 200)
			if ep.callCount() != calls+1 {
				t.Error("an altered entry was used")
			}
		})
	}
	if n := b.logs.FilterMessageSnippet("do not open").Len(); n != 1 {
		t.Errorf("%d log lines for 6 entries that did not open within a minute, want 1", n)
	}

	// The endpoint refuses made-up tokens; entries planted for them are
	// misses, so they are refused.
	ep.set(200, map[string]any{"active": false})
	admin, err := json.Marshal(activeResponse(iss.URL, time.Now(), map[string]any{"sub": "admin"}))
	if err != nil {
		t.Fatal(err)
	}
	evil, err := newCacheSealer([]byte(strings.Repeat("e", minCacheSecret)))
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name  string
		plant func(token string) []byte
	}{
		{"sealed with another secret", func(token string) []byte {
			e, err := evil.seal(cacheIntrospection, scope, token, until, admin)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
		{"unsealed", func(string) []byte {
			return append([]byte(strconv.FormatInt(until.UnixMilli(), 10)+" "), admin...)
		}},
		{"another token's real entry", func(string) []byte { return entryOfTok }},
	} {
		t.Run("planted "+tc.name, func(t *testing.T) {
			garbage := opaqueToken(t)
			if err := c.Set(ctx, keyOf(garbage), tc.plant(garbage), time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			calls := ep.callCount()
			wantRefusal(t, b.get("/", bearer(garbage)), 401, "inactive")
			if ep.callCount() != calls+1 {
				t.Error("the endpoint was not asked about the made-up token")
			}
		})
	}
}

// TestStoreCacheSecretConfig: caches need a cache_secret of at least 32
// bytes once placeholders are replaced, and a cache_secret needs caches;
// errors never show the secret. The Caddyfile adapter lets a placeholder
// pass, whose value only the server may know; Provision measures it.
func TestStoreCacheSecretConfig(t *testing.T) {
	t.Setenv("IDENTITY_TEST_SHORT_SECRET", "sh0rt-s3cret")
	t.Setenv("IDENTITY_TEST_CACHE_SECRET", testCacheSecret)
	caches := []string{cacheIntrospection}
	for _, tc := range []struct {
		name string
		cfg  RedisStoreConfig
		want string
	}{
		{"caches without secret", RedisStoreConfig{Caches: caches}, "caches need cache_secret"},
		{"short secret", RedisStoreConfig{Caches: caches, CacheSecret: "sh0rt-s3cret"}, "cache_secret has 12 bytes, want at least 32"},
		{"short secret from the environment", RedisStoreConfig{Caches: caches, CacheSecret: "{env.IDENTITY_TEST_SHORT_SECRET}"}, "cache_secret has 12 bytes"},
		{"unset variable", RedisStoreConfig{Caches: caches, CacheSecret: "{env.IDENTITY_TEST_UNSET_SECRET}"}, "{env.IDENTITY_TEST_UNSET_SECRET} is empty"},
		{"secret without caches", RedisStoreConfig{CacheSecret: testCacheSecret}, "caches is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.resolved()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sh0rt-s3cret") || strings.Contains(err.Error(), testCacheSecret) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
	c, err := RedisStoreConfig{Caches: caches, CacheSecret: "{env.IDENTITY_TEST_CACHE_SECRET}"}.resolved()
	if err != nil || c.CacheSecret != testCacheSecret {
		t.Errorf("secret from the environment: %v", err)
	}

	parse := func(block string) error {
		d := caddyfile.NewTestDispenser("identity {\nissuer https://op.example.com\nstore redis {\n" + block + "\n}\n}")
		return new(Handler).UnmarshalCaddyfile(d)
	}
	for _, ok := range []string{
		"caches introspection\ncache_secret {env.IDENTITY_TEST_UNSET_SECRET}",
		"caches introspection\ncache_secret " + testCacheSecret,
	} {
		if err := parse(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"caches introspection",
		"caches introspection\ncache_secret sh0rt-s3cret",
		"caches introspection\ncache_secret sh0rt-s3cret sh0rt-s3cret",
		"cache_secret " + testCacheSecret,
	} {
		err := parse(bad)
		if err == nil {
			t.Errorf("no error for %q", bad)
		} else if strings.Contains(err.Error(), "sh0rt-s3cret") || strings.Contains(err.Error(), testCacheSecret) {
			t.Errorf("error %q shows the secret", err)
		}
	}
}

// BenchmarkStoreSharedHit is an introspection answered by the shared
// cache, the local cache bypassed, with its parts paired in one loop: the
// GET alone on loopback (what a hit cost besides parsing before entries
// were sealed) and the GET with the entry opened. The introspection
// sub-benchmark runs unchanged on earlier revisions.
func BenchmarkStoreSharedHit(b *testing.B) {
	srv := startRedis(b)
	iss := identitytest.NewIssuer(b)
	answer, err := json.Marshal(activeResponse(iss.URL, time.Now(), nil))
	if err != nil {
		b.Fatal(err)
	}
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer ep.Close()
	h := introHandler(iss, ep.URL)
	h.Issuers[0].Introspection.CacheTTL = durPtr(time.Minute)
	h.Store = withCaches(srv, 0, cacheIntrospection)
	h.logger = zap.NewNop()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Cleanup()
	in := h.auth.introspectors[0]
	token := "opaque-" + strings.Repeat("t", 36)
	key := hashToken(token)
	if _, fromStore, err := h.auth.introspectShared(ctx, in, key, token); err != nil || fromStore {
		b.Fatalf("first introspection: from the store %v, %v", fromStore, err)
	}
	c := h.auth.sharedCacheOf(cacheIntrospection)
	scope := in.issuer + "\x00" + in.auth.ClientID
	// GET and GET+open alternate within one loop, each timed, so that a
	// change in the machine's load weighs on both alike.
	b.Run("GET-vs-GET+open", func(b *testing.B) {
		b.ReportAllocs()
		var get, open time.Duration
		for range b.N {
			start := time.Now()
			if c.get(ctx, c.key(scope, key)) == nil {
				b.Fatal("no entry")
			}
			mid := time.Now()
			if _, _, ok := c.getEntry(ctx, scope, key, token); !ok {
				b.Fatal("no entry")
			}
			get, open = get+mid.Sub(start), open+time.Since(mid)
		}
		b.ReportMetric(float64(get.Nanoseconds())/float64(b.N), "GET-ns/op")
		b.ReportMetric(float64(open.Nanoseconds())/float64(b.N), "GET+open-ns/op")
	})
	b.Run("introspection", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, fromStore, err := h.auth.introspectShared(ctx, in, key, token); err != nil || !fromStore {
				b.Fatalf("not from the store: %v", err)
			}
		}
	})
}

// BenchmarkStoreCacheSeal is the sealing alone, in process: seal (a
// shared miss that writes) and open (a shared hit) of an introspection
// answer, for an opaque token and a JWT-sized one (the key derivation
// reads the whole token).
func BenchmarkStoreCacheSeal(b *testing.B) {
	sealer, err := newCacheSealer([]byte(testCacheSecret))
	if err != nil {
		b.Fatal(err)
	}
	val, err := json.Marshal(activeResponse("https://op.example.com", time.Now(), nil))
	if err != nil {
		b.Fatal(err)
	}
	const scope = "https://op.example.com\x00caddy"
	until := time.Now().Add(time.Minute)
	for _, tc := range []struct{ name, token string }{
		{"opaque", "opaque-" + strings.Repeat("t", 36)},
		{"jwt-1KiB", strings.Repeat("j", 1024)},
	} {
		entry, err := sealer.seal(cacheIntrospection, scope, tc.token, until, val)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("seal/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := sealer.seal(cacheIntrospection, scope, tc.token, until, val); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("open/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, _, ok := sealer.open(cacheIntrospection, scope, tc.token, entry); !ok {
					b.Fatal("does not open")
				}
			}
		})
	}
}
