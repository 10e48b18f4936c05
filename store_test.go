package caddyidentity

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// redisServer is a redis-server started by a test on a free loopback port,
// with its own temporary directory, stopped at the end of the test.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server, or skips the test loudly when it is not
// installed (fails under CI=true: .ci/run installs it).
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed (apt-get install redis-server)")
		}
		t.Skip("SKIPPED: redis-server not installed (apt-get install redis-server); the shared-store tests did not run")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &redisServer{t: t, addr: addr, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs the server and waits until it answers.
func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--enable-debug-command", "local", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer c.Close()
	for i := 0; ; i++ {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		} else if i == 100 {
			s.t.Fatalf("redis-server does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server, once.
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// client is a separate connection for the test itself.
func (s *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// storeOf returns a store configuration for the server. Instances in one
// process with the same configuration share one client and one local
// state, as the sites of one Caddy do; the timeout tells the instances of
// a test apart, so that each has its own client and local state and
// shares only the server, as separate Caddy processes do. The timeout is
// generous (a loaded machine, the race detector): the test that is about
// the timeout sets its own.
func (s *redisServer) storeOf(instance int, failure string) *StoreConfig {
	return &StoreConfig{Redis: &RedisStoreConfig{
		Address: s.addr,
		Timeout: caddy.Duration(2*time.Second + time.Duration(instance)*time.Millisecond),
		Failure: failure,
	}}
}

// TestStoreDPoPProofSharedBetweenInstances: a proof accepted by one
// instance is refused by another one that shares only the Redis server;
// fresh proofs pass at either.
func TestStoreDPoPProofSharedBetweenInstances(t *testing.T) {
	srv := startRedis(t)
	env := newDPoPEnv(t)
	newInstance := func(i int) *hx {
		h := dpopHandler(env.iss, "")
		h.Store = srv.storeOf(i, "")
		return newHX(t, h)
	}
	a, b := newInstance(1), newInstance(2)
	if a.h.store == b.h.store {
		t.Fatal("the two instances share one client: the test would not show that Redis is shared")
	}
	proof := proofFor(t, env.key, "GET", "http://example.com/", env.token)
	wantStatus(t, a.do(dpopRequest("GET", "/", env.token, proof)), 200)
	wantRefusal(t, b.do(dpopRequest("GET", "/", env.token, proof)), 401, "dpop_proof", `error="invalid_dpop_proof"`, "already used")
	wantRefusal(t, a.do(dpopRequest("GET", "/", env.token, proof)), 401, "dpop_proof", "already used")
	fresh := proofFor(t, env.key, "GET", "http://example.com/", env.token)
	wantStatus(t, b.do(dpopRequest("GET", "/", env.token, fresh)), 200)

	// The key is the prefix and the hex hash of (jkt, jti), with the
	// proof window as TTL: nothing the client chose is stored.
	keys, err := srv.client().Keys(context.Background(), defaultStorePrefix+"dpop:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v (%v), want the two accepted proofs", keys, err)
	}
	for _, k := range keys {
		if len(k) != len(defaultStorePrefix+"dpop:")+32 {
			t.Errorf("key %q is not prefix + 128-bit hex hash", k)
		}
		ttl := srv.client().PTTL(context.Background(), k).Val()
		if ttl <= 0 || ttl > identity.DefaultDPoPMaxAge {
			t.Errorf("key %q TTL %v, want within the proof window %v", k, ttl, identity.DefaultDPoPMaxAge)
		}
	}
}

// TestStoreRoundTrips: one round trip per DPoP proof, none for an
// ordinary bearer request, counted by the client's hook.
func TestStoreRoundTrips(t *testing.T) {
	srv := startRedis(t)
	env := newDPoPEnv(t)
	h := dpopHandler(env.iss, "")
	h.Store = srv.storeOf(0, "")
	x := newHX(t, h)
	plain := env.iss.Token(t, "bob", nil)
	count := func() int64 { return x.h.store.commands.Load() }

	// A first DPoP request opens the connection.
	wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))), 200)
	before := count()
	for range 3 {
		wantStatus(t, x.get("/", bearer(plain)), 200)
	}
	if n := count() - before; n != 0 {
		t.Errorf("bearer requests made %d round trips to the store, want 0", n)
	}
	before = count()
	for range 3 {
		wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))), 200)
	}
	if n := count() - before; n != 3 {
		t.Errorf("3 DPoP requests made %d round trips, want 3", n)
	}
}

// TestStoreOutage: with Redis stopped mid-run, fail_closed refuses DPoP
// requests with 503 and fail_open_local accepts fresh proofs with the
// local cache (refusing local replays); both log the outage once and use
// Redis again, without a restart, once it is back.
func TestStoreOutage(t *testing.T) {
	for _, tc := range []struct {
		failure    string
		downStatus int
	}{
		{"fail_closed", http.StatusServiceUnavailable},
		{"fail_open_local", http.StatusOK},
	} {
		t.Run(tc.failure, func(t *testing.T) {
			srv := startRedis(t)
			env := newDPoPEnv(t)
			h := dpopHandler(env.iss, "")
			h.Store = srv.storeOf(0, tc.failure)
			x := newHX(t, h)
			fresh := func() *http.Request {
				return dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))
			}
			wantStatus(t, x.do(fresh()), 200)

			srv.stop()
			plain := env.iss.Token(t, "bob", nil)
			wantStatus(t, x.get("/", bearer(plain)), 200) // bearer tokens never need the store
			proof := proofFor(t, env.key, "GET", "http://example.com/", env.token)
			for range 3 {
				res := x.do(dpopRequest("GET", "/", env.token, proof))
				if tc.downStatus == http.StatusServiceUnavailable {
					wantRefusal(t, res, 503, "store_unavailable")
				} else {
					wantStatus(t, res, 200)
					wantRefusal(t, x.do(dpopRequest("GET", "/", env.token, proof)), 401, "dpop_proof", "already used")
					proof = proofFor(t, env.key, "GET", "http://example.com/", env.token)
				}
			}
			if n := x.logs.FilterMessageSnippet("shared store unreachable").Len(); n != 1 {
				t.Errorf("outage logged %d times, want once", n)
			}

			srv.start()
			// The pool redials in the background after failed dials
			// (about once a second): wait, at most 10 s, for the first
			// request that Redis answers.
			var res hxResult
			for i := 0; i < 200; i++ {
				if res = x.do(fresh()); res.status == 200 && !x.h.store.down.Load() {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			wantStatus(t, res, 200)
			if n := x.logs.FilterMessageSnippet("shared store reachable again").Len(); n != 1 {
				t.Errorf("recovery logged %d times, want once", n)
			}
			p := proofFor(t, env.key, "GET", "http://example.com/", env.token)
			wantStatus(t, x.do(dpopRequest("GET", "/", env.token, p)), 200)
			if n, _ := srv.client().Exists(context.Background(), defaultStorePrefix+"dpop:"+hexKey(t, p, env)).Result(); n != 1 {
				t.Error("after recovery the proof is not recorded in Redis")
			}
		})
	}
}

// hexKey is the store key suffix of a proof.
func hexKey(t *testing.T, proof string, env *dpopEnv) string {
	t.Helper()
	p, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
		Method: "GET", URI: "http://example.com/", AccessToken: env.token, BoundJKT: env.key.Thumbprint(),
	})
	if err != nil {
		t.Fatal(err)
	}
	k := identity.DPoPReplayKey(p)
	return fmt.Sprintf("%x", k[:])
}

// TestStoreSlowRedis: a Redis that does not answer (DEBUG SLEEP) holds a
// DPoP request no longer than the timeout: it gets the failure policy's
// answer instead of hanging.
func TestStoreSlowRedis(t *testing.T) {
	srv := startRedis(t)
	env := newDPoPEnv(t)
	h := dpopHandler(env.iss, "")
	h.Store = srv.storeOf(0, "fail_closed")
	h.Store.Redis.Timeout = caddy.Duration(200 * time.Millisecond)
	x := newHX(t, h)
	wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))), 200)

	sleeping := make(chan error, 1)
	go func() { sleeping <- srv.client().Do(context.Background(), "DEBUG", "SLEEP", "3").Err() }()
	// Wait until the server is inside the sleep: a PING with a short
	// timeout stops answering.
	probe := redis.NewClient(&redis.Options{Addr: srv.addr, MaxRetries: -1, ReadTimeout: 50 * time.Millisecond})
	defer probe.Close()
	for probe.Ping(context.Background()).Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r := dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token)).WithContext(ctx)
	wantRefusal(t, x.do(r), 503, "store_unavailable")
	if ctx.Err() != nil {
		t.Error("the request outlived a one-second deadline: the store timeout (200ms) did not bound it")
	}
	if err := <-sleeping; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
}

// TestStoreBackchannelLogoutSharedBetweenInstances: a back-channel logout
// received by one instance ends the session at another that shares only
// the Redis server, once pub/sub delivered it (see the README for the
// staleness, measured by BenchmarkStoreEndedPropagation), and an instance
// started later loads it from Redis.
func TestStoreBackchannelLogoutSharedBetweenInstances(t *testing.T) {
	srv := startRedis(t)
	op := newFakeOP(t, fakeOPOptions{})
	clock := newClock()
	ha := loginHandler(op)
	ha.Store = srv.storeOf(1, "")
	a := newBrowser(t, op, ha, clock)
	hb := loginHandler(op)
	hb.Store = srv.storeOf(2, "")
	hb.now = clock.Now
	b := &browser{t: t, x: newHX(t, hb), op: op}
	if a.x.h.login.ended == b.x.h.login.ended {
		t.Fatal("the two instances share one ended list: the test would not show that Redis is shared")
	}
	a.signIn("/")
	b.jar = maps.Clone(a.jar)                // the same browser, sent to B by the load balancer
	wantStatus(t, b.xhr("/"), http.StatusOK) // the session cookie works at both

	r := httptest.NewRequest(http.MethodPost, "https://example.com/oauth2/backchannel_logout",
		strings.NewReader(url.Values{"logout_token": {op.logoutToken(nil)}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res := a.x.do(r); res.status != http.StatusOK {
		t.Fatalf("back-channel logout at A: %d %s", res.status, res.body)
	}
	wantStatus(t, a.xhr("/"), http.StatusUnauthorized)
	cookies := maps.Clone(b.jar)
	waitEnded(t, b)
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)

	hc := loginHandler(op)
	hc.Store = srv.storeOf(3, "")
	hc.now = clock.Now
	c := &browser{t: t, x: newHX(t, hc), op: op, jar: cookies}
	waitEnded(t, c)
	wantStatus(t, c.xhr("/"), http.StatusUnauthorized)
}

// waitEnded waits, for at most 10 s (a resubscription after an outage
// backs off up to 2 s), until the instance's local list has an
// ended session: pub/sub delivery (or the reload after subscribing) is
// asynchronous.
func waitEnded(t *testing.T, b *browser) {
	t.Helper()
	ended := b.x.h.login.ended
	for i := 0; ; i++ {
		ended.mu.Lock()
		n := len(ended.entries)
		ended.mu.Unlock()
		if n > 0 {
			return
		}
		if i == 1000 {
			t.Fatal("the back-channel logout did not reach the other instance within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStoreConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RedisStoreConfig
		want string
	}{
		{"bad address", RedisStoreConfig{Address: "nohost"}, "address"},
		{"negative timeout", RedisStoreConfig{Timeout: -1}, "timeout"},
		{"negative db", RedisStoreConfig{DB: -1}, "db"},
		{"unknown failure", RedisStoreConfig{Failure: "fail_open"}, "failure"},
		{"unknown cache", RedisStoreConfig{Caches: []string{"jwks"}}, "caches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.cfg.resolved(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one about %s", err, tc.want)
			}
		})
	}
	c, err := RedisStoreConfig{}.resolved()
	if err != nil || c.Address != defaultStoreAddress || c.KeyPrefix != defaultStorePrefix ||
		time.Duration(c.Timeout) != defaultStoreTimeout || c.Failure != "fail_closed" {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

func TestStoreEscapeGlob(t *testing.T) {
	for in, want := range map[string]string{
		"caddy-identity:": "caddy-identity:",
		`a*b?c[d]e\f`:     `a\*b\?c\[d\]e\\f`,
	} {
		if got := escapeGlob(in); got != want {
			t.Errorf("escapeGlob(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkStoreDPoP pairs a DPoP request with the in-process replay
// cache against the same request with the Redis store on loopback, in one
// run: the difference is the store's cost per DPoP request. Proofs are
// signed before the timer starts.
func BenchmarkStoreDPoP(b *testing.B) {
	srv := startRedis(b)
	iss := identitytest.NewIssuer(b)
	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		b.Fatal(err)
	}
	token := iss.Token(b, "alice", map[string]any{"cnf": map[string]any{"jkt": key.Thumbprint()}})
	for _, tc := range []struct {
		name  string
		store *StoreConfig
	}{
		{"in-process", nil},
		{"redis-loopback", srv.storeOf(0, "")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := dpopHandler(iss, "")
			h.Store = tc.store
			benchDPoP(b, h, key, token, "")
		})
	}
}

// BenchmarkStoreEndedPropagation measures the staleness of the ended
// sessions: from the back-channel logout's write at one instance to the
// entry in another instance's local list, through Redis pub/sub.
func BenchmarkStoreEndedPropagation(b *testing.B) {
	srv := startRedis(b)
	s1, _ := srv.storeOf(1, "").Redis.resolved()
	s2, _ := srv.storeOf(2, "").Redis.resolved()
	st1, err1 := newSharedStore(s1, zap.NewNop())
	st2, err2 := newSharedStore(s2, zap.NewNop())
	if err1 != nil || err2 != nil {
		b.Fatal(err1, err2)
	}
	defer st1.Destruct()
	defer st2.Destruct()
	now := time.Now
	l1, l2 := newExpiringSet[time.Time](maxEnded, now), newExpiringSet[time.Time](maxEnded, now)
	f1, f2 := st1.followEnded("https://op", "client", l1), st2.followEnded("https://op", "client", l2)
	defer f1.stop()
	defer f2.stop()
	// Both subscribed: a first entry has arrived.
	_ = f1.publish(context.Background(), "sid:warm", now(), now().Add(time.Minute))
	for _, ok := l2.get("sid:warm"); !ok; _, ok = l2.get("sid:warm") {
		time.Sleep(time.Millisecond)
	}
	b.ResetTimer()
	for i := range b.N {
		key := "sid:" + strconv.Itoa(i)
		if err := f1.publish(context.Background(), key, now(), now().Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
		for _, ok := l2.get(key); !ok; _, ok = l2.get(key) {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

func TestStoreCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`identity {
		issuer https://op.example.com
		store redis {
			address redis.internal:6380
			username caddy
			password {env.REDIS_PASSWORD}
			db 2
			tls
			key_prefix fleet-a:
			timeout 100ms
			failure fail_open_local
			caches introspection userinfo
			cache_secret {env.IDENTITY_CACHE_SECRET}
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := RedisStoreConfig{Address: "redis.internal:6380", Username: "caddy", Password: "{env.REDIS_PASSWORD}", DB: 2,
		TLS: true, KeyPrefix: "fleet-a:", Timeout: caddy.Duration(100 * time.Millisecond), Failure: "fail_open_local",
		Caches: []string{"introspection", "userinfo"}, CacheSecret: "{env.IDENTITY_CACHE_SECRET}"}
	if h.Store == nil || h.Store.Redis == nil || !reflect.DeepEqual(*h.Store.Redis, want) {
		t.Fatalf("store = %+v, want %+v", h.Store, want)
	}
	for _, bad := range []string{
		`store memcached {
		}`,
		`store redis {
			failure open
		}`,
		`store redis {
			timeout 1s
			timeout 2s
		}`,
		`store redis {
			adress x:1
		}`,
		`store redis {
			caches tokens
		}`,
		`store redis {
			caches
		}`,
	} {
		d := caddyfile.NewTestDispenser("identity {\nissuer https://op.example.com\n" + bad + "\n}")
		if err := new(Handler).UnmarshalCaddyfile(d); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

// TestStoreNoGoroutineLeak: the pub/sub feed and the client's connections
// end with the last handler that uses the store, without an outage being
// logged for the closed subscription.
func TestStoreNoGoroutineLeak(t *testing.T) {
	srv := startRedis(t)
	op := newFakeOP(t, fakeOPOptions{})
	ignore := goleak.IgnoreCurrent()
	h := loginHandler(op)
	h.Store = srv.storeOf(0, "")
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, x: &hx{t: t, h: h, logs: logs}, op: op, jar: map[string]string{}}
	b.signIn("/")
	feed := h.login.feed
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	cancel()
	// A feed blocked on its connection would hide behind the ignored
	// runtime_pollWait of checkNoHandlerGoroutines: check it directly.
	select {
	case <-feed.done:
	default:
		t.Error("the pub/sub feed still runs after the last handler was cleaned up")
	}
	checkNoHandlerGoroutines(t, ignore)
	if n := logs.FilterMessageSnippet("shared store unreachable").Len(); n != 0 {
		t.Errorf("closing the subscription logged %d outages", n)
	}
}

// TestStoreEndedOutage: while Redis is down a back-channel logout is
// applied where it was received and answered 503 (fail_closed); when Redis
// is back the instances use it again without restart: the provider's
// retry of the same logout token (not taken for a replay) reaches the
// other instance, and a second retry after the 200 is a replay.
func TestStoreEndedOutage(t *testing.T) {
	srv := startRedis(t)
	op := newFakeOP(t, fakeOPOptions{})
	clock := newClock()
	ha := loginHandler(op)
	ha.Store = srv.storeOf(1, "fail_closed")
	a := newBrowser(t, op, ha, clock)
	hb := loginHandler(op)
	hb.Store = srv.storeOf(2, "fail_closed")
	hb.now = clock.Now
	b := &browser{t: t, x: newHX(t, hb), op: op}
	a.signIn("/")
	b.jar = maps.Clone(a.jar) // the same browser, sent to B by the load balancer

	srv.stop()
	logoutToken := op.logoutToken(nil)
	r := httptest.NewRequest(http.MethodPost, "https://example.com/oauth2/backchannel_logout",
		strings.NewReader(url.Values{"logout_token": {logoutToken}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res := a.x.do(r); res.status != http.StatusServiceUnavailable {
		t.Errorf("back-channel logout with Redis down: %d, want 503", res.status)
	}
	wantStatus(t, a.xhr("/"), http.StatusUnauthorized) // ended where it was received
	wantStatus(t, b.xhr("/"), http.StatusOK)           // not shared: Redis is down

	srv.start()
	// The provider retries the same logout token once Redis is back (a
	// 503 did not record its jti): A's client redials in the background
	// (about once a second after failed dials), so it may be refused with
	// 503 a few times first; B gets it by message or, if it resubscribes
	// later, by the reload that follows.
	for i := 0; ; i++ {
		r := httptest.NewRequest(http.MethodPost, "https://example.com/oauth2/backchannel_logout",
			strings.NewReader(url.Values{"logout_token": {logoutToken}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res := a.x.do(r)
		if res.status == http.StatusOK {
			break
		}
		if res.status != http.StatusServiceUnavailable || i == 200 {
			t.Fatalf("back-channel logout after Redis came back: %d", res.status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitEnded(t, b)
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
	r = httptest.NewRequest(http.MethodPost, "https://example.com/oauth2/backchannel_logout",
		strings.NewReader(url.Values{"logout_token": {logoutToken}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res := a.x.do(r); res.status != http.StatusBadRequest {
		t.Errorf("logout token replayed after it was processed: %d, want 400", res.status)
	}
}
