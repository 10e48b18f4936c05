package caddyidentity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity"
)

// backchannelLogoutEvent is the member of a logout token's events claim
// (OpenID Connect Back-Channel Logout 1.0 §2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// maxLogoutTokenBody bounds the body of a back-channel logout request.
const maxLogoutTokenBody = 64 << 10

// logout ends the browser's session: the cookies are deleted, the
// session's sid is listed as ended (a copy of the cookie stops working
// too), and the browser continues to the provider's end_session_endpoint
// (RP-Initiated Logout 1.0) with id_token_hint, client_id, state and the
// configured post_logout_redirect_uri. Only a POST from this site (Fetch
// metadata or Origin, Go's CrossOriginProtection) or a GET with
// Sec-Fetch-Site: same-origin may sign out; any other GET gets a page
// with a button that POSTs, so no other site can sign users out.
func (l *login) logout(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodPost:
		if err := l.crossOrig.Check(r); err != nil {
			return l.fail(w, r, failLogoutCSRF, err)
		}
	case http.MethodGet, http.MethodHead:
		if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
			w.Header().Set("Cache-Control", "no-store")
			writePage(w, http.StatusOK, "Sign out", "Do you want to sign out?",
				`<form method="post" action="`+htmlAttr(l.logoutPath)+`"><button type="submit">Sign out</button></form>`)
			return nil
		}
	default:
		return l.fail(w, r, failMethod, nil)
	}
	jar := l.jar(r)
	s, err := l.readSession(r, jar)
	if err != nil {
		// Signing out must end the stored session: the cookie stays
		// until it can, so that the user can try again.
		return l.fail(w, r, failStore, err)
	}
	l.endSession(w, r, jar, s)
	w.Header().Set("Cache-Control", "no-store")
	l.metrics.logouts.WithLabelValues("rp").Inc()
	if s == nil {
		http.Redirect(w, r, l.localPostLogout(), http.StatusSeeOther)
		return nil
	}
	now := l.now()
	if s.SID != "" {
		until := s.createdAt().Add(l.lifetime)
		if !l.ended.set("sid:"+s.SID, now, until) {
			l.logger.Warn("ended-session list full: a copy of the signed-out session cookie stays valid until it expires")
		}
		// Best effort: the cookie is gone from this browser either way.
		_ = l.shareEnded(r.Context(), "sid:"+s.SID, now, until)
	}
	ctx, cancel := context.WithTimeout(r.Context(), loginTimeout)
	defer cancel()
	doc, err := l.provider.Discovery(ctx)
	if err != nil || doc.EndSessionEndpoint == "" || checkEndpointURL(doc.EndSessionEndpoint, l.allowHTTP) != nil {
		http.Redirect(w, r, l.localPostLogout(), http.StatusSeeOther)
		return nil
	}
	u, _ := url.Parse(doc.EndSessionEndpoint)
	q := u.Query()
	q.Set("client_id", l.auth.ClientID)
	if s.IDToken != "" {
		q.Set("id_token_hint", s.IDToken)
	}
	if l.postLogout != "" {
		q.Set("post_logout_redirect_uri", l.postLogout)
		q.Set("state", identity.GenerateState())
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
	return nil
}

// localPostLogout is where the browser goes after a logout that does not
// involve the provider.
func (l *login) localPostLogout() string {
	if l.postLogout != "" {
		return l.postLogout
	}
	return "/"
}

// htmlAttr escapes s for a double-quoted HTML attribute.
func htmlAttr(s string) string {
	b, _ := json.Marshal(s) // escapes <, >, & and "
	return string(b[1 : len(b)-1])
}

// backchannelLogout receives the provider's logout token (OpenID Connect
// Back-Channel Logout 1.0 §2.5, §2.6): signed by the issuer's keys, iss,
// aud = client_id, iat recent, exp if present, the events member, sid or
// sub, no nonce, a jti never seen before, typ logout+jwt when given. The
// sid or sub is then listed as ended: every session of it started before
// now is refused from the next request on; with session_store redis, its
// stored records are deleted too.
func (l *login) backchannelLogout(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return backchannelError(w, http.StatusMethodNotAllowed, "POST only")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutTokenBody)
	if err := r.ParseForm(); err != nil {
		return backchannelError(w, http.StatusBadRequest, "unreadable form")
	}
	tokens := r.PostForm["logout_token"]
	if len(tokens) != 1 || tokens[0] == "" {
		return backchannelError(w, http.StatusBadRequest, "one logout_token is required")
	}
	keys, jtiKey, err := l.checkLogoutToken(r.Context(), tokens[0])
	if err != nil {
		l.metrics.loginFailures.WithLabelValues("logout_token_invalid").Inc()
		l.logger.Debug("logout token refused", zap.Error(err))
		return backchannelError(w, http.StatusBadRequest, "invalid logout token")
	}
	now := l.now()
	for _, k := range keys {
		if !l.ended.set(k, now, now.Add(l.lifetime)) {
			l.logger.Warn("ended-session list full: back-channel logout not recorded")
			return backchannelError(w, http.StatusServiceUnavailable, "too many ended sessions")
		}
		if err := l.shareEnded(r.Context(), k, now, now.Add(l.lifetime)); err != nil && !l.feed.store.failOpen {
			// Ended here only: the provider learns that the logout did
			// not reach every instance.
			return backchannelError(w, http.StatusServiceUnavailable, "shared store unreachable")
		}
	}
	if l.server != nil {
		// The ended list already refuses them: deleting the records only
		// frees the store early.
		if n, err := l.dropServerSessions(r.Context(), keys); err != nil {
			l.logger.Warn("stored sessions of a back-channel logout not deleted; the ended list refuses them until their TTL", zap.Error(err))
		} else {
			l.logger.Debug("stored sessions of a back-channel logout deleted", zap.Int("sessions", n))
		}
	}
	// The jti is recorded once the logout is processed: a logout refused
	// above may be retried by the provider with the same token.
	l.jtis.add(jtiKey, struct{}{}, now.Add(2*(logoutTokenMaxAge+l.leeway)))
	l.metrics.logouts.WithLabelValues("backchannel").Inc()
	w.WriteHeader(http.StatusOK)
	return nil
}

// checkLogoutToken validates a logout token and returns the ended-list
// keys it names and the key of its jti, which the caller records once the
// logout is processed (a logout refused 503 may be retried with the same
// token).
func (l *login) checkLogoutToken(ctx context.Context, raw string) ([]string, string, error) {
	t, err := l.logouts.Validate(ctx, raw)
	if err != nil {
		return nil, "", err
	}
	if t.Type != "" && normalizedType(t.Type) != "logout+jwt" {
		return nil, "", errors.New("typ is not logout+jwt")
	}
	c := t.Claims.Raw()
	events, ok := c["events"].(map[string]any)
	if !ok {
		return nil, "", errors.New("no events member")
	}
	if _, ok := events[backchannelLogoutEvent].(map[string]any); !ok {
		return nil, "", errors.New("events has no back-channel logout event")
	}
	if _, ok := c[identity.ClaimNonce]; ok {
		return nil, "", errors.New("a logout token must not have a nonce")
	}
	jti, _ := c["jti"].(string)
	if jti == "" {
		return nil, "", errors.New("no jti")
	}
	sid, _ := c["sid"].(string)
	sub, _ := c[identity.ClaimSubject].(string)
	var keys []string
	if sid != "" {
		keys = append(keys, "sid:"+sid)
	}
	if sub != "" && sid == "" {
		keys = append(keys, "sub:"+sub)
	}
	if len(keys) == 0 {
		return nil, "", errors.New("neither sid nor sub")
	}
	// iat is at most logoutTokenMaxAge (plus leeway) old: remembering
	// the jti for twice that covers every acceptable replay.
	jtiKey := digest(t.Issuer + "\x00" + jti)
	if _, seen := l.jtis.get(jtiKey); seen {
		return nil, "", errors.New("jti replayed")
	}
	return keys, jtiKey, nil
}

// normalizedType lowers a typ header and drops "application/".
func normalizedType(t string) string {
	return strings.TrimPrefix(strings.ToLower(t), "application/")
}

// backchannelError answers a back-channel logout request with an OAuth
// error body (§2.8).
func backchannelError(w http.ResponseWriter, status int, desc string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	code := "invalid_request"
	if status >= 500 {
		code = "temporarily_unavailable"
	}
	return json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// shareEnded writes an ended sid or sub to the shared store, for the
// other instances; nothing to do without one.
func (l *login) shareEnded(ctx context.Context, key string, at, until time.Time) error {
	if l.feed == nil {
		return nil
	}
	return l.feed.publish(ctx, key, at, until)
}

// endedBy reports whether a back-channel (or local) logout ended the
// session: its sid, or its subject, was listed at or after its sign-in.
func (l *login) endedBy(s *session) bool {
	created := s.createdAt()
	if s.SID != "" {
		if at, ok := l.ended.get("sid:" + s.SID); ok && !at.Before(created) {
			return true
		}
	}
	at, ok := l.ended.get("sub:" + s.Subject)
	return ok && !at.Before(created)
}

// serveUserinfo answers the session's identity as JSON for the front end
// (like oauth2-proxy's /oauth2/userinfo): the claims the session holds,
// never a token; 401 without a session. Not cacheable, and without CORS
// headers other origins cannot read it.
func (l *login) serveUserinfo(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return nil
	}
	s, err := l.loadSession(w, r)
	if err != nil {
		return l.fail(w, r, failStore, err)
	}
	if s == nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, err := w.Write([]byte(`{"error":"unauthenticated"}` + "\n"))
		return err
	}
	out := make(map[string]any, len(s.Claims)+2)
	for k, v := range s.Claims {
		out[k] = v
	}
	out[identity.ClaimIssuer], out[identity.ClaimSubject] = s.Issuer, s.Subject
	return json.NewEncoder(w).Encode(out)
}

// expiringSet is a bounded map whose entries expire: the ended sessions,
// the seen logout token IDs and states, the recent refreshes. Entries are
// never evicted early (an evicted ended session would come back to life):
// when it is full of live entries, add fails.
type expiringSet[V any] struct {
	mu      sync.Mutex
	max     int
	now     func() time.Time
	entries map[string]expiringEntry[V]
}

type expiringEntry[V any] struct {
	val   V
	until time.Time
}

// newExpiringSet returns a set of at most max live entries.
func newExpiringSet[V any](max int, now func() time.Time) *expiringSet[V] {
	return &expiringSet[V]{max: max, now: now, entries: make(map[string]expiringEntry[V])}
}

// add stores val under key until the given time unless a live entry is
// there already; false when the key was present or the set is full.
func (s *expiringSet[V]) add(key string, val V, until time.Time) bool {
	return s.store(key, val, until, false)
}

// set stores val under key until the given time, replacing any entry;
// false when the set is full.
func (s *expiringSet[V]) set(key string, val V, until time.Time) bool {
	return s.store(key, val, until, true)
}

// store is add (replace false) and set (replace true).
func (s *expiringSet[V]) store(key string, val V, until time.Time, replace bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.entries[key]; ok && now.Before(e.until) {
		if !replace {
			return false
		}
	} else if len(s.entries) >= s.max {
		for k, e := range s.entries {
			if !now.Before(e.until) {
				delete(s.entries, k)
			}
		}
		if len(s.entries) >= s.max {
			return false
		}
	}
	s.entries[key] = expiringEntry[V]{val, until}
	return true
}

// get returns the live value under key.
func (s *expiringSet[V]) get(key string) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || !s.now().Before(e.until) {
		var zero V
		return zero, false
	}
	return e.val, true
}
