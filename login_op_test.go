package caddyidentity

import (
	"crypto"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// The fake provider of the login tests: identitytest's issuer (discovery,
// keys, minting) with authorization, PAR, token and end-session
// endpoints served next to it. Its authorization endpoint signs in
// testUser at once, as a provider does after its login form.

const (
	testClientID = "web"
	testSecret   = "s3cret"
	testUser     = "alice"
)

// fakeOP is the provider of one test.
type fakeOP struct {
	t   testing.TB
	iss *identitytest.Issuer
	// now is the clock of the tokens' iat and exp (the handler's).
	now func() time.Time
	srv *httptest.Server

	mu       sync.Mutex
	grants   map[string]url.Values // code → authorization parameters
	pushed   map[string]url.Values // request_uri → parameters
	refresh  map[string]bool       // live refresh tokens (rotated on use)
	jtis     map[string]bool       // client assertion IDs seen
	accessN  int
	idClaims func(c map[string]any) // changes the next ID tokens' claims
	extra    map[string]any         // claims of every ID token

	// clientKey, when set, is the public key the client signs its
	// private_key_jwt assertions with; it replaces the secret.
	clientKey crypto.PublicKey
	// clientAudiences, when set, are the assertion audiences accepted in
	// place of the URL of the endpoint called.
	clientAudiences []string
	// auds are the aud of the valid assertions received, in order.
	auds         [][]string
	assertions   atomic.Int32 // valid client assertions received
	accessTTL    int          // expires_in of access tokens
	tokenDown    bool         // token endpoint answers 503
	refreshDenY  bool         // refresh answers invalid_grant
	refreshCalls atomic.Int32
	tokenCalls   atomic.Int32 // every request to the token endpoint
	pushedCalls  atomic.Int32
}

// fakeOPOptions shape the discovery document.
type fakeOPOptions struct {
	par       bool // advertise a PAR endpoint
	issParam  bool // advertise RFC 9207 iss (sent in any case)
	noEndSess bool
}

// newFakeOP starts the provider.
func newFakeOP(t testing.TB, o fakeOPOptions) *fakeOP {
	t.Helper()
	op := &fakeOP{
		t:         t,
		now:       time.Now,
		grants:    map[string]url.Values{},
		pushed:    map[string]url.Values{},
		refresh:   map[string]bool{},
		jtis:      map[string]bool{},
		accessTTL: 300,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", op.authorize)
	mux.HandleFunc("/par", op.par)
	mux.HandleFunc("/token", op.token)
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	op.iss = identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
		m["authorization_endpoint"] = op.srv.URL + "/authorize"
		m["token_endpoint"] = op.srv.URL + "/token"
		delete(m, "userinfo_endpoint")
		if !o.noEndSess {
			m["end_session_endpoint"] = op.srv.URL + "/end_session"
		}
		delete(m, "pushed_authorization_request_endpoint")
		if o.par {
			m["pushed_authorization_request_endpoint"] = op.srv.URL + "/par"
		}
		if o.issParam {
			m["authorization_response_iss_parameter_supported"] = true
		}
	}))
	return op
}

// authorize answers an authorization request with the callback URL the
// provider would redirect to (as a 302), after checking what every
// request must carry.
func (op *fakeOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if ru := q.Get("request_uri"); ru != "" {
		op.mu.Lock()
		pq, ok := op.pushed[ru]
		delete(op.pushed, ru)
		op.mu.Unlock()
		if !ok || q.Get("client_id") != testClientID {
			http.Error(w, "unknown request_uri", http.StatusBadRequest)
			return
		}
		q = pq
	}
	if q.Get("client_id") != testClientID || q.Get("response_type") != "code" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("state") == "" || q.Get("nonce") == "" || !strings.Contains(q.Get("scope"), "openid") {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := identity.GenerateState()
	op.mu.Lock()
	op.grants[code] = q
	op.mu.Unlock()
	cb, _ := url.Parse(q.Get("redirect_uri"))
	cq := url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {op.iss.URL}}
	cb.RawQuery = cq.Encode()
	http.Redirect(w, r, cb.String(), http.StatusFound)
}

// par stores a pushed request (RFC 9126).
func (op *fakeOP) par(w http.ResponseWriter, r *http.Request) {
	op.pushedCalls.Add(1)
	if !op.clientAuthenticated(r) {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	ru := "urn:ietf:params:oauth:request_uri:" + identity.GenerateState()
	op.mu.Lock()
	op.pushed[ru] = r.PostForm
	op.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"request_uri": ru, "expires_in": 60})
}

// token redeems codes (with the PKCE verifier) and rotating refresh
// tokens.
func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	op.tokenCalls.Add(1)
	op.mu.Lock()
	down := op.tokenDown
	op.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if !op.clientAuthenticated(r) {
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	f := r.PostForm
	var nonce string
	switch f.Get("grant_type") {
	case "authorization_code":
		op.mu.Lock()
		g, ok := op.grants[f.Get("code")]
		delete(op.grants, f.Get("code"))
		op.mu.Unlock()
		if !ok || g.Get("redirect_uri") != f.Get("redirect_uri") ||
			identity.S256Challenge(f.Get("code_verifier")) != g.Get("code_challenge") {
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		nonce = g.Get("nonce")
	case "refresh_token":
		op.refreshCalls.Add(1)
		op.mu.Lock()
		ok := op.refresh[f.Get("refresh_token")] && !op.refreshDenY
		delete(op.refresh, f.Get("refresh_token"))
		op.mu.Unlock()
		if !ok {
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	op.mu.Lock()
	op.accessN++
	at := "at-" + strconv.Itoa(op.accessN)
	rt := "rt-" + identity.GenerateState()
	op.refresh[rt] = true
	claims := map[string]any{
		"sub": testUser, "aud": testClientID, "azp": testClientID, "sid": "sid-1",
		"email": "alice@example.com", "name": "Alice",
		"iat": op.now().Unix(), "exp": op.now().Add(time.Hour).Unix(),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if h, err := identity.TokenHash("RS256", at); err == nil && op.iss.Algorithms()[0] == "RS256" {
		claims["at_hash"] = h
	}
	for k, v := range op.extra {
		claims[k] = v
	}
	if op.idClaims != nil {
		op.idClaims(claims)
	}
	ttl := op.accessTTL
	op.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": ttl,
		"refresh_token": rt, "id_token": op.iss.Mint(op.t, claims),
	})
}

// clientAuthenticated parses r's form and checks the client's
// credentials: the secret with HTTP Basic, or with clientKey a
// private_key_jwt assertion (RFC 7523 §3) signed with it, for this
// endpoint, fresh and not replayed.
func (op *fakeOP) clientAuthenticated(r *http.Request) bool {
	if r.ParseForm() != nil {
		return false
	}
	if op.clientKey == nil {
		u, p, ok := r.BasicAuth()
		return ok && u == testClientID && p == testSecret
	}
	f := r.PostForm
	if _, _, basic := r.BasicAuth(); basic || f.Get("client_secret") != "" ||
		f.Get("client_assertion_type") != identity.ClientAssertionTypeJWTBearer {
		return false
	}
	tok, err := jwt.ParseSigned(f.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return false
	}
	var c jwt.Claims
	if tok.Claims(op.clientKey, &c) != nil || c.ID == "" || c.IssuedAt == nil || c.Expiry == nil {
		return false
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	auds := jwt.Audience{op.srv.URL + r.URL.Path}
	if op.clientAudiences != nil {
		auds = op.clientAudiences
	}
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: testClientID, Subject: testClientID, AnyAudience: auds}, 0)
	if err != nil || (f.Get("client_id") != "" && f.Get("client_id") != testClientID) {
		return false
	}
	if op.jtis[c.ID] {
		return false
	}
	op.jtis[c.ID] = true
	op.auds = append(op.auds, c.Audience)
	op.assertions.Add(1)
	return true
}

// tokenError writes an OAuth error response.
func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// set changes the provider's behaviour under its lock.
func (op *fakeOP) set(f func(op *fakeOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

// logoutToken mints a back-channel logout token; claims override the
// defaults (nil removes one).
func (op *fakeOP) logoutToken(claims map[string]any) string {
	c := map[string]any{
		"aud": testClientID, "sid": "sid-1", "sub": testUser, "jti": identity.GenerateState(),
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
		"exp":    nil,
	}
	for k, v := range claims {
		c[k] = v
	}
	return op.iss.Mint(op.t, c, identitytest.Header("typ", "logout+jwt"))
}
