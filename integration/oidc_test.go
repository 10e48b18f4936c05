package integration

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
)

// clientAuth says how a request authenticates its client at the provider.
type clientAuth struct {
	ID     string
	Secret string
	// Method is "basic" (client_secret_basic), "post" (client_secret_post), "none" (public client: client_id only)
	// or "private_key_jwt" (Key signs an RFC 7523 assertion).
	Method string
	Key    *jose.JSONWebKey
}

// basicClient is the confidential test client with client_secret_basic.
func basicClient() clientAuth {
	return clientAuth{ID: testClientID, Secret: testClientSecret, Method: "basic"}
}

// postClient is the confidential test client registered with client_secret_post.
func postClient() clientAuth {
	return clientAuth{ID: testPostClientID, Secret: testPostClientSecret, Method: "post"}
}

// publicClient is the public test client (no secret).
func publicClient() clientAuth {
	return clientAuth{ID: testPublicClientID, Method: "none"}
}

// tokenResponse is a token endpoint answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
}

// httpClient is the client every helper uses: bounded, no redirects followed.
func httpClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// postForm POSTs a form to an endpoint URL of the provider with the client authentication applied and returns the
// status and the body.
func (p *oidcProvider) postForm(t testing.TB, endpoint string, auth clientAuth, form url.Values) (int, []byte) {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	switch auth.Method {
	case "basic", "":
	case "post":
		form.Set("client_id", auth.ID)
		form.Set("client_secret", auth.Secret)
	case "none":
		form.Set("client_id", auth.ID)
	case "private_key_jwt":
		form.Set("client_id", auth.ID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", clientAssertion(t, auth, p.URL()+"/token"))
	default:
		t.Fatalf("unknown client auth method %q", auth.Method)
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if auth.Method == "basic" || auth.Method == "" {
		req.SetBasicAuth(url.QueryEscape(auth.ID), url.QueryEscape(auth.Secret))
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// clientAssertion signs an RFC 7523 client assertion for private_key_jwt.
func clientAssertion(t testing.TB, auth clientAuth, audience string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(auth.Key.Algorithm), Key: auth.Key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := jwt.Claims{
		Issuer: auth.ID, Subject: auth.ID, Audience: jwt.Audience{audience}, ID: randomString(t),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// token calls the token endpoint and decodes the answer whatever the status.
func (p *oidcProvider) token(t testing.TB, auth clientAuth, form url.Values) (int, tokenResponse) {
	t.Helper()
	status, body := p.postForm(t, p.URL()+"/token", auth, form)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token response (status %d) is not JSON: %v: %s", status, err, body)
	}
	return status, tr
}

// clientCredentials gets a token with the client_credentials grant and fails the test unless the provider answers
// 200 with a token. An empty resource gives an opaque token without aud.
func (p *oidcProvider) clientCredentials(t testing.TB, auth clientAuth, resource, scope string) tokenResponse {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	status, tr := p.token(t, auth, form)
	if status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("client_credentials for %s (resource %q): status %d, error %q: %s", auth.ID, resource, status, tr.Error, tr.ErrorDesc)
	}
	return tr
}

// accessToken is clientCredentials with the basic client and scope "api:read", returning only the token.
func (p *oidcProvider) accessToken(t testing.TB, resource string) string {
	t.Helper()
	return p.clientCredentials(t, basicClient(), resource, "api:read").AccessToken
}

// getJSON GETs a provider URL and decodes a JSON object, failing unless the status is 200.
func getJSON(t testing.TB, u string, out any) {
	t.Helper()
	resp, err := httpClient().Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
}

// discovery fetches the provider's OpenID configuration.
func (p *oidcProvider) discovery(t testing.TB) map[string]any {
	t.Helper()
	var doc map[string]any
	getJSON(t, p.URL()+"/.well-known/openid-configuration", &doc)
	return doc
}

// fetchJWKS fetches the published key set over HTTP (the jwks_uri from discovery).
func (p *oidcProvider) fetchJWKS(t testing.TB) jose.JSONWebKeySet {
	t.Helper()
	uri, _ := p.discovery(t)["jwks_uri"].(string)
	if uri == "" {
		t.Fatal("discovery has no jwks_uri")
	}
	var set jose.JSONWebKeySet
	getJSON(t, uri, &set)
	return set
}

// verifyJWT verifies a compact JWS against a key set, selecting the key by kid, and returns its header and claims.
func verifyJWT(t testing.TB, token string, set jose.JSONWebKeySet) (jose.Header, map[string]any) {
	t.Helper()
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA}
	jws, err := jose.ParseSignedCompact(token, algs)
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		t.Fatalf("kid %q not in the key set", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify JWT (kid %s, alg %s): %v", h.KeyID, h.Algorithm, err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return h, claims
}

// randomString returns 32 random base64url characters.
func randomString(t testing.TB) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// pkcePair returns an RFC 7636 S256 verifier and challenge.
func pkcePair(t testing.TB) (verifier, challenge string) {
	t.Helper()
	verifier = randomString(t) + randomString(t)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// browser is a cookie-keeping client that follows the provider's redirects by hand, like a user agent.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := httpClient()
	c.Jar = jar
	return &browser{t: t, client: c}
}

// follow GETs (or POSTs, when form is set) u and follows redirects until one leaves the provider (returned as the
// final URL) or a non-redirect answer arrives (returned with its body).
func (b *browser) follow(p *oidcProvider, u string, form url.Values) (final *url.URL, status int, body string) {
	b.t.Helper()
	for range 10 {
		var resp *http.Response
		var err error
		if form != nil {
			resp, err = b.client.PostForm(u, form)
			form = nil
		} else {
			resp, err = b.client.Get(u)
		}
		if err != nil {
			b.t.Fatalf("browser %s: %v", u, err)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			ru, _ := url.Parse(u)
			return ru, resp.StatusCode, string(data)
		}
		next, err := resp.Request.URL.Parse(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		if !strings.HasPrefix(next.String(), p.URL()+"/") {
			return next, resp.StatusCode, ""
		}
		u = next.String()
	}
	b.t.Fatalf("browser: too many redirects from %s", u)
	return nil, 0, ""
}

// authorize runs an authorization request through the non-interactive login (account = login_hint) and consent of
// provider.mjs and returns the parameters of the redirect to testRedirectURI (code, state, iss or error).
func (p *oidcProvider) authorize(t testing.TB, params url.Values) url.Values {
	t.Helper()
	q := url.Values{"response_type": {"code"}, "redirect_uri": {testRedirectURI}}
	for k, v := range params {
		q[k] = v
	}
	final, status, body := newBrowser(t).follow(p, p.URL()+"/auth?"+q.Encode(), nil)
	if !strings.HasPrefix(final.String(), testRedirectURI) {
		t.Fatalf("authorization ended at %s (status %d) instead of the redirect URI: %s", final, status, body)
	}
	return final.Query()
}

var xsrfPattern = regexp.MustCompile(`name="xsrf" value="([^"]+)"`)

// approveDevice plays the user of the device flow: opens the verification page with the user code, confirms, logs in
// (as login_hint of the device authorization request, or testDefaultAccount) and consents.
func (p *oidcProvider) approveDevice(t testing.TB, userCode string) {
	t.Helper()
	b := newBrowser(t)
	_, status, page := b.follow(p, p.URL()+"/device?user_code="+url.QueryEscape(userCode), nil)
	m := xsrfPattern.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		t.Fatalf("device verification page: status %d, no xsrf: %s", status, page)
	}
	form := url.Values{"xsrf": {m[1]}, "user_code": {userCode}, "confirm": {"yes"}}
	_, status, page = b.follow(p, p.URL()+"/device", form)
	if status != http.StatusOK || !strings.Contains(page, "Device sign-in done") {
		t.Fatalf("device confirmation: status %d: %s", status, page)
	}
}

func TestDiscoveryAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := p.discovery(t)
	if doc["issuer"] != p.URL() {
		t.Errorf("issuer %v, want %s", doc["issuer"], p.URL())
	}
	for _, member := range []string{"jwks_uri", "token_endpoint", "authorization_endpoint", "userinfo_endpoint",
		"introspection_endpoint", "revocation_endpoint", "registration_endpoint", "device_authorization_endpoint"} {
		v, _ := doc[member].(string)
		if !strings.HasPrefix(v, p.URL()+"/") {
			t.Errorf("%s = %q, want an URL under the issuer", member, v)
		}
	}
	set := p.fetchJWKS(t)
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(set.Keys))
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("published key %s is not public", k.KeyID)
		}
	}
}

func TestClientCredentialsJWTAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	set := p.fetchJWKS(t)
	cases := []struct {
		name     string
		auth     clientAuth
		resource string
		alg      string
	}{
		{"basic/RS256", basicClient(), resourceRS256, "RS256"},
		{"post/ES256", postClient(), resourceES256, "ES256"},
		{"secret-in-body/RS256", clientAuth{ID: testClientID, Secret: testClientSecret, Method: "post"}, resourceOther, "RS256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := p.clientCredentials(t, tc.auth, tc.resource, "api:read")
			if !strings.EqualFold(tr.TokenType, "bearer") || tr.ExpiresIn <= 0 {
				t.Errorf("token_type %q, expires_in %d", tr.TokenType, tr.ExpiresIn)
			}
			expectScopes(t, tr.Scope, "api:read")
			h, claims := verifyJWT(t, tr.AccessToken, set)
			if h.Algorithm != tc.alg {
				t.Errorf("alg %s, want %s", h.Algorithm, tc.alg)
			}
			if typ, _ := h.ExtraHeaders["typ"].(string); typ != "at+jwt" {
				t.Errorf("typ %q, want at+jwt", typ)
			}
			if claims["iss"] != p.URL() || claims["aud"] != tc.resource || claims["sub"] != tc.auth.ID ||
				claims["client_id"] != tc.auth.ID || claims["scope"] != "api:read" {
				t.Errorf("claims %v", claims)
			}
		})
	}
	t.Run("short resource lives 5 s", func(t *testing.T) {
		if tr := p.clientCredentials(t, basicClient(), resourceShort, ""); tr.ExpiresIn != 5 {
			t.Errorf("expires_in %d, want 5", tr.ExpiresIn)
		}
		if tr := p.clientCredentials(t, basicClient(), resourceRS256, ""); tr.ExpiresIn != 3600 {
			t.Errorf("expires_in %d, want the default 3600", tr.ExpiresIn)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		status, tr := p.token(t, clientAuth{ID: testClientID, Secret: "nope", Method: "basic"},
			url.Values{"grant_type": {"client_credentials"}, "resource": {resourceRS256}})
		if status != http.StatusUnauthorized || tr.Error != "invalid_client" {
			t.Errorf("status %d error %q, want 401 invalid_client", status, tr.Error)
		}
	})
}

func TestPrivateKeyJWTClientAgainstProvider(t *testing.T) {
	clientKey := newSigningKey(t, "ES256", "client-es-1")
	p := startProvider(t, providerOptions{ClientJWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{clientKey.Public()}}})
	auth := clientAuth{ID: testJWTClientID, Method: "private_key_jwt", Key: &clientKey}
	tr := p.clientCredentials(t, auth, resourceRS256, "api:write")
	_, claims := verifyJWT(t, tr.AccessToken, p.fetchJWKS(t))
	if claims["client_id"] != testJWTClientID || claims["scope"] != "api:write" {
		t.Errorf("claims %v", claims)
	}
	other := newSigningKey(t, "ES256", "client-es-1")
	status, resp := p.token(t, clientAuth{ID: testJWTClientID, Method: "private_key_jwt", Key: &other},
		url.Values{"grant_type": {"client_credentials"}, "resource": {resourceRS256}})
	if status != http.StatusUnauthorized || resp.Error != "invalid_client" {
		t.Errorf("assertion signed by an unregistered key: status %d error %q, want 401 invalid_client", status, resp.Error)
	}
}

func TestOpaqueTokenIntrospectionRevocationAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	tok := p.accessToken(t, resourceOpaque)
	if strings.Count(tok, ".") == 2 {
		t.Fatalf("opaque resource gave a JWT: %s", tok)
	}
	introspect := func() map[string]any {
		t.Helper()
		status, body := p.postForm(t, p.URL()+"/token/introspection", basicClient(), url.Values{"token": {tok}})
		var out map[string]any
		if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
			t.Fatalf("introspection: status %d: %s", status, body)
		}
		return out
	}
	got := introspect()
	if got["active"] != true || got["aud"] != resourceOpaque || got["client_id"] != testClientID {
		t.Fatalf("introspection %v", got)
	}
	status, body := p.postForm(t, p.URL()+"/token/revocation", basicClient(),
		url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
	if status != http.StatusOK {
		t.Fatalf("revocation: status %d: %s", status, body)
	}
	if got := introspect(); got["active"] != false {
		t.Fatalf("introspection after revocation: %v", got)
	}
}

func TestKeyRotationAtProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	oldToken := p.accessToken(t, resourceRS256)
	oldKID := p.Keys()[0].KeyID
	newKey := p.RotateKey("RS256")

	set := p.fetchJWKS(t)
	if len(set.Keys) != 3 || len(set.Key(oldKID)) != 1 || len(set.Key(newKey.KeyID)) != 1 {
		t.Fatalf("JWKS after rotation: %d keys, want old %s and new %s published", len(set.Keys), oldKID, newKey.KeyID)
	}
	h, _ := verifyJWT(t, p.accessToken(t, resourceRS256), set)
	if h.KeyID != newKey.KeyID {
		t.Errorf("new token signed by %s, want the new key %s", h.KeyID, newKey.KeyID)
	}
	if h, _ := verifyJWT(t, oldToken, set); h.KeyID != oldKID {
		t.Errorf("old token kid %s, want %s", h.KeyID, oldKID)
	}
}

func TestAuthorizationCodeAndUserinfoAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	verifier, challenge := pkcePair(t)
	state, nonce := randomString(t), randomString(t)
	cb := p.authorize(t, url.Values{
		"client_id": {testClientID}, "scope": {"openid email profile"}, "login_hint": {"bob"},
		"state": {state}, "nonce": {nonce}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	})
	if cb.Get("state") != state || cb.Get("code") == "" || cb.Get("iss") != p.URL() {
		t.Fatalf("callback %v", cb)
	}
	status, tr := p.token(t, basicClient(), url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {testRedirectURI},
		"code_verifier": {verifier},
	})
	if status != http.StatusOK || tr.IDToken == "" || tr.AccessToken == "" {
		t.Fatalf("code redemption: status %d %+v", status, tr)
	}
	idClaims := validateIDToken(t, p, tr.IDToken, identity.IDTokenCheck{ClientID: testClientID, Nonce: nonce, AccessToken: tr.AccessToken})
	if idClaims.Subject != "bob" {
		t.Errorf("ID token subject %q", idClaims.Subject)
	}

	req, err := http.NewRequest(http.MethodGet, p.URL()+"/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&info) != nil {
		t.Fatalf("userinfo status %d", resp.StatusCode)
	}
	if info["sub"] != "bob" || info["email"] != "bob@example.test" || info["name"] != "bob" {
		t.Errorf("userinfo %v", info)
	}
}

func TestDeviceFlowAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	status, body := p.postForm(t, p.URL()+"/device/auth", publicClient(),
		url.Values{"scope": {"openid email"}, "login_hint": {"carol"}})
	var da struct {
		DeviceCode      string `json:"device_code"`
		UserCode        string `json:"user_code"`
		VerificationURI string `json:"verification_uri"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &da) != nil || da.DeviceCode == "" || da.UserCode == "" {
		t.Fatalf("device authorization: status %d: %s", status, body)
	}
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}}
	if status, tr := p.token(t, publicClient(), poll); status != http.StatusBadRequest || tr.Error != "authorization_pending" {
		t.Fatalf("poll before approval: status %d error %q", status, tr.Error)
	}
	p.approveDevice(t, da.UserCode)
	status, tr := p.token(t, publicClient(), poll)
	if status != http.StatusOK || tr.IDToken == "" {
		t.Fatalf("poll after approval: status %d %+v", status, tr)
	}
	if claims := validateIDToken(t, p, tr.IDToken, identity.IDTokenCheck{ClientID: testPublicClientID, AccessToken: tr.AccessToken}); claims.Subject != "carol" {
		t.Errorf("ID token sub %q, want carol", claims.Subject)
	}
}

func TestRegistrationAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	meta, _ := json.Marshal(map[string]any{
		"client_name": "dyn", "grant_types": []string{"client_credentials"}, "response_types": []string{},
		"redirect_uris": []string{}, "token_endpoint_auth_method": "client_secret_basic",
	})
	resp, err := httpClient().Post(p.URL()+"/reg", "application/json", strings.NewReader(string(meta)))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	err = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("registration: status %d, %v", resp.StatusCode, err)
	}
	id, _ := reg["client_id"].(string)
	secret, _ := reg["client_secret"].(string)
	rat, _ := reg["registration_access_token"].(string)
	regURI, _ := reg["registration_client_uri"].(string)
	if id == "" || secret == "" || rat == "" || regURI == "" {
		t.Fatalf("registration response %v", reg)
	}
	tr := p.clientCredentials(t, clientAuth{ID: id, Secret: secret, Method: "basic"}, resourceRS256, "")
	if _, claims := verifyJWT(t, tr.AccessToken, p.fetchJWKS(t)); claims["client_id"] != id {
		t.Errorf("token of the registered client: %v", claims)
	}
	do := func(method string) int {
		t.Helper()
		req, err := http.NewRequest(method, regURI, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+rat)
		resp, err := httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := do(http.MethodGet); got != http.StatusOK {
		t.Fatalf("read registration: %d", got)
	}
	if got := do(http.MethodDelete); got != http.StatusNoContent {
		t.Fatalf("delete registration: %d", got)
	}
	status, _ := p.token(t, clientAuth{ID: id, Secret: secret, Method: "basic"},
		url.Values{"grant_type": {"client_credentials"}})
	if status != http.StatusUnauthorized {
		t.Fatalf("deleted client still gets tokens: status %d", status)
	}
}

// expectScopes fails unless the space-separated scope string holds exactly want (any order).
func expectScopes(t testing.TB, got string, want ...string) {
	t.Helper()
	g := strings.Fields(got)
	slices.Sort(g)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("scope %q, want %s", got, fmt.Sprint(w))
	}
}
