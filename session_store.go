package caddyidentity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Session stores: where the session lives.
const (
	sessionStoreCookie = "cookie"
	sessionStoreRedis  = "redis"
)

// sessionIDBytes is the size of a server-side session's id: 256 bits
// from crypto/rand, far past guessing.
const sessionIDBytes = 32

// refreshWaitPoll is how often a request whose session is being refreshed
// by another instance looks for the result, when it cannot go on with the
// session it has (its access token expired).
const refreshWaitPoll = 50 * time.Millisecond

// errStoreUnavailable wraps the store's errors on the session path: the
// request is refused with 503, whatever the store's failure policy (an
// instance cannot know a session it cannot read).
var errStoreUnavailable = errors.New("shared store unreachable")

// errRefreshElsewhere tells loadSession that another instance refreshes
// the session: the request goes on with the session as it is, which it
// must not write back (it would undo the other instance's refresh).
var errRefreshElsewhere = errors.New("session refreshed by another instance")

// serverSessions keeps the sessions of one issuer and client in the shared
// store (session_store redis). The browser's cookie holds only the
// session's random id and absolute expiry, sealed like a cookie session
// (so that made-up cookies never reach the store); the store holds the
// session under the SHA-256 of the id, sealed with the session key (the
// store never sees a token in clear, nor an id that would open it), with
// the session's expiry (absolute or idle, whichever is first) as TTL.
// Reading a session slides its idle expiry in the same round trip
// (GETEX); a logout deletes it for every instance; a refresh is done by
// one instance at a time under a lock in the store, so a rotating refresh
// token is never redeemed twice by the fleet. Each new record is also
// listed under its sid and its subject (see indexKey), so that a
// back-channel logout deletes the records it ends.
type serverSessions struct {
	store *sharedStore
	scope string // key prefix of this issuer and client's records
	index string // key prefix of their sid and subject index
	refs  *sealer
}

// newServerSessions returns the session store of an issuer and client.
func newServerSessions(store *sharedStore, issuer, clientID string, keys [][]byte) (*serverSessions, error) {
	refs, err := newSealer(keys, "session reference")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(issuer + "\x00" + clientID))
	scope := hex.EncodeToString(sum[:16]) + ":"
	return &serverSessions{
		store: store,
		scope: store.prefix + "session:" + scope,
		index: store.prefix + "session-index:" + scope,
		refs:  refs,
	}, nil
}

// indexKey is the key of the set of record keys of an ended-list key
// ("sid:…" or "sub:…"), hashed: the store's key names show no subject.
func (ss *serverSessions) indexKey(ended string) string {
	sum := sha256.Sum256([]byte(ended))
	return ss.index + hex.EncodeToString(sum[:])
}

// indexes returns the index keys a session's record is listed under.
func (ss *serverSessions) indexes(s *session) []string {
	idx := []string{ss.indexKey("sub:" + s.Subject)}
	if s.SID != "" {
		idx = append(idx, ss.indexKey("sid:"+s.SID))
	}
	return idx
}

// key is the store key of a session id: nothing that opens the session.
func (ss *serverSessions) key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return ss.scope + hex.EncodeToString(sum[:])
}

// newSessionID returns a fresh random session id.
func newSessionID() string {
	b := make([]byte, sessionIDBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ttl is how long the store keeps a session from now: until its absolute
// expiry, or its idle timeout if that comes first.
func (l *login) sessionTTL(s *session) time.Duration {
	ttl := s.createdAt().Add(l.lifetime).Sub(l.now())
	if l.idle > 0 {
		ttl = min(ttl, l.idle)
	}
	return max(ttl, time.Millisecond)
}

// writeServerSession stores s, a new session under a new id with the
// cookie that refers to it, or an existing one again (after a refresh).
func (l *login) writeServerSession(ctx context.Context, w http.ResponseWriter, r *http.Request, jar cookieJar, s *session) error {
	if s.stored {
		return nil // refreshServerSession stored it
	}
	fresh := s.id == ""
	if fresh {
		s.id = newSessionID()
	}
	if err := l.putServerSession(ctx, s, fresh); err != nil {
		return err
	}
	if !fresh {
		return nil // the cookie still refers to it
	}
	expires := s.createdAt().Add(l.lifetime)
	name := jar.sessionName()
	ref := l.server.refs.seal(name, []byte(s.id+" "+strconv.FormatInt(expires.Unix(), 10)))
	maxAge := max(1, int(expires.Sub(l.now())/time.Second))
	return jar.writeChunked(w, r, name, ref, maxAge)
}

// putServerSession writes s to the store, sealed, with its TTL. An
// existing session is only overwritten (SET XX): one deleted meanwhile by
// a logout is not brought back. A new one is added to its sid and subject
// index in the same round trip (MULTI/EXEC); an index lives at least as
// long as every record it lists (until the absolute expiry of the newest:
// a record's sliding TTL never passes its own).
func (l *login) putServerSession(ctx context.Context, s *session, fresh bool) error {
	ss := l.server
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	key := ss.key(s.id)
	ctx, cancel := context.WithTimeout(ctx, ss.store.timeout)
	defer cancel()
	val, ttl := l.sessions.seal(key, plain), l.sessionTTL(s)
	if fresh {
		// Whole seconds, rounded up: EXPIRE's unit.
		life := max(s.createdAt().Add(l.lifetime).Sub(l.now()), ttl).Truncate(time.Second) + time.Second
		_, err = ss.store.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, val, ttl)
			for _, idx := range ss.indexes(s) {
				p.SAdd(ctx, idx, key)
				p.ExpireNX(ctx, idx, life) // a new index
				p.ExpireGT(ctx, idx, life) // one that would end too early
			}
			return nil
		})
		ss.store.note(err)
		if err != nil {
			return fmt.Errorf("%w: %w", errStoreUnavailable, err)
		}
		return nil
	}
	err = ss.store.client.SetArgs(ctx, key, val, redis.SetArgs{TTL: ttl, Mode: "XX"}).Err()
	if errors.Is(err, redis.Nil) {
		err = nil // deleted meanwhile: it stays deleted
	}
	ss.store.note(err)
	if err != nil {
		return fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	return nil
}

// readServerSession returns the session the request's cookie refers to,
// nil when there is none (no cookie, one that does not open, a session
// expired or deleted in the store), or an error wrapping
// errStoreUnavailable when the store cannot answer. Reading slides the
// session's idle expiry.
func (l *login) readServerSession(ctx context.Context, r *http.Request, jar cookieJar) (*session, error) {
	ss := l.server
	name := jar.sessionName()
	sealed, ok := readChunked(r, name)
	if !ok {
		return nil, nil
	}
	ref, ok := ss.refs.open(name, sealed)
	if !ok {
		return nil, nil
	}
	id, expS, _ := strings.Cut(string(ref), " ")
	exp, err := strconv.ParseInt(expS, 10, 64)
	now := l.now()
	left := time.Unix(exp, 0).Sub(now)
	if err != nil || id == "" || left < time.Millisecond { // Redis TTLs are in ms
		return nil, nil
	}
	key := ss.key(id)
	ctx, cancel := context.WithTimeout(ctx, ss.store.timeout)
	defer cancel()
	var val string
	if l.idle > 0 {
		val, err = ss.store.client.GetEx(ctx, key, min(l.idle, left)).Result()
	} else {
		val, err = ss.store.client.Get(ctx, key).Result()
	}
	if errors.Is(err, redis.Nil) {
		ss.store.note(nil)
		return nil, nil
	}
	ss.store.note(err)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	plain, ok := l.sessions.open(key, val)
	if !ok {
		return nil, nil
	}
	var s session
	if json.Unmarshal(plain, &s) != nil || s.Subject == "" || s.Issuer != l.issuer {
		return nil, nil
	}
	// The store's TTL keeps the idle timeout: the session was seen now.
	s.id, s.raw, s.Seen = id, val, now.Unix()
	return &s, nil
}

// deleteServerSession deletes the session from the store, for every
// instance, and from its index, in one round trip.
func (l *login) deleteServerSession(ctx context.Context, s *session) error {
	ss := l.server
	ctx, cancel := context.WithTimeout(ctx, ss.store.timeout)
	defer cancel()
	key := ss.key(s.id)
	_, err := ss.store.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		for _, idx := range ss.indexes(s) {
			p.SRem(ctx, idx, key)
		}
		return nil
	})
	ss.store.note(err)
	if err != nil {
		return fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	return nil
}

// dropServerSessions deletes the stored records a back-channel logout
// ends (ended-list keys "sid:…" or "sub:…") with their index, in one
// round trip, and returns how many it deleted. It is best effort: a record
// written while it runs, or one whose index write was lost, stays until
// its TTL; the ended list, not this, is what refuses the ended sessions.
func (l *login) dropServerSessions(ctx context.Context, ended []string) (int, error) {
	ss := l.server
	idx := make([]string, len(ended))
	for i, k := range ended {
		idx[i] = ss.indexKey(k)
	}
	ctx, cancel := context.WithTimeout(ctx, ss.store.timeout)
	defer cancel()
	n, err := dropIndexed.Eval(ctx, ss.store.client, idx).Int()
	ss.store.note(err)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	return n, nil
}

// dropIndexed deletes the records listed in the sets KEYS and the sets,
// and returns the number of records deleted (members whose record expired
// or was signed out count for nothing). DEL takes the keys in batches
// (Lua's unpack has a bounded stack). The record keys are not in KEYS: a
// single Redis server (the store's client) runs it, not a cluster.
var dropIndexed = redis.NewScript(`
local n = 0
for _, idx in ipairs(KEYS) do
  local m = redis.call('SMEMBERS', idx)
  for i = 1, #m, 1000 do
    n = n + redis.call('DEL', unpack(m, i, math.min(i + 999, #m)))
  end
  redis.call('DEL', idx)
end
return n`)

// refreshSession refreshes the session's tokens: in the process for a
// cookie session, under the fleet's lock for a stored one.
func (l *login) refreshSession(ctx context.Context, s *session) (*session, error) {
	if l.server == nil {
		return l.refresh(ctx, s)
	}
	return l.refreshServerSession(ctx, s)
}

// endSession deletes the session's cookie and, for a stored session, its
// record in the store (best effort: its TTL ends it otherwise, and the
// ended list already refuses it where that applies).
func (l *login) endSession(w http.ResponseWriter, r *http.Request, jar cookieJar, s *session) {
	jar.deleteChunked(w, r, jar.sessionName())
	if l.server != nil && s != nil && s.id != "" {
		if err := l.deleteServerSession(r.Context(), s); err != nil {
			l.logger.Warn("stored session not deleted; it expires with its TTL", zap.Error(err))
		}
	}
}

// refreshServerSession refreshes a stored session under the fleet's lock
// and stores the result. An instance that finds the lock taken goes on
// with the session it has while its access token is valid
// (errRefreshElsewhere), and otherwise waits, within loginTimeout and the
// request's life, for the refreshed session to appear in the store.
func (l *login) refreshServerSession(ctx context.Context, s *session) (*session, error) {
	ss := l.server
	key := ss.key(s.id)
	lctx, cancel := context.WithTimeout(ctx, ss.store.timeout)
	won, err := lockRefresh.Eval(lctx, ss.store.client, []string{key, key + ":refresh"}, s.raw, loginTimeout.Milliseconds()).Int()
	cancel()
	if errors.Is(err, redis.Nil) {
		err = nil // the lock is held
	}
	ss.store.note(err)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	if won != 1 {
		// Another instance refreshes it, or did since this request read
		// it: the session it has is not to be refreshed again.
		return l.awaitRefresh(ctx, s)
	}
	lock := key + ":refresh"
	ns, err := l.refresh(ctx, s)
	if err == nil {
		ns.id = s.id
		err = l.putServerSession(ctx, ns, false)
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ss.store.timeout)
	ss.store.note(ss.store.client.Del(uctx, lock).Err())
	cancel()
	if err != nil {
		return nil, err
	}
	ns.stored = true
	return ns, nil
}

// lockRefresh takes a session's refresh lock (KEYS[2], for ARGV[2] ms) only
// if the session's record (KEYS[1]) is still the one the request read
// (ARGV[1]), in one round trip: 1 when taken, 0 when the record changed
// (refreshed or deleted since), nil when another instance holds the lock.
// Without the comparison, a request that read the record just before
// another instance's refresh wrote it, and asked for the lock just after
// that instance let it go, would redeem the spent refresh token again.
var lockRefresh = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('SET', KEYS[2], '', 'NX', 'PX', ARGV[2]) then return 1 end
return false`)

// awaitRefresh waits for another instance's refresh of s.
func (l *login) awaitRefresh(ctx context.Context, s *session) (*session, error) {
	if l.now().Before(time.Unix(s.AccessExpiry, 0)) {
		return nil, errRefreshElsewhere
	}
	ss := l.server
	key := ss.key(s.id)
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	t := time.NewTicker(refreshWaitPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another instance's refresh: %w", ctx.Err())
		case <-t.C:
		}
		// The record and whether the lock is still held, in one round
		// trip: a lock gone with the record unchanged is a refresh that
		// failed elsewhere.
		gctx, gcancel := context.WithTimeout(ctx, ss.store.timeout)
		var get *redis.StringCmd
		var locked *redis.IntCmd
		_, err := ss.store.client.Pipelined(gctx, func(p redis.Pipeliner) error {
			get, locked = p.Get(gctx, key), p.Exists(gctx, key+":refresh")
			return nil
		})
		gcancel()
		val, gerr := get.Result()
		switch {
		case errors.Is(gerr, redis.Nil):
			return nil, errSessionGone
		case err != nil:
			ss.store.note(err)
			return nil, fmt.Errorf("%w: %w", errStoreUnavailable, err)
		}
		var ns session
		if plain, ok := l.sessions.open(key, val); ok && json.Unmarshal(plain, &ns) == nil && ns.AccessExpiry != s.AccessExpiry {
			ns.id, ns.Seen, ns.stored = s.id, s.Seen, true
			return &ns, nil
		}
		if locked.Val() == 0 {
			return nil, errors.New("the refresh by another instance failed")
		}
	}
}

// errSessionGone is a session deleted from the store (logout) while a
// request waited for its refresh.
var errSessionGone = errors.New("session deleted while it was refreshed")
