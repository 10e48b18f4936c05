package caddyidentity

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// StoreConfig is where the state that several Caddy instances must share
// is kept. Without it everything stays in the process, as on a single
// instance.
type StoreConfig struct {
	// Redis keeps the shared state in Redis (or Valkey): the DPoP proofs
	// already accepted and the sessions ended by back-channel logout.
	Redis *RedisStoreConfig `json:"redis,omitempty"`
}

// RedisStoreConfig is a Redis (or Valkey) server shared by the instances.
// Every site of one Caddy with the same settings uses one client.
type RedisStoreConfig struct {
	// Address is the server's host:port; default 127.0.0.1:6379.
	Address string `json:"address,omitempty"`
	// Username and Password authenticate to the server (ACL, or the
	// password alone for requirepass). Use a placeholder such as
	// {env.REDIS_PASSWORD} to keep the password out of the config.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the database number; default 0.
	DB int `json:"db,omitempty"`
	// TLS connects with TLS, checking the server's certificate against the
	// system roots and the host name of Address.
	TLS bool `json:"tls,omitempty"`
	// KeyPrefix starts every key and channel name; default
	// "caddy-identity:". Give each fleet sharing a server its own.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout bounds each operation, dial included: a request that needs
	// the store never waits longer for it. Default 250ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Failure is what happens to a request that needs the store while it
	// cannot be reached: fail_closed (default) refuses it with 503,
	// fail_open_local uses this instance's own state instead, as without a
	// store (a DPoP proof may then be replayed once at each other
	// instance). Either way the outage is logged once, and the store is
	// used again as soon as it answers. Stored sessions (login
	// session_store redis) are refused with 503 under either policy, and
	// the shared caches are skipped.
	Failure string `json:"failure,omitempty"`
	// Caches names the answer caches shared through the store:
	// "introspection" (active introspection answers) and "userinfo" (the
	// userinfo claims of tokens). An instance then asks the provider about
	// a token once for the fleet, not once per instance. Entries are
	// sealed under CacheSecret and the token, hold no token, and live no
	// longer than the token nor the configured cache_ttl.
	Caches []string `json:"caches,omitempty"`
	// CacheSecret seals the shared cache entries and keys their names:
	// required with Caches, refused without. At least 32 bytes after
	// placeholders are replaced, high-entropy (such as the output of
	// `openssl rand -base64 32`), the same on every instance; an instance
	// with another secret neither reads nor spoils the others' entries, it
	// only misses. Give it as a placeholder such as
	// {env.IDENTITY_CACHE_SECRET}: the JSON config is readable on the
	// admin API. Never logged. Changing it costs one provider call per
	// token (the old entries no longer open, and expire).
	CacheSecret string `json:"cache_secret,omitempty"`
}

const (
	defaultStoreAddress = "127.0.0.1:6379"
	defaultStorePrefix  = "caddy-identity:"
	defaultStoreTimeout = 250 * time.Millisecond
	// storePoolSize bounds the connections to the store per Caddy: a
	// request that finds them all busy waits at most Timeout for one.
	storePoolSize = 32
)

// storePool shares one client per store configuration between the sites
// of a Caddy and across config reloads.
var storePool = caddy.NewUsagePool()

// sharedStore is a connected Redis store.
type sharedStore struct {
	client   *redis.Client
	prefix   string
	timeout  time.Duration
	failOpen bool
	logger   *zap.Logger
	// down is set while the store is unreachable, so that an outage is
	// logged once when it starts and once when it ends.
	down atomic.Bool
	// commands counts the commands sent (pipelines count once): the round
	// trips, for tests and benchmarks.
	commands atomic.Int64
	// caches are the shared caches (see RedisStoreConfig.Caches), sealer
	// seals their entries; probed is when one last tried the store during
	// an outage (Unix ns); unopenedAt is when an entry that did not open
	// was last logged (Unix ns), unopenedN how many did not since.
	caches     []string
	sealer     *cacheSealer
	probed     atomic.Int64
	unopenedAt atomic.Int64
	unopenedN  atomic.Int64
}

// resolved returns the configuration with defaults and placeholders
// applied, and checks it.
func (c RedisStoreConfig) resolved() (RedisStoreConfig, error) {
	repl := caddy.NewReplacer()
	c.Address = repl.ReplaceKnown(c.Address, "")
	c.Username = repl.ReplaceKnown(c.Username, "")
	c.Password = repl.ReplaceKnown(c.Password, "")
	if c.Address == "" {
		c.Address = defaultStoreAddress
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return c, fmt.Errorf("store redis: address %q: %v", c.Address, err)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = defaultStorePrefix
	}
	if c.Timeout < 0 {
		return c, fmt.Errorf("store redis: timeout %v is negative", time.Duration(c.Timeout))
	}
	if c.Timeout == 0 {
		c.Timeout = caddy.Duration(defaultStoreTimeout)
	}
	if c.DB < 0 {
		return c, fmt.Errorf("store redis: db %d is negative", c.DB)
	}
	switch c.Failure {
	case "":
		c.Failure = "fail_closed"
	case "fail_closed", "fail_open_local":
	default:
		return c, fmt.Errorf("store redis: failure must be fail_closed or fail_open_local, not %q", c.Failure)
	}
	for _, k := range c.Caches {
		if k != cacheIntrospection && k != cacheUserinfo {
			return c, fmt.Errorf("store redis: caches are introspection and userinfo, not %q", k)
		}
	}
	raw := c.CacheSecret
	c.CacheSecret = repl.ReplaceKnown(raw, "")
	switch n := len(c.CacheSecret); {
	case len(c.Caches) == 0 && n > 0:
		return c, errors.New("store redis: cache_secret is set but caches is not: it would seal nothing")
	case len(c.Caches) > 0 && n == 0 && raw != "":
		return c, cacheSecretError(fmt.Sprintf("store redis: cache_secret %s is empty once its placeholders are replaced (an environment variable not set?)", raw))
	case len(c.Caches) > 0 && n == 0:
		return c, cacheSecretError(fmt.Sprintf("store redis: caches need cache_secret, the same secret of at least %d bytes on every instance (e.g. cache_secret {env.IDENTITY_CACHE_SECRET} set to the output of `openssl rand -base64 32`)", minCacheSecret))
	case len(c.Caches) > 0 && n < minCacheSecret:
		return c, cacheSecretError(fmt.Sprintf("store redis: cache_secret has %d bytes, want at least %d (e.g. the output of `openssl rand -base64 32`)", n, minCacheSecret))
	}
	return c, nil
}

// cacheSecretError is a cache_secret missing or too short once its
// placeholders are replaced. The Caddyfile adapter lets it pass when the
// secret is a placeholder, whose value may be known only to the server:
// Provision measures it there. It names the secret's length, never its
// value.
type cacheSecretError string

func (e cacheSecretError) Error() string { return string(e) }

// acquireStore sets h.store to the shared client of the configuration,
// created on first use, and h.storeKey to its key in storePool.
func (h *Handler) acquireStore(cfg *StoreConfig, logger *zap.Logger) error {
	if cfg == nil || cfg.Redis == nil {
		return nil
	}
	c, err := cfg.Redis.resolved()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:])
	val, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newSharedStore(c, logger)
	})
	if err != nil {
		return err
	}
	h.store, h.storeKey = val.(*sharedStore), key
	return nil
}

// releaseStore releases the shared client, once.
func (h *Handler) releaseStore() error {
	if h.store == nil {
		return nil
	}
	h.store = nil
	_, err := storePool.Delete(h.storeKey)
	return err
}

// newSharedStore makes the client. It connects lazily: a store that is
// down when Caddy starts is an outage like any other, not a config error.
func newSharedStore(c RedisStoreConfig, logger *zap.Logger) (*sharedStore, error) {
	quietRedis.Do(func() { redis.SetLogger(redisDebugLog{logger.Named("redis")}) })
	timeout := time.Duration(c.Timeout)
	opts := &redis.Options{
		Addr:     c.Address,
		Username: c.Username,
		Password: c.Password,
		DB:       c.DB,
		// No retries: one attempt bounded by the timeout, so a request
		// never waits for the store longer than Timeout.
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		PoolSize:              storePoolSize,
		DisableIdentity:       true,
	}
	if c.TLS {
		host, _, _ := net.SplitHostPort(c.Address)
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	s := &sharedStore{
		client:   redis.NewClient(opts),
		prefix:   c.KeyPrefix,
		timeout:  timeout,
		failOpen: c.Failure == "fail_open_local",
		caches:   c.Caches,
		logger:   logger.With(zap.String("store", "redis"), zap.String("address", c.Address)),
	}
	if len(c.Caches) > 0 {
		var err error
		if s.sealer, err = newCacheSealer([]byte(c.CacheSecret)); err != nil {
			_ = s.client.Close()
			return nil, fmt.Errorf("store redis: cache_secret: %w", err)
		}
	}
	s.client.AddHook(commandCounter{&s.commands})
	return s, nil
}

// Destruct closes the client when its last user is cleaned up.
func (s *sharedStore) Destruct() error {
	return s.client.Close()
}

// note records the outcome of an operation: the first failure of an
// outage and the first success after it are logged, nothing else.
func (s *sharedStore) note(err error) {
	if err == nil {
		if s.down.CompareAndSwap(true, false) {
			s.logger.Info("shared store reachable again")
		}
		return
	}
	if s.down.CompareAndSwap(false, true) {
		policy := "requests that need it are refused with 503 (failure fail_closed)"
		if s.failOpen {
			policy = "each instance uses its own state until it is back (failure fail_open_local)"
		}
		s.logger.Error("shared store unreachable: "+policy, zap.Error(err))
	}
}

// admitProof records an accepted DPoP proof for ttl, in one round trip
// (SET NX PX), and reports whether no instance had recorded it before.
func (s *sharedStore) admitProof(ctx context.Context, key [16]byte, ttl time.Duration) (bool, error) {
	if ttl < time.Second {
		ttl = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	fresh, err := s.client.SetNX(ctx, s.prefix+"dpop:"+hex.EncodeToString(key[:]), "", ttl).Result()
	s.note(err)
	return fresh, err
}

// quietRedis routes go-redis's own log lines, once per process, to the
// debug level: it prints every failed dial, and an outage is logged once
// by note instead.
var quietRedis sync.Once

// redisDebugLog is go-redis's logger at the debug level.
type redisDebugLog struct{ l *zap.Logger }

func (r redisDebugLog) Printf(_ context.Context, format string, v ...any) {
	if ce := r.l.Check(zap.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}

// commandCounter counts the commands a client sends, but for the
// handshake of each new connection (HELLO, CLIENT): the round trips that
// requests make.
type commandCounter struct{ n *atomic.Int64 }

func (commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "hello" && name != "client" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// endedFeed keeps one issuer and client's local list of ended sessions
// current with the store: a back-channel logout at any instance is written
// to the store with its TTL and published on the feed's channel; every
// instance applies what it receives, and reloads every entry from the
// store each time its subscription is (re)established, so that what it
// missed while disconnected comes back. The per-request check reads only
// the local list.
type endedFeed struct {
	store *sharedStore
	scope string // key prefix and channel of this issuer and client
	ended *expiringSet[time.Time]

	pubsub *redis.PubSub
	done   chan struct{}
	once   sync.Once
	// closing is set before the subscription is closed, so that the
	// error this gives run is not taken for an outage.
	closing atomic.Bool
}

// followEnded starts the feed of the issuer and client's ended sessions.
func (s *sharedStore) followEnded(issuer, clientID string, ended *expiringSet[time.Time]) *endedFeed {
	sum := sha256.Sum256([]byte(issuer + "\x00" + clientID))
	f := &endedFeed{
		store: s,
		scope: s.prefix + "ended:" + hex.EncodeToString(sum[:16]) + ":",
		ended: ended,
		done:  make(chan struct{}),
	}
	f.pubsub = s.client.Subscribe(context.Background(), f.scope)
	go f.run()
	return f
}

// run applies the feed until stop.
func (f *endedFeed) run() {
	defer close(f.done)
	backoff := 50 * time.Millisecond
	for {
		msg, err := f.pubsub.Receive(context.Background())
		switch m := msg.(type) {
		case *redis.Subscription:
			f.reload()
		case *redis.Message:
			f.apply(m.Payload)
		}
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		if f.closing.Load() || errors.Is(err, redis.ErrClosed) {
			return
		}
		f.store.note(err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// stop ends the subscription and waits for run to return.
func (f *endedFeed) stop() {
	f.once.Do(func() {
		f.closing.Store(true)
		_ = f.pubsub.Close()
		<-f.done
	})
}

// publish writes an ended sid or sub (key "sid:…" or "sub:…") to the store
// until its sessions expire and tells the other instances, in one
// pipelined round trip.
func (f *endedFeed) publish(ctx context.Context, key string, at, until time.Time) error {
	ttl := until.Sub(at)
	if ttl < time.Second {
		ttl = time.Second
	}
	val := strconv.FormatInt(at.UnixNano(), 10) + " " + strconv.FormatInt(until.UnixNano(), 10)
	ctx, cancel := context.WithTimeout(ctx, f.store.timeout)
	defer cancel()
	_, err := f.store.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, f.scope+key, val, ttl)
		p.Publish(ctx, f.scope, val+" "+key)
		return nil
	})
	f.store.note(err)
	return err
}

// apply adds a published entry, "at until key", to the local list.
func (f *endedFeed) apply(payload string) {
	atS, rest, _ := strings.Cut(payload, " ")
	untilS, key, ok := strings.Cut(rest, " ")
	if ok {
		f.add(key, atS+" "+untilS)
	}
}

// add stores one entry, "at until", in the local list; malformed entries
// (not written by this plugin) are ignored.
func (f *endedFeed) add(key, val string) {
	atS, untilS, _ := strings.Cut(val, " ")
	at, err1 := strconv.ParseInt(atS, 10, 64)
	until, err2 := strconv.ParseInt(untilS, 10, 64)
	if err1 != nil || err2 != nil || key == "" {
		return
	}
	if old, ok := f.ended.get(key); ok && !old.Before(time.Unix(0, at)) {
		return
	}
	if !f.ended.set(key, time.Unix(0, at), time.Unix(0, until)) {
		f.store.logger.Warn("ended-session list full: a back-channel logout from another instance is not applied here")
	}
}

// reload reads every ended session of the scope from the store.
func (f *endedFeed) reload() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*f.store.timeout)
	defer cancel()
	iter := f.store.client.Scan(ctx, 0, escapeGlob(f.scope)+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	err := iter.Err()
	for len(keys) > 0 && err == nil {
		n := min(len(keys), 1000)
		var vals []any
		vals, err = f.store.client.MGet(ctx, keys[:n]...).Result()
		for i, v := range vals {
			if s, ok := v.(string); ok {
				f.add(strings.TrimPrefix(keys[i], f.scope), s)
			}
		}
		keys = keys[n:]
	}
	f.store.note(err)
}

// escapeGlob escapes the characters SCAN MATCH treats as a pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// storeOptions are the options of the store redis block.
var storeOptions = []string{"address", "username", "password", "db", "tls", "key_prefix", "timeout", "failure", "caches", "cache_secret"}

// parseStore parses `store redis { ... }`. Each option may appear once.
func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	var kind string
	if !d.AllArgs(&kind) || kind != "redis" {
		return nil, d.Err("store: want `store redis { ... }`")
	}
	c := new(RedisStoreConfig)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("%s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "address":
			err = parseOnce(d, &c.Address)
		case "username":
			err = parseOnce(d, &c.Username)
		case "password":
			err = parseOnce(d, &c.Password)
		case "key_prefix":
			err = parseOnce(d, &c.KeyPrefix)
		case "failure":
			err = parseOnce(d, &c.Failure)
		case "cache_secret":
			err = parseOnce(d, &c.CacheSecret)
		case "caches":
			c.Caches = d.RemainingArgs()
			if len(c.Caches) == 0 {
				return nil, d.ArgErr()
			}
		case "tls":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			c.TLS = true
		case "db", "timeout":
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			if opt == "db" {
				c.DB, err = strconv.Atoi(s)
			} else {
				var dur time.Duration
				dur, err = caddy.ParseDuration(s)
				c.Timeout = caddy.Duration(dur)
			}
			if err != nil {
				return nil, d.Errf("%s: invalid value %q", opt, s)
			}
		default:
			return nil, unknownOption(d, "store block", storeOptions)
		}
		if err != nil {
			return nil, err
		}
	}
	var secretErr cacheSecretError
	if _, err := c.resolved(); err != nil && !(errors.As(err, &secretErr) && strings.Contains(c.CacheSecret, "{")) {
		return nil, d.WrapErr(err)
	}
	return &StoreConfig{Redis: c}, nil
}
