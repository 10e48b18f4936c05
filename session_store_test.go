package caddyidentity

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// serverSessionHandler is loginHandler with its sessions in the store of
// instance i.
func serverSessionHandler(op *fakeOP, srv *redisServer, i int, failure string) *Handler {
	h := loginHandler(op)
	h.Store = srv.storeOf(i, failure)
	h.Login.SessionStore = sessionStoreRedis
	return h
}

// sessionKeys returns the store's session keys (refresh locks aside).
func sessionKeys(t *testing.T, srv *redisServer) []string {
	t.Helper()
	keys, err := srv.client().Keys(context.Background(), defaultStorePrefix+"session:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if !strings.HasSuffix(k, ":refresh") {
			out = append(out, k)
		}
	}
	return out
}

// indexKeys returns the keys of the stored sessions' sid and subject index.
func indexKeys(t *testing.T, srv *redisServer) []string {
	t.Helper()
	keys, err := srv.client().Keys(context.Background(), defaultStorePrefix+"session-index:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestServerSessionSharedBetweenInstances: a session created at one
// instance is served by another sharing only the Redis server; the cookie
// holds no claim and no token, the store holds the session sealed under a
// hash of the id with the session's expiry as TTL; a refresh at one
// instance is seen by the other (no second refresh), a logout at one ends
// the session at the other at once.
func TestServerSessionSharedBetweenInstances(t *testing.T) {
	srv := startRedis(t)
	op := newFakeOP(t, fakeOPOptions{})
	op.set(func(op *fakeOP) { op.accessTTL = 60 })
	clock := newClock()
	ha := serverSessionHandler(op, srv, 1, "")
	ha.Login.IdleTimeout = caddy30m()
	a := newBrowser(t, op, ha, clock)
	hb := serverSessionHandler(op, srv, 2, "")
	hb.Login.IdleTimeout = caddy30m()
	hb.now = clock.Now
	b := &browser{t: t, x: newHX(t, hb), op: op}
	if a.x.h.store == b.x.h.store {
		t.Fatal("the two instances share one client: the test would not show that Redis is shared")
	}

	a.signIn("/")
	if a.sessionCookies() != 1 {
		t.Fatalf("%d session cookies, want 1", a.sessionCookies())
	}
	cookie := a.jar["__Host-identity_session"]
	if len(cookie) > 200 || strings.Contains(cookie, testUser) {
		t.Errorf("session cookie of %d bytes: it should hold a sealed id only", len(cookie))
	}
	keys := sessionKeys(t, srv)
	if len(keys) != 1 {
		t.Fatalf("store keys %v, want one session", keys)
	}
	if suffix := keys[0][strings.LastIndexByte(keys[0], ':')+1:]; len(suffix) != 64 {
		t.Errorf("session key %q does not end in a 256-bit hex hash", keys[0])
	}
	val := srv.client().Get(context.Background(), keys[0]).Val()
	for _, clear := range []string{testUser, "refresh", `"sub"`} {
		if strings.Contains(val, clear) {
			t.Errorf("stored session shows %q in clear", clear)
		}
	}
	if ttl := srv.client().PTTL(context.Background(), keys[0]).Val(); ttl <= 0 || ttl > 30*time.Minute {
		t.Errorf("session TTL %v, want within the idle timeout", ttl)
	}

	b.jar = maps.Clone(a.jar) // the same browser, sent to B by the load balancer
	res := b.xhr("/")
	wantStatus(t, res, http.StatusOK)
	if res.up.header.Get("Cookie") != "" {
		t.Errorf("the upstream got the handler's cookie: %q", res.up.header.Get("Cookie"))
	}

	// Refresh at B; A reads the refreshed session and does not refresh.
	clock.Set(clock.Now().Add(45 * time.Second))
	wantStatus(t, b.xhr("/"), http.StatusOK)
	wantStatus(t, a.xhr("/"), http.StatusOK)
	if n := op.refreshCalls.Load(); n != 1 {
		t.Errorf("%d refreshes across two instances, want 1", n)
	}
	if len(b.jar) != 1 || b.jar["__Host-identity_session"] != cookie {
		t.Error("the refresh changed the cookie: it should only change the stored session")
	}

	// RP-initiated logout at A: B refuses the session at once.
	if res := a.req(http.MethodPost, "/oauth2/logout", map[string]string{"Sec-Fetch-Site": "same-origin"}); res.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.status)
	}
	if keys := sessionKeys(t, srv); len(keys) != 0 {
		t.Errorf("stored session kept after logout: %v", keys)
	}
	if idx := indexKeys(t, srv); len(idx) != 0 {
		t.Errorf("index kept after logout of the only session: %v", idx)
	}
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
	if b.sessionCookies() != 0 {
		t.Error("B kept the cookie of a deleted session")
	}

	// Back-channel logout at A: B refuses the session once the ended
	// list reached it.
	clock.Set(clock.Now().Add(time.Second))
	a.signIn("/")
	b.jar = maps.Clone(a.jar)
	wantStatus(t, b.xhr("/"), http.StatusOK)
	if res := postLogoutToken(a.x, op.logoutToken(nil)); res.status != http.StatusOK {
		t.Fatalf("back-channel logout: %d %s", res.status, res.body)
	}
	// B's list already has the sid of the sign-out above: wait for the
	// session itself to be refused (pub/sub delivery is asynchronous).
	for i := 0; ; i++ {
		c := &browser{t: t, x: b.x, op: op, jar: maps.Clone(b.jar)}
		if c.xhr("/").status == http.StatusUnauthorized {
			break
		}
		if i == 1000 {
			t.Fatal("the back-channel logout at A did not reach B within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// postLogoutToken sends a back-channel logout to the handler.
func postLogoutToken(x *hx, token string) hxResult {
	r := httptest.NewRequest(http.MethodPost, "https://example.com/oauth2/backchannel_logout",
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return x.do(r)
}

// TestServerSessionBackchannelDeletesRecords: a back-channel logout deletes
// the stored records it ends, by sid or by subject, with their index, and
// leaves every other record (another sid of the user, another user) in
// place and working; the index never outlives nor undercuts its records.
func TestServerSessionBackchannelDeletesRecords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claims map[string]any // of the logout token
		gone   []string       // sessions deleted, of those below
	}{
		{"by sid", nil, []string{"alice sid-1", "alice sid-1 again"}},
		{"by sub", map[string]any{"sid": nil}, []string{"alice sid-1", "alice sid-1 again", "alice sid-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRedis(t)
			op := newFakeOP(t, fakeOPOptions{})
			clock := newClock()
			h := serverSessionHandler(op, srv, 0, "")
			h.Login.IdleTimeout = caddy30m()
			first := newBrowser(t, op, h, clock)
			sessions := map[string]*browser{}
			for _, s := range []struct{ name, sub, sid string }{
				{"alice sid-1", testUser, "sid-1"},
				{"alice sid-1 again", testUser, "sid-1"},
				{"alice sid-2", testUser, "sid-2"},
				{"bob sid-3", "bob", "sid-3"},
			} {
				op.set(func(op *fakeOP) { op.extra = map[string]any{"sub": s.sub, "sid": s.sid} })
				b := &browser{t: t, x: first.x, op: op, jar: map[string]string{}}
				b.signIn("/")
				sessions[s.name] = b
			}
			records := sessionKeys(t, srv)
			if len(records) != len(sessions) {
				t.Fatalf("%d stored sessions, want %d", len(records), len(sessions))
			}
			ctx := context.Background()
			index := indexKeys(t, srv)
			// alice, bob, sid-1, sid-2, sid-3
			if len(index) != 5 {
				t.Errorf("index keys %v, want 5", index)
			}
			lifetime := first.x.h.login.lifetime
			for _, k := range index {
				if ttl := srv.client().PTTL(ctx, k).Val(); ttl < lifetime-time.Minute || ttl > lifetime+2*time.Second {
					t.Errorf("index %s TTL %v, want the sessions' lifetime %v", k, ttl, lifetime)
				}
				if strings.Contains(k, testUser) || strings.Contains(k, "sid-") {
					t.Errorf("index key %q shows a subject or sid", k)
				}
			}

			if res := postLogoutToken(first.x, op.logoutToken(tc.claims)); res.status != http.StatusOK {
				t.Fatalf("back-channel logout: %d %s", res.status, res.body)
			}
			if left := sessionKeys(t, srv); len(left) != len(records)-len(tc.gone) {
				t.Errorf("%d stored sessions after the logout, want %d", len(left), len(records)-len(tc.gone))
			}
			for name, b := range sessions {
				want := http.StatusOK
				if slices.Contains(tc.gone, name) {
					want = http.StatusUnauthorized
				}
				if res := b.xhr("/"); res.status != want {
					t.Errorf("%s: %d, want %d", name, res.status, want)
				}
			}
			if left := indexKeys(t, srv); len(left) != len(index)-1 {
				t.Errorf("index keys after the logout: %d, want %d (the ended one deleted)", len(left), len(index)-1)
			}
		})
	}
}

// TestServerSessionConcurrentRefresh: twenty requests at two instances,
// all due for a refresh at once, make one refresh at the provider; nobody
// is signed out. Before the access token expires the others go on with
// the session they have; after it (forward_access_token, which needs a
// live token) they wait for the refresh and forward its new token.
func TestServerSessionConcurrentRefresh(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forward bool
		after   time.Duration
	}{
		{"before expiry", false, 45 * time.Second},
		{"after expiry", true, 61 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRedis(t)
			op := newFakeOP(t, fakeOPOptions{})
			op.set(func(op *fakeOP) { op.accessTTL = 60 })
			clock := newClock()
			ha, hb := serverSessionHandler(op, srv, 1, ""), serverSessionHandler(op, srv, 2, "")
			ha.Login.ForwardAccessToken, hb.Login.ForwardAccessToken = tc.forward, tc.forward
			a := newBrowser(t, op, ha, clock)
			hb.now = clock.Now
			xb := newHX(t, hb)
			a.signIn("/")

			clock.Set(clock.Now().Add(tc.after))
			var wg sync.WaitGroup
			results := make([]hxResult, 20)
			for i := range results {
				wg.Go(func() {
					x := a.x
					if i%2 == 1 {
						x = xb
					}
					c := &browser{t: t, x: x, op: op, jar: maps.Clone(a.jar)}
					results[i] = c.xhr("/")
				})
			}
			wg.Wait()
			tokens := map[string]bool{}
			for i, res := range results {
				if res.status != http.StatusOK {
					t.Errorf("request %d: %d", i, res.status)
					continue
				}
				tokens[res.up.header.Get("Authorization")] = true
			}
			if n := op.refreshCalls.Load(); n != 1 {
				t.Errorf("%d refreshes, want 1", n)
			}
			if tc.forward && len(tokens) != 1 {
				t.Errorf("%d different access tokens forwarded after expiry, want the refreshed one only", len(tokens))
			}
			wantStatus(t, a.xhr("/"), http.StatusOK)
		})
	}
}

// TestServerSessionStoreOutage: with Redis stopped, a request with a
// stored session is refused with 503 under either failure policy (no
// instance can know the session), a navigation is not sent to sign in
// (which could not store the session either), and signing out keeps the
// cookie so that the user can try again; once Redis is back, signing in
// works without a restart.
func TestServerSessionStoreOutage(t *testing.T) {
	for _, failure := range []string{"fail_closed", "fail_open_local"} {
		t.Run(failure, func(t *testing.T) {
			srv := startRedis(t)
			op := newFakeOP(t, fakeOPOptions{})
			b := newBrowser(t, op, serverSessionHandler(op, srv, 0, failure), newClock())
			b.signIn("/")
			srv.stop()
			wantFailure(t, b.xhr("/"), http.StatusServiceUnavailable, "store_unavailable")
			wantFailure(t, b.navigate("/"), http.StatusServiceUnavailable, "store_unavailable")
			res := b.req(http.MethodPost, "/oauth2/logout", map[string]string{"Sec-Fetch-Site": "same-origin"})
			wantFailure(t, res, http.StatusServiceUnavailable, "store_unavailable")
			if b.sessionCookies() != 1 {
				t.Error("a logout that could not end the stored session deleted the cookie")
			}
			// Without a session cookie the store is not needed: a sign-in
			// starts, and its callback fails with 503.
			delete(b.jar, "__Host-identity_session")
			res = b.req(http.MethodGet, b.authorize(b.startLogin("/")), nil)
			wantFailure(t, res, http.StatusServiceUnavailable, "store_unavailable")
			if n := b.x.logs.FilterMessageSnippet("shared store unreachable").Len(); n != 1 {
				t.Errorf("outage logged %d times, want once", n)
			}

			srv.start()
			for i := 0; ; i++ {
				res := b.req(http.MethodGet, b.authorize(b.startLogin("/")), nil)
				if res.status == http.StatusSeeOther {
					break
				}
				if res.status != http.StatusServiceUnavailable || i == 200 {
					t.Fatalf("sign-in after Redis came back: %d", res.status)
				}
				time.Sleep(50 * time.Millisecond)
			}
			wantStatus(t, b.xhr("/"), http.StatusOK)
		})
	}
}

// TestServerSessionMadeUpCookie: a cookie that does not open never costs a
// round trip to the store.
func TestServerSessionMadeUpCookie(t *testing.T) {
	srv := startRedis(t)
	op := newFakeOP(t, fakeOPOptions{})
	b := newBrowser(t, op, serverSessionHandler(op, srv, 0, ""), newClock())
	b.signIn("/")
	b.jar["__Host-identity_session"] = "1." + flipLast(b.jar["__Host-identity_session"][2:])
	before := b.x.h.store.commands.Load()
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
	if n := b.x.h.store.commands.Load() - before; n != 0 {
		t.Errorf("a made-up cookie cost %d round trips", n)
	}
}

func TestServerSessionConfig(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	h := loginHandler(op)
	h.Login.SessionStore = sessionStoreRedis
	if err := provisionErr(h); err == nil || !strings.Contains(err.Error(), "store redis") {
		t.Errorf("session_store redis without a store: %v", err)
	}
	h = loginHandler(op)
	h.Login.SessionStore = "memcached"
	if err := provisionErr(h); err == nil || !strings.Contains(err.Error(), "session_store") {
		t.Errorf("unknown session_store: %v", err)
	}
	d := caddyfile.NewTestDispenser(`identity {
		issuer https://op.example.com
		login {
			client_id app
			session_key ` + testKey1 + `
			session_store redis
		}
		store redis
	}`)
	var hc Handler
	if err := hc.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if hc.Login.SessionStore != sessionStoreRedis {
		t.Errorf("session_store = %q", hc.Login.SessionStore)
	}
}

// TestServerSessionRoundTrips counts the commands each kind of request
// sends to the store: one per session request (GETEX, which also slides
// the idle expiry), one per sign-in (SET with the SADD and EXPIREs of its
// sid and subject index, in one MULTI/EXEC), three per logout (GETEX, the
// pipelined DEL and SREMs from the index, and the pipelined SET and
// PUBLISH that list the session's sid as ended for the other instances),
// four per refresh (GETEX, the lock script, SET XX, DEL of the lock), two
// per back-channel logout (the pipelined SET and PUBLISH, and the script
// that deletes the ended records).
func TestServerSessionRoundTrips(t *testing.T) {
	srv := startRedis(t)
	op := newFakeOP(t, fakeOPOptions{})
	op.set(func(op *fakeOP) { op.accessTTL = 60 })
	clock := newClock()
	b := newBrowser(t, op, serverSessionHandler(op, srv, 0, ""), clock)
	count := b.x.h.store.commands.Load
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized) // no cookie: no round trip
	b.signIn("/")                                      // opens the connections
	for _, step := range []struct {
		name string
		do   func()
		want int64
	}{
		{"session request", func() { wantStatus(t, b.xhr("/"), http.StatusOK) }, 1},
		{"refresh", func() {
			clock.Set(clock.Now().Add(45 * time.Second))
			wantStatus(t, b.xhr("/"), http.StatusOK)
		}, 4},
		{"sign-in", func() {
			delete(b.jar, "__Host-identity_session") // another browser
			b.signIn("/")
		}, 1},
		{"logout", func() {
			if res := b.req(http.MethodPost, "/oauth2/logout", map[string]string{"Sec-Fetch-Site": "same-origin"}); res.status != http.StatusSeeOther {
				t.Fatalf("logout: %d", res.status)
			}
		}, 3},
		{"back-channel logout", func() {
			if res := postLogoutToken(b.x, op.logoutToken(map[string]any{"sid": nil})); res.status != http.StatusOK {
				t.Fatalf("back-channel logout: %d %s", res.status, res.body)
			}
		}, 2},
	} {
		before := count()
		step.do()
		if n := count() - before; n != step.want {
			t.Errorf("%s: %d round trips, want %d", step.name, n, step.want)
		}
	}
}

// BenchmarkStoreSession pairs a request with a cookie session against the
// same request with a session in Redis on loopback: each iteration sends
// one of each, in alternating order, and the medians of both are reported
// (cookie-ns/req, redis-ns/req) with their ratio, so that the load of a
// shared machine weighs on both alike. The difference is the cost of
// session_store redis per session request.
func BenchmarkStoreSession(b *testing.B) {
	srv := startRedis(b)
	op := newFakeOP(b, fakeOPOptions{})
	type variant struct {
		h       *Handler
		cookies []*http.Cookie
		took    []time.Duration
	}
	newVariant := func(store bool) *variant {
		h := loginHandler(op)
		if store {
			h.Store = srv.storeOf(0, "")
			h.Login.SessionStore = sessionStoreRedis
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		b.Cleanup(cancel)
		if err := h.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Cleanup() })
		l := h.login
		now := time.Now()
		s := &session{Issuer: l.issuer, Subject: testUser, Claims: map[string]any{"email": "alice@example.com", "name": "Alice"},
			Created: now.Unix(), Seen: now.Unix(), AccessExpiry: now.Add(time.Hour).Unix(), RefreshToken: "rt", IDToken: "id"}
		first := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
		rec := httptest.NewRecorder()
		if err := l.writeSession(rec, first, l.jar(first), s); err != nil {
			b.Fatal(err)
		}
		return &variant{h: h, cookies: rec.Result().Cookies(), took: make([]time.Duration, 0, b.N)}
	}
	cookie, stored := newVariant(false), newVariant(true)
	serve := func(v *variant) {
		r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
		r.Header.Set("Sec-Fetch-Mode", "cors")
		for _, c := range v.cookies {
			r.AddCookie(c)
		}
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		start := time.Now()
		err := v.h.ServeHTTP(w, r, benchNext)
		v.took = append(v.took, time.Since(start))
		if err != nil || w.Code != http.StatusOK {
			b.Fatalf("status %d, %v", w.Code, err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			serve(cookie)
			serve(stored)
		} else {
			serve(stored)
			serve(cookie)
		}
	}
	b.StopTimer()
	mc, mr := medianDuration(cookie.took), medianDuration(stored.took)
	b.ReportMetric(float64(mc.Nanoseconds()), "cookie-ns/req")
	b.ReportMetric(float64(mr.Nanoseconds()), "redis-ns/req")
	b.ReportMetric(float64(mr)/float64(mc), "redis/cookie")
}

// medianDuration returns the median of d (which it sorts).
func medianDuration(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
