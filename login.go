package caddyidentity

import (
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Defaults of the login configuration.
const (
	DefaultCallbackPath          = "/oauth2/callback"
	DefaultLogoutPath            = "/oauth2/logout"
	DefaultBackchannelLogoutPath = "/oauth2/backchannel_logout"
	DefaultUserinfoPath          = "/oauth2/userinfo"
	DefaultSessionLifetime       = 24 * time.Hour
	DefaultIdleTimeout           = 2 * time.Hour
)

// Fixed limits of the sign-in flow.
const (
	// pendingLifetime bounds a sign-in from redirect to callback.
	pendingLifetime = 10 * time.Minute
	// maxPending bounds the sign-ins under way in one browser (tabs):
	// the oldest pre-login cookie goes when a new one would pass it.
	maxPending = 4
	// refreshMargin is how long before the access token's expiry the
	// session is refreshed.
	refreshMargin = 30 * time.Second
	// recentRefreshTTL is how long the result of a refresh (or its
	// failure) is handed to requests that still carry the session it
	// started from.
	recentRefreshTTL = time.Minute
	// logoutTokenMaxAge bounds the age of a back-channel logout token, and
	// so how long its jti must be remembered.
	logoutTokenMaxAge = 5 * time.Minute
	// maxEnded bounds the list of ended sessions (sid/sub) and of seen
	// logout token IDs and states.
	maxEnded = 100000
	// loginTimeout bounds each call to the provider on the way.
	loginTimeout = 15 * time.Second
	// noBearerAudience is the audience bearer tokens must have when login
	// is configured without any audience: none has it, so only sessions
	// are accepted.
	noBearerAudience = "urn:caddy-identity:login-only"
)

// LoginConfig turns the handler into an OpenID Connect relying party for
// browsers: top-level navigations without a session or token are sent to
// the provider to sign in (authorization code flow with PKCE), and the
// session that follows lives in a sealed cookie. Bearer tokens keep
// working on the same site.
type LoginConfig struct {
	// Issuer selects the configured issuer to sign in with; empty means
	// the first. It must use discovery (no jwks_url or jwks_file).
	Issuer string `json:"issuer,omitempty"`
	// ClientID is the client registered at the provider (required).
	ClientID string `json:"client_id"`
	// ClientSecret is the client's secret (client_secret_basic).
	// Exclusive with ClientKeyFile; with neither, the client is public
	// and proves itself with PKCE only.
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientKeyFile is a private key (PEM: PKCS #8, PKCS #1 or SEC 1; or
	// a private JWK) that authenticates the client with private_key_jwt
	// (RFC 7523) at the token and pushed authorization request endpoints,
	// the aud of its assertions set by AssertionAudience. Exclusive with
	// ClientSecret.
	ClientKeyFile string `json:"client_key_file,omitempty"`
	// AssertionAudience is the aud of the assertions signed with
	// ClientKeyFile: "endpoint" (default: the URL of the endpoint called,
	// token or pushed authorization request, as Okta wants),
	// "token_endpoint" (the token endpoint's URL even at the pushed
	// authorization request endpoint, as Entra ID wants), "issuer" (the
	// issuer identifier, as Auth0 and draft-ietf-oauth-rfc7523bis want;
	// see SECURITY.md, "Client assertions") or an absolute https URL
	// (http only on loopback or with the issuer's insecure_allow_http).
	AssertionAudience string `json:"assertion_audience,omitempty"`
	// Scopes requested; default "openid profile email". "openid" is
	// always sent; add offline_access for a refresh token.
	Scopes []string `json:"scopes,omitempty"`
	// SessionKeys are base64 keys of at least 32 random bytes. The first
	// seals cookies, all open them: to rotate, put the new key first and
	// drop the old one after session_lifetime. Required.
	SessionKeys []string `json:"session_keys"`
	// RedirectURI is the absolute callback URL registered at the provider.
	// Default: the request's scheme and host with CallbackPath. Set it
	// behind a TLS-terminating proxy.
	RedirectURI string `json:"redirect_uri,omitempty"`
	// CallbackPath, LogoutPath, BackchannelLogoutPath and UserinfoPath are
	// the paths the handler answers itself; defaults /oauth2/callback,
	// /oauth2/logout, /oauth2/backchannel_logout, /oauth2/userinfo.
	CallbackPath          string `json:"callback_path,omitempty"`
	LogoutPath            string `json:"logout_path,omitempty"`
	BackchannelLogoutPath string `json:"backchannel_logout_path,omitempty"`
	UserinfoPath          string `json:"userinfo_path,omitempty"`
	// PostLogoutRedirectURI is where the provider sends the browser after
	// RP-initiated logout (it must be registered there); without it the
	// provider shows its own page. Without an end_session_endpoint the
	// handler redirects there itself (default "/").
	PostLogoutRedirectURI string `json:"post_logout_redirect_uri,omitempty"`
	// SessionLifetime is the absolute lifetime of a session (default 24h);
	// IdleTimeout ends a session unused that long (default 2h; 0 in JSON
	// means the default, a negative value none).
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`
	IdleTimeout     caddy.Duration `json:"idle_timeout,omitempty"`
	// ForwardAccessToken passes the session's access token to the upstream
	// as "Authorization: Bearer <token>" (like oauth2-proxy's
	// pass_access_token), where Caddy's logs redact it.
	ForwardAccessToken bool `json:"forward_access_token,omitempty"`
	// Userinfo adds the provider's userinfo claims to the ID token's at
	// sign-in.
	Userinfo bool `json:"userinfo,omitempty"`
	// SessionStore is where sessions live: "cookie" (default), sealed in
	// the browser's cookie, or "redis", in the handler's store (which it
	// requires), the cookie then holding only a random 256-bit id. A
	// stored session is the same at every instance: a logout ends it
	// everywhere at once, and one instance at a time refreshes it. While
	// the store cannot be reached, requests with a stored session are
	// refused with 503 under either failure policy (an instance cannot
	// know a session it cannot read).
	SessionStore string `json:"session_store,omitempty"`
}

// login is the provisioned sign-in stage of a handler.
type login struct {
	now     func() time.Time
	leeway  time.Duration
	metrics *collectors
	// entries builds the entry of a session's claims as of a token's;
	// refuser renders a session its policy refuses.
	entries *authenticator
	refuser *refuser
	// endedKey is the key of the ended lists in endedPool, released by
	// cleanup.
	endedKey string
	issuer   string
	provider *identity.Provider
	auth     identity.ClientAuth
	// tokenEndpointAudience gives the assertions sent to the pushed
	// authorization request endpoint the token endpoint's URL as aud
	// (assertion_audience token_endpoint).
	tokenEndpointAudience bool
	scopes                []string

	redirectURI, postLogout                               string
	callbackPath, logoutPath, backchannelPath, userPath   string
	lifetime, idle                                        time.Duration
	forwardAccessToken, userinfo, allowHTTP, secureOrigin bool

	sessions, pendings *sealer
	idTokens, logouts  *identity.Validator
	client             *http.Client

	refreshes singleflight.Group
	recent    *expiringSet[refreshResult]
	ended     *expiringSet[time.Time]
	// feed shares ended sessions through the store; nil without one.
	feed *endedFeed
	// server keeps the sessions in the store (session_store redis); nil
	// for cookie sessions.
	server    *serverSessions
	states    *expiringSet[struct{}]
	jtis      *expiringSet[struct{}]
	crossOrig *http.CrossOriginProtection
	logger    *zap.Logger
}

// checkLogin reports configuration errors of the login block.
func (h *Handler) checkLogin() error {
	l := h.Login
	if l.ClientID == "" {
		return errors.New("login: client_id is required")
	}
	if len(l.SessionKeys) == 0 {
		return errors.New("login: session_key is required")
	}
	if l.ClientSecret != "" && l.ClientKeyFile != "" {
		return errors.New("identity: login: client_secret and client_key_file are exclusive")
	}
	is := h.loginIssuer()
	if is == nil {
		return fmt.Errorf("login: issuer %q is not configured", l.Issuer)
	}
	if err := checkAssertionAudience(l.AssertionAudience, l.ClientKeyFile, is.InsecureAllowHTTP); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if is.JWKSURL != "" || is.JWKSFile != "" || strings.Contains(is.Issuer, identity.TenantPlaceholder) {
		return fmt.Errorf("login: the sign-in issuer %q needs its discovery document: remove its jwks_url or jwks_file (a tenant template cannot sign in)", is.Issuer)
	}
	paths := []string{l.CallbackPath, l.LogoutPath, l.BackchannelLogoutPath, l.UserinfoPath}
	for _, p := range paths {
		if p != "" && (!strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//")) {
			return fmt.Errorf("login: path %q must start with a single /", p)
		}
	}
	if l.RedirectURI != "" {
		if err := checkEndpointURL(l.RedirectURI, is.InsecureAllowHTTP); err != nil {
			return fmt.Errorf("login: redirect_uri: %w", err)
		}
	}
	if l.SessionLifetime < 0 {
		return errors.New("login: session_lifetime must not be negative")
	}
	switch l.SessionStore {
	case "", sessionStoreCookie:
	case sessionStoreRedis:
		if h.Store == nil || h.Store.Redis == nil {
			return errors.New("login: session_store redis needs the handler's store redis { ... }")
		}
	default:
		return fmt.Errorf("login: session_store must be cookie or redis, not %q", l.SessionStore)
	}
	for _, s := range l.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			return fmt.Errorf("login: invalid scope %q", s)
		}
	}
	return nil
}

// loginIssuer returns the issuer configuration the login block signs in
// with, or nil.
func (h *Handler) loginIssuer() *IssuerConfig {
	for i := range h.Issuers {
		if h.Login.Issuer == "" || h.Issuers[i].Issuer == h.Login.Issuer {
			return &h.Issuers[i]
		}
	}
	return nil
}

// provisionLogin sets up the sign-in stage; ic is the validator
// configuration of the sign-in issuer.
func (h *Handler) provisionLogin(repl *caddy.Replacer, is *IssuerConfig, ic identity.IssuerConfig, su *setup) error {
	c := h.Login
	p, ok := ic.Keys.(*identity.Provider)
	if !ok {
		return errors.New("login: the sign-in issuer needs discovery")
	}
	l := &login{
		now:                su.now,
		leeway:             su.leeway,
		metrics:            su.metrics,
		entries:            &h.auth,
		refuser:            &h.refuser,
		issuer:             ic.Issuer,
		provider:           p,
		scopes:             []string{"openid", "profile", "email"},
		redirectURI:        repl.ReplaceKnown(c.RedirectURI, ""),
		postLogout:         repl.ReplaceKnown(c.PostLogoutRedirectURI, ""),
		callbackPath:       orDefault(c.CallbackPath, DefaultCallbackPath),
		logoutPath:         orDefault(c.LogoutPath, DefaultLogoutPath),
		backchannelPath:    orDefault(c.BackchannelLogoutPath, DefaultBackchannelLogoutPath),
		userPath:           orDefault(c.UserinfoPath, DefaultUserinfoPath),
		lifetime:           DefaultSessionLifetime,
		idle:               DefaultIdleTimeout,
		forwardAccessToken: c.ForwardAccessToken,
		userinfo:           c.Userinfo,
		allowHTTP:          is.InsecureAllowHTTP,
		client:             &http.Client{Timeout: loginTimeout},
		crossOrig:          http.NewCrossOriginProtection(),
		logger:             su.logger.Named("login"),
	}
	l.secureOrigin = strings.HasPrefix(l.redirectURI, "https://")
	clientID := repl.ReplaceKnown(c.ClientID, "")
	if secret := repl.ReplaceKnown(c.ClientSecret, ""); secret != "" {
		l.auth = identity.ClientSecretBasicAuth(clientID, secret)
	} else if c.ClientKeyFile != "" {
		key, err := loadPrivateKey(repl.ReplaceKnown(c.ClientKeyFile, ""))
		if err != nil {
			return fmt.Errorf("login: client_key_file: %w", err)
		}
		l.auth = identity.PrivateKeyJWTAuth(clientID, key, "")
		if l.auth.Audience, err = assertionAudience(repl, c.AssertionAudience, l.issuer, l.allowHTTP); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		l.tokenEndpointAudience = c.AssertionAudience == assertionAudienceTokenEndpoint
	} else {
		l.auth = identity.PublicClientAuth(clientID)
	}
	if len(c.Scopes) > 0 {
		l.scopes = replaceAll(repl, c.Scopes)
		if !slices.Contains(l.scopes, "openid") {
			l.scopes = append([]string{"openid"}, l.scopes...)
		}
	}
	if c.SessionLifetime > 0 {
		l.lifetime = time.Duration(c.SessionLifetime)
	}
	switch {
	case c.IdleTimeout < 0:
		l.idle = 0
	case c.IdleTimeout > 0:
		l.idle = time.Duration(c.IdleTimeout)
	}
	var keys [][]byte
	for _, s := range c.SessionKeys {
		k, err := parseSessionKey(repl.ReplaceKnown(s, ""))
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		keys = append(keys, k)
	}
	var err error
	if l.sessions, err = newSealer(keys, "session"); err != nil {
		return err
	}
	if l.pendings, err = newSealer(keys, "login"); err != nil {
		return err
	}
	if c.SessionStore == sessionStoreRedis {
		if l.server, err = newServerSessions(h.store, l.issuer, clientID, keys); err != nil {
			return err
		}
	}

	// ID tokens: this issuer's keys, aud = client_id, exp and iat
	// required; nonce, azp and at_hash are checked per sign-in.
	idc := ic
	idc.Audiences, idc.AnyAudience = []string{clientID}, false
	idc.AuthorizedParties, idc.AuthorizedPartyClaim = nil, ""
	idc.Types, idc.MaxAge, idc.RequiredClaims = nil, 0, []string{identity.ClaimSubject}
	if l.idTokens, err = identity.NewValidator([]identity.IssuerConfig{idc}, identity.ValidatorOptions{Logger: su.slog}); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	// Logout tokens (Back-Channel Logout 1.0 §2.4): exp optional, iat
	// required and recent, so that their jti need not be kept longer.
	lc := idc
	lc.RequiredClaims, lc.AllowMissingExp, lc.MaxAge = nil, true, logoutTokenMaxAge
	if l.logouts, err = identity.NewValidator([]identity.IssuerConfig{lc}, identity.ValidatorOptions{Logger: su.slog}); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	l.recent = newExpiringSet[refreshResult](maxEnded, su.now)
	l.states = newExpiringSet[struct{}](maxEnded, su.now)
	key := l.issuer + "\x00" + clientID + "\x00" + h.storeKey
	val, _, err := endedPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		lists := &endedLists{
			ended: newExpiringSet[time.Time](maxEnded, su.now),
			jtis:  newExpiringSet[struct{}](maxEnded, su.now),
		}
		if h.store != nil {
			lists.feed = h.store.followEnded(l.issuer, clientID, lists.ended)
		}
		return lists, nil
	})
	if err != nil {
		return err
	}
	l.endedKey = key
	lists := val.(*endedLists)
	l.ended, l.jtis, l.feed = lists.ended, lists.jtis, lists.feed
	h.login = l
	return nil
}

// cleanup gives the ended lists back to endedPool.
func (l *login) cleanup() error {
	if l.endedKey == "" {
		return nil
	}
	_, err := endedPool.Delete(l.endedKey)
	l.endedKey = ""
	return err
}

// endedPool shares the lists of ended sessions and seen logout tokens
// between the handlers of one issuer and client, so that a config reload
// does not bring back the sessions a back-channel logout ended.
var endedPool = caddy.NewUsagePool()

// endedLists are the shared lists of one issuer and client, and with a
// shared store the feed that keeps the ended sessions current with the
// other instances.
type endedLists struct {
	ended *expiringSet[time.Time]
	jtis  *expiringSet[struct{}]
	feed  *endedFeed
}

// Destruct lets the lists go with their last handler.
func (e *endedLists) Destruct() error {
	if e.feed != nil {
		e.feed.stop()
	}
	return nil
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// serve is the sign-in stage of ServeHTTP. It answers the handler's own
// paths, lets a request with a session through (true, next's error), and
// sends a top-level navigation without session or token to sign in.
// Otherwise (false) the bearer path decides; hasToken says whether the
// request carries a token for it. The handler's cookies never reach the
// upstream.
func (l *login) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, hasToken bool) (bool, error) {
	switch r.URL.Path {
	case l.callbackPath:
		return true, l.callback(w, r)
	case l.logoutPath:
		return true, l.logout(w, r)
	case l.backchannelPath:
		return true, l.backchannelLogout(w, r)
	case l.userPath:
		return true, l.serveUserinfo(w, r)
	}
	if hasToken {
		l.removeCookies(r)
		return false, nil
	}
	s, err := l.loadSession(w, r)
	if err != nil {
		return true, l.fail(w, r, failStore, err)
	}
	if s != nil {
		l.removeCookies(r)
		return true, l.pass(w, r, next, s)
	}
	if isNavigation(r) {
		return true, l.start(w, r)
	}
	l.removeCookies(r)
	return false, nil
}

// isNavigation reports whether r is a top-level navigation of a browser,
// the only request worth a redirect to sign in: GET or HEAD, not an
// upgrade, and Sec-Fetch-Mode: navigate, or without Fetch metadata
// (older browsers) an Accept that prefers text/html. Scripts, images,
// API calls and preflights get 401 instead.
func isNavigation(r *http.Request) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Header.Get("Upgrade") != "" {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate" && r.Header.Get("Sec-Fetch-Dest") != "iframe"
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	accept := r.Header.Get("Accept")
	h := strings.Index(accept, "text/html")
	if h < 0 {
		return false
	}
	j := strings.Index(accept, "json")
	return j < 0 || h < j
}

// jar returns the cookie jar for r's origin: secure when the configured
// redirect URI is https or r came over TLS.
func (l *login) jar(r *http.Request) cookieJar {
	return newJar(l.secureOrigin || r.TLS != nil)
}

// sessionName and pendingName are the cookie names; a pre-login cookie
// is named after its state, so that sign-ins in several tabs do not
// overwrite each other.
func (j cookieJar) sessionName() string { return j.prefix + "identity_session" }

func (j cookieJar) pendingName(state string) string {
	sum := hashToken(state)
	return j.prefix + pendingCookieBase + hex.EncodeToString(sum[:8])
}

// pendingCookieBase starts the name of every pre-login cookie.
const pendingCookieBase = "identity_login_"

// removeCookies deletes the handler's own cookies from the request, so
// that the upstream never sees them (nor has its header limits met by
// them).
func (l *login) removeCookies(r *http.Request) {
	if len(r.Header["Cookie"]) == 0 {
		return
	}
	removeCookies(r.Header, func(name string) bool {
		name = strings.TrimPrefix(name, "__Host-")
		return strings.HasPrefix(name, "identity_session") || strings.HasPrefix(name, pendingCookieBase)
	})
}

// loginFailure is why a sign-in, callback or logout went wrong: its
// label (metrics, logs, {http.auth.identity.error}), status and the text
// shown to the user.
type loginFailure struct {
	label   string
	status  int
	message string
}

// Sign-in failures.
var (
	failHTTPS         = loginFailure{"https_required", http.StatusForbidden, "Signing in needs HTTPS."}
	failProvider      = loginFailure{"provider_unavailable", http.StatusServiceUnavailable, "The identity provider cannot be reached. Try again later."}
	failMethod        = loginFailure{"method_not_allowed", http.StatusMethodNotAllowed, "This address does not accept that method."}
	failState         = loginFailure{"state_invalid", http.StatusBadRequest, "This sign-in response does not belong to a sign-in started by this browser."}
	failExpired       = loginFailure{"state_expired", http.StatusBadRequest, "The sign-in took too long or was started in another browser. Please start again."}
	failReplayed      = loginFailure{"state_replayed", http.StatusBadRequest, "This sign-in response was already used."}
	failDenied        = loginFailure{"access_denied", http.StatusForbidden, "The identity provider did not sign you in."}
	failProviderError = loginFailure{"provider_error", http.StatusBadGateway, "The identity provider reported an error."}
	failIssuer        = loginFailure{"issuer_mismatch", http.StatusBadRequest, "The sign-in response came from another identity provider."}
	failCode          = loginFailure{"token_error", http.StatusBadGateway, "The identity provider refused to complete the sign-in."}
	failTokenEndpoint = loginFailure{"token_endpoint_unavailable", http.StatusBadGateway, "The identity provider could not complete the sign-in. Try again later."}
	failIDToken       = loginFailure{"id_token_invalid", http.StatusUnauthorized, "The identity provider's answer could not be verified."}
	failSessionSize   = loginFailure{"session_too_large", http.StatusInternalServerError, "The session is too large to be kept in cookies."}
	failLogoutCSRF    = loginFailure{"logout_forbidden", http.StatusForbidden, "Signing out must be requested by this site."}
	failStore         = loginFailure{"store_unavailable", http.StatusServiceUnavailable, "Sessions cannot be read right now. Try again later."}
)

// fail ends a sign-in step on an error page: the failure is counted and
// logged (without any secret), {http.auth.identity.error} set, and the
// error returned to Caddy when handle_errors routes may restyle it;
// otherwise the handler writes a small page itself.
func (l *login) fail(w http.ResponseWriter, r *http.Request, f loginFailure, err error) error {
	l.metrics.loginFailures.WithLabelValues(f.label).Inc()
	fields := []zap.Field{zap.String("reason", f.label), zap.String("path", r.URL.Path)}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	if f.status >= 500 {
		l.logger.Warn("sign-in failed", fields...)
	} else {
		l.logger.Debug("sign-in failed", fields...)
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.identity.error", f.label)
	}
	w.Header().Set("Cache-Control", "no-store")
	if hasErrorRoutes(r) {
		return caddyhttp.Error(f.status, errors.New("identity: "+f.label))
	}
	writePage(w, f.status, http.StatusText(f.status), f.message, `<a href="/">Start again</a>`)
	return nil
}

// writePage writes a minimal HTML page; message is escaped, extra is
// trusted markup.
func writePage(w http.ResponseWriter, status int, title, message, extra string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><meta charset=utf-8><title>%s</title></head><body><h1>%s</h1><p>%s</p><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(message), extra)
}

// redirectURIFor returns the redirect URI of a sign-in started by r.
func (l *login) redirectURIFor(r *http.Request) string {
	if l.redirectURI != "" {
		return l.redirectURI
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: l.callbackPath}).String()
}

// safeReturn returns target if it is a path on this site, else "/". Only
// an absolute path without a second leading slash or backslash, without
// control characters and without scheme or host qualifies: browsers read
// "//evil", "/\evil" and "/%09/evil" as other hosts.
func safeReturn(target string) string {
	if !strings.HasPrefix(target, "/") || len(target) > 2048 {
		return "/"
	}
	if len(target) > 1 && (target[1] == '/' || target[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c < 0x21 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	if p, err := url.PathUnescape(u.EscapedPath()); err != nil || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\t\r\n") {
		return "/"
	}
	return target
}
