package caddyidentity

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

var (
	testKey1 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	testKey2 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
)

// loginHandler is the usual login configuration against op.
func loginHandler(op *fakeOP) *Handler {
	return &Handler{
		Issuers:   []IssuerConfig{{Issuer: op.iss.URL}},
		Audiences: []string{"api"},
		Login: &LoginConfig{
			ClientID:              testClientID,
			ClientSecret:          testSecret,
			Scopes:                []string{"openid", "email", "offline_access"},
			SessionKeys:           []string{testKey1},
			RedirectURI:           "https://example.com/oauth2/callback",
			PostLogoutRedirectURI: "https://example.com/bye",
		},
	}
}

// browser drives a handler the way a browser does: it keeps the cookies
// the handler sets and sends them back.
type browser struct {
	t   *testing.T
	x   *hx
	op  *fakeOP
	jar map[string]string
	// server puts a Caddy server without handle_errors routes in the
	// request's context, so that the handler writes error pages itself.
	server bool
}

// newBrowser provisions h with clock and returns a browser for it.
func newBrowser(t *testing.T, op *fakeOP, h *Handler, clock *ccClock) *browser {
	t.Helper()
	op.now = clock.Now
	h.now = clock.Now
	return &browser{t: t, x: newHX(t, h), op: op, jar: map[string]string{}}
}

// req sends a request with the browser's cookies and keeps those it gets.
func (b *browser) req(method, target string, hdr map[string]string) hxResult {
	b.t.Helper()
	r := httptest.NewRequest(method, "https://example.com"+target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	for n, v := range b.jar {
		r.AddCookie(&http.Cookie{Name: n, Value: v})
	}
	if b.server {
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, &caddyhttp.Server{}))
	}
	res := b.x.do(r)
	for _, line := range res.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			b.t.Fatalf("bad Set-Cookie %q: %v", line, err)
		}
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || !strings.HasPrefix(c.Name, "__Host-") {
			b.t.Errorf("cookie attributes: %q", line)
		}
		if c.MaxAge < 0 {
			delete(b.jar, c.Name)
		} else {
			b.jar[c.Name] = c.Value
		}
	}
	return res
}

// navigate is a top-level navigation.
func (b *browser) navigate(target string) hxResult {
	b.t.Helper()
	return b.req(http.MethodGet, target, map[string]string{
		"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": "text/html,*/*",
	})
}

// xhr is a script's request.
func (b *browser) xhr(target string) hxResult {
	b.t.Helper()
	return b.req(http.MethodGet, target, map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "application/json"})
}

// startLogin navigates to target and returns the authorization URL.
func (b *browser) startLogin(target string) string {
	b.t.Helper()
	res := b.navigate(target)
	if res.status != http.StatusFound || res.up.reached {
		b.t.Fatalf("navigation without session: status %d (err %v), want 302", res.status, res.err)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		b.t.Errorf("Cache-Control = %q", cc)
	}
	return res.header.Get("Location")
}

// authorize lets the provider sign the user in and returns the callback
// path and query it redirects to.
func (b *browser) authorize(authURL string) string {
	b.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(authURL)
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		b.t.Fatalf("provider answered %d to %s", res.StatusCode, authURL)
	}
	u, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	return u.RequestURI()
}

// signIn runs a whole sign-in from a navigation to target and checks
// that the browser lands back on target.
func (b *browser) signIn(target string) {
	b.t.Helper()
	res := b.req(http.MethodGet, b.authorize(b.startLogin(target)), nil)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != target {
		b.t.Fatalf("callback: status %d (err %v) to %q, want 303 to %q", res.status, res.err, res.header.Get("Location"), target)
	}
}

// sessionCookies counts the session's chunks in the jar.
func (b *browser) sessionCookies() int {
	n := 0
	for name := range b.jar {
		if strings.HasPrefix(name, "__Host-identity_session") {
			n++
		}
	}
	return n
}

func newClock() *ccClock {
	c := &ccClock{}
	c.Set(time.Now())
	return c
}

func TestLoginSignInAndSession(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{issParam: true})
	b := newBrowser(t, op, loginHandler(op), newClock())

	loc := b.startLogin("/app/page?x=1")
	u, _ := url.Parse(loc)
	q := u.Query()
	if !strings.HasPrefix(loc, op.srv.URL+"/authorize?") || q.Get("code_challenge_method") != "S256" ||
		q.Get("redirect_uri") != "https://example.com/oauth2/callback" || q.Get("scope") != "openid email offline_access" {
		t.Fatalf("authorization URL %s", loc)
	}
	if len(b.jar) != 1 {
		t.Fatalf("pre-login cookies: %v", b.jar)
	}
	cb := b.authorize(loc)
	res := b.req(http.MethodGet, cb, nil)
	wantRedirect(t, res, http.StatusSeeOther, "/app/page?x=1")
	if b.sessionCookies() != 1 || len(b.jar) != 1 {
		t.Fatalf("after callback the jar holds %v", b.jar)
	}

	res = b.navigate("/app/page?x=1")
	wantStatus(t, res, http.StatusOK)
	if res.up.header.Get("X-User-Id") != testUser || res.up.header.Get("X-User-Email") != "alice@example.com" {
		t.Errorf("identity headers: %v", res.up.header)
	}
	if got := res.up.header.Get("Cookie"); got != "" {
		t.Errorf("upstream saw the handler's cookies: %q", got)
	}
	if got := res.repl.ReplaceAll("{http.auth.user.id} {http.auth.user.name} {http.auth.identity.issuer}", ""); got != testUser+" Alice "+op.iss.URL {
		t.Errorf("placeholders: %q", got)
	}
	// The same session serves scripts too; without it they get 401.
	wantStatus(t, b.xhr("/api/x"), http.StatusOK)
	anon := &browser{t: t, x: b.x, op: op, jar: map[string]string{}}
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Mode": "cors", "Accept": "text/html"},
		{"Accept": "application/json"},
		{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"},
		{"Sec-Fetch-Mode": "navigate", "Upgrade": "websocket"},
		{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"},
	} {
		res := anon.req(http.MethodGet, "/api/x", hdr)
		wantStatus(t, res, http.StatusUnauthorized)
		if res.challenge != `Bearer realm="restricted"` {
			t.Errorf("%v: challenge %q", hdr, res.challenge)
		}
	}
	res = anon.req(http.MethodPost, "/form", map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"})
	wantStatus(t, res, http.StatusUnauthorized)
	// Older browsers without Fetch metadata: Accept decides.
	res = anon.req(http.MethodGet, "/old", map[string]string{"Accept": "text/html,application/xhtml+xml"})
	if res.status != http.StatusFound {
		t.Errorf("navigation without Fetch metadata: %d", res.status)
	}

	// Spoofed identity headers never pass, with a session either.
	res = b.req(http.MethodGet, "/", map[string]string{"X-User_Id": "mallory"})
	wantStatus(t, res, http.StatusOK)
	if got := res.up.header.Values("X-User-Id"); len(got) != 1 || got[0] != testUser {
		t.Errorf("X-User-Id = %v", got)
	}
	if _, ok := res.up.header["X-User_id"]; ok || res.up.header.Get("Authorization") != "" {
		t.Errorf("spoofed header passed: %v", res.up.header)
	}
}

func wantRedirect(t *testing.T, res hxResult, status int, location string) {
	t.Helper()
	if res.status != status || res.header.Get("Location") != location {
		t.Fatalf("status %d (err %v) to %q, want %d to %q", res.status, res.err, res.header.Get("Location"), status, location)
	}
}

// wantFailure checks a sign-in error page: status and reason.
func wantFailure(t *testing.T, res hxResult, status int, label string) {
	t.Helper()
	if res.status != status || res.up.reached {
		t.Fatalf("status %d (err %v), want %d", res.status, res.err, status)
	}
	if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != label {
		t.Errorf("reason %q, want %q", got, label)
	}
	if res.header.Get("Location") != "" {
		t.Errorf("an error redirects to %q", res.header.Get("Location"))
	}
}

func TestLoginParallelTabs(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	b := newBrowser(t, op, loginHandler(op), newClock())
	var cbs []string
	for _, p := range []string{"/a", "/b", "/c"} {
		cbs = append(cbs, b.authorize(b.startLogin(p)))
	}
	// Finished in reverse order, each tab lands on its own page.
	for i, p := range []string{"/c", "/b", "/a"} {
		res := b.req(http.MethodGet, cbs[2-i], nil)
		wantRedirect(t, res, http.StatusSeeOther, p)
	}
	if len(b.jar) != 1 || b.sessionCookies() != 1 {
		t.Errorf("jar after three sign-ins: %v", b.jar)
	}
	// Many restored tabs: the pre-login cookies stay bounded.
	anon := &browser{t: t, x: b.x, op: op, jar: map[string]string{}}
	for range 10 {
		anon.startLogin("/t")
	}
	if len(anon.jar) > maxPending {
		t.Errorf("%d pre-login cookies", len(anon.jar))
	}
}

func TestLoginCallbackBadPaths(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{issParam: true})
	clock := newClock()
	b := newBrowser(t, op, loginHandler(op), clock)

	t.Run("forged state", func(t *testing.T) {
		cb := b.authorize(b.startLogin("/"))
		u, _ := url.Parse(cb)
		q := u.Query()
		q.Set("state", "forged")
		wantFailure(t, b.req(http.MethodGet, u.Path+"?"+q.Encode(), nil), http.StatusBadRequest, "state_expired")
	})
	t.Run("no state", func(t *testing.T) {
		wantFailure(t, b.req(http.MethodGet, "/oauth2/callback?code=x", nil), http.StatusBadRequest, "state_invalid")
	})
	t.Run("without pre-login cookie", func(t *testing.T) {
		cb := b.authorize(b.startLogin("/"))
		clear(b.jar)
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadRequest, "state_expired")
	})
	t.Run("tampered pre-login cookie", func(t *testing.T) {
		clear(b.jar)
		cb := b.authorize(b.startLogin("/"))
		for n, v := range b.jar {
			b.jar[n] = flipLast(v)
		}
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadRequest, "state_invalid")
	})
	t.Run("pre-login cookie of another state", func(t *testing.T) {
		clear(b.jar)
		cbA := b.authorize(b.startLogin("/a"))
		var nameA, valA string
		for n, v := range b.jar {
			nameA, valA = n, v
		}
		clear(b.jar)
		cbB := b.authorize(b.startLogin("/b"))
		for n := range b.jar {
			b.jar[n] = valA // A's sealed state under B's name
		}
		_ = nameA
		_ = cbA
		wantFailure(t, b.req(http.MethodGet, cbB, nil), http.StatusBadRequest, "state_invalid")
	})
	t.Run("reloaded after success", func(t *testing.T) {
		clear(b.jar)
		cb := b.authorize(b.startLogin("/here"))
		wantRedirect(t, b.req(http.MethodGet, cb, nil), http.StatusSeeOther, "/here")
		tokens := op.tokenCalls.Load()
		wantRedirect(t, b.req(http.MethodGet, cb, nil), http.StatusSeeOther, "/")
		if op.tokenCalls.Load() != tokens {
			t.Error("the code was redeemed again")
		}
	})
	t.Run("replayed", func(t *testing.T) {
		clear(b.jar)
		cb := b.authorize(b.startLogin("/"))
		saved := mapsClone(b.jar)
		wantRedirect(t, b.req(http.MethodGet, cb, nil), http.StatusSeeOther, "/")
		for n, v := range saved {
			b.jar[n] = v
		}
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadRequest, "state_replayed")
	})
	t.Run("expired", func(t *testing.T) {
		clear(b.jar)
		cb := b.authorize(b.startLogin("/"))
		clock.Set(clock.Now().Add(pendingLifetime + time.Second))
		defer clock.Set(time.Now())
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadRequest, "state_expired")
	})
	t.Run("access denied", func(t *testing.T) {
		clear(b.jar)
		cb := withQuery(t, b.authorize(b.startLogin("/")), map[string]string{"code": "", "error": "access_denied"})
		b.server = true
		defer func() { b.server = false }()
		res := b.req(http.MethodGet, cb, nil)
		wantFailure(t, res, http.StatusForbidden, "access_denied")
		if !strings.Contains(res.body, "did not sign you in") || !strings.Contains(res.body, `href="/"`) {
			t.Errorf("error page: %s", res.body)
		}
	})
	t.Run("foreign iss", func(t *testing.T) {
		clear(b.jar)
		cb := withQuery(t, b.authorize(b.startLogin("/")), map[string]string{"iss": "https://evil.example"})
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadRequest, "issuer_mismatch")
	})
	t.Run("missing iss when advertised", func(t *testing.T) {
		clear(b.jar)
		cb := withQuery(t, b.authorize(b.startLogin("/")), map[string]string{"iss": ""})
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadRequest, "issuer_mismatch")
	})
	t.Run("code refused", func(t *testing.T) {
		clear(b.jar)
		cb := withQuery(t, b.authorize(b.startLogin("/")), map[string]string{"code": "stolen"})
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadGateway, "token_error")
	})
	t.Run("token endpoint outage", func(t *testing.T) {
		clear(b.jar)
		cb := b.authorize(b.startLogin("/"))
		op.set(func(op *fakeOP) { op.tokenDown = true })
		defer op.set(func(op *fakeOP) { op.tokenDown = false })
		wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusBadGateway, "token_endpoint_unavailable")
	})
	t.Run("POST", func(t *testing.T) {
		wantFailure(t, b.req(http.MethodPost, "/oauth2/callback?state=x", nil), http.StatusMethodNotAllowed, "method_not_allowed")
	})
}

func TestLoginIDTokenChecks(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	b := newBrowser(t, op, loginHandler(op), newClock())
	other := newFakeOP(t, fakeOPOptions{})
	for _, tc := range []struct {
		name   string
		change func(c map[string]any)
	}{
		{"wrong nonce", func(c map[string]any) { c["nonce"] = "other" }},
		{"no nonce", func(c map[string]any) { delete(c, "nonce") }},
		{"wrong aud", func(c map[string]any) { c["aud"] = "someone-else" }},
		{"aud list without azp", func(c map[string]any) { c["aud"] = []any{testClientID, "x"}; delete(c, "azp") }},
		{"wrong azp", func(c map[string]any) { c["azp"] = "someone-else" }},
		{"wrong at_hash", func(c map[string]any) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" }},
		{"expired", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }},
		{"no iat", func(c map[string]any) { c["iat"] = nil }},
		{"foreign iss", func(c map[string]any) { c["iss"] = other.iss.URL }},
		{"no sub", func(c map[string]any) { c["sub"] = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(b.jar)
			op.set(func(op *fakeOP) { op.idClaims = tc.change })
			defer op.set(func(op *fakeOP) { op.idClaims = nil })
			cb := b.authorize(b.startLogin("/"))
			wantFailure(t, b.req(http.MethodGet, cb, nil), http.StatusUnauthorized, "id_token_invalid")
			if b.sessionCookies() != 0 {
				t.Error("session cookie set")
			}
		})
	}
}

func TestLoginPushedAuthorizationRequest(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{par: true})
	b := newBrowser(t, op, loginHandler(op), newClock())
	loc := b.startLogin("/p")
	u, _ := url.Parse(loc)
	if q := u.Query(); len(q) != 2 || q.Get("client_id") != testClientID || q.Get("request_uri") == "" {
		t.Fatalf("PAR authorization URL %s", loc)
	}
	if op.pushedCalls.Load() != 1 {
		t.Errorf("%d pushes", op.pushedCalls.Load())
	}
	res := b.req(http.MethodGet, b.authorize(loc), nil)
	wantRedirect(t, res, http.StatusSeeOther, "/p")
}

func TestLoginPrivateKeyJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "web-1", Algorithm: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, content string }{
		{"pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))},
		{"jwk", string(jwk)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "client.key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			op := newFakeOP(t, fakeOPOptions{par: true})
			op.set(func(op *fakeOP) { op.clientKey = &key.PublicKey; op.accessTTL = 60 })
			clock := newClock()
			h := loginHandler(op)
			h.Login.ClientSecret, h.Login.ClientKeyFile = "", path
			b := newBrowser(t, op, h, clock)
			b.signIn("/p")
			// The PAR and the code exchange each carried an assertion.
			if n := op.assertions.Load(); n != 2 {
				t.Errorf("%d valid assertions after sign-in, want 2", n)
			}
			clock.Set(clock.Now().Add(45 * time.Second))
			wantStatus(t, b.xhr("/p"), http.StatusOK)
			if op.refreshCalls.Load() != 1 || op.assertions.Load() != 3 {
				t.Errorf("%d refreshes, %d valid assertions; want 1 and 3", op.refreshCalls.Load(), op.assertions.Load())
			}
		})
	}
	t.Run("another key", func(t *testing.T) {
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "client.key")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		op := newFakeOP(t, fakeOPOptions{})
		op.set(func(op *fakeOP) { op.clientKey = &other.PublicKey })
		h := loginHandler(op)
		h.Login.ClientSecret, h.Login.ClientKeyFile = "", path
		b := newBrowser(t, op, h, newClock())
		res := b.req(http.MethodGet, b.authorize(b.startLogin("/p")), nil)
		if res.status < 500 || res.up.reached || b.sessionCookies() != 0 {
			t.Errorf("code exchange with a foreign key: status %d, upstream reached %t, %d session cookies", res.status, res.up.reached, b.sessionCookies())
		}
		if op.tokenCalls.Load() != 1 || op.assertions.Load() != 0 {
			t.Errorf("%d token calls, %d valid assertions; want 1 and 0", op.tokenCalls.Load(), op.assertions.Load())
		}
	})
}

// TestLoginAssertionAudience reads the aud of the assertions the provider
// receives during a sign-in and a refresh for each assertion_audience: at
// the pushed authorization request endpoint, then twice at the token
// endpoint. The provider accepts only the expected audiences.
func TestLoginAssertionAudience(t *testing.T) {
	key, path := writeClientKey(t)
	for _, tc := range []struct {
		value string
		want  []string // {op} is the provider's endpoints' origin, {iss} its issuer
	}{
		{"", []string{"{op}/par", "{op}/token", "{op}/token"}},
		{"endpoint", []string{"{op}/par", "{op}/token", "{op}/token"}},
		{"token_endpoint", []string{"{op}/token", "{op}/token", "{op}/token"}},
		{"issuer", []string{"{iss}", "{iss}", "{iss}"}},
		{"https://login.example.com/oauth2/token", []string{"https://login.example.com/oauth2/token", "https://login.example.com/oauth2/token", "https://login.example.com/oauth2/token"}},
	} {
		t.Run(cmp.Or(tc.value, "default"), func(t *testing.T) {
			op := newFakeOP(t, fakeOPOptions{par: true})
			r := strings.NewReplacer("{op}", op.srv.URL, "{iss}", op.iss.URL)
			var want [][]string
			for _, w := range tc.want {
				want = append(want, []string{r.Replace(w)})
			}
			op.set(func(op *fakeOP) {
				op.clientKey, op.accessTTL = &key.PublicKey, 60
				for _, w := range want {
					if !slices.Contains(op.clientAudiences, w[0]) {
						op.clientAudiences = append(op.clientAudiences, w[0])
					}
				}
			})
			clock := newClock()
			h := loginHandler(op)
			h.Login.ClientSecret, h.Login.ClientKeyFile, h.Login.AssertionAudience = "", path, tc.value
			b := newBrowser(t, op, h, clock)
			b.signIn("/p")
			clock.Set(clock.Now().Add(45 * time.Second))
			wantStatus(t, b.xhr("/p"), http.StatusOK)
			op.mu.Lock()
			defer op.mu.Unlock()
			if !reflect.DeepEqual(op.auds, want) {
				t.Errorf("assertion audiences %q, want %q", op.auds, want)
			}
		})
	}
}

func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"/":                             "/",
		"/app/x?y=1&z=%2F":              "/app/x?y=1&z=%2F",
		"//evil.example/x":              "/",
		"/\\evil.example":               "/",
		"/%09/evil.example":             "/",
		"/%2F/evil.example":             "/",
		"/%5Cevil.example":              "/",
		"https://evil.example/":         "/",
		"javascript:alert(1)":           "/",
		"evil.example":                  "/",
		"/\t/evil.example":              "/",
		"/a\r\nLocation: x":             "/",
		"":                              "/",
		"/ok#frag":                      "/ok#frag",
		"http://example.com:8443":       "/",
		"/" + strings.Repeat("a", 3000): "/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
	// Through the handler: a navigation to //evil returns to "/".
	op := newFakeOP(t, fakeOPOptions{})
	b := newBrowser(t, op, loginHandler(op), newClock())
	b.signIn("/")
	clear(b.jar)
	res := b.req(http.MethodGet, b.authorize(b.startLogin("//evil.example/x")), nil)
	wantRedirect(t, res, http.StatusSeeOther, "/")
}

func TestLoginSessionCookieIntegrity(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	op.set(func(op *fakeOP) {
		groups := make([]any, 150)
		for i := range groups {
			groups[i] = "group-with-a-long-name-" + strings.Repeat("x", 4) + string(rune('a'+i%26))
		}
		op.extra = map[string]any{"groups": groups}
	})
	h := loginHandler(op)
	h.ClaimHeaders = []ClaimHeader{{Claim: "sub", Header: "X-User-Id"}, {Claim: "groups", Header: "X-Groups"}}
	b := newBrowser(t, op, h, newClock())
	b.signIn("/")
	if n := b.sessionCookies(); n < 2 {
		t.Fatalf("a large session in %d cookies", n)
	}
	res := b.xhr("/")
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(res.up.header.Get("X-Groups"), "group-with-a-long-name") {
		t.Errorf("X-Groups = %q", res.up.header.Get("X-Groups"))
	}
	good := mapsClone(b.jar)
	for _, tc := range []struct {
		name   string
		change func(j map[string]string)
	}{
		{"tampered", func(j map[string]string) { j["__Host-identity_session_1"] = flipLast(j["__Host-identity_session_1"]) }},
		{"truncated", func(j map[string]string) {
			v := j["__Host-identity_session_1"]
			j["__Host-identity_session_1"] = v[:len(v)-10]
		}},
		{"missing chunk", func(j map[string]string) { delete(j, "__Host-identity_session_1") }},
		{"re-ordered", func(j map[string]string) {
			first := j["__Host-identity_session"]
			count, rest, _ := strings.Cut(first, ".")
			j["__Host-identity_session"] = count + "." + j["__Host-identity_session_1"]
			j["__Host-identity_session_1"] = rest
		}},
		{"count lowered", func(j map[string]string) {
			_, rest, _ := strings.Cut(j["__Host-identity_session"], ".")
			j["__Host-identity_session"] = "1." + rest
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.jar = mapsClone(good)
			tc.change(b.jar)
			res := b.xhr("/")
			wantStatus(t, res, http.StatusUnauthorized)
			if b.sessionCookies() != 0 {
				t.Errorf("bad session cookies kept: %v", b.jar)
			}
		})
	}
	b.jar = mapsClone(good)
	wantStatus(t, b.xhr("/"), http.StatusOK)

	// A smaller session replacing it deletes the chunks it no longer needs.
	op.set(func(op *fakeOP) { op.extra = nil })
	clear(b.jar)
	cb := b.authorize(b.startLogin("/"))
	for n, v := range good {
		b.jar[n] = v // the larger session is still in the browser
	}
	wantRedirect(t, b.req(http.MethodGet, cb, nil), http.StatusSeeOther, "/")
	if n := b.sessionCookies(); n != 1 {
		t.Errorf("a small session after a large one in %d cookies: %v", n, b.jar)
	}
	wantStatus(t, b.xhr("/"), http.StatusOK)
}

func TestLoginSessionKeyRotation(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	old := newBrowser(t, op, loginHandler(op), newClock())
	old.signIn("/")

	rotated := loginHandler(op)
	rotated.Login.SessionKeys = []string{testKey2, testKey1}
	b := newBrowser(t, op, rotated, newClock())
	b.jar = mapsClone(old.jar)
	wantStatus(t, b.xhr("/"), http.StatusOK)

	unknown := loginHandler(op)
	unknown.Login.SessionKeys = []string{testKey2}
	u := newBrowser(t, op, unknown, newClock())
	u.jar = mapsClone(old.jar)
	wantStatus(t, u.xhr("/"), http.StatusUnauthorized)
	if res := u.navigate("/x"); res.status != http.StatusFound {
		t.Errorf("navigation with a session of an unknown key: %d, want 302 to sign in", res.status)
	}
}

func TestLoginRefreshAndLifetimes(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	op.set(func(op *fakeOP) { op.accessTTL = 60 })
	clock := newClock()
	h := loginHandler(op)
	h.Login.IdleTimeout = caddy30m()
	h.Login.SessionLifetime = caddyDur(4 * time.Hour)
	b := newBrowser(t, op, h, clock)
	b.signIn("/")
	before := mapsClone(b.jar)

	// Past the access token's life, twenty concurrent requests with the
	// same cookie: one refresh, nobody signed out.
	clock.Set(clock.Now().Add(45 * time.Second))
	var wg sync.WaitGroup
	results := make([]hxResult, 20)
	for i := range results {
		wg.Go(func() {
			c := &browser{t: t, x: b.x, op: op, jar: mapsClone(before)}
			results[i] = c.xhr("/")
		})
	}
	wg.Wait()
	for i, res := range results {
		if res.status != http.StatusOK {
			t.Fatalf("request %d: %d", i, res.status)
		}
	}
	if n := op.refreshCalls.Load(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	// A late request with the replaced cookie still gets the new session.
	late := &browser{t: t, x: b.x, op: op, jar: mapsClone(before)}
	wantStatus(t, late.xhr("/"), http.StatusOK)
	if n := op.refreshCalls.Load(); n != 1 {
		t.Errorf("%d refreshes after a late request, want 1", n)
	}
	b.jar = late.jar

	// The refresh token is refused: the session ends.
	clock.Set(clock.Now().Add(2 * time.Minute))
	op.set(func(op *fakeOP) { op.refreshDenY = true })
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
	if b.sessionCookies() != 0 {
		t.Error("session kept after invalid_grant")
	}
	op.set(func(op *fakeOP) { op.refreshDenY = false; op.accessTTL = 3600 })

	// Idle timeout and absolute lifetime.
	b.signIn("/")
	clock.Set(clock.Now().Add(20 * time.Minute))
	wantStatus(t, b.xhr("/"), http.StatusOK)
	clock.Set(clock.Now().Add(31 * time.Minute))
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
	b.signIn("/")
	signedIn := clock.Now()
	for range 11 {
		clock.Set(clock.Now().Add(20 * time.Minute))
		if res := b.xhr("/"); res.status != http.StatusOK {
			t.Fatalf("active session refused before its lifetime, at %v: %d", clock.Now().Sub(signedIn), res.status)
		}
	}
	clock.Set(clock.Now().Add(20 * time.Minute))
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
}

func TestLoginLogout(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	b := newBrowser(t, op, loginHandler(op), newClock())
	b.signIn("/")
	stolen := mapsClone(b.jar)

	// A GET from anywhere only shows a button.
	res := b.req(http.MethodGet, "/oauth2/logout", nil)
	if res.status != http.StatusOK || !strings.Contains(res.body, `method="post"`) || b.sessionCookies() == 0 {
		t.Fatalf("GET logout: %d, session cookies %d", res.status, b.sessionCookies())
	}
	// A cross-site POST is refused.
	res = b.req(http.MethodPost, "/oauth2/logout", map[string]string{"Sec-Fetch-Site": "cross-site"})
	wantFailure(t, res, http.StatusForbidden, "logout_forbidden")
	res = b.req(http.MethodPost, "/oauth2/logout", map[string]string{"Origin": "https://evil.example"})
	wantFailure(t, res, http.StatusForbidden, "logout_forbidden")
	wantStatus(t, b.xhr("/"), http.StatusOK)

	res = b.req(http.MethodPost, "/oauth2/logout", map[string]string{"Sec-Fetch-Site": "same-origin"})
	if res.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.status)
	}
	u, _ := url.Parse(res.header.Get("Location"))
	q := u.Query()
	if u.Path != "/end_session" || q.Get("id_token_hint") == "" || q.Get("client_id") != testClientID ||
		q.Get("post_logout_redirect_uri") != "https://example.com/bye" || q.Get("state") == "" {
		t.Errorf("end session URL %s", u)
	}
	if b.sessionCookies() != 0 {
		t.Error("session cookie kept")
	}
	// A copy of the cookie taken before no longer works.
	thief := &browser{t: t, x: b.x, op: op, jar: stolen}
	wantStatus(t, thief.xhr("/"), http.StatusUnauthorized)
}

func TestLoginBackchannelLogout(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	clock := newClock()
	b := newBrowser(t, op, loginHandler(op), clock)
	b.signIn("/")
	post := func(token string) hxResult {
		r := httptest.NewRequest(http.MethodPost, "https://example.com/oauth2/backchannel_logout",
			strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return b.x.do(r)
	}
	other := newFakeOP(t, fakeOPOptions{})
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"no events", op.logoutToken(map[string]any{"events": nil})},
		{"wrong event", op.logoutToken(map[string]any{"events": map[string]any{"http://other": map[string]any{}}})},
		{"nonce", op.logoutToken(map[string]any{"nonce": "n"})},
		{"no sid or sub", op.logoutToken(map[string]any{"sid": nil, "sub": nil})},
		{"no jti", op.logoutToken(map[string]any{"jti": nil})},
		{"wrong aud", op.logoutToken(map[string]any{"aud": "other"})},
		{"no iat", op.logoutToken(map[string]any{"iat": nil})},
		{"old iat", op.logoutToken(map[string]any{"iat": time.Now().Add(-time.Hour).Unix()})},
		{"other issuer", other.logoutToken(nil)},
		{"not a JWT", "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := post(tc.token)
			if res.status != http.StatusBadRequest || res.header.Get("Cache-Control") != "no-store" {
				t.Errorf("status %d, Cache-Control %q", res.status, res.header.Get("Cache-Control"))
			}
			wantStatus(t, b.xhr("/"), http.StatusOK)
		})
	}
	tok := op.logoutToken(nil)
	if res := post(tok); res.status != http.StatusOK || res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("valid logout token: %d", res.status)
	}
	if res := post(tok); res.status != http.StatusBadRequest {
		t.Errorf("replayed logout token: %d", res.status)
	}
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
	if res := b.navigate("/next"); res.status != http.StatusFound {
		t.Errorf("navigation after back-channel logout: %d, want 302 to sign in", res.status)
	}
	// A new sign-in after the logout works, also when ended by sub.
	clock.Set(clock.Now().Add(time.Second))
	b.signIn("/")
	wantStatus(t, b.xhr("/"), http.StatusOK)
	clock.Set(clock.Now().Add(time.Second))
	if res := post(op.logoutToken(map[string]any{"sid": nil})); res.status != http.StatusOK {
		t.Fatalf("logout token by sub: %d", res.status)
	}
	wantStatus(t, b.xhr("/"), http.StatusUnauthorized)
}

func TestLoginUserinfoEndpoint(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	b := newBrowser(t, op, loginHandler(op), newClock())
	res := b.req(http.MethodGet, "/oauth2/userinfo", nil)
	if res.status != http.StatusUnauthorized || res.header.Get("Cache-Control") != "no-store" || !strings.Contains(res.body, "unauthenticated") {
		t.Fatalf("userinfo without session: %d %q", res.status, res.body)
	}
	b.signIn("/")
	res = b.req(http.MethodGet, "/oauth2/userinfo", nil)
	var got map[string]any
	if err := json.Unmarshal([]byte(res.body), &got); err != nil || res.status != http.StatusOK {
		t.Fatalf("userinfo: %d %q", res.status, res.body)
	}
	if got["sub"] != testUser || got["email"] != "alice@example.com" || res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("userinfo: %v", got)
	}
	if strings.Contains(res.body, "rt-") || strings.Contains(res.body, "at-") || strings.Contains(res.body, "eyJ") {
		t.Errorf("userinfo leaks a token: %s", res.body)
	}
}

func TestLoginPolicyBearerAndForwarding(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	h := loginHandler(op)
	h.RequireClaims = []ClaimRule{{Claim: "email", Values: []string{"alice@example.com"}}}
	h.Login.ForwardAccessToken = true
	b := newBrowser(t, op, h, newClock())
	b.signIn("/")
	res := b.xhr("/")
	wantStatus(t, res, http.StatusOK)
	if got := res.up.header.Get("Authorization"); !strings.HasPrefix(got, "Bearer at-") {
		t.Errorf("forwarded access token %q", got)
	}
	// Bearer tokens keep working next to sessions.
	res = b.req(http.MethodGet, "/api", bearer(op.iss.Token(t, "svc", map[string]any{"email": "alice@example.com"})))
	wantStatus(t, res, http.StatusOK)
	if res.up.header.Get("X-User-Id") != "svc" || res.up.header.Get("Cookie") != "" {
		t.Errorf("bearer next to a session: %v", res.up.header)
	}

	h2 := loginHandler(op)
	h2.RequireClaims = []ClaimRule{{Claim: "email", Values: []string{"bob@example.com"}}}
	b2 := newBrowser(t, op, h2, newClock())
	b2.signIn("/")
	res = b2.xhr("/")
	wantStatus(t, res, http.StatusForbidden)
	if !strings.Contains(res.challenge, "insufficient_scope") {
		t.Errorf("challenge %q", res.challenge)
	}
}

func TestLoginWithoutAudienceRefusesBearer(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	h := loginHandler(op)
	h.Audiences = nil
	b := newBrowser(t, op, h, newClock())
	b.signIn("/")
	wantStatus(t, b.xhr("/"), http.StatusOK)
	anon := &browser{t: t, x: b.x, op: op, jar: map[string]string{}}
	wantStatus(t, anon.req(http.MethodGet, "/", bearer(op.iss.Token(t, "svc", nil))), http.StatusUnauthorized)
}

func TestLoginConfigErrors(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	for _, tc := range []struct {
		name   string
		change func(h *Handler)
		want   string
	}{
		{"no client", func(h *Handler) { h.Login.ClientID = "" }, "client_id"},
		{"no key", func(h *Handler) { h.Login.SessionKeys = nil }, "session_key"},
		{"short key", func(h *Handler) { h.Login.SessionKeys = []string{"c2hvcnQ="} }, "32"},
		{"jwks_url", func(h *Handler) { h.Issuers[0].JWKSURL = op.iss.JWKSURL() }, "discovery"},
		{"unknown issuer", func(h *Handler) { h.Login.Issuer = "https://nope" }, "not configured"},
		{"bad path", func(h *Handler) { h.Login.CallbackPath = "//x" }, "single /"},
		{"http redirect", func(h *Handler) { h.Login.RedirectURI = "http://example.com/cb" }, "https"},
		{"secret and key", func(h *Handler) { h.Login.ClientKeyFile = "client.key" }, "exclusive"},
		{"no key file", func(h *Handler) {
			h.Login.ClientSecret, h.Login.ClientKeyFile = "", filepath.Join(t.TempDir(), "missing.key")
		}, "client_key_file"},
		{"assertion audience with a secret", func(h *Handler) { h.Login.AssertionAudience = "issuer" }, "applies to key_file or client_key_file"},
		{"assertion audience misspelt", func(h *Handler) {
			h.Login.ClientSecret, h.Login.ClientKeyFile, h.Login.AssertionAudience = "", "client.key", "isuer"
		}, `login: assertion_audience "isuer" must be`},
		{"assertion audience over http", func(h *Handler) {
			h.Login.ClientSecret, h.Login.ClientKeyFile, h.Login.AssertionAudience = "", "client.key", "http://auth.example.com/token"
		}, "http only on loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := loginHandler(op)
			tc.change(h)
			err := provisionErr(h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLoginCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`identity {
		issuer https://auth.example.com
		login {
			client_id web-app
			client_secret {env.SECRET}
			scopes openid profile
			scopes offline_access
			session_key ` + testKey2 + `
			session_key ` + testKey1 + `
			session_lifetime 8h
			idle_timeout off
			forward_access_token
			userinfo
			post_logout_redirect_uri https://app.example.com/
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	l := h.Login
	if l == nil || l.ClientID != "web-app" || l.ClientSecret != "{env.SECRET}" || len(l.Scopes) != 3 ||
		len(l.SessionKeys) != 2 || l.SessionKeys[0] != testKey2 || l.SessionLifetime != caddyDur(8*time.Hour) ||
		l.IdleTimeout != -1 || !l.ForwardAccessToken || !l.Userinfo || l.PostLogoutRedirectURI != "https://app.example.com/" {
		t.Errorf("parsed %+v", l)
	}
	d = caddyfile.NewTestDispenser(`identity {
		issuer https://auth.example.com
		login {
			client_id web-app
			client_key_file /etc/caddy/web-app.jwk
			assertion_audience issuer
			session_key ` + testKey1 + `
		}
	}`)
	var hk Handler
	if err := hk.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if hk.Login.ClientKeyFile != "/etc/caddy/web-app.jwk" || hk.Login.ClientSecret != "" || hk.Login.AssertionAudience != "issuer" {
		t.Errorf("parsed %+v", hk.Login)
	}
	for _, bad := range []string{
		`identity { issuer x
login { client_id a
client_secret s
client_key_file k
session_key k } }`,
		`identity { issuer x
login { session_key k } }`,
		`identity { issuer x
login { client_id a } }`,
		`identity { issuer x
login { client_id a
client_id b
session_key k } }`,
		`identity { issuer x
login { client_id a
session_key k
nope } }`,
		`identity { issuer x
login { client_id a
session_key k
idle_timeout -5s } }`,
		`identity { issuer x
login { client_id a
client_key_file k
assertion_audience issuer endpoint
session_key k } }`,
		`identity { issuer x
login { client_id a
client_key_file k
assertion_audience issuer
assertion_audience issuer
session_key k } }`,
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// flipLast changes a character near the end of a base64url value (not
// the last, whose low bits may be padding).
func flipLast(v string) string {
	i := len(v) - 2
	c := byte('A')
	if v[i] == 'A' {
		c = 'B'
	}
	return v[:i] + string(c) + v[i+1:]
}

// withQuery changes the parameters of a path and query; "" deletes.
func withQuery(t *testing.T, pathQuery string, set map[string]string) string {
	t.Helper()
	u, err := url.Parse(pathQuery)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, v := range set {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.RequestURI()
}

func mapsClone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// provisionErr provisions h in a throw-away context and returns the error.
func provisionErr(h *Handler) error {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup()
	return err
}

func caddyDur(d time.Duration) caddy.Duration { return caddy.Duration(d) }

func caddy30m() caddy.Duration { return caddyDur(30 * time.Minute) }

func TestLoginPlainHTTPOrigins(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	h := loginHandler(op)
	h.Login.RedirectURI = ""
	b := newBrowser(t, op, h, newClock())
	nav := map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}

	r := httptest.NewRequest(http.MethodGet, "http://example.com/app", nil)
	for k, v := range nav {
		r.Header.Set(k, v)
	}
	wantFailure(t, b.x.do(r), http.StatusForbidden, "https_required")

	r = httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/app", nil)
	for k, v := range nav {
		r.Header.Set(k, v)
	}
	res := b.x.do(r)
	u, _ := url.Parse(res.header.Get("Location"))
	if res.status != http.StatusFound || u.Query().Get("redirect_uri") != "http://127.0.0.1:8080/oauth2/callback" {
		t.Fatalf("loopback http: %d to %s", res.status, u)
	}
	c, err := http.ParseSetCookie(res.header.Get("Set-Cookie"))
	if err != nil || c.Secure || strings.HasPrefix(c.Name, "__Host-") || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("loopback http cookie %q", res.header.Get("Set-Cookie"))
	}

	// Over TLS without redirect_uri: the request's own https origin.
	res = b.navigate("/app")
	u, _ = url.Parse(res.header.Get("Location"))
	if res.status != http.StatusFound || u.Query().Get("redirect_uri") != "https://example.com/oauth2/callback" {
		t.Fatalf("https: %d to %s", res.status, u)
	}
}

func TestLoginRefreshDuringOutage(t *testing.T) {
	op := newFakeOP(t, fakeOPOptions{})
	op.set(func(op *fakeOP) { op.accessTTL = 60 })
	clock := newClock()
	b := newBrowser(t, op, loginHandler(op), clock)
	b.signIn("/")
	clock.Set(clock.Now().Add(45 * time.Second))
	op.set(func(op *fakeOP) { op.tokenDown = true })
	// The session holds through the outage; the provider is asked once
	// a minute, not once per request.
	before := op.tokenCalls.Load()
	for range 5 {
		wantStatus(t, b.xhr("/"), http.StatusOK)
	}
	if n := op.tokenCalls.Load() - before; n != 1 {
		t.Errorf("%d token requests during the outage, want 1", n)
	}
	op.set(func(op *fakeOP) { op.tokenDown = false })
	wantStatus(t, b.xhr("/"), http.StatusOK)
	if n := op.refreshCalls.Load(); n != 0 {
		t.Errorf("refresh retried within the minute: %d", n)
	}
	clock.Set(clock.Now().Add(recentRefreshTTL))
	wantStatus(t, b.xhr("/"), http.StatusOK)
	if n := op.refreshCalls.Load(); n != 1 {
		t.Errorf("%d refreshes after the outage, want 1", n)
	}
}

// FuzzSessionCookie sends arbitrary session chunks and pre-login cookies
// (and a callback state) through a provisioned login handler: it must
// never panic, never let a request through without a session it sealed,
// and never answer a callback but with an error page.
func FuzzSessionCookie(f *testing.F) {
	op := newFakeOP(f, fakeOPOptions{})
	h := loginHandler(op)
	h.logger = zap.NewNop()
	h.now = time.Now
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	f.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = h.Cleanup() })
	l := h.login
	sealed := l.sessions.seal("__Host-identity_session", []byte(`{"iss":"x","sub":"y","c":{},"ct":1,"st":1}`))
	f.Add("1."+sealed, "", "state")
	f.Add("2."+sealed[:10], sealed[10:], "")
	f.Add("3.", "", "s")
	f.Fuzz(func(t *testing.T, first, second, state string) {
		r := httptest.NewRequest(http.MethodGet, "https://example.com/x", nil)
		r.Header.Set("Sec-Fetch-Mode", "cors")
		r.Header["Cookie"] = []string{"__Host-identity_session=" + first + "; __Host-identity_session_1=" + second +
			"; __Host-identity_login_" + state + "=" + second}
		w := httptest.NewRecorder()
		reached := false
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { reached = true; return nil })
		if err := h.ServeHTTP(w, r, next); err == nil || reached {
			t.Fatalf("forged session accepted (err %v, upstream reached %v)", err, reached)
		}
		cb := httptest.NewRequest(http.MethodGet, "https://example.com/oauth2/callback?code=c&state="+url.QueryEscape(state), nil)
		cb.Header = r.Header.Clone()
		w = httptest.NewRecorder()
		err := h.ServeHTTP(w, cb, next)
		var he caddyhttp.HandlerError
		if reached || !errors.As(err, &he) || he.StatusCode < 400 {
			t.Fatalf("forged callback: err %v, status %d", err, w.Code)
		}
	})
}
