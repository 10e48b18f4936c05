package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// hx is a provisioned handler under test with the upstream it protects.
type hx struct {
	t    *testing.T
	h    *Handler
	logs *observer.ObservedLogs
}

// upstreamSeen is what the test upstream received.
type upstreamSeen struct {
	reached bool
	header  http.Header
	url     *url.URL
	repl    *caddy.Replacer
}

// hxResult is the outcome of one request.
type hxResult struct {
	status    int
	challenge string
	// challenges are all WWW-Authenticate lines; challenge is the first.
	challenges []string
	err        error
	up         upstreamSeen
	repl       *caddy.Replacer
	// header and body are the response's, as the handler wrote them.
	header http.Header
	body   string
}

// newHX provisions h (with a debug-level observed logger) and cleans it up
// at the end of the test.
func newHX(t *testing.T, h *Handler) *hx {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		cancel()
		t.Fatalf("Provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
		cancel()
	})
	return &hx{t: t, h: h, logs: logs}
}

// do sends r through the handler to a recording upstream.
func (x *hx) do(r *http.Request) hxResult {
	x.t.Helper()
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	var res hxResult
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.up = upstreamSeen{reached: true, header: r.Header.Clone(), url: r.URL, repl: repl}
		w.WriteHeader(http.StatusOK)
		return nil
	})
	res.err = x.h.ServeHTTP(w, r, next)
	res.repl = repl
	res.status = w.Code
	var he caddyhttp.HandlerError
	if errors.As(res.err, &he) {
		res.status = he.StatusCode
	} else if res.err != nil {
		x.t.Fatalf("ServeHTTP returned a non-handler error: %v", res.err)
	}
	res.header, res.body = w.Header(), w.Body.String()
	res.challenge = w.Header().Get("WWW-Authenticate")
	res.challenges = w.Header().Values("WWW-Authenticate")
	return res
}

// get sends a GET with the given headers (a nil value deletes).
func (x *hx) get(target string, hdr map[string]string) hxResult {
	x.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://example.com"+target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return x.do(r)
}

// bearer returns the Authorization header for token.
func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// basicHandler is the usual configuration for iss.
func basicHandler(iss *identitytest.Issuer) *Handler {
	return &Handler{
		Issuers:   []IssuerConfig{{Issuer: iss.URL}},
		Audiences: []string{identitytest.DefaultAudience},
	}
}

func wantStatus(t *testing.T, res hxResult, status int) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d (err %v), want %d", res.status, res.err, status)
	}
	if status >= 400 && res.up.reached {
		t.Fatalf("upstream reached on a %d", status)
	}
	if status < 400 && !res.up.reached {
		t.Fatalf("upstream not reached")
	}
}

func TestHandlerAcceptsAndForwards(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, basicHandler(iss))
	tok := iss.Token(t, "alice", map[string]any{
		"email":                      "alice@example.com",
		"realm_access":               map[string]any{"roles": []any{"admin", "dev"}},
		"https://example.com/tenant": "t1",
	})
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Id"); got != "alice" {
		t.Errorf("X-User-Id = %q", got)
	}
	if got := res.up.header.Get("X-User-Email"); got != "alice@example.com" {
		t.Errorf("X-User-Email = %q", got)
	}
	if got := res.up.header.Get("Authorization"); got != "" {
		t.Errorf("token forwarded by default: %q", got)
	}
	for ph, want := range map[string]string{
		"{http.auth.user.id}":                         "alice",
		"{http.auth.user.email}":                      "alice@example.com",
		"{http.auth.user.realm_access.roles}":         "admin, dev",
		"{http.auth.user.https://example.com/tenant}": "t1",
		"{http.auth.identity.issuer}":                 iss.URL,
		"{http.auth.user.nope}":                       "",
	} {
		if got := res.repl.ReplaceAll(ph, ""); got != want {
			t.Errorf("%s = %q, want %q", ph, got, want)
		}
	}
	// Second time from the cache: same result.
	res = x.get("/", bearer(tok))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Id"); got != "alice" {
		t.Errorf("cached X-User-Id = %q", got)
	}
	if got := res.repl.ReplaceAll("{http.auth.user.id}", ""); got != "alice" {
		t.Errorf("cached {http.auth.user.id} = %q", got)
	}
	if n := x.h.auth.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries, want 1", n)
	}
}

func TestHandlerChallenges(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	other := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.Realm = "my-api"
	h.Leeway = durPtr(0)
	x := newHX(t, h)
	good := iss.Token(t, "u", nil)
	parts := strings.Split(good, ".")
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
		want   string // challenge
		reason string
	}{
		{"no token", nil, 401, `Bearer realm="my-api"`, "missing"},
		{"other scheme", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, `Bearer realm="my-api"`, "missing"},
		{"Bearerxyz is not bearer", map[string]string{"Authorization": "Bearerxyz"}, 401, `Bearer realm="my-api"`, "missing"},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, 400, `error="invalid_request"`, "invalid_request"},
		{"garbage", bearer("not-a-jwt"), 401, `error="invalid_token", error_description="The access token is malformed"`, "malformed"},
		{"expired", bearer(iss.Mint(t, map[string]any{"exp": time.Now().Add(-time.Minute).Unix(), "iat": time.Now().Add(-time.Hour).Unix()})), 401,
			`error_description="The access token expired"`, "expired"},
		{"wrong audience", bearer(iss.Mint(t, map[string]any{"aud": "other"})), 401, `error_description="The access token audience is not accepted"`, "audience"},
		{"unknown issuer", bearer(other.Token(t, "u", nil)), 401, `error_description="The access token issuer is not accepted"`, "issuer"},
		{"bad signature", bearer(parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))), 401, `error="invalid_token"`, ""},
		{"lower-case scheme ok", map[string]string{"Authorization": "bearer " + good}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := x.get("/", tt.hdr)
			wantStatus(t, res, tt.status)
			if !strings.Contains(res.challenge, tt.want) || (tt.status >= 400 && !strings.HasPrefix(res.challenge, `Bearer realm="my-api"`)) {
				t.Fatalf("WWW-Authenticate = %q, want containing %q", res.challenge, tt.want)
			}
			if tt.reason != "" {
				if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != tt.reason {
					t.Fatalf("{http.auth.identity.error} = %q, want %q", got, tt.reason)
				}
			}
		})
	}
}

func TestHandlerInvalidRequest(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.TokenSources = []TokenSource{
		{From: "header", Name: "Authorization"},
		{From: "cookie", Name: "at"},
		{From: "query", Name: "access_token"},
	}
	x := newHX(t, h)
	tok := iss.Token(t, "u", nil)

	r := httptest.NewRequest("GET", "http://example.com/", nil)
	r.Header.Add("Authorization", "Bearer "+tok)
	r.Header.Add("Authorization", "Bearer "+tok)
	res := x.do(r)
	wantStatus(t, res, 400)
	if !strings.Contains(res.challenge, `error="invalid_request"`) {
		t.Fatalf("challenge %q", res.challenge)
	}

	r = httptest.NewRequest("GET", "http://example.com/?access_token="+tok, nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	wantStatus(t, x.do(r), 400)

	r = httptest.NewRequest("GET", "http://example.com/", nil)
	r.AddCookie(&http.Cookie{Name: "at", Value: tok})
	r.AddCookie(&http.Cookie{Name: "at", Value: tok})
	wantStatus(t, x.do(r), 400)

	r = httptest.NewRequest("GET", "http://example.com/?access_token=a&access_token=b", nil)
	wantStatus(t, x.do(r), 400)
}

func TestHandlerTokenSources(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.TokenSources = []TokenSource{
		{From: "header", Name: "X-Api-Token"},
		{From: "cookie", Name: "at"},
		{From: "query", Name: "access_token"},
	}
	x := newHX(t, h)
	tok := iss.Token(t, "bob", nil)

	res := x.get("/", map[string]string{"X-Api-Token": tok, "Authorization": "Bearer ignored"})
	wantStatus(t, res, 200)
	if res.up.header.Get("X-Api-Token") != "" || res.up.header.Get("Authorization") != "Bearer ignored" {
		t.Fatalf("header source not stripped or other header touched: %v", res.up.header)
	}

	r := httptest.NewRequest("GET", "http://example.com/", nil)
	r.Header.Set("Cookie", "a=1; at="+tok+"; b=2")
	res = x.do(r)
	wantStatus(t, res, 200)
	if got := res.up.header.Get("Cookie"); got != "a=1; b=2" {
		t.Fatalf("Cookie upstream = %q", got)
	}

	r = httptest.NewRequest("GET", "http://example.com/p?x=1&access_token="+tok+"&y=%20", nil)
	res = x.do(r)
	wantStatus(t, res, 200)
	if got := res.up.url.RawQuery; got != "x=1&y=%20" {
		t.Fatalf("query upstream = %q", got)
	}
	if res.up.header.Get("X-User-Id") != "bob" {
		t.Fatalf("X-User-Id = %q", res.up.header.Get("X-User-Id"))
	}

	// The Authorization header is not a configured source here.
	wantStatus(t, x.get("/", bearer(tok)), 401)
}

func TestHandlerForwardToken(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.ForwardToken = true
	x := newHX(t, h)
	tok := iss.Token(t, "u", nil)
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("Authorization"); got != "Bearer "+tok {
		t.Fatalf("Authorization upstream = %q", got)
	}
}

// spoof adds client copies of the identity headers in every spelling.
func spoof(r *http.Request) {
	for _, name := range []string{"X-User-Id", "x-user-id", "X_User_Id", "x_USER_id", "X-USER-ID", "X-User-Email", "x_user_email", "X-Extra"} {
		r.Header[name] = append(r.Header[name], "evil", "")
	}
	r.Header["X-User-Id"] = append(r.Header["X-User-Id"], "evil2")
}

// assertNoSpoof fails when any client-sent identity value reached the
// upstream.
func assertNoSpoof(t *testing.T, h http.Header) {
	t.Helper()
	for k, vs := range h {
		n := normalizeHeaderName(k)
		if n == "x-user-id" || n == "x-user-email" || n == "x-extra" {
			for _, v := range vs {
				if v == "evil" || v == "evil2" || v == "" {
					t.Fatalf("spoofed header %q=%q reached the upstream", k, v)
				}
			}
		}
	}
}

func TestHandlerStripsSpoofedHeaders(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.Optional = true
	h.StripHeaders = []string{"X-Extra"}
	x := newHX(t, h)

	// accepted, with a token lacking email: the email header must be gone
	r := httptest.NewRequest("GET", "http://example.com/", nil)
	spoof(r)
	r.Header.Set("Authorization", "Bearer "+iss.Token(t, "real", nil))
	res := x.do(r)
	wantStatus(t, res, 200)
	assertNoSpoof(t, res.up.header)
	if vs := res.up.header["X-User-Id"]; len(vs) != 1 || vs[0] != "real" {
		t.Fatalf("X-User-Id = %q", vs)
	}
	if _, ok := res.up.header["X-User-Email"]; ok {
		t.Fatal("X-User-Email present although the token has no email")
	}

	// optional, anonymous
	r = httptest.NewRequest("GET", "http://example.com/", nil)
	spoof(r)
	res = x.do(r)
	wantStatus(t, res, 200)
	assertNoSpoof(t, res.up.header)
	if len(res.up.header) != 0 {
		t.Fatalf("anonymous request carries %v", res.up.header)
	}

	// rejected: the request object itself is cleaned too (for handle_errors)
	r = httptest.NewRequest("GET", "http://example.com/", nil)
	spoof(r)
	r.Header.Set("Authorization", "Bearer garbage")
	res = x.do(r)
	wantStatus(t, res, 401)
	assertNoSpoof(t, r.Header)
}

func TestHandlerOptional(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.Optional = true
	x := newHX(t, h)
	res := x.get("/", nil)
	wantStatus(t, res, 200)
	if got := res.repl.ReplaceAll("{http.auth.user.id}", "-"); got != "-" {
		t.Fatalf("anonymous user id = %q", got)
	}
	wantStatus(t, x.get("/", bearer("bad.token.here")), 401)
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", nil))), 200)
}

func TestHandlerScopesAndClaims(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.RequireScopes = []string{"read"}
	h.RequireClaims = []ClaimRule{
		{Claim: "groups", Values: []string{"admin", "ops"}},
		{Claim: "tier", Values: []string{"2"}},
		{Claim: "org.id"},
	}
	x := newHX(t, h)
	ok := map[string]any{"scope": "read write", "groups": []any{"dev", "ops"}, "tier": 2, "org": map[string]any{"id": "o1"}}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range ok {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", ok))), 200)

	res := x.get("/", bearer(iss.Token(t, "u", with("scope", "write"))))
	wantStatus(t, res, 403)
	if !strings.Contains(res.challenge, `error="insufficient_scope"`) || !strings.Contains(res.challenge, `scope="read"`) {
		t.Fatalf("challenge = %q", res.challenge)
	}
	// cached: same answer
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", with("scope", "write")))), 403)

	for name, claims := range map[string]map[string]any{
		"group":        with("groups", []any{"dev"}),
		"group string": with("groups", "dev"),
		"tier":         with("tier", 3),
		"no org":       with("org", nil),
	} {
		res := x.get("/", bearer(iss.Token(t, "u", claims)))
		if res.status != 403 || !strings.Contains(res.challenge, `error="insufficient_scope"`) {
			t.Errorf("%s: status %d challenge %q", name, res.status, res.challenge)
		}
	}
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", with("groups", "admin")))), 200)
	scp := with("scope", nil)
	scp["scp"] = []any{"read"}
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", scp))), 200)
}

func TestHandlerMultipleIssuers(t *testing.T) {
	a := identitytest.NewIssuer(t)
	b := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	jwksPath := filepath.Join(t.TempDir(), "b.jwks")
	if err := os.WriteFile(jwksPath, b.PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Handler{
		Issuers: []IssuerConfig{
			{Issuer: a.URL, Audiences: []string{"api-a"}, RequireScopes: []string{"a"}},
			{Issuer: b.URL, JWKSFile: jwksPath, AnyAudience: true},
		},
	}
	x := newHX(t, h)
	wantStatus(t, x.get("/", bearer(a.Token(t, "ua", map[string]any{"aud": "api-a", "scope": "a"}))), 200)
	wantStatus(t, x.get("/", bearer(a.Token(t, "ua", map[string]any{"aud": "api-a"}))), 403)
	wantStatus(t, x.get("/", bearer(a.Token(t, "ua", map[string]any{"aud": "api-b", "scope": "a"}))), 401)
	res := x.get("/", bearer(b.Mint(t, map[string]any{"sub": "ub", "aud": "whatever"}, identitytest.Alg("ES256"))))
	wantStatus(t, res, 200)
	if res.up.header.Get("X-User-Id") != "ub" {
		t.Fatalf("X-User-Id = %q", res.up.header.Get("X-User-Id"))
	}
	// a token claiming issuer a but signed by b's key
	forged := b.Mint(t, map[string]any{"iss": a.URL, "aud": "api-a", "scope": "a"}, identitytest.Alg("ES256"))
	wantStatus(t, x.get("/", bearer(forged)), 401)
}

func TestHandlerTooLarge(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.MaxTokenSize = 512
	x := newHX(t, h)
	big := iss.Token(t, "u", map[string]any{"pad": strings.Repeat("x", 600)})
	res := x.get("/", bearer(big))
	wantStatus(t, res, 401)
	if !strings.Contains(res.challenge, "too large") {
		t.Fatalf("challenge %q", res.challenge)
	}
	if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != "too_large" {
		t.Fatalf("reason %q", got)
	}
}

func TestHandlerClaimHeaders(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.ClaimHeaders = []ClaimHeader{
		{Claim: "sub", Header: "x-sub"},
		{Claim: "roles", Header: "X-Roles"},
		{Claim: "org", Header: "X-Org"},
		{Claim: "evil", Header: "X-Evil"},
		{Claim: "n", Header: "X-N"},
	}
	x := newHX(t, h)
	tok := iss.Token(t, "s1", map[string]any{
		"roles": []any{"a", "b"},
		"org":   map[string]any{"id": 1},
		"evil":  "line\r\nX-Injected: yes",
		"n":     12.5,
		"email": "not@forwarded",
	})
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 200)
	want := map[string]string{"X-Sub": "s1", "X-Roles": "a, b", "X-Org": `{"id":1}`, "X-Evil": "line  X-Injected: yes", "X-N": "12.5"}
	for k, v := range want {
		if got := res.up.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if res.up.header.Get("X-User-Email") != "" || res.up.header.Get("X-Injected") != "" {
		t.Errorf("unexpected headers: %v", res.up.header)
	}
}

func TestHandlerCacheExpiry(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := basicHandler(iss)
	h.Leeway = durPtr(10 * time.Second)
	h.now = clock
	x := newHX(t, h)
	tok := iss.Mint(t, map[string]any{"exp": now.Add(time.Minute).Unix()})
	wantStatus(t, x.get("/", bearer(tok)), 200)
	if x.h.auth.cache.len() != 1 {
		t.Fatal("token not cached")
	}
	mu.Lock()
	now = now.Add(65 * time.Second) // within leeway
	mu.Unlock()
	wantStatus(t, x.get("/", bearer(tok)), 200)
	mu.Lock()
	now = now.Add(10 * time.Second) // past exp + leeway
	mu.Unlock()
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 401)
	if !strings.Contains(res.challenge, "expired") {
		t.Fatalf("challenge %q", res.challenge)
	}
}

func TestHandlerCacheDisabled(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.CacheSize = intPtr(0)
	x := newHX(t, h)
	if x.h.auth.cache != nil {
		t.Fatal("cache not disabled")
	}
	tok := iss.Token(t, "u", nil)
	for range 3 {
		wantStatus(t, x.get("/", bearer(tok)), 200)
	}
}

func TestHandlerCacheBound(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.CacheSize = intPtr(50)
	x := newHX(t, h)
	for i := range 300 {
		wantStatus(t, x.get("/", bearer(iss.Token(t, "u", map[string]any{"i": i}))), 200)
	}
	x.h.auth.cache.c.CleanUp()
	if n := x.h.auth.cache.c.WeightedSize(); n > 50 {
		t.Fatalf("cache weight %d exceeds bound 50", n)
	}
	// a 3 KiB token weighs 3 units
	if w := weightOf(3000); w != 3 {
		t.Fatalf("weightOf(3000) = %d", w)
	}
}

// TestHandlerKeyWithdrawn: a cached token whose key was removed from the
// JWKS is refused once the key set was refreshed.
func TestHandlerKeyWithdrawn(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, basicHandler(iss))
	oldKID := iss.CurrentKeyID("RS256")
	tok := iss.Token(t, "u", nil)
	wantStatus(t, x.get("/", bearer(tok)), 200)
	iss.RotateKey("RS256")
	iss.RemoveKey(oldKID)
	p := x.h.auth.validator
	// Force the shared provider to refetch (the cooldown may delay it).
	deadline := time.Now().Add(15 * time.Second)
	for p.KeyStillValid(iss.URL, x.h.auth.cacheThumbprintOf(t, tok)) {
		if time.Now().After(deadline) {
			t.Fatal("key still valid after refresh attempts")
		}
		providerPool.Range(func(k, v any) bool {
			if k == fmtProviderKey(iss.URL, "", false) {
				_ = v.(pooledProvider).Refresh(context.Background())
			}
			return true
		})
		time.Sleep(200 * time.Millisecond)
	}
	wantStatus(t, x.get("/", bearer(tok)), 401)
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", nil))), 200)
}

// cacheThumbprintOf returns the thumbprint cached for token.
func (a *authenticator) cacheThumbprintOf(t *testing.T, token string) string {
	t.Helper()
	e, ok := a.cache.peek(token)
	if !ok {
		t.Fatal("token not cached")
	}
	return e.thumbprint
}

func TestHandlerSharedProvider(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	key := fmtProviderKey(iss.URL, "", false)
	x1 := newHX(t, basicHandler(iss))
	x2 := newHX(t, basicHandler(iss))
	if n, ok := providerPool.References(key); !ok || n != 2 {
		t.Fatalf("references = %d, %v; want 2", n, ok)
	}
	tok := iss.Token(t, "u", nil)
	wantStatus(t, x1.get("/", bearer(tok)), 200)
	wantStatus(t, x2.get("/", bearer(tok)), 200)
	if err := x1.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n, _ := providerPool.References(key); n != 1 {
		t.Fatalf("references after one cleanup = %d", n)
	}
	if err := x1.h.Cleanup(); err != nil { // idempotent
		t.Fatal(err)
	}
	wantStatus(t, x2.get("/", bearer(tok)), 200)
}

func TestHandlerProviderDownAtBoot(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDown(true)
	x := newHX(t, basicHandler(iss)) // provisioning does not fail
	tok := iss.Token(t, "u", nil)
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 503)
	iss.SetDown(false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		res = x.get("/", bearer(tok))
		if res.status == 200 {
			break
		}
		if res.status != 503 || time.Now().After(deadline) {
			t.Fatalf("status %d after the provider came back", res.status)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The outage was logged, once, at ERROR.
	if n := x.logs.FilterMessageSnippet("identity provider unavailable").Len(); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
}

func TestHandlerProviderDownAfterKeysCached(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.CacheSize = intPtr(0) // verify in full each time
	x := newHX(t, h)
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", nil))), 200)
	iss.SetDown(true)
	for range 3 {
		wantStatus(t, x.get("/", bearer(iss.Token(t, "v", nil))), 200)
	}
}

// TestHandlerLogsNoToken logs at DEBUG while the handler accepts a valid
// bearer token (verified, then from the cache), refuses one for its
// audience, and accepts a DPoP-bound token with its proof, then scans every
// entry (message and every field, errors included) for any token, token
// segment or proof sent, accepted ones included.
func TestHandlerLogsNoToken(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, dpopHandler(iss, "allow"))
	key := newDPoPKey(t)
	valid := iss.Token(t, "u", nil)
	wrongAud := iss.Mint(t, map[string]any{"aud": "nope"})
	bound := boundToken(t, iss, key, nil)
	proof := proofFor(t, key, http.MethodGet, "http://example.com/", bound)
	wantStatus(t, x.get("/", bearer(valid)), 200)
	wantStatus(t, x.get("/", bearer(valid)), 200)
	wantStatus(t, x.get("/", bearer(wrongAud)), 401)
	wantStatus(t, x.do(dpopRequest(http.MethodGet, "/", bound, proof)), 200)

	entries := x.logs.All()
	if len(entries) == 0 {
		t.Fatal("nothing logged")
	}
	var logs strings.Builder
	for _, e := range entries {
		if e.Level > zapcore.InfoLevel {
			t.Errorf("logged at %s: %s", e.Level, e.Message)
		}
		fields := zapcore.NewMapObjectEncoder()
		for _, f := range e.Context {
			f.AddTo(fields)
		}
		fmt.Fprintf(&logs, "%s %v\n", e.Message, fields.Fields)
	}
	scanLogForSecrets(t, logs.String(), []string{"Bearer " + valid, "Bearer " + wrongAud, "DPoP " + bound, "DPoP " + proof})
}

func TestHandlerMaxAge(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.MaxAge = caddy.Duration(time.Hour)
	x := newHX(t, h)
	now := time.Now()
	old := iss.Mint(t, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(time.Hour).Unix()})
	res := x.get("/", bearer(old))
	wantStatus(t, res, 401)
	if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != "issued_at" {
		t.Fatalf("reason %q", got)
	}
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", nil))), 200)

	// A cached entry does not outlive iat + max_age either.
	young := iss.Mint(t, map[string]any{"iat": now.Add(-30 * time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()})
	wantStatus(t, x.get("/", bearer(young)), 200)
	e, ok := x.h.auth.cache.peek(young)
	if !ok {
		t.Fatal("token not cached")
	}
	if limit := now.Add(-30 * time.Minute).Add(time.Hour); e.expires.After(limit.Add(time.Second)) {
		t.Fatalf("entry expires %v, after iat+max_age %v", e.expires, limit)
	}
}

// TestHandlerTenantTemplate protects an API with an Entra-style issuer
// template: tokens of the listed tenants pass, with the issuer's own rules
// (looked up by the template), and every other tenant or iss is refused.
func TestHandlerTenantTemplate(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	template := iss.URL + "/{tenantid}/v2.0"
	h := &Handler{
		Issuers: []IssuerConfig{{
			Issuer:            template,
			JWKSURL:           iss.JWKSURL(),
			Tenants:           []string{"tenant-a", "tenant-b"},
			Audiences:         []string{"api-client-id"},
			AuthorizedParties: []string{"spa-client"},
			RequireClaims:     []ClaimRule{{Claim: "roles", Values: []string{"Orders.Read"}}},
		}},
		ClaimHeaders: []ClaimHeader{{Claim: "tid", Header: "X-Tenant"}, {Claim: "iss", Header: "X-Iss"}},
	}
	x := newHX(t, h)
	entra := func(issTenant, tid string, extra map[string]any) string {
		claims := map[string]any{
			"iss": iss.URL + "/" + issTenant + "/v2.0", "tid": tid, "aud": "api-client-id",
			"azp": "spa-client", "roles": []any{"Orders.Read"},
		}
		for k, v := range extra {
			claims[k] = v
		}
		return iss.Token(t, "user", claims)
	}
	res := x.get("/", bearer(entra("tenant-a", "tenant-a", nil)))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-Tenant"); got != "tenant-a" {
		t.Errorf("X-Tenant = %q", got)
	}
	if got := res.up.header.Get("X-Iss"); got != iss.URL+"/tenant-a/v2.0" {
		t.Errorf("X-Iss = %q, want the token's own iss", got)
	}
	if got, _ := res.repl.GetString("http.auth.identity.issuer"); got != template {
		t.Errorf("{http.auth.identity.issuer} = %q, want the configured template", got)
	}
	wantStatus(t, x.get("/", bearer(entra("tenant-b", "tenant-b", nil))), 200)

	refused := []struct {
		name   string
		token  string
		status int
		label  string // {http.auth.identity.error}
	}{
		{"tenant not listed", entra("tenant-c", "tenant-c", nil), 401, "issuer"},
		{"tid missing", entra("tenant-a", "tenant-a", map[string]any{"tid": nil}), 401, "issuer"},
		{"iss of another tenant than tid", entra("tenant-b", "tenant-a", nil), 401, "issuer"},
		{"iss with the common segment", entra("common", "tenant-a", nil), 401, "issuer"},
		{"the literal template as iss", iss.Token(t, "user", map[string]any{"iss": template, "tid": "tenant-a", "aud": "api-client-id", "azp": "spa-client", "roles": "Orders.Read"}), 401, "issuer"},
		{"other authorized party", entra("tenant-a", "tenant-a", map[string]any{"azp": "other-client"}), 401, "claims"},
		{"no authorized party", entra("tenant-a", "tenant-a", map[string]any{"azp": nil}), 401, "claims"},
		{"issuer rule still applies", entra("tenant-a", "tenant-a", map[string]any{"roles": []any{"Orders.Write"}}), 403, "forbidden_claims"},
		{"roles of the wrong type", entra("tenant-a", "tenant-a", map[string]any{"roles": []any{1}}), 401, "claims"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			res := x.get("/", bearer(c.token))
			wantStatus(t, res, c.status)
			if got, _ := res.repl.GetString("http.auth.identity.error"); got != c.label {
				t.Errorf("{http.auth.identity.error} = %q, want %q", got, c.label)
			}
		})
	}
}

// TestHandlerIssuerAliasesAndAuthorizedParty accepts both spellings of a
// Google-style issuer, and checks a top-level authorized party named by
// another claim (Okta "cid").
func TestHandlerIssuerAliasesAndAuthorizedParty(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	bare := strings.TrimPrefix(iss.URL, "http://")
	h := &Handler{
		Issuers:              []IssuerConfig{{Issuer: iss.URL, Aliases: []string{bare}}},
		Audiences:            []string{identitytest.DefaultAudience},
		AuthorizedParties:    []string{"0oa-client"},
		AuthorizedPartyClaim: "cid",
	}
	x := newHX(t, h)
	for _, c := range []struct {
		name   string
		claims map[string]any
		status int
	}{
		{"issuer", map[string]any{"cid": "0oa-client"}, 200},
		{"alias", map[string]any{"iss": bare, "cid": "0oa-client"}, 200},
		{"third spelling", map[string]any{"iss": iss.URL + "/", "cid": "0oa-client"}, 401},
		{"other client", map[string]any{"cid": "0oa-other"}, 401},
		{"client only in azp", map[string]any{"azp": "0oa-client"}, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := x.get("/", bearer(iss.Token(t, "u", c.claims)))
			wantStatus(t, res, c.status)
			if c.status == 200 {
				if got, _ := res.repl.GetString("http.auth.identity.issuer"); got != iss.URL {
					t.Errorf("{http.auth.identity.issuer} = %q, want the configured issuer", got)
				}
			}
		})
	}
}
