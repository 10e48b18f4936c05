package identitytest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The client registered with every Issuer; WithClient registers more.
const (
	DefaultClientID     = "client"
	DefaultClientSecret = "secret"
)

// Endpoint paths of the OAuth 2.0 and OpenID Connect endpoints, relative to
// the issuer URL.
const (
	AuthorizePath     = "/authorize"
	TokenPath         = "/token"
	UserInfoPath      = "/userinfo"
	IntrospectionPath = "/introspect"
	RevocationPath    = "/revoke"
	DeviceAuthPath    = "/device_authorization"
	PARPath           = "/par"
	RegistrationPath  = "/register"
)

// Grant and token types of the device flow and token exchange.
const (
	grantDeviceCode    = "urn:ietf:params:oauth:grant-type:device_code"
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// WithClient registers a client: with a secret a confidential client
// (client_secret_basic or client_secret_post), with secret "" a public one
// (client_id in the form, PKCE only).
func WithClient(id, secret string) Option {
	return func(c *config) {
		if c.clients == nil {
			c.clients = map[string]string{}
		}
		c.clients[id] = secret
	}
}

// oauthState holds the codes and tokens the issuer has handed out.
type oauthState struct {
	mu      sync.Mutex
	codes   map[string]*grant
	tokens  map[string]*issued
	devices map[string]*deviceGrant // by device code
	pushed  map[string]url.Values   // PAR request_uri → authorization parameters
	logins  map[string]url.Values   // login form's pending request → authorization parameters
	// clients are the configured and registered clients (ID → secret);
	// registered holds the metadata of dynamically registered ones.
	clients    map[string]string
	registered map[string]*registration
	// assertions are the client assertions used, by client and jti.
	assertions map[string]bool
}

// registration is a dynamically registered client (RFC 7591, RFC 7592).
type registration struct {
	metadata map[string]json.RawMessage
	token    string // registration access token
	issuedAt int64
}

// grant is one user's (or client's) authorization.
type grant struct {
	clientID, subject, scope, nonce string
	authTime                        time.Time
	// audience, when set, is the aud of the access tokens (token
	// exchange); act the acting party.
	audience []string
	act      string
	// redirectURI and challenge belong to an authorization code.
	redirectURI, challenge string
}

// issued is an access or refresh token the issuer handed out.
type issued struct {
	refresh bool
	grant   *grant
	claims  map[string]any // access tokens: the claims of the JWT
	expiry  time.Time
	jkt     string // DPoP-bound access tokens: the thumbprint of the key
}

// init makes the maps on first use; configured are the clients of the
// issuer's options.
func (s *oauthState) init(configured map[string]string) {
	if s.codes == nil {
		s.codes, s.tokens = map[string]*grant{}, map[string]*issued{}
		s.devices, s.pushed = map[string]*deviceGrant{}, map[string]url.Values{}
		s.logins = map[string]url.Values{}
		s.clients, s.registered = maps.Clone(configured), map[string]*registration{}
	}
}

// lockOAuth locks the OAuth state, making it on first use; the caller
// unlocks i.oauth.mu.
func (i *Issuer) lockOAuth() *oauthState {
	i.oauth.mu.Lock()
	i.oauth.init(i.cfg.clients)
	return &i.oauth
}

// clientSecret returns the secret of a known client ("" for a public one).
func (i *Issuer) clientSecret(id string) (string, bool) {
	s := i.lockOAuth()
	defer s.mu.Unlock()
	secret, ok := s.clients[id]
	return secret, ok && id != ""
}

// randomValue returns 32 random base64url characters.
func randomValue() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="identitytest"`)
	}
	writeJSONBody(w, status, map[string]any{"error": code, "error_description": description})
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// clientAuth authenticates the client of a token, introspection or
// revocation request: HTTP Basic (form-urlencoded ID and secret, RFC 6749
// §2.3.1), client_id and client_secret in the form, or a client assertion
// of a WithClientKey client; a public client by its client_id alone. It
// reports the client and whether it is public.
func (i *Issuer) clientAuth(r *http.Request) (id string, public, ok bool) {
	if id, presented := i.assertionClient(r); presented {
		return id, false, id != ""
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", false, false
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	want, known := i.clientSecret(id)
	switch {
	case !known:
		return "", false, false
	case want == "":
		return id, true, secret == ""
	}
	return id, false, subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

// serveAuthorize answers an authorization request at once, as if the user
// (login_hint, else DefaultSubject) had signed in and consented: a 302 to
// redirect_uri with code, state and iss. Only response_type code with
// PKCE S256 is served. With WithLoginPage it shows the login form instead.
func (i *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		i.serveLoginForm(w, r)
		return
	}
	q, ok := i.authorizationRequest(w, r)
	if !ok {
		return
	}
	if i.cfg.users != nil {
		i.showLoginForm(w, i.pendingLogin(q), q.Get("login_hint"), "")
		return
	}
	sub := q.Get("login_hint")
	if sub == "" {
		sub = DefaultSubject
	}
	i.grantCode(w, r, q, sub, http.StatusFound)
}

// authorizationRequest returns the parameters of the authorization
// request r (those pushed before for a PAR request_uri), or answers 400
// when they are not served.
func (i *Issuer) authorizationRequest(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q := r.URL.Query()
	if uri := q.Get("request_uri"); uri != "" {
		i.lockOAuth()
		pushed := i.oauth.pushed[uri]
		if pushed != nil && pushed.Get("client_id") == q.Get("client_id") {
			delete(i.oauth.pushed, uri) // single use
		} else {
			pushed = nil
		}
		i.oauth.mu.Unlock()
		if pushed == nil {
			http.Error(w, "identitytest: unknown request_uri or another client", http.StatusBadRequest)
			return nil, false
		}
		q = pushed
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("response_type") != "code":
		http.Error(w, "identitytest: response_type must be code", http.StatusBadRequest)
	case !i.knownClient(q.Get("client_id")):
		http.Error(w, "identitytest: unknown client_id", http.StatusBadRequest)
	case err != nil || !redirect.IsAbs():
		http.Error(w, "identitytest: redirect_uri must be an absolute URL", http.StatusBadRequest)
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		http.Error(w, "identitytest: PKCE with S256 is required", http.StatusBadRequest)
	default:
		return q, true
	}
	return nil, false
}

// grantCode authorizes the request q for sub and redirects (with status)
// to its redirect_uri with code, state and iss.
func (i *Issuer) grantCode(w http.ResponseWriter, r *http.Request, q url.Values, sub string, status int) {
	redirect, _ := url.Parse(q.Get("redirect_uri")) // checked by authorizationRequest
	code := randomValue()
	i.lockOAuth()
	i.oauth.codes[code] = &grant{
		clientID: q.Get("client_id"), subject: sub, scope: q.Get("scope"), nonce: q.Get("nonce"),
		authTime: time.Now(), redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
	}
	i.oauth.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("iss", i.URL)
	if s := q.Get("state"); s != "" {
		back.Set("state", s)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), status)
}

func (i *Issuer) knownClient(id string) bool {
	_, ok := i.clientSecret(id)
	return ok
}

// serveToken answers the client_credentials, authorization_code (with
// PKCE) and refresh_token grants.
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	client, public, ok := i.clientAuth(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	jkt, err := i.checkDPoP(r, "")
	if err != nil && !errors.Is(err, errNoDPoP) {
		oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", err.Error())
		return
	}
	f := r.PostForm
	var g *grant
	switch f.Get("grant_type") {
	case "client_credentials":
		if public {
			oauthError(w, http.StatusBadRequest, "unauthorized_client", "public clients cannot use client_credentials")
			return
		}
		g = &grant{clientID: client, subject: client, scope: f.Get("scope")}
	case "authorization_code":
		i.lockOAuth()
		g = i.oauth.codes[f.Get("code")]
		delete(i.oauth.codes, f.Get("code")) // single use
		i.oauth.mu.Unlock()
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if g == nil || g.clientID != client || g.redirectURI != f.Get("redirect_uri") ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown code, other client or redirect_uri, or PKCE verification failed")
			return
		}
	case "refresh_token":
		i.lockOAuth()
		old := i.oauth.tokens[f.Get("refresh_token")]
		if old != nil && old.refresh && old.grant.clientID == client {
			delete(i.oauth.tokens, f.Get("refresh_token")) // rotated
			g = old.grant
		}
		i.oauth.mu.Unlock()
		if g == nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
			return
		}
	case grantDeviceCode:
		var errCode string
		if g, errCode = i.redeemDevice(f.Get("device_code"), client); g == nil {
			oauthError(w, http.StatusBadRequest, errCode, "device code not approved, unknown or expired")
			return
		}
	case grantTokenExchange:
		var errCode string
		if g, errCode = i.exchange(f, client, public); g == nil {
			oauthError(w, http.StatusBadRequest, errCode, "subject_token must be a live access token of this issuer, exchanged by a confidential client")
			return
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	}
	resp, err := i.issueTokens(g, f.Get("grant_type"), jkt)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	writeJSONBody(w, http.StatusOK, resp)
}

// issueTokens mints the access token of g and, for a user, a refresh token
// and (scope openid) an ID token. The ID token of a code carries the nonce
// and at_hash; one from a refresh has no nonce (OpenID Connect Core §12.2).
// With jkt, the access token is bound to that DPoP key (cnf.jkt, token
// type DPoP).
func (i *Issuer) issueTokens(g *grant, grantType, jkt string) (map[string]any, error) {
	now := time.Now()
	exp := now.Add(DefaultLifetime)
	claims := map[string]any{
		"sub": g.subject, "client_id": g.clientID, "jti": randomValue(), "iat": now, "exp": exp,
	}
	if g.scope != "" {
		claims["scope"] = g.scope
	}
	if g.audience != nil {
		claims["aud"] = g.audience
	}
	if g.act != "" {
		claims["act"] = map[string]any{"sub": g.act}
	}
	tokenType := "Bearer"
	if jkt != "" {
		claims["cnf"], tokenType = map[string]any{"jkt": jkt}, "DPoP"
	}
	at, err := randomValue(), error(nil)
	if !i.cfg.opaqueTokens {
		if at, err = i.MintToken(claims, Header("typ", "at+jwt")); err != nil {
			return nil, err
		}
	}
	resp := map[string]any{"access_token": at, "token_type": tokenType, "expires_in": int(DefaultLifetime / time.Second)}
	if g.scope != "" {
		resp["scope"] = g.scope
	}
	i.lockOAuth()
	i.oauth.tokens[at] = &issued{grant: g, claims: i.tokenClaims(claims), expiry: exp, jkt: jkt}
	if grantType == grantTokenExchange {
		resp["issued_token_type"] = tokenTypeAccess
	}
	if grantType != "client_credentials" && grantType != grantTokenExchange {
		rt := randomValue()
		i.oauth.tokens[rt] = &issued{refresh: true, grant: g, expiry: now.Add(24 * time.Hour)}
		resp["refresh_token"] = rt
	}
	i.oauth.mu.Unlock()
	if grantType == "client_credentials" || grantType == grantTokenExchange || !slices.Contains(strings.Fields(g.scope), "openid") {
		return resp, nil
	}
	alg := i.cfg.algorithms[0]
	idClaims := map[string]any{
		"sub": g.subject, "aud": g.clientID, "auth_time": g.authTime, "iat": now, "exp": exp,
		"at_hash": halfHash(alg, at),
	}
	if g.nonce != "" && grantType == "authorization_code" {
		idClaims["nonce"] = g.nonce
	}
	if resp["id_token"], err = i.MintToken(idClaims); err != nil {
		return nil, err
	}
	return resp, nil
}

// halfHash is the at_hash of value for alg (OpenID Connect Core §3.1.3.6).
func halfHash(alg, value string) string {
	var h hash.Hash
	switch {
	case strings.HasSuffix(alg, "384"):
		h = sha512.New384()
	case strings.HasSuffix(alg, "512"), alg == "EdDSA":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// lookup returns a live token the issuer handed out.
func (i *Issuer) lookup(token string) *issued {
	i.lockOAuth()
	defer i.oauth.mu.Unlock()
	t := i.oauth.tokens[token]
	if t == nil || time.Now().After(t.expiry) {
		return nil
	}
	return t
}

// serveUserInfo answers the claims of the user of an access token (Bearer,
// or DPoP with a proof of the bound key): sub, name (the subject), email
// (subject@example.test) and email_verified.
func (i *Issuer) serveUserInfo(w http.ResponseWriter, r *http.Request) {
	t, challenge := i.presentedToken(r)
	if t == nil {
		w.Header().Set("WWW-Authenticate", challenge)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	sub := t.grant.subject
	writeJSONBody(w, http.StatusOK, map[string]any{
		"sub": sub, "name": sub, "email": sub + "@example.test", "email_verified": true,
	})
}

// serveIntrospection answers RFC 7662 introspection for an authenticated
// confidential client, signed (RFC 9701) when the client accepts
// application/token-introspection+jwt.
func (i *Issuer) serveIntrospection(w http.ResponseWriter, r *http.Request) {
	client, public, ok := i.clientAuth(r)
	if !ok || public {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	i.writeIntrospection(w, r, client, i.introspection(r.PostForm.Get("token")))
}

// introspection is the RFC 7662 response about token.
func (i *Issuer) introspection(token string) map[string]any {
	t := i.lookup(token)
	if t == nil {
		return map[string]any{"active": false}
	}
	resp := map[string]any{
		"active": true, "client_id": t.grant.clientID, "sub": t.grant.subject, "iss": i.URL, "exp": t.expiry.Unix(),
	}
	if t.grant.scope != "" {
		resp["scope"] = t.grant.scope
	}
	if t.refresh {
		resp["token_type"] = "refresh_token"
	} else {
		resp["token_type"] = "Bearer"
		resp["aud"], resp["iat"], resp["jti"] = t.claims["aud"], t.claims["iat"], t.claims["jti"]
	}
	if t.jkt != "" {
		resp["token_type"], resp["cnf"] = "DPoP", map[string]any{"jkt": t.jkt}
	}
	return resp
}

// serveRevocation forgets a token of the authenticated client (RFC 7009);
// it answers 200 whether or not the token was known.
func (i *Issuer) serveRevocation(w http.ResponseWriter, r *http.Request) {
	client, _, ok := i.clientAuth(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	token := r.PostForm.Get("token")
	i.lockOAuth()
	if t := i.oauth.tokens[token]; t != nil && t.grant.clientID == client {
		delete(i.oauth.tokens, token)
	}
	i.oauth.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// exchange is the grant of an RFC 8693 token exchange: a live access
// token of this issuer as subject_token, for a confidential client; the
// new token has the subject's sub, the requested audience (default
// DefaultAudience) and act.sub the client.
func (i *Issuer) exchange(f url.Values, client string, public bool) (*grant, string) {
	if public {
		return nil, "unauthorized_client"
	}
	t := i.lookup(f.Get("subject_token"))
	if t == nil || t.refresh || f.Get("subject_token_type") != tokenTypeAccess {
		return nil, "invalid_grant"
	}
	g := &grant{clientID: client, subject: t.grant.subject, scope: f.Get("scope"), act: client}
	g.audience = f["audience"]
	return g, ""
}

// servePAR stores the authorization parameters of the authenticated client
// (RFC 9126) and answers their request_uri.
func (i *Issuer) servePAR(w http.ResponseWriter, r *http.Request) {
	client, _, ok := i.clientAuth(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if r.PostForm.Get("request_uri") != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "request_uri is not allowed in a pushed request")
		return
	}
	params := url.Values{}
	for k, v := range r.PostForm {
		if k != "client_secret" {
			params[k] = v
		}
	}
	params.Set("client_id", client)
	uri := "urn:ietf:params:oauth:request_uri:" + randomValue()
	i.lockOAuth()
	i.oauth.pushed[uri] = params
	i.oauth.mu.Unlock()
	writeJSONBody(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": 60})
}
