// Package identitytest provides an in-process OpenID provider for tests and
// demos: an httptest server that serves an OpenID Connect discovery document
// and a JSON Web Key Set, mints compact JWS tokens signed with its keys, and
// answers the OAuth 2.0 endpoints a client needs to be tried without a real
// provider: authorization code with PKCE (signed in at once, as login_hint),
// pushed authorization requests, client credentials, refresh tokens, the
// device flow, token exchange, userinfo, introspection, revocation and
// dynamic client registration.
//
// The issuer can rotate and withdraw keys, go down (answer 503) and come
// back, serve an arbitrary JWKS body (garbage, an empty set, ...), delay its
// answers, and it counts the discovery and JWKS requests it receives, so tests
// can assert how often a cache fetched. Every method is safe for concurrent
// use.
//
// The package depends on go-jose only; it deliberately does not import the
// identity package, so that identity's own tests can use it.
//
// Routes, relative to the issuer URL (see WithIssuerPath):
//
//	GET  /.well-known/openid-configuration   OpenID Connect Discovery 1.0
//	GET  /.well-known/oauth-authorization-server{path}  RFC 8414 (same document, at the server root)
//	GET  /jwks        the key set (see WithJWKSPath)
//	GET  /authorize   response_type=code with PKCE S256 (or a PAR request_uri): 302 to redirect_uri with code, state and iss
//	                  (WithLoginPage: a login form first, POSTed back here, then 303 to redirect_uri)
//	POST /par         RFC 9126 pushed authorization request
//	POST /device_authorization  RFC 8628; ApproveDevice and DenyDevice play the user (WithDevicePolling: interval enforced)
//	POST /token       client_credentials, authorization_code (+ code_verifier), refresh_token (rotated),
//	                  device_code, token-exchange (RFC 8693: a live access token as subject_token, act.sub the client)
//	GET  /userinfo    sub, name, email, email_verified of a Bearer access token (POST too)
//	POST /introspect  RFC 7662, for confidential clients; RFC 9701 signed when the Accept header asks
//	POST /revoke      RFC 7009
//	POST /register    RFC 7591 dynamic registration; GET, PUT, DELETE /register/{id} (RFC 7592)
//
// Clients authenticate with client_secret_basic or client_secret_post;
// DefaultClientID with DefaultClientSecret is registered, WithClient adds
// more (public ones too), WithClientKey clients that authenticate with
// private_key_jwt. Access tokens are JWTs (typ at+jwt, aud
// DefaultAudience, client_id, scope), or opaque strings with
// WithOpaqueAccessTokens; a code or refresh grant with scope "openid" also
// returns an ID token (aud the client, nonce, at_hash, auth_time). A token request with a valid DPoP proof gets a DPoP-bound
// access token (cnf.jkt, token_type DPoP), which userinfo then accepts only
// with the DPoP scheme and a proof of that key. Codes and tokens live in
// memory until the issuer is closed.
package identitytest

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DiscoveryPath is the path of the OpenID Connect discovery document,
// relative to the issuer URL.
const DiscoveryPath = "/.well-known/openid-configuration"

// OAuthMetadataPrefix is the well-known prefix of RFC 8414 authorization
// server metadata; the issuer's path is appended to it.
const OAuthMetadataPrefix = "/.well-known/oauth-authorization-server"

// DefaultJWKSPath is the path of the key set, relative to the issuer URL,
// unless WithJWKSPath says otherwise.
const DefaultJWKSPath = "/jwks"

// config collects what the options set.
type config struct {
	algorithms   []string
	tls          bool
	noDiscovery  bool
	cacheControl string
	overrides    []func(map[string]any)
	jwksPath     string
	issuerPath   string
	noKeyAlg     bool
	clients      map[string]string           // client ID → secret ("" for public clients)
	clientKeys   map[string]crypto.PublicKey // WithClientKey: client ID → assertion key
	opaqueTokens bool                        // WithOpaqueAccessTokens
	users        map[string]string           // WithLoginPage: user name → password
	// WithDevicePolling: the enforced polling interval and the lifetime
	// of device codes.
	deviceInterval, deviceLifetime time.Duration
}

// Option configures an Issuer at Start or NewIssuer.
type Option func(*config)

// WithAlgorithms sets the signing algorithms of the issuer: one signing key
// per algorithm is published in the JWKS, the list is advertised as
// id_token_signing_alg_values_supported, and the first one is the default of
// Mint. Supported: RS256, RS384, RS512, PS256, PS384, PS512 (RSA 2048),
// ES256 (P-256), ES384 (P-384), ES512 (P-521) and EdDSA (Ed25519). The
// default is RS256. Keys are generated on first use (the first JWKS request,
// Mint or PublicJWKS), once per algorithm.
func WithAlgorithms(algs ...string) Option {
	return func(c *config) { c.algorithms = append([]string(nil), algs...) }
}

// WithoutKeyAlgorithms publishes the keys without their "alg" member, as
// many providers do (the member is optional, RFC 7517 §4.4): a verifier
// can then tell which algorithms a key may be used with only from its own
// allow-list and the key type, so tests exercise that allow-list itself.
func WithoutKeyAlgorithms() Option {
	return func(c *config) { c.noKeyAlg = true }
}

// WithTLS serves over HTTPS with a self-signed certificate; use Client for an
// *http.Client that trusts it.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithoutDiscovery makes both discovery documents answer 404 (for
// configurations that name the JWKS URL directly).
func WithoutDiscovery() Option {
	return func(c *config) { c.noDiscovery = true }
}

// WithCacheControl sets the Cache-Control header of the discovery and JWKS
// responses, e.g. "max-age=300". By default none is sent.
func WithCacheControl(value string) Option {
	return func(c *config) { c.cacheControl = value }
}

// WithMetadataOverride registers a function that may change the discovery
// document before it is served: it receives a fresh map on every request and
// may add, change or delete members. Several overrides run in order.
func WithMetadataOverride(f func(map[string]any)) Option {
	return func(c *config) { c.overrides = append(c.overrides, f) }
}

// WithJWKSPath serves the key set at path (relative to the issuer URL, with a
// leading slash) instead of DefaultJWKSPath.
func WithJWKSPath(path string) Option {
	return func(c *config) { c.jwksPath = path }
}

// WithIssuerPath gives the issuer URL a path, e.g. "/realms/demo", as many
// real providers have; discovery and JWKS are served below it, and the RFC
// 8414 document at /.well-known/oauth-authorization-server/realms/demo.
func WithIssuerPath(path string) Option {
	return func(c *config) { c.issuerPath = path }
}

// signingKey is one key of the issuer.
type signingKey struct {
	kid       string
	alg       string
	signer    crypto.Signer
	published bool
}

// failure is a canned error answer.
type failure struct {
	status int
	body   []byte
}

// Issuer is a test OpenID provider served by an httptest.Server. Create it
// with NewIssuer in tests or Start elsewhere. All methods are safe for
// concurrent use.
type Issuer struct {
	// URL is the issuer identifier: the server URL plus the issuer path,
	// without a trailing slash. It is the default "iss" of minted tokens and
	// the "issuer" member of the discovery document.
	URL string

	cfg config
	srv *httptest.Server

	// genMu serialises key generation so that a key is generated once.
	genMu sync.Mutex

	// kidTag ends every key ID of this issuer (see KeyIDTag).
	kidTag string

	mu        sync.Mutex
	keys      []*signingKey          // every key ever created, in creation order
	current   map[string]*signingKey // current signing key per algorithm
	seq       map[string]int         // per-algorithm counter for key IDs
	fail      *failure               // discovery and JWKS failure
	jwksFail  *failure               // JWKS-only failure
	jwksBody  []byte                 // non-nil: served instead of the keys
	jwksType  string
	delay     time.Duration
	oauth     oauthState
	jwksCount atomic.Int64
	discCount atomic.Int64
	closeOnce sync.Once
}

// Start starts an Issuer on a loopback port. The caller must Close it. It
// fails on an unsupported algorithm or a malformed path option.
func Start(opts ...Option) (*Issuer, error) {
	cfg := config{jwksPath: DefaultJWKSPath, clients: map[string]string{DefaultClientID: DefaultClientSecret}}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.algorithms) == 0 {
		cfg.algorithms = []string{"RS256"}
	}
	for _, alg := range cfg.algorithms {
		if !isSupportedAlgorithm(alg) {
			return nil, fmt.Errorf("identitytest: unsupported algorithm %q (supported: %s)",
				alg, strings.Join(SupportedAlgorithms(), ", "))
		}
	}
	if !strings.HasPrefix(cfg.jwksPath, "/") {
		return nil, fmt.Errorf("identitytest: JWKS path %q must start with /", cfg.jwksPath)
	}
	cfg.issuerPath = strings.TrimSuffix(cfg.issuerPath, "/")
	if cfg.issuerPath != "" && !strings.HasPrefix(cfg.issuerPath, "/") {
		return nil, fmt.Errorf("identitytest: issuer path %q must start with /", cfg.issuerPath)
	}
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	i := &Issuer{
		cfg:     cfg,
		kidTag:  hex.EncodeToString(tag[:]),
		current: make(map[string]*signingKey),
		seq:     make(map[string]int),
	}
	// The URL is set before the server serves: a client that already knows
	// the port (a process left from an earlier test, polling an issuer whose
	// port was reused) must not see the Issuer half made.
	i.srv = httptest.NewUnstartedServer(http.HandlerFunc(i.serveHTTP))
	scheme := "http://"
	if cfg.tls {
		scheme = "https://"
	}
	i.URL = scheme + i.srv.Listener.Addr().String() + cfg.issuerPath
	if cfg.tls {
		i.srv.StartTLS()
	} else {
		i.srv.Start()
	}
	return i, nil
}

// NewIssuer starts an Issuer for a test and closes it in tb.Cleanup. It
// fails the test on a bad option.
func NewIssuer(tb testing.TB, opts ...Option) *Issuer {
	tb.Helper()
	i, err := Start(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(i.Close)
	return i
}

// Close shuts the server down, waiting for requests in flight. It may be
// called more than once.
func (i *Issuer) Close() {
	i.closeOnce.Do(i.srv.Close)
}

// Client returns an *http.Client that trusts the issuer's certificate (with
// WithTLS) and otherwise behaves like http.DefaultClient.
func (i *Issuer) Client() *http.Client {
	return i.srv.Client()
}

// TLSConfig returns a TLS client configuration trusting the issuer's
// certificate, or nil when the issuer serves plain HTTP.
func (i *Issuer) TLSConfig() *tls.Config {
	if t, ok := i.srv.Client().Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		return t.TLSClientConfig.Clone()
	}
	return nil
}

// DiscoveryURL returns the URL of the OpenID Connect discovery document.
func (i *Issuer) DiscoveryURL() string {
	return i.URL + DiscoveryPath
}

// OAuthMetadataURL returns the URL of the RFC 8414 authorization server
// metadata (the same document as DiscoveryURL).
func (i *Issuer) OAuthMetadataURL() string {
	return i.srv.URL + OAuthMetadataPrefix + i.cfg.issuerPath
}

// JWKSURL returns the URL of the key set.
func (i *Issuer) JWKSURL() string {
	return i.URL + i.cfg.jwksPath
}

// Algorithms returns the algorithms configured with WithAlgorithms.
func (i *Issuer) Algorithms() []string {
	return slices.Clone(i.cfg.algorithms)
}

// JWKSFetches returns how many requests the JWKS endpoint received since
// start or the last ResetCounters, failed ones included.
func (i *Issuer) JWKSFetches() int {
	return int(i.jwksCount.Load())
}

// DiscoveryFetches returns how many requests the two discovery endpoints
// received since start or the last ResetCounters, failed ones included.
func (i *Issuer) DiscoveryFetches() int {
	return int(i.discCount.Load())
}

// ResetCounters sets JWKSFetches and DiscoveryFetches to zero.
func (i *Issuer) ResetCounters() {
	i.jwksCount.Store(0)
	i.discCount.Store(0)
}

// SetDown makes the discovery and JWKS endpoints answer 503 Service
// Unavailable (true) or serve normally again (false).
func (i *Issuer) SetDown(down bool) {
	if down {
		i.SetFailure(http.StatusServiceUnavailable, []byte(`{"error":"temporarily_unavailable"}`))
		return
	}
	i.SetFailure(0, nil)
}

// SetFailure makes the discovery and JWKS endpoints answer status with body
// (served as application/json). A status of 0 restores normal service.
func (i *Issuer) SetFailure(status int, body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.fail = newFailure(status, body)
}

// SetJWKSFailure is SetFailure for the JWKS endpoint only; discovery keeps
// working. A status of 0 restores normal service.
func (i *Issuer) SetJWKSFailure(status int, body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.jwksFail = newFailure(status, body)
}

// newFailure returns nil for status 0.
func newFailure(status int, body []byte) *failure {
	if status == 0 {
		return nil
	}
	return &failure{status: status, body: slices.Clone(body)}
}

// SetJWKSBody makes the JWKS endpoint serve exactly body with status 200 and
// the given Content-Type ("" means application/json), e.g. garbage or
// `{"keys":[]}`. An empty non-nil body serves an empty response; nil restores
// the real key set.
func (i *Issuer) SetJWKSBody(body []byte, contentType string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if body == nil {
		i.jwksBody, i.jwksType = nil, ""
		return
	}
	if contentType == "" {
		contentType = "application/json"
	}
	i.jwksBody, i.jwksType = append([]byte{}, body...), contentType
}

// SetDelay delays every discovery and JWKS answer by d (0 for none), e.g. to
// let concurrent fetches overlap. A delayed request ends early when its
// client goes away.
func (i *Issuer) SetDelay(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.delay = d
}

// KeyIDTag returns the random tag that ends every key ID of the issuer.
// Key IDs read "<alg>-<n>.<tag>", e.g. "rs256-1.5f0c9a1e" for the first RS256
// key and "rs256-2.5f0c9a1e" after RotateKey. The tag differs between
// issuers, so that no two issuers publish the same key ID: a verifier that
// keeps keys by issuer URL (as a provider shared across configuration
// reloads does) and meets a new issuer on the port of a closed one then
// sees an unknown key ID, not a known one with a different key.
func (i *Issuer) KeyIDTag() string { return i.kidTag }

// CurrentKeyID returns the key ID of the current signing key for alg,
// generating the key if it does not exist yet. It panics on an unsupported
// algorithm.
func (i *Issuer) CurrentKeyID(alg string) string {
	k, err := i.currentKey(alg)
	if err != nil {
		panic(err)
	}
	return k.kid
}

// RotateKey generates a new signing key for alg, publishes it and makes it
// the current key of alg; previous keys stay published until RemoveKey. It
// returns the new key ID and panics on an unsupported algorithm.
func (i *Issuer) RotateKey(alg string) (newKID string) {
	i.genMu.Lock()
	defer i.genMu.Unlock()
	k, err := i.newKeyLocked(alg)
	if err != nil {
		panic(err)
	}
	return k.kid
}

// RemoveKey withdraws the key kid from the JWKS. Its private key remains
// available (PrivateKey, Mint with SigningKey), and if it was the current key
// of its algorithm Mint keeps signing with it, which yields tokens whose key
// cannot be found. Unknown key IDs are ignored.
func (i *Issuer) RemoveKey(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range i.keys {
		if k.kid == kid {
			k.published = false
		}
	}
}

// PrivateKey returns the private key with the given key ID, published or
// not, or nil if there is none.
func (i *Issuer) PrivateKey(kid string) crypto.Signer {
	if k := i.keyByID(kid); k != nil {
		return k.signer
	}
	return nil
}

// KeyIDs returns the IDs of the published keys, in JWKS order.
func (i *Issuer) KeyIDs() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	var ids []string
	for _, k := range i.keys {
		if k.published {
			ids = append(ids, k.kid)
		}
	}
	return ids
}

// PublicJWKS returns the key set as the issuer publishes it, generating the
// configured keys if needed. It ignores SetJWKSBody and SetFailure.
func (i *Issuer) PublicJWKS() []byte {
	body, err := i.publicJWKS()
	if err != nil {
		panic(err)
	}
	return body
}

// Metadata returns the discovery document as served (overrides applied).
func (i *Issuer) Metadata() map[string]any {
	doc := map[string]any{
		"issuer":                                i.URL,
		"jwks_uri":                              i.JWKSURL(),
		"authorization_endpoint":                i.URL + AuthorizePath,
		"token_endpoint":                        i.URL + TokenPath,
		"userinfo_endpoint":                     i.URL + UserInfoPath,
		"introspection_endpoint":                i.URL + IntrospectionPath,
		"revocation_endpoint":                   i.URL + RevocationPath,
		"device_authorization_endpoint":         i.URL + DeviceAuthPath,
		"pushed_authorization_request_endpoint": i.URL + PARPath,
		"registration_endpoint":                 i.URL + RegistrationPath,
		"id_token_signing_alg_values_supported": i.Algorithms(),
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"grant_types_supported": []string{"authorization_code", "client_credentials", "refresh_token",
			grantDeviceCode, grantTokenExchange},
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      []string{"S256"},
		"dpop_signing_alg_values_supported":     []string{"ES256", "RS256", "PS256", "EdDSA"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "name", "email"},
	}
	for _, f := range i.cfg.overrides {
		f(doc)
	}
	return doc
}

// keyByID returns the key with that ID or nil.
func (i *Issuer) keyByID(kid string) *signingKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range i.keys {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// currentKey returns the current key of alg, generating it on first use.
func (i *Issuer) currentKey(alg string) (*signingKey, error) {
	i.mu.Lock()
	k := i.current[alg]
	i.mu.Unlock()
	if k != nil {
		return k, nil
	}
	i.genMu.Lock()
	defer i.genMu.Unlock()
	i.mu.Lock()
	k = i.current[alg]
	i.mu.Unlock()
	if k != nil {
		return k, nil
	}
	return i.newKeyLocked(alg)
}

// newKeyLocked generates, publishes and makes current a new key for alg.
// The caller holds genMu (not mu): generation runs outside mu so that
// serving is not blocked by a slow RSA key generation.
func (i *Issuer) newKeyLocked(alg string) (*signingKey, error) {
	if !isSupportedAlgorithm(alg) {
		return nil, fmt.Errorf("identitytest: unsupported algorithm %q", alg)
	}
	signer, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.seq[alg]++
	k := &signingKey{
		kid:       fmt.Sprintf("%s-%d.%s", strings.ToLower(alg), i.seq[alg], i.kidTag),
		alg:       alg,
		signer:    signer,
		published: true,
	}
	i.keys = append(i.keys, k)
	i.current[alg] = k
	return k, nil
}

// publicJWKS ensures the configured keys exist and marshals the published
// ones.
func (i *Issuer) publicJWKS() ([]byte, error) {
	for _, alg := range i.cfg.algorithms {
		if _, err := i.currentKey(alg); err != nil {
			return nil, err
		}
	}
	i.mu.Lock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range i.keys {
		if k.published {
			jwk := jose.JSONWebKey{
				Key:       k.signer.Public(),
				KeyID:     k.kid,
				Algorithm: k.alg,
				Use:       "sig",
			}
			if i.cfg.noKeyAlg {
				jwk.Algorithm = ""
			}
			set.Keys = append(set.Keys, jwk)
		}
	}
	i.mu.Unlock()
	return json.Marshal(set)
}

// serveHTTP routes the discovery and JWKS requests.
func (i *Issuer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := i.cfg.issuerPath
	switch r.URL.Path {
	case p + DiscoveryPath, OAuthMetadataPrefix + p:
		i.discCount.Add(1)
		if i.cfg.noDiscovery {
			http.NotFound(w, r)
			return
		}
		i.serveDiscovery(w, r)
	case p + i.cfg.jwksPath:
		i.jwksCount.Add(1)
		i.serveJWKS(w, r)
	case p + AuthorizePath:
		methods := []string{http.MethodGet}
		if i.cfg.users != nil {
			methods = append(methods, http.MethodPost)
		}
		if !i.wait(w, r, false) && allowMethods(w, r, methods...) {
			i.serveAuthorize(w, r)
		}
	case p + UserInfoPath:
		if !i.wait(w, r, false) && allowMethods(w, r, http.MethodGet, http.MethodPost) {
			i.serveUserInfo(w, r)
		}
	case p + RegistrationPath:
		if !i.wait(w, r, false) && allowMethods(w, r, http.MethodPost) {
			i.serveRegistration(w, r)
		}
	case p + TokenPath, p + IntrospectionPath, p + RevocationPath, p + DeviceAuthPath, p + PARPath:
		if i.wait(w, r, false) || !allowMethods(w, r, http.MethodPost) {
			return
		}
		if err := r.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
			return
		}
		switch strings.TrimPrefix(r.URL.Path, p) {
		case TokenPath:
			i.serveToken(w, r)
		case IntrospectionPath:
			i.serveIntrospection(w, r)
		case DeviceAuthPath:
			i.serveDeviceAuthorization(w, r)
		case PARPath:
			i.servePAR(w, r)
		default:
			i.serveRevocation(w, r)
		}
	default:
		if id, ok := strings.CutPrefix(r.URL.Path, p+RegistrationPath+"/"); ok && id != "" {
			if !i.wait(w, r, false) {
				i.serveClientConfiguration(w, r, id)
			}
			return
		}
		http.NotFound(w, r)
	}
}

// prelude applies the delay and the method check (GET or HEAD), and
// answers a configured failure. It reports whether the request is fully
// answered.
func (i *Issuer) prelude(w http.ResponseWriter, r *http.Request, jwks bool) bool {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return true
	}
	return i.wait(w, r, jwks)
}

// allowMethods answers 405 and reports false when r's method is not one of
// methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// wait applies the delay and answers a configured failure (SetDown,
// SetFailure; with jwks also SetJWKSFailure). It reports whether the
// request is fully answered.
func (i *Issuer) wait(w http.ResponseWriter, r *http.Request, jwks bool) bool {
	i.mu.Lock()
	delay, fail := i.delay, i.fail
	if fail == nil && jwks {
		fail = i.jwksFail
	}
	i.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
	}
	if fail != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fail.status)
		_, _ = w.Write(fail.body)
		return true
	}
	return false
}

// serveDiscovery answers the discovery document.
func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if i.prelude(w, r, false) {
		return
	}
	body, err := json.Marshal(i.Metadata())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	i.writeJSON(w, "application/json", body)
}

// serveJWKS answers the key set or the configured replacement body.
func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if i.prelude(w, r, true) {
		return
	}
	i.mu.Lock()
	body, ctype := i.jwksBody, i.jwksType
	i.mu.Unlock()
	if body == nil {
		var err error
		if body, err = i.publicJWKS(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ctype = "application/json"
	}
	i.writeJSON(w, ctype, body)
}

// writeJSON writes a 200 answer with the configured Cache-Control.
func (i *Issuer) writeJSON(w http.ResponseWriter, ctype string, body []byte) {
	w.Header().Set("Content-Type", ctype)
	if i.cfg.cacheControl != "" {
		w.Header().Set("Cache-Control", i.cfg.cacheControl)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
