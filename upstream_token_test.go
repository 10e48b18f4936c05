package caddyidentity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// tokenProxy stands in front of an identitytest issuer's token endpoint
// and can be switched off (503) to play a token endpoint outage while the
// issuer's keys stay available.
type tokenProxy struct {
	srv   *httptest.Server
	down  atomic.Bool
	calls atomic.Int32

	mu   sync.Mutex
	form url.Values
}

func newTokenProxy(t *testing.T, iss *identitytest.Issuer) *tokenProxy {
	t.Helper()
	target, err := url.Parse(iss.URL + identitytest.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &tokenProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL = target
		pr.Out.Host = target.Host
	}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		if p.down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		form, _ := url.ParseQuery(string(body))
		p.mu.Lock()
		p.form = form
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *tokenProxy) lastForm() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.form
}

// issuedToken verifies a token the upstream received against iss and
// returns its claims.
func issuedToken(t *testing.T, iss *identitytest.Issuer, header string) *identity.Claims {
	t.Helper()
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		t.Fatalf("upstream Authorization %q is not a bearer token", header)
	}
	ks, err := identity.ParseKeySet(iss.PublicJWKS())
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewValidator([]identity.IssuerConfig{{Issuer: iss.URL, AnyAudience: true, Keys: ks}}, identity.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vt, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatalf("the upstream's token does not verify: %v", err)
	}
	return vt.Claims
}

// callerToken is an access token that iss handed out to client "caller"
// (token exchange takes only those).
func callerToken(t testing.TB, iss *identitytest.Issuer) string {
	t.Helper()
	tok, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + identitytest.TokenPath, ClientAuth: identity.ClientSecretBasicAuth("caller", "pw")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func serviceTokenHandler(iss *identitytest.Issuer, endpoint string) *Handler {
	h := basicHandler(iss)
	h.UpstreamToken = &UpstreamToken{
		Grant: "client_credentials", TokenEndpoint: endpoint,
		ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret,
		Scopes: []string{"orders:read"},
	}
	return h
}

func TestUpstreamTokenClientCredentials(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, serviceTokenHandler(iss, ""))
	caller := iss.Token(t, "alice", nil)
	res := x.get("/", bearer(caller))
	wantStatus(t, res, 200)
	got := res.up.header.Get("Authorization")
	c := issuedToken(t, iss, got)
	if c.Subject != identitytest.DefaultClientID || !reflect.DeepEqual(c.Scopes, []string{"orders:read"}) {
		t.Errorf("upstream token sub %q scopes %v, want the handler's client with orders:read", c.Subject, c.Scopes)
	}
	if strings.Contains(got, caller) {
		t.Error("the caller's token reached the upstream")
	}
	if res.up.header.Get("X-User-Id") != "alice" {
		t.Errorf("X-User-Id = %q, the identity headers must still be set", res.up.header.Get("X-User-Id"))
	}
	// The token is reused, by this handler and by another one with the
	// same issuer and client (the shared token manager).
	if again := x.get("/", bearer(caller)); again.up.header.Get("Authorization") != got {
		t.Error("a second request got another token")
	}
	y := newHX(t, serviceTokenHandler(iss, ""))
	if other := y.get("/", bearer(caller)); other.up.header.Get("Authorization") != got {
		t.Error("a second handler with the same client got another token")
	}
}

func TestUpstreamTokenCustomHeader(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := serviceTokenHandler(iss, "")
	h.UpstreamToken.Header = "X-Service-Token"
	h.ForwardToken = true
	x := newHX(t, h)
	caller := iss.Token(t, "alice", nil)
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	r.Header.Set("Authorization", "Bearer "+caller)
	r.Header.Set("X-Service_Token", "spoofed")
	res := x.do(r)
	wantStatus(t, res, 200)
	if res.up.header.Get("Authorization") != "Bearer "+caller {
		t.Error("forward_token: the caller's token must reach the upstream beside the service token")
	}
	vals := res.up.header.Values("X-Service-Token")
	if len(vals) != 1 || vals[0] == "spoofed" {
		t.Fatalf("X-Service-Token = %q", vals)
	}
	issuedToken(t, iss, "Bearer "+vals[0])
	if _, ok := res.up.header["X-Service_token"]; ok {
		t.Error("the client's spelling of the header reached the upstream")
	}
}

func TestUpstreamTokenEndpointDownAtBoot(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	proxy := newTokenProxy(t, iss)
	proxy.down.Store(true)
	x := newHX(t, serviceTokenHandler(iss, proxy.srv.URL))
	caller := iss.Token(t, "alice", nil)
	for range 3 {
		res := x.get("/", bearer(caller))
		wantStatus(t, res, 503)
		if res.challenge != "" {
			t.Errorf("503 with a challenge %q: the client did nothing wrong", res.challenge)
		}
	}
	if n := x.logs.FilterMessageSnippet("upstream token unavailable").Len(); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	proxy.down.Store(false)
	wantStatus(t, x.get("/", bearer(caller)), 200)
	if n := x.logs.FilterMessageSnippet("upstream token available again").Len(); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}

func TestUpstreamTokenEndpointDownLater(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	proxy := newTokenProxy(t, iss)
	clock := &testClock{now: time.Now()}
	h := serviceTokenHandler(iss, proxy.srv.URL)
	h.now = clock.Now
	x := newHX(t, h)
	caller := iss.Token(t, "alice", map[string]any{"exp": time.Now().Add(10 * time.Hour).Unix()})

	first := x.get("/", bearer(caller))
	wantStatus(t, first, 200)
	tok := first.up.header.Get("Authorization")
	proxy.down.Store(true)
	// Within the token's life, even inside the refresh margin where a
	// refresh is tried and fails, the cached token is handed on.
	for _, step := range []time.Duration{time.Minute, identitytest.DefaultLifetime - time.Minute - 30*time.Second} {
		clock.advance(step)
		res := x.get("/", bearer(caller))
		wantStatus(t, res, 200)
		if res.up.header.Get("Authorization") != tok {
			t.Fatal("the cached token was not handed on")
		}
	}
	// Past its expiry: never handed on, the upstream is not reached.
	clock.advance(2 * time.Minute)
	for range 3 {
		wantStatus(t, x.get("/", bearer(caller)), 503)
	}
	if n := x.logs.FilterMessageSnippet("upstream token unavailable").Len(); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	proxy.down.Store(false)
	res := x.get("/", bearer(caller))
	wantStatus(t, res, 200)
	if res.up.header.Get("Authorization") == tok {
		t.Error("the expired token was handed on")
	}
}

func exchangeHandler(iss *identitytest.Issuer, endpoint string) *Handler {
	return &Handler{
		Issuers:     []IssuerConfig{{Issuer: iss.URL}},
		AnyAudience: true, // the caller's tokens of identitytest's client_credentials have no aud
		UpstreamToken: &UpstreamToken{
			Grant: "exchange", TokenEndpoint: endpoint,
			ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret,
			Audience: []string{"orders"},
		},
	}
}

func TestUpstreamTokenExchange(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("caller", "pw"))
	proxy := newTokenProxy(t, iss)
	x := newHX(t, exchangeHandler(iss, proxy.srv.URL))
	caller := callerToken(t, iss)
	res := x.get("/", bearer(caller))
	wantStatus(t, res, 200)
	got := res.up.header.Get("Authorization")
	c := issuedToken(t, iss, got)
	if c.Subject != "caller" || !reflect.DeepEqual(c.Audience, []string{"orders"}) {
		t.Errorf("exchanged token sub %q aud %v, want the caller's sub and the upstream's audience", c.Subject, c.Audience)
	}
	form := proxy.lastForm()
	if form.Get("subject_token") != caller || form.Get("subject_token_type") != identity.TokenTypeAccessToken || form.Get("actor_token") != "" {
		t.Errorf("exchange form %v", form)
	}
	calls := proxy.calls.Load()
	if again := x.get("/", bearer(caller)); again.up.header.Get("Authorization") != got || proxy.calls.Load() != calls {
		t.Error("the exchanged token was not reused for the same caller token")
	}
	// Another caller token (even of the same subject) never gets it.
	other := x.get("/", bearer(callerToken(t, iss)))
	wantStatus(t, other, 200)
	if other.up.header.Get("Authorization") == got {
		t.Error("an exchanged token was shared between caller tokens")
	}
}

func TestUpstreamTokenExchangeWithActor(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("caller", "pw"))
	proxy := newTokenProxy(t, iss)
	h := exchangeHandler(iss, proxy.srv.URL)
	h.UpstreamToken.Actor = "client_credentials"
	x := newHX(t, h)
	wantStatus(t, x.get("/", bearer(callerToken(t, iss))), 200)
	form := proxy.lastForm()
	actor := form.Get("actor_token")
	if actor == "" || form.Get("actor_token_type") != identity.TokenTypeAccessToken {
		t.Fatalf("exchange form without the actor token: %v", form)
	}
	if c := issuedToken(t, iss, "Bearer "+actor); c.Subject != identitytest.DefaultClientID {
		t.Errorf("actor token sub %q, want the handler's client", c.Subject)
	}
}

func TestUpstreamTokenExchangeRefused(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("caller", "pw"))
	x := newHX(t, exchangeHandler(iss, ""))
	// A valid token the issuer will not exchange (it did not hand it out).
	res := x.get("/", bearer(iss.Token(t, "alice", nil)))
	wantStatus(t, res, 403)
	if !strings.Contains(res.challenge, `error="insufficient_scope"`) {
		t.Errorf("challenge %q", res.challenge)
	}
	if n := x.logs.FilterMessageSnippet("upstream token unavailable").Len(); n != 0 {
		t.Error("a refusal for one caller was logged as an outage")
	}
}

func TestUpstreamTokenExchangeEndpointDown(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("caller", "pw"))
	proxy := newTokenProxy(t, iss)
	proxy.down.Store(true)
	x := newHX(t, exchangeHandler(iss, proxy.srv.URL))
	caller := callerToken(t, iss)
	wantStatus(t, x.get("/", bearer(caller)), 503)
	proxy.down.Store(false)
	wantStatus(t, x.get("/", bearer(caller)), 200)
}

func TestUpstreamTokenExchangeNotPastCallerExpiry(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("caller", "pw"))
	proxy := newTokenProxy(t, iss)
	// Half an hour on, the caller's token has half an hour left, the
	// exchanged one (issued now) a whole hour: its entry must end with the
	// caller's token.
	clock := &testClock{now: time.Now().Add(identitytest.DefaultLifetime / 2)}
	h := exchangeHandler(iss, proxy.srv.URL)
	h.now = clock.Now
	h.Leeway = durPtr(0)
	x := newHX(t, h)
	caller := callerToken(t, iss)
	callerExp := issuedToken(t, iss, "Bearer "+caller).Expiry
	wantStatus(t, x.get("/", bearer(caller)), 200)
	e, ok := x.h.upstream.cache.GetIfPresent(hashToken(caller))
	if !ok {
		t.Fatal("exchanged token not cached")
	}
	if e.expires.After(callerExp) {
		t.Fatalf("exchanged token cached until %v; the caller's token expires %v", e.expires, callerExp)
	}
	calls := proxy.calls.Load()
	clock.advance(callerExp.Sub(clock.Now()) + time.Second)
	wantStatus(t, x.get("/", bearer(caller)), 401)
	if proxy.calls.Load() != calls {
		t.Error("an expired caller token was exchanged")
	}
}

func TestUpstreamTokenConfigErrors(t *testing.T) {
	base := func() *Handler {
		return &Handler{
			Issuers:   []IssuerConfig{{Issuer: "https://a.example"}},
			Audiences: []string{"api"},
			UpstreamToken: &UpstreamToken{
				Grant: "client_credentials", ClientID: "gw", ClientSecret: "s",
			},
		}
	}
	tests := []struct {
		name   string
		change func(h *Handler)
		want   string
	}{
		{"grant", func(h *Handler) { h.UpstreamToken.Grant = "password" }, "grant must be"},
		{"no client", func(h *Handler) { h.UpstreamToken.ClientID = "" }, "client_id"},
		{"no secret", func(h *Handler) { h.UpstreamToken.ClientSecret = "" }, "exactly one of client_secret and key_file"},
		{"both", func(h *Handler) { h.UpstreamToken.KeyFile = "k.pem" }, "exactly one of client_secret and key_file"},
		{"actor with cc", func(h *Handler) { h.UpstreamToken.Actor = "client_credentials" }, "exchange only"},
		{"bad actor", func(h *Handler) { h.UpstreamToken.Grant, h.UpstreamToken.Actor = "exchange", "me" }, "actor must be"},
		{"two audiences", func(h *Handler) { h.UpstreamToken.Audience = []string{"a", "b"} }, "one audience"},
		{"bad header", func(h *Handler) { h.UpstreamToken.Header = "X Bad" }, "invalid header name"},
		{"header is the source", func(h *Handler) {
			h.TokenSources = []TokenSource{{From: "header", Name: "X-Token"}}
			h.UpstreamToken.Header = "x-token"
		}, "where the caller's token comes from"},
		{"which issuer", func(h *Handler) { h.Issuers = append(h.Issuers, IssuerConfig{Issuer: "https://b.example"}) }, "name one"},
		{"unknown issuer", func(h *Handler) { h.UpstreamToken.Issuer = "https://c.example" }, "not a configured issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.change(h)
			wantErrorContaining(t, h.checkConfig(), tt.want)
		})
	}
}

func TestUnmarshalCaddyfileUpstreamToken(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`identity {
		issuer https://auth.example.com
		audience api
		upstream_token exchange {
			client_id gateway
			client_secret {env.GW_SECRET}
			scopes orders:read
			scopes orders:write
			audience orders
			resource https://orders.internal
			header X-Orders-Token
			subject_token_type urn:ietf:params:oauth:token-type:jwt
			actor client_credentials
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &UpstreamToken{
		Grant: "exchange", ClientID: "gateway", ClientSecret: "{env.GW_SECRET}",
		Scopes: []string{"orders:read", "orders:write"}, Audience: []string{"orders"},
		Resource: []string{"https://orders.internal"}, Header: "X-Orders-Token",
		SubjectTokenType: identity.TokenTypeJWT, Actor: "client_credentials",
	}
	if !reflect.DeepEqual(h.UpstreamToken, want) {
		t.Errorf("got %+v\nwant %+v", h.UpstreamToken, want)
	}
	for _, bad := range []struct{ input, want string }{
		{"identity {\n upstream_token password {\n client_id a\n }\n }", "want client_credentials or exchange"},
		{"identity {\n upstream_token client_credentials {\n client_secret s\n }\n }", "needs client_id"},
		{"identity {\n upstream_token client_credentials {\n client_id a\n client_id b\n }\n }", "given twice"},
		{"identity {\n upstream_token client_credentials {\n client_id a\n frobnicate\n }\n }", "unrecognized option"},
		{"identity {\n upstream_token client_credentials {\n client_id a\n }\n upstream_token exchange {\n client_id a\n }\n }", "upstream_token given twice"},
	} {
		wantUnmarshalError(t, bad.input, bad.want)
	}
}

func TestLoadPrivateKey(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	private, _ := json.Marshal(jose.JSONWebKey{Key: ecKey, KeyID: "k1"})
	public, _ := json.Marshal(jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "k1"})
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	tests := []struct {
		name, content, wantErr string
	}{
		{"pkcs8", pemOf("PRIVATE KEY", pkcs8), ""},
		{"pkcs1", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), ""},
		{"sec1", pemOf("EC PRIVATE KEY", sec1), ""},
		{"private jwk", string(private), ""},
		{"public jwk", string(public), "public key"},
		{"certificate", pemOf("CERTIFICATE", []byte{1, 2, 3}), "no PKCS #8"},
		{"garbage", "hello", "neither PEM nor a JWK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := loadPrivateKey(path)
			if tt.wantErr != "" {
				wantErrorContaining(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("loadPrivateKey: %v", err)
			}
			switch k := key.(type) {
			case crypto.Signer:
			case jose.JSONWebKey:
				if k.IsPublic() || k.KeyID != "k1" {
					t.Errorf("JWK loaded as public or without its kid: %+v", k)
				}
			default:
				t.Errorf("key of type %T cannot sign client assertions", key)
			}
		})
	}
}
