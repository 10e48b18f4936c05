package caddyidentity

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity"
)

// start sends a navigation without session to the provider: a fresh
// state, nonce and PKCE verifier are sealed in a pre-login cookie named
// after the state, with the page to return to; the authorization request
// is pushed first (RFC 9126) when the provider has a PAR endpoint.
func (l *login) start(w http.ResponseWriter, r *http.Request) error {
	jar := l.jar(r)
	if !jar.secure && !isLoopback(hostOnly(r.Host)) && !l.allowHTTP {
		return l.fail(w, r, failHTTPS, nil)
	}
	ctx, cancel := context.WithTimeout(r.Context(), loginTimeout)
	defer cancel()
	doc, err := l.discovery(ctx)
	if err != nil {
		return l.fail(w, r, failProvider, err)
	}
	pk := identity.NewPKCE()
	p := pending{
		State:       identity.GenerateState(),
		Nonce:       identity.GenerateNonce(),
		Verifier:    pk.Verifier,
		Return:      safeReturn(r.URL.RequestURI()),
		RedirectURI: l.redirectURIFor(r),
		Created:     l.now().Unix(),
	}
	ar := identity.AuthorizationRequest{
		Address:       doc.AuthorizationEndpoint,
		ClientID:      l.auth.ClientID,
		RedirectURI:   p.RedirectURI,
		Scopes:        l.scopes,
		State:         p.State,
		Nonce:         p.Nonce,
		CodeChallenge: pk.Challenge,
	}
	target, err := l.authorizationURL(ctx, doc, ar)
	if err != nil {
		return l.fail(w, r, failProvider, err)
	}
	l.prunePending(w, r, jar)
	plain, err := json.Marshal(p)
	if err != nil {
		return err
	}
	name := jar.pendingName(p.State)
	jar.set(w, jar.cookie(name, l.pendings.seal(name, plain), int(pendingLifetime/time.Second)))
	l.metrics.loginsStarted.Inc()
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

// discovery returns the provider's metadata with usable authorization
// and token endpoints.
func (l *login) discovery(ctx context.Context) (*identity.DiscoveryDocument, error) {
	doc, err := l.provider.Discovery(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range []string{doc.AuthorizationEndpoint, doc.TokenEndpoint} {
		if err := checkEndpointURL(e, l.allowHTTP); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
	}
	return doc, nil
}

// authorizationURL returns where to send the browser: the pushed
// request's URL when the provider advertises PAR, else the full request.
func (l *login) authorizationURL(ctx context.Context, doc *identity.DiscoveryDocument, ar identity.AuthorizationRequest) (string, error) {
	if doc.PushedAuthorizationRequestEndpoint == "" {
		if doc.RequirePushedAuthorizationReqs {
			return "", errors.New("provider requires PAR but advertises no endpoint")
		}
		return ar.URL()
	}
	auth := l.auth
	if l.tokenEndpointAudience {
		// The token endpoint is already trusted with the code and the
		// assertions sent there (discovery checked its URL).
		auth.Audience = doc.TokenEndpoint
	}
	res, err := identity.PushAuthorizationRequest(ctx, l.client, identity.PushedAuthorizationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.PushedAuthorizationRequestEndpoint, ClientAuth: auth, AllowHTTP: l.allowHTTP},
		Authorization:   ar,
	})
	if err != nil {
		return "", fmt.Errorf("pushed authorization request: %w", err)
	}
	return res.AuthorizationURL(doc.AuthorizationEndpoint, l.auth.ClientID)
}

// prunePending deletes the oldest pre-login cookies (and any that do not
// open) so that, with the one about to be set, at most maxPending remain.
func (l *login) prunePending(w http.ResponseWriter, r *http.Request, jar cookieJar) {
	type entry struct {
		name    string
		created int64
	}
	var live []entry
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, jar.prefix+pendingCookieBase) {
			continue
		}
		var p pending
		if plain, ok := l.pendings.open(c.Name, c.Value); ok && json.Unmarshal(plain, &p) == nil {
			live = append(live, entry{c.Name, p.Created})
			continue
		}
		jar.set(w, jar.cookie(c.Name, "", -1))
	}
	slices.SortFunc(live, func(a, b entry) int { return int(a.created - b.created) })
	for len(live) >= maxPending {
		jar.set(w, jar.cookie(live[0].name, "", -1))
		live = live[1:]
	}
}

// callback completes a sign-in: the state must match the pre-login cookie
// named after it (which is deleted, and the state remembered so that it
// is used once), the provider's iss must be the issuer (RFC 9207), the
// code is redeemed with the PKCE verifier and the ID token verified in
// full before the session cookie is set and the browser sent back to the
// page it first asked for.
func (l *login) callback(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return l.fail(w, r, failMethod, nil)
	}
	jar := l.jar(r)
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(q["state"]) != 1 {
		return l.fail(w, r, failState, errors.New("no single state parameter"))
	}
	name := jar.pendingName(state)
	c, err := r.Cookie(name)
	if err != nil {
		if s, _ := l.readSession(r, jar); s != nil {
			// A callback reloaded (or gone back to) after it succeeded:
			// the browser is signed in, the code is not redeemed again.
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return nil
		}
		return l.fail(w, r, failExpired, errors.New("no pre-login cookie for this state"))
	}
	jar.set(w, jar.cookie(name, "", -1))
	var p pending
	plain, ok := l.pendings.open(name, c.Value)
	if !ok || json.Unmarshal(plain, &p) != nil || subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1 {
		return l.fail(w, r, failState, errors.New("pre-login cookie does not open or holds another state"))
	}
	now := l.now()
	if now.Sub(time.Unix(p.Created, 0)) > pendingLifetime {
		return l.fail(w, r, failExpired, nil)
	}
	// Each state is used once. Should the list ever be full (a flood of
	// sign-ins), the state goes unrecorded: the code it came with is
	// single-use at the provider all the same.
	stateKey := digest(state)
	if _, used := l.states.get(stateKey); used {
		return l.fail(w, r, failReplayed, nil)
	}
	l.states.add(stateKey, struct{}{}, time.Unix(p.Created, 0).Add(pendingLifetime+time.Minute))
	ctx, cancel := context.WithTimeout(r.Context(), loginTimeout)
	defer cancel()
	doc, err := l.discovery(ctx)
	if err != nil {
		return l.fail(w, r, failProvider, err)
	}
	iss := q.Get("iss")
	if (iss != "" || doc.AuthorizationResponseIssParameterSupported) && iss != l.issuer {
		return l.fail(w, r, failIssuer, nil)
	}
	res, err := identity.ParseAuthorizationResponse(q, state)
	if err != nil {
		var pe *identity.ProtocolError
		if errors.As(err, &pe) {
			f := failProviderError
			if pe.Code == identity.ErrorAccessDenied || pe.Code == "login_required" || pe.Code == "consent_required" {
				f = failDenied
			}
			return l.fail(w, r, f, fmt.Errorf("provider error %q", pe.Code))
		}
		return l.fail(w, r, failState, err)
	}
	tr, err := identity.RequestAuthorizationCodeToken(ctx, l.client, identity.AuthorizationCodeTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: l.auth, AllowHTTP: l.allowHTTP},
		Code:            res.Code,
		RedirectURI:     p.RedirectURI,
		CodeVerifier:    p.Verifier,
	})
	if err != nil {
		var pe *identity.ProtocolError
		if errors.As(err, &pe) {
			return l.fail(w, r, failCode, fmt.Errorf("token endpoint error %q", pe.Code))
		}
		return l.fail(w, r, failTokenEndpoint, err)
	}
	claims, err := l.checkIDToken(ctx, tr.IDToken, p.Nonce, tr.AccessToken)
	if err != nil {
		return l.fail(w, r, failIDToken, err)
	}
	if l.userinfo && doc.UserInfoEndpoint != "" {
		if err := l.addUserinfo(ctx, doc, tr.AccessToken, claims); err != nil {
			return l.fail(w, r, failProviderError, err)
		}
	}
	s := l.newSession(claims, tr, now)
	if err := l.writeSession(w, r, jar, s); err != nil {
		if errors.Is(err, errStoreUnavailable) {
			return l.fail(w, r, failStore, err)
		}
		return l.fail(w, r, failSessionSize, err)
	}
	l.metrics.loginsCompleted.Inc()
	http.Redirect(w, r, safeReturn(p.Return), http.StatusSeeOther)
	return nil
}

// checkIDToken verifies an ID token with the library's ID token rules
// (OpenID Connect Core §3.1.3.7): the signature by the issuer's keys,
// iss, exp, iat and sub; aud containing client_id and no other, azp
// (client_id when present, required with several audiences), the nonce
// of this sign-in (none for a refreshed token, where nonce is "") and
// at_hash when present. It returns the claims, for the caller to keep.
func (l *login) checkIDToken(ctx context.Context, raw, nonce, accessToken string) (map[string]any, error) {
	if raw == "" {
		return nil, errors.New("token response without id_token")
	}
	t, err := l.idTokens.ValidateIDToken(ctx, raw, identity.IDTokenCheck{
		ClientID:    l.auth.ClientID,
		Nonce:       nonce,
		AccessToken: accessToken,
	})
	if err != nil {
		return nil, err
	}
	return maps.Clone(t.Claims.Raw()), nil
}

// maxHintToken is the largest ID token a session keeps for id_token_hint.
const maxHintToken = 2048

// protocolClaims are ID token members about the token itself, not the
// user: the session does not keep them.
var protocolClaims = []string{"aud", "azp", "nonce", "at_hash", "c_hash", "exp", "iat", "nbf", "jti", "s_hash", "sid", "iss", "sub"}

// newSession builds the session of a verified sign-in.
func (l *login) newSession(claims map[string]any, tr *identity.TokenResponse, now time.Time) *session {
	s := &session{
		Issuer:  l.issuer,
		Created: now.Unix(),
		Seen:    now.Unix(),
	}
	s.setClaims(claims)
	s.setTokens(tr, l.forwardAccessToken, now)
	return s
}

// setClaims takes the identity from verified ID token claims.
func (s *session) setClaims(claims map[string]any) {
	s.Subject, _ = claims[identity.ClaimSubject].(string)
	s.SID, _ = claims["sid"].(string)
	s.Claims = make(map[string]any, len(claims))
	for k, v := range claims {
		if !slices.Contains(protocolClaims, k) {
			s.Claims[k] = v
		}
	}
}

// setTokens keeps what the session needs of a token response received
// at now.
func (s *session) setTokens(tr *identity.TokenResponse, keepAccessToken bool, now time.Time) {
	s.AccessExpiry = 0
	if tr.ExpiresIn > 0 {
		s.AccessExpiry = now.Unix() + tr.ExpiresIn
	}
	if keepAccessToken {
		s.AccessToken = tr.AccessToken
	}
	if tr.RefreshToken != "" {
		s.RefreshToken = tr.RefreshToken
	}
	if tr.IDToken != "" {
		// Kept for id_token_hint at logout unless large: then the logout
		// request names the client only (RP-Initiated Logout §2 allows
		// it), which keeps sessions with many claims within their cookies.
		s.IDToken = ""
		if len(tr.IDToken) <= maxHintToken {
			s.IDToken = tr.IDToken
		}
	}
}

// addUserinfo merges the userinfo claims (same sub, OpenID Connect Core
// §5.3.2) into claims; the ID token's own win.
func (l *login) addUserinfo(ctx context.Context, doc *identity.DiscoveryDocument, accessToken string, claims map[string]any) error {
	sub, _ := claims[identity.ClaimSubject].(string)
	ui, err := identity.RequestUserInfo(ctx, l.client, identity.UserInfoRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.UserInfoEndpoint, AllowHTTP: l.allowHTTP},
		Token:           accessToken,
		ExpectedSubject: sub,
		Keys:            l.provider,
		Issuer:          l.issuer,
		ClientID:        l.auth.ClientID,
	})
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	for k, v := range ui.Claims() {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

// writeSession seals s into the session cookie (in chunks when needed).
func (l *login) writeSession(w http.ResponseWriter, r *http.Request, jar cookieJar, s *session) error {
	if l.server != nil {
		return l.writeServerSession(r.Context(), w, r, jar, s)
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	name := jar.sessionName()
	maxAge := max(1, int(s.createdAt().Add(l.lifetime).Sub(l.now())/time.Second))
	return jar.writeChunked(w, r, name, l.sessions.seal(name, plain), maxAge)
}

// readSession opens the request's session cookie, nil when there is none
// or it does not open (tampered, truncated, re-ordered, unknown key). The
// error is a session store that cannot answer.
func (l *login) readSession(r *http.Request, jar cookieJar) (*session, error) {
	if l.server != nil {
		return l.readServerSession(r.Context(), r, jar)
	}
	name := jar.sessionName()
	sealed, ok := readChunked(r, name)
	if !ok {
		return nil, nil
	}
	plain, ok := l.sessions.open(name, sealed)
	if !ok {
		return nil, nil
	}
	var s session
	if json.Unmarshal(plain, &s) != nil || s.Subject == "" || s.Issuer != l.issuer {
		return nil, nil
	}
	return &s, nil
}

// loadSession returns the request's live session, refreshing its tokens
// when they are about to expire and sliding its idle time; a session
// that has ended (lifetime, idle timeout, back-channel logout, failed
// refresh) is deleted and nil returned. The error is a session store that
// cannot answer.
func (l *login) loadSession(w http.ResponseWriter, r *http.Request) (*session, error) {
	jar := l.jar(r)
	s, err := l.readSession(r, jar)
	if err != nil {
		return nil, err
	}
	if s == nil {
		if _, err := r.Cookie(jar.sessionName()); err == nil {
			jar.deleteChunked(w, r, jar.sessionName())
		}
		return nil, nil
	}
	now := l.now()
	switch {
	case now.Sub(s.createdAt()) >= l.lifetime,
		l.idle > 0 && now.Sub(time.Unix(s.Seen, 0)) >= l.idle,
		l.endedBy(s):
		l.endSession(w, r, jar, s)
		return nil, nil
	}
	changed := false
	if s.AccessExpiry != 0 && !now.Before(time.Unix(s.AccessExpiry, 0).Add(-refreshMargin)) {
		ns, err := l.refreshSession(r.Context(), s)
		switch {
		case err == nil:
			s, changed = ns, true
		case errors.Is(err, errRefreshElsewhere):
			// Another instance refreshes it; this request goes on with
			// the session as it is, without writing it back.
		case s.RefreshToken == "" && !l.forwardAccessToken:
			// Without a refresh token the identity stays what the ID
			// token said until the session's own lifetime ends.
		case isPermanent(err) || (l.forwardAccessToken && !now.Before(time.Unix(s.AccessExpiry, 0))):
			l.logger.Info("session refresh failed; signing in again", zap.Error(err))
			l.endSession(w, r, jar, s)
			return nil, nil
		default:
			l.logger.Warn("session refresh failed; keeping the session for now", zap.Error(err))
		}
	}
	if l.idle > 0 && now.Sub(time.Unix(s.Seen, 0)) >= max(l.idle/8, time.Second) {
		s.Seen, changed = now.Unix(), true
	}
	if changed {
		if err := l.writeSession(w, r, jar, s); err != nil {
			l.logger.Warn("session not resealed", zap.Error(err))
		}
	}
	return s, nil
}

// Refresh errors that end the session: there is no refresh token, or
// the provider consumed it but its new ID token is not acceptable.
var (
	errNoRefreshToken = errors.New("no refresh token")
	errRefreshIDToken = errors.New("refreshed id_token refused")
)

// isPermanent reports whether a refresh error ends the session: the
// provider refused the refresh token (invalid_grant and other OAuth
// errors), or the new ID token is not acceptable. Outages are transient.
func isPermanent(err error) bool {
	var pe *identity.ProtocolError
	var he *identity.HTTPStatusError
	switch {
	case errors.Is(err, errNoRefreshToken), errors.Is(err, errRefreshIDToken), errors.Is(err, errSessionGone), errors.As(err, &pe):
		return true
	case errors.As(err, &he):
		return he.StatusCode < 500
	}
	return false
}

// refreshResult is the outcome of one refresh, remembered for the
// requests that still carry the session it started from.
type refreshResult struct {
	s   *session
	err error
}

// refresh redeems the session's refresh token once for all concurrent
// requests of the session (singleflight), and hands the result to
// requests that still carry the old session for a minute after, so that
// a rotating refresh token is never redeemed twice. A failure is
// remembered as long, so that a provider outage costs one timeout a
// minute, not one per request.
func (l *login) refresh(ctx context.Context, s *session) (*session, error) {
	if s.RefreshToken == "" {
		return nil, errNoRefreshToken
	}
	key := digest(s.RefreshToken)
	if res, ok := l.recent.get(key); ok {
		if res.err != nil {
			return nil, res.err
		}
		l.metrics.refreshes.WithLabelValues("reused").Inc()
		ns := *res.s
		ns.Seen = s.Seen
		return &ns, nil
	}
	v, err, _ := l.refreshes.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loginTimeout)
		defer cancel()
		ns, err := l.redeem(ctx, s)
		l.recent.set(key, refreshResult{ns, err}, l.now().Add(recentRefreshTTL))
		if err != nil {
			l.metrics.refreshes.WithLabelValues("failed").Inc()
			return nil, err
		}
		l.metrics.refreshes.WithLabelValues("ok").Inc()
		return ns, nil
	})
	if err != nil {
		return nil, err
	}
	ns := *v.(*session)
	ns.Seen = s.Seen
	return &ns, nil
}

// redeem performs one refresh. A new ID token must come from the same
// issuer for the same subject (OpenID Connect Core §12.2); without one
// the session keeps its claims.
func (l *login) redeem(ctx context.Context, s *session) (*session, error) {
	doc, err := l.discovery(ctx)
	if err != nil {
		return nil, err
	}
	tr, err := identity.RequestRefreshToken(ctx, l.client, identity.RefreshTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: l.auth, AllowHTTP: l.allowHTTP},
		RefreshToken:    s.RefreshToken,
	})
	if err != nil {
		return nil, err
	}
	ns := *s
	if tr.IDToken != "" {
		claims, err := l.checkIDToken(ctx, tr.IDToken, "", tr.AccessToken)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errRefreshIDToken, err)
		}
		if claims[identity.ClaimSubject] != s.Subject {
			return nil, fmt.Errorf("%w: another subject", errRefreshIDToken)
		}
		sid := s.SID
		ns.setClaims(claims)
		if ns.SID == "" {
			ns.SID = sid
		}
	}
	ns.setTokens(tr, l.forwardAccessToken, l.now())
	return &ns, nil
}

// pass lets a request with a session through: the identity headers and
// placeholders come from the session's claims exactly as from a token's,
// and the handler's policy (require_scope, require_claim) applies.
func (l *login) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, s *session) error {
	all := make(map[string]any, len(s.Claims)+3)
	for k, v := range s.Claims {
		all[k] = v
	}
	all[identity.ClaimIssuer], all[identity.ClaimSubject] = s.Issuer, s.Subject
	if s.SID != "" {
		all["sid"] = s.SID
	}
	raw, err := json.Marshal(all)
	if err != nil {
		return err
	}
	c, err := identity.ParseClaims(raw)
	if err != nil {
		return err
	}
	e, err := l.entries.claimsEntry(s.Issuer, c)
	if err != nil {
		return err
	}
	e.decoded.Store(c)
	if e.denied != reasonNone {
		return l.refuser.refuse(w, r, denial(e, "", false))
	}
	setIdentity(r, e, nil)
	if l.forwardAccessToken && s.AccessToken != "" {
		r.Header.Set("Authorization", "Bearer "+s.AccessToken)
	}
	l.metrics.sessionsAccepted.Inc()
	return next.ServeHTTP(w, r)
}

// digest identifies a secret value in the handler's memory without
// keeping it: the hex SHA-256.
func digest(s string) string {
	sum := hashToken(s)
	return hex.EncodeToString(sum[:])
}

// hostOnly returns the host of a Host header without its port.
func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		hostport = hostport[:i]
	}
	return strings.Trim(hostport, "[]")
}
