package caddyidentity

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/goleak"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// These tests drive opaque tokens through ServeHTTP against an httptest
// server acting as the issuer's RFC 7662 introspection endpoint.

const introSecret = "s3cret-of-the-handler"

// introEndpoint is a fake introspection endpoint. Its answer to a token is
// what answer returns (status and body), and it records every call.
type introEndpoint struct {
	srv *httptest.Server

	mu     sync.Mutex
	answer func(token string) (int, string)
	calls  int
	// inflight counts the calls under way and maxInflight the most at once.
	inflight, maxInflight int
	form                  url.Values
	auth                  string
	delay                 time.Duration
}

func newIntroEndpoint(t *testing.T) *introEndpoint {
	t.Helper()
	ep := &introEndpoint{}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ep.mu.Lock()
		ep.calls++
		ep.inflight++
		ep.maxInflight = max(ep.maxInflight, ep.inflight)
		ep.form, ep.auth = r.PostForm, r.Header.Get("Authorization")
		answer, delay := ep.answer, ep.delay
		ep.mu.Unlock()
		defer func() {
			ep.mu.Lock()
			ep.inflight--
			ep.mu.Unlock()
		}()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		status, body := answer(r.PostForm.Get("token"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

// set makes the endpoint answer every token with status and the JSON of
// body (a string body is sent as is).
func (ep *introEndpoint) set(status int, body any) {
	text, ok := body.(string)
	if !ok {
		b, _ := json.Marshal(body)
		text = string(b)
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.answer = func(string) (int, string) { return status, text }
}

func (ep *introEndpoint) callCount() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.calls
}

// activeResponse is an acceptable response for iss, valid for an hour
// from now, with changes applied (a nil value removes a member).
func activeResponse(iss string, now time.Time, changes map[string]any) map[string]any {
	m := map[string]any{
		"active":     true,
		"iss":        iss,
		"sub":        "alice",
		"aud":        identitytest.DefaultAudience,
		"client_id":  "web",
		"scope":      "read write",
		"token_type": "Bearer",
		"exp":        now.Add(time.Hour).Unix(),
		"iat":        now.Unix(),
		"email":      "alice@example.com",
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// introHandler is a handler whose issuer iss introspects at endpoint
// ("" for discovery's).
func introHandler(iss *identitytest.Issuer, endpoint string) *Handler {
	return &Handler{
		Issuers: []IssuerConfig{{Issuer: iss.URL, Introspection: &IntrospectionConfig{
			Endpoint: endpoint, ClientID: "caddy", ClientSecret: introSecret,
		}}},
		Audiences: []string{identitytest.DefaultAudience},
	}
}

// opaqueToken is a fresh opaque token.
func opaqueToken(t *testing.T) string {
	t.Helper()
	return "opaque." + strings.ReplaceAll(t.Name(), "/", "-") + "." + fmt.Sprint(time.Now().UnixNano())
}

func TestIntrospectOutcomes(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	now := time.Now()
	key := newDPoPKey(t)
	tests := []struct {
		name   string
		status int
		body   any
		setup  func(h *Handler)
		want   int
		label  string
	}{
		{name: "active", status: 200, body: activeResponse(iss.URL, now, nil), want: 200},
		{name: "active without iss and token_type", status: 200, body: activeResponse(iss.URL, now, map[string]any{"iss": nil, "token_type": nil}), want: 200},
		{name: "token_type bearer in lower case", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_type": "bearer"}), want: 200},
		{name: "inactive", status: 200, body: map[string]any{"active": false}, want: 401, label: "inactive"},
		{name: "missing exp", status: 200, body: activeResponse(iss.URL, now, map[string]any{"exp": nil}), want: 401, label: "claims"},
		{name: "expired", status: 200, body: activeResponse(iss.URL, now, map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}), want: 401, label: "expired"},
		{name: "issued in the future", status: 200, body: activeResponse(iss.URL, now, map[string]any{"iat": now.Add(10 * time.Minute).Unix()}), want: 401, label: "issued_at"},
		{name: "issued a little in the future, within the leeway", status: 200, body: activeResponse(iss.URL, now, map[string]any{"iat": now.Add(DefaultLeeway / 2).Unix()}), want: 200},
		{name: "not yet valid", status: 200, body: activeResponse(iss.URL, now, map[string]any{"nbf": now.Add(10 * time.Minute).Unix()}), want: 401, label: "not_yet_valid"},
		{name: "wrong audience", status: 200, body: activeResponse(iss.URL, now, map[string]any{"aud": []string{"other"}}), want: 401, label: "audience"},
		{name: "no audience", status: 200, body: activeResponse(iss.URL, now, map[string]any{"aud": nil}), want: 401, label: "audience"},
		{name: "any audience", status: 200, body: activeResponse(iss.URL, now, map[string]any{"aud": nil}),
			setup: func(h *Handler) { h.Audiences, h.AnyAudience = nil, true }, want: 200},
		{name: "wrong issuer", status: 200, body: activeResponse(iss.URL, now, map[string]any{"iss": "https://evil.example.com"}), want: 401, label: "issuer"},
		{name: "alias issuer", status: 200, body: activeResponse(iss.URL, now, map[string]any{"iss": "https://alias.example.com"}),
			setup: func(h *Handler) { h.Issuers[0].Aliases = []string{"https://alias.example.com"} }, want: 200},
		{name: "refresh token", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_type": "refresh_token"}), want: 401, label: "type"},
		{name: "refresh token by token_use (Hydra), no token_type", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_type": nil, "token_use": "refresh_token"}), want: 401, label: "type"},
		{name: "ID token by token_use (Cognito)", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_use": "id"}), want: 401, label: "type"},
		{name: "refresh token by typ (Keycloak), no token_type", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_type": nil, "typ": "Refresh"}), want: 401, label: "type"},
		{name: "token_use not a string", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_use": 7}), want: 401, label: "type"},
		{name: "access token by token_use and typ", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_use": "access", "typ": "Bearer"}), want: 200},
		{name: "access token by token_use (Hydra)", status: 200, body: activeResponse(iss.URL, now, map[string]any{"token_use": "access_token"}), want: 200},
		{name: "scope missing", status: 200, body: activeResponse(iss.URL, now, nil),
			setup: func(h *Handler) { h.RequireScopes = []string{"admin"} }, want: 403, label: "insufficient_scope"},
		{name: "scope present", status: 200, body: activeResponse(iss.URL, now, nil),
			setup: func(h *Handler) { h.RequireScopes = []string{"write"} }, want: 200},
		{name: "claim rule fails", status: 200, body: activeResponse(iss.URL, now, nil),
			setup: func(h *Handler) {
				h.Issuers[0].RequireClaims = []ClaimRule{{Claim: "groups", Values: []string{"admin"}}}
			}, want: 403, label: "forbidden_claims"},
		{name: "authorized party", status: 200, body: activeResponse(iss.URL, now, nil),
			setup: func(h *Handler) { h.AuthorizedParties = []string{"web"} }, want: 200},
		{name: "unauthorized party", status: 200, body: activeResponse(iss.URL, now, nil),
			setup: func(h *Handler) { h.AuthorizedParties = []string{"mobile"} }, want: 401, label: "claims"},
		{name: "too old for max_age", status: 200, body: activeResponse(iss.URL, now, map[string]any{"iat": now.Add(-3 * time.Hour).Unix()}),
			setup: func(h *Handler) { h.MaxAge = caddy.Duration(time.Hour) }, want: 401, label: "issued_at"},
		{name: "DPoP-bound sent as bearer", status: 200, body: activeResponse(iss.URL, now, map[string]any{"cnf": map[string]any{"jkt": key.Thumbprint()}}),
			want: 401, label: "dpop_bound_as_bearer"},
		{name: "certificate-bound without certificate", status: 200, body: activeResponse(iss.URL, now, map[string]any{"cnf": map[string]any{"x5t#S256": "bm90LWEtcmVhbC10aHVtYnByaW50LWJ1dC1ub3QtZW1wdHk"}}),
			want: 401, label: "cert_binding"},
		{name: "endpoint 500", status: 500, body: "oops", want: 503, label: "provider_unavailable"},
		{name: "endpoint garbage", status: 200, body: "<html>not json</html>", want: 503, label: "provider_unavailable"},
		{name: "endpoint without active", status: 200, body: map[string]any{"sub": "alice"}, want: 503, label: "provider_unavailable"},
		{name: "client refused", status: 401, body: map[string]any{"error": "invalid_client"}, want: 503, label: "provider_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newIntroEndpoint(t)
			ep.set(tt.status, tt.body)
			h := introHandler(iss, ep.srv.URL)
			if tt.setup != nil {
				tt.setup(h)
			}
			x := newHX(t, h)
			tok := opaqueToken(t)
			res := x.get("/", bearer(tok))
			if tt.want != 200 {
				wantRefusal(t, res, tt.want, tt.label)
				return
			}
			wantStatus(t, res, 200)
			if got := res.up.header.Get("X-User-Id"); got != "alice" {
				t.Errorf("X-User-Id = %q, want alice", got)
			}
			if got := res.up.header.Get("X-User-Email"); got != "alice@example.com" {
				t.Errorf("X-User-Email = %q", got)
			}
			if got := res.up.header.Get("Authorization"); got != "" {
				t.Errorf("token forwarded upstream: %q", got)
			}
			for ph, want := range map[string]string{
				"{http.auth.user.id}":         "alice",
				"{http.auth.user.client_id}":  "web",
				"{http.auth.identity.issuer}": iss.URL,
			} {
				if got := res.repl.ReplaceAll(ph, "-"); got != want {
					t.Errorf("%s = %q, want %q", ph, got, want)
				}
			}
		})
	}
}

func TestIntrospectClientAuthentication(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	t.Setenv("CADDY_IDENTITY_TEST_INTROSPECTION_SECRET", introSecret)
	for _, method := range []string{"", identity.AuthMethodClientSecretBasic, identity.AuthMethodClientSecretPost} {
		t.Run("method "+method, func(t *testing.T) {
			ep := newIntroEndpoint(t)
			ep.set(200, activeResponse(iss.URL, time.Now(), nil))
			h := introHandler(iss, ep.srv.URL)
			h.Issuers[0].Introspection.ClientSecret = "{env.CADDY_IDENTITY_TEST_INTROSPECTION_SECRET}"
			h.Issuers[0].Introspection.AuthMethod = method
			x := newHX(t, h)
			tok := opaqueToken(t)
			wantStatus(t, x.get("/", bearer(tok)), 200)

			ep.mu.Lock()
			form, auth := ep.form, ep.auth
			ep.mu.Unlock()
			if form.Get("token") != tok || form.Get("token_type_hint") != "access_token" {
				t.Errorf("form = %v", form)
			}
			if method == identity.AuthMethodClientSecretPost {
				if auth != "" || form.Get("client_id") != "caddy" || form.Get("client_secret") != introSecret {
					t.Errorf("client_secret_post: Authorization %q, form %v", auth, form)
				}
				return
			}
			r := &http.Request{Header: http.Header{"Authorization": {auth}}}
			id, secret, ok := r.BasicAuth()
			if !ok || id != "caddy" || secret != introSecret || form.Has("client_secret") {
				t.Errorf("client_secret_basic: Authorization %q (%q, %q), form %v", auth, id, secret, form)
			}
		})
	}
}

func TestIntrospectCache(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	clk := &ccClock{t: time.Now()}
	ep := newIntroEndpoint(t)
	h := introHandler(iss, ep.srv.URL)
	h.Issuers[0].Introspection.CacheTTL = durPtr(time.Minute)
	h.now = clk.Now
	x := newHX(t, h)

	// An active result is reused within the TTL, and asked again after.
	ep.set(200, activeResponse(iss.URL, clk.Now(), nil))
	tok := opaqueToken(t)
	hits0, misses0 := ccHitsMisses(t, x.h)
	wantStatus(t, x.get("/", bearer(tok)), 200)
	wantStatus(t, x.get("/", bearer(tok)), 200)
	if n := ep.callCount(); n != 1 {
		t.Fatalf("endpoint called %d times for two requests, want 1", n)
	}
	// The token cache metrics count the introspection cache too.
	if hits, misses := ccHitsMisses(t, x.h); hits-hits0 != 1 || misses-misses0 != 1 {
		t.Fatalf("cache metrics: hits +%v, misses +%v, want +1 each", hits-hits0, misses-misses0)
	}
	clk.Set(clk.Now().Add(time.Minute + time.Second))
	ep.set(200, map[string]any{"active": false}) // revoked meanwhile
	wantRefusal(t, x.get("/", bearer(tok)), 401, "inactive")
	if n := ep.callCount(); n != 2 {
		t.Fatalf("endpoint called %d times after the TTL, want 2", n)
	}

	// An inactive result is reused for inactiveCacheTTL, then asked again.
	wantRefusal(t, x.get("/", bearer(tok)), 401, "inactive")
	if n := ep.callCount(); n != 2 {
		t.Fatalf("endpoint called %d times, want 2: the inactive result was not reused", n)
	}
	clk.Set(clk.Now().Add(inactiveCacheTTL))
	wantRefusal(t, x.get("/", bearer(tok)), 401, "inactive")
	if n := ep.callCount(); n != 3 {
		t.Fatalf("endpoint called %d times, want 3: an inactive result outlived inactiveCacheTTL", n)
	}

	// An entry never outlives the token's exp (plus the leeway).
	short := opaqueToken(t) + "-short"
	ep.set(200, activeResponse(iss.URL, clk.Now(), map[string]any{"exp": clk.Now().Add(10 * time.Second).Unix()}))
	wantStatus(t, x.get("/", bearer(short)), 200)
	clk.Set(clk.Now().Add(10*time.Second + DefaultLeeway))
	wantRefusal(t, x.get("/", bearer(short)), 401, "expired")
	if n := ep.callCount(); n != 5 {
		t.Fatalf("endpoint called %d times, want 5: an entry outlived its token's exp", n)
	}

	// A token differing in any byte is not a hit.
	ep.set(200, activeResponse(iss.URL, clk.Now(), nil))
	wantStatus(t, x.get("/", bearer(tok+"x")), 200)
	if n := ep.callCount(); n != 6 {
		t.Fatalf("endpoint called %d times, want 6", n)
	}
}

func TestIntrospectCacheDisabled(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	h := introHandler(iss, ep.srv.URL)
	h.Issuers[0].Introspection.CacheTTL = durPtr(0)
	x := newHX(t, h)
	tok := opaqueToken(t)
	for range 3 {
		wantStatus(t, x.get("/", bearer(tok)), 200)
	}
	if n := ep.callCount(); n != 3 {
		t.Fatalf("endpoint called %d times with cache_ttl 0, want 3", n)
	}
}

// serveConcurrently sends a request with each token at once and returns
// the statuses.
func serveConcurrently(x *hx, tokens []string) []int {
	statuses := make([]int, len(tokens))
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Go(func() { statuses[i] = x.get("/", bearer(tok)).status })
	}
	wg.Wait()
	return statuses
}

func TestIntrospectCoalescesConcurrentRequests(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	ep.delay = 300 * time.Millisecond
	x := newHX(t, introHandler(iss, ep.srv.URL))
	tok := opaqueToken(t)
	for i, status := range serveConcurrently(x, slices.Repeat([]string{tok}, 20)) {
		if status != 200 {
			t.Errorf("request %d: status %d, want 200", i, status)
		}
	}
	if n := ep.callCount(); n != 1 {
		t.Fatalf("20 concurrent requests with one token made %d introspections, want 1", n)
	}
}

func TestIntrospectBoundsRequestsUnderWay(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	ep.delay = 200 * time.Millisecond
	x := newHX(t, introHandler(iss, ep.srv.URL))
	tokens := make([]string, maxIntrospections+40)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("%s-%d", opaqueToken(t), i)
	}
	for i, status := range serveConcurrently(x, tokens) {
		if status != 200 {
			t.Errorf("request %d: status %d, want 200 (a request over the bound waits)", i, status)
		}
	}
	ep.mu.Lock()
	calls, most := ep.calls, ep.maxInflight
	ep.mu.Unlock()
	if calls != len(tokens) {
		t.Errorf("%d introspections for %d distinct tokens", calls, len(tokens))
	}
	if most > maxIntrospections || most < 2 {
		t.Fatalf("at most %d introspections under way at once, want 2 to %d", most, maxIntrospections)
	}
}

func TestIntrospectTimeout(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	ep.delay = 5 * time.Second
	x := newHX(t, introHandler(iss, ep.srv.URL))
	x.h.auth.introspectors[0].client.Timeout = 100 * time.Millisecond
	start := time.Now()
	wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 503, "provider_unavailable")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v: the timeout was not applied", d)
	}
	if x.logs.FilterMessage("introspection endpoint unavailable: opaque tokens cannot be checked").Len() != 1 {
		t.Errorf("outage not logged once")
	}
}

func TestIntrospectEndpointFromDiscovery(t *testing.T) {
	ep := newIntroEndpoint(t)
	iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
		m[identity.DiscoveryIntrospectionEndpoint] = ep.srv.URL + "/introspect"
	}))
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	// The endpoint is on another port than the issuer: another origin,
	// which jwks_uri_bases allows.
	h := introHandler(iss, "")
	h.Issuers[0].JWKSURIBases = []string{ep.srv.URL}
	x := newHX(t, h)
	wantStatus(t, x.get("/", bearer(opaqueToken(t))), 200)
	if n := ep.callCount(); n != 1 {
		t.Fatalf("discovered endpoint called %d times, want 1", n)
	}

	// Without an introspection_endpoint in the document, opaque tokens
	// cannot be checked: the provider's fault, not the client's.
	bare := identitytest.NewIssuer(t)
	y := newHX(t, introHandler(bare, ""))
	wantRefusal(t, y.get("/", bearer(opaqueToken(t))), 503, "provider_unavailable")
}

func TestIntrospectJWTKeepsJWTPath(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	x := newHX(t, introHandler(iss, ep.srv.URL))

	jwt := iss.Token(t, "bob", nil)
	res := x.get("/", bearer(jwt))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Id"); got != "bob" {
		t.Errorf("X-User-Id = %q, want bob", got)
	}
	// A JWT with a broken signature is refused for it, not introspected.
	wantRefusal(t, x.get("/", bearer(jwt[:len(jwt)-4]+"AAAA")), 401, "signature")
	if n := ep.callCount(); n != 0 {
		t.Fatalf("endpoint called %d times for JWTs, want 0", n)
	}
}

func TestIntrospectNotConfiguredOpaqueMalformed(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, basicHandler(iss))
	wantRefusal(t, x.get("/", bearer("an-opaque-token")), 401, "malformed", `error="invalid_token"`)
}

func TestIntrospectDPoPBoundOpaqueToken(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	key := newDPoPKey(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), map[string]any{"token_type": "DPoP", "cnf": map[string]any{"jkt": key.Thumbprint()}}))
	x := newHX(t, introHandler(iss, ep.srv.URL))
	tok := opaqueToken(t)
	const uri = "http://example.com/api"
	res := x.do(dpopRequest(http.MethodGet, "/api", tok, proofFor(t, key, http.MethodGet, uri, tok)))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Id"); got != "alice" {
		t.Errorf("X-User-Id = %q, want alice", got)
	}
	other := newDPoPKey(t)
	wantRefusal(t, x.do(dpopRequest(http.MethodGet, "/api", tok, proofFor(t, other, http.MethodGet, uri, tok))), 401, "dpop_proof")
}

func TestIntrospectTokenNeverLogged(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	h := introHandler(iss, ep.srv.URL)
	h.RequireScopes = []string{"read"}
	clk := &ccClock{t: time.Now()}
	h.now = clk.Now
	x := newHX(t, h)
	tok := opaqueToken(t)
	now := clk.Now()
	for _, answer := range []struct {
		status int
		body   any
	}{
		{500, "down: " + tok},
		{200, activeResponse(iss.URL, now, map[string]any{"scope": "other"})},
		{200, map[string]any{"active": false}},
		{401, map[string]any{"error": "invalid_client"}},
		{200, activeResponse(iss.URL, now, nil)},
	} {
		ep.set(answer.status, answer.body)
		x.get("/", bearer(tok))
		clk.Set(clk.Now().Add(outageProbeInterval)) // each answer is asked for, outage or not
	}
	if x.logs.Len() == 0 {
		t.Fatal("nothing logged: the test proves nothing")
	}
	for _, entry := range x.logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, secret := range []string{tok, introSecret} {
			if strings.Contains(line, secret) {
				t.Errorf("log line reveals a secret: %s", line)
			}
		}
	}
}

func TestIsCompactJWS(t *testing.T) {
	hdr := "eyJhbGciOiJSUzI1NiJ9" // {"alg":"RS256"}
	for token, want := range map[string]bool{
		hdr + ".e30.c2ln":      true,
		"opaque":               false,
		"a.b":                  false,
		hdr + ".e30.":          false,
		hdr + "..c2ln":         false,
		".e30.c2ln":            false,
		hdr + ".e30.c2ln.more": false,
		"WzFd.e30.c2ln":        false, // [1]: JSON, not an object
		"bm90IGpzb24.e30.c2ln": false, // "not json"
		"!!!.e30.c2ln":         false,
		"bnVsbA.e30.c2ln":      false, // null
	} {
		if got := isCompactJWS(token); got != want {
			t.Errorf("isCompactJWS(%q) = %v, want %v", token, got, want)
		}
	}
}

func TestIntrospectNoGoroutineLeak(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	ignore := goleak.IgnoreCurrent()
	h := introHandler(iss, ep.srv.URL)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	x := &hx{t: t, h: h}
	wantStatus(t, x.get("/", bearer(opaqueToken(t))), 200)
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	cancel()
	checkNoHandlerGoroutines(t, ignore)
}
