package caddyidentity

import (
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// These tests complete the claims of opaque tokens, accepted by
// introspection, from the issuer's userinfo endpoint.

// introUserInfoHandler introspects at intro and takes the claims of
// userInfoHandler (email, groups) from userinfo, with onError.
func introUserInfoHandler(iss *identitytest.Issuer, intro, userinfo, onError string) *Handler {
	h := userInfoHandler(iss, userinfo, onError)
	h.Issuers[0].Introspection = &IntrospectionConfig{Endpoint: intro, ClientID: "caddy", ClientSecret: introSecret}
	return h
}

// TestUserInfoOnOpaqueTokensFromIssuer: the identitytest issuer hands out
// opaque tokens; the handler finds both the introspection and the userinfo
// endpoints in its discovery document, and the upstream gets the email
// that only userinfo knows.
func TestUserInfoOnOpaqueTokensFromIssuer(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithOpaqueAccessTokens(), identitytest.WithClient("caller", "pw"))
	h := userInfoHandler(iss, "", "")
	h.Issuers[0].Introspection = &IntrospectionConfig{ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret}
	h.Audiences, h.AnyAudience = nil, true // identitytest's client_credentials tokens have no aud
	h.RequireClaims = []ClaimRule{{Claim: "email_verified", Values: []string{"true"}}}
	x := newHX(t, h)
	tok := callerToken(t, iss)
	if isCompactJWS(tok) {
		t.Fatalf("the issuer handed out a JWT: %s", tok)
	}
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Email"); got != "caller@example.test" {
		t.Errorf("X-User-Email = %q, want the userinfo email", got)
	}
	if got := res.up.header.Get("X-User-Id"); got != "caller" {
		t.Errorf("X-User-Id = %q, want the introspected sub", got)
	}
	if v, _ := res.repl.GetString("http.auth.user.name"); v != "caller" {
		t.Errorf("{http.auth.user.name} = %q, want the userinfo name", v)
	}
}

func TestUserInfoOnOpaqueTokens(t *testing.T) {
	tests := []struct {
		name     string
		intro    map[string]any // changes to activeResponse
		userinfo string
		onError  string
		setup    func(h *Handler)
		want     int
		label    string
		// headers the upstream must get ("" means none), and how many
		// times userinfo is asked.
		email, groups string
		calls         int32
	}{
		{name: "merged under the introspected claims", userinfo: `{"sub":"alice","email":"other@example.com","groups":["ops","dev"]}`,
			want: 200, email: "alice@example.com", groups: "ops, dev", calls: 1},
		{name: "claim rule met by userinfo", userinfo: `{"sub":"alice","groups":["ops"]}`,
			setup: func(h *Handler) { h.RequireClaims = []ClaimRule{{Claim: "groups", Values: []string{"ops"}}} },
			want:  200, email: "alice@example.com", groups: "ops", calls: 1},
		{name: "scope never taken from userinfo", userinfo: `{"sub":"alice","groups":["ops"],"scope":"admin"}`,
			setup: func(h *Handler) { h.RequireScopes = []string{"admin"} }, want: 403, label: "insufficient_scope", calls: 1},
		{name: "no claim missing", intro: map[string]any{"groups": []string{"qa"}}, userinfo: `{"sub":"alice","groups":["ops"]}`,
			want: 200, email: "alice@example.com", groups: "qa", calls: 0},
		{name: "no sub: a client's own token", intro: map[string]any{"sub": nil}, userinfo: `{"sub":"alice","groups":["ops"]}`,
			want: 200, email: "alice@example.com", calls: 0},
		{name: "no sub, claim rule needs userinfo", intro: map[string]any{"sub": nil}, userinfo: `{"sub":"alice","groups":["ops"]}`,
			setup: func(h *Handler) { h.RequireClaims = []ClaimRule{{Claim: "groups", Values: []string{"ops"}}} },
			want:  403, label: "forbidden_claims", calls: 0},
		{name: "sub mismatch, refuse", userinfo: `{"sub":"mallory","groups":["admin"]}`, want: 503, label: "userinfo", calls: 1},
		{name: "sub mismatch, continue", userinfo: `{"sub":"mallory","groups":["admin"]}`, onError: "continue",
			want: 200, email: "alice@example.com", calls: 1},
		{name: "not JSON, refuse", userinfo: `<html>sign in</html>`, want: 503, label: "userinfo", calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := identitytest.NewIssuer(t)
			ep := newIntroEndpoint(t)
			ep.set(200, activeResponse(iss.URL, time.Now(), tt.intro))
			ui := newFakeUserInfo(t)
			ui.set(200, "application/json", tt.userinfo)
			h := introUserInfoHandler(iss, ep.srv.URL, ui.srv.URL, tt.onError)
			if tt.setup != nil {
				tt.setup(h)
			}
			x := newHX(t, h)
			tok := opaqueToken(t)
			res := x.get("/", bearer(tok))
			if tt.label != "" {
				wantRefusal(t, res, tt.want, tt.label)
			} else {
				wantStatus(t, res, tt.want)
			}
			if res.status == 200 {
				if got := res.up.header.Get("X-User-Email"); got != tt.email {
					t.Errorf("X-User-Email = %q, want %q", got, tt.email)
				}
				if got := res.up.header.Get("X-User-Groups"); got != tt.groups {
					t.Errorf("X-User-Groups = %q, want %q", got, tt.groups)
				}
			}
			if n := ui.calls.Load(); n != tt.calls {
				t.Errorf("userinfo asked %d times, want %d", n, tt.calls)
			}
			if tt.calls > 0 && ui.auth != "Bearer "+tok {
				t.Errorf("userinfo asked with %q, want the caller's token", ui.auth)
			}
		})
	}
}

// TestUserInfoOnOpaqueTokensCache: the merged claims live in the
// introspection cache entry, no longer than the userinfo cache_ttl nor the
// token; a failure under on_error continue is retried after userInfoRetry.
func TestUserInfoOnOpaqueTokensCache(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	clk := &ccClock{t: time.Now()}
	ep := newIntroEndpoint(t)
	ui := newFakeUserInfo(t)
	ui.set(200, "application/json", `{"sub":"alice","groups":["ops"]}`)
	h := introUserInfoHandler(iss, ep.srv.URL, ui.srv.URL, "continue")
	h.Issuers[0].Introspection.CacheTTL = durPtr(time.Hour)
	h.Issuers[0].UserInfo.CacheTTL = durPtr(time.Minute)
	h.now = clk.Now
	x := newHX(t, h)
	ep.set(200, activeResponse(iss.URL, clk.Now(), map[string]any{"exp": clk.Now().Add(90 * time.Second).Unix()}))
	tok := opaqueToken(t)

	calls := func(wantIntro int, wantUI int32) {
		t.Helper()
		if n, m := ep.callCount(), ui.calls.Load(); n != wantIntro || m != wantUI {
			t.Fatalf("introspection asked %d times, userinfo %d; want %d and %d", n, m, wantIntro, wantUI)
		}
	}
	groups := func(want string) {
		t.Helper()
		res := x.get("/", bearer(tok))
		wantStatus(t, res, 200)
		if got := res.up.header.Get("X-User-Groups"); got != want {
			t.Fatalf("X-User-Groups = %q, want %q", got, want)
		}
	}
	groups("ops")
	groups("ops")
	calls(1, 1)

	// Past the userinfo cache_ttl the token is introspected and completed
	// again, though the introspection cache_ttl is an hour.
	clk.Set(clk.Now().Add(time.Minute + time.Second))
	ui.set(500, "application/json", `{"error":"server_error"}`)
	groups("")
	calls(2, 2)
	// The token's own claims are used for userInfoRetry, then asked again.
	groups("")
	calls(2, 2)
	clk.Set(clk.Now().Add(userInfoRetry))
	ui.set(200, "application/json", `{"sub":"alice","groups":["dev"]}`)
	groups("dev")
	calls(3, 3)

	// Past the token's exp (plus the leeway) it is refused, whatever the
	// userinfo cache_ttl.
	clk.Set(clk.Now().Add(time.Minute + DefaultLeeway))
	wantRefusal(t, x.get("/", bearer(tok)), 401, "expired")
}

// TestUserInfoOnOpaqueTokensSingleFlight: concurrent requests with one
// opaque token ask userinfo once between them.
func TestUserInfoOnOpaqueTokensSingleFlight(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	ui := newFakeUserInfo(t)
	ui.set(200, "application/json", `{"sub":"alice","groups":["g"]}`)
	wantUserInfoCoalesced(t, ui, func() *hx { return newHX(t, introUserInfoHandler(iss, ep.srv.URL, ui.srv.URL, "")) }, opaqueToken(t))
}

// TestUserInfoTokenWithoutSub: a JWT without sub (a client's own token)
// names no user: userinfo is not asked, the token keeps its own claims,
// and a claim rule that needed more refuses it with 403, whatever on_error.
func TestUserInfoTokenWithoutSub(t *testing.T) {
	for _, policy := range []string{"refuse", "continue"} {
		t.Run(policy, func(t *testing.T) {
			iss := identitytest.NewIssuer(t)
			ui := newFakeUserInfo(t)
			ui.set(200, "application/json", `{"sub":"alice","groups":["ops"]}`)
			h := userInfoHandler(iss, ui.srv.URL, policy)
			x := newHX(t, h)
			tok := iss.Mint(t, map[string]any{"sub": nil, "client_id": "batch", "email": "batch@example.com"})
			res := x.get("/", bearer(tok))
			wantStatus(t, res, 200)
			if got := res.up.header.Get("X-User-Email"); got != "batch@example.com" {
				t.Errorf("X-User-Email = %q, want the token's own", got)
			}
			h2 := userInfoHandler(iss, ui.srv.URL, policy)
			h2.RequireClaims = []ClaimRule{{Claim: "groups", Values: []string{"ops"}}}
			wantRefusal(t, newHX(t, h2).get("/", bearer(tok)), 403, "forbidden_claims")
			if n := ui.calls.Load(); n != 0 {
				t.Errorf("userinfo asked %d times for a token without sub", n)
			}
		})
	}
}
