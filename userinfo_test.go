package caddyidentity

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// fakeUserInfo is a userinfo endpoint whose answer the test sets.
type fakeUserInfo struct {
	srv   *httptest.Server
	calls atomic.Int32

	mu          sync.Mutex
	status      int
	contentType string
	body        string
	auth        string
	release     chan struct{} // when set, answers wait for it
}

func newFakeUserInfo(t *testing.T) *fakeUserInfo {
	t.Helper()
	f := &fakeUserInfo{status: 200, contentType: "application/json"}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.mu.Lock()
		status, ctype, body, release := f.status, f.contentType, f.body, f.release
		f.auth = r.Header.Get("Authorization")
		f.mu.Unlock()
		if release != nil {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUserInfo) set(status int, ctype, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.contentType, f.body = status, ctype, body
}

// userInfoHandler forwards email and groups, which the tokens of the tests
// lack, and takes them from endpoint.
func userInfoHandler(iss *identitytest.Issuer, endpoint, onError string) *Handler {
	return &Handler{
		Issuers:   []IssuerConfig{{Issuer: iss.URL, UserInfo: &UserInfoConfig{Endpoint: endpoint, OnError: onError}}},
		Audiences: []string{identitytest.DefaultAudience},
		ClaimHeaders: []ClaimHeader{
			{Claim: "sub", Header: "X-User-Id"},
			{Claim: "email", Header: "X-User-Email"},
			{Claim: "groups", Header: "X-User-Groups"},
		},
	}
}

func TestUserInfoFromIssuer(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("caller", "pw"))
	h := userInfoHandler(iss, "", "")
	h.Audiences, h.AnyAudience = nil, true // the tokens of identitytest's client_credentials have no aud
	h.RequireClaims = []ClaimRule{{Claim: "email_verified", Values: []string{"true"}}}
	x := newHX(t, h)
	res := x.get("/", bearer(callerToken(t, iss)))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Email"); got != "caller@example.test" {
		t.Errorf("X-User-Email = %q, want the userinfo email", got)
	}
	if v, _ := res.repl.GetString("http.auth.user.name"); v != "caller" {
		t.Errorf("{http.auth.user.name} = %q, want the userinfo name", v)
	}
}

func TestUserInfoMergeAndCache(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ui := newFakeUserInfo(t)
	ui.set(200, "application/json", `{"sub":"alice","email":"other@example.com","groups":["ops","dev"],"scope":"admin","aud":"elsewhere"}`)
	h := userInfoHandler(iss, ui.srv.URL, "")
	x := newHX(t, h)
	tok := iss.Token(t, "alice", map[string]any{"email": "alice@example.com"})
	res := x.get("/", bearer(tok))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Groups"); got != "ops, dev" {
		t.Errorf("X-User-Groups = %q", got)
	}
	if got := res.up.header.Get("X-User-Email"); got != "alice@example.com" {
		t.Errorf("X-User-Email = %q: the token's own claims must win", got)
	}
	if ui.auth != "Bearer "+tok {
		t.Error("userinfo not asked with the caller's token")
	}
	for range 3 {
		wantStatus(t, x.get("/", bearer(tok)), 200)
	}
	if n := ui.calls.Load(); n != 1 {
		t.Errorf("userinfo asked %d times for one token, want once", n)
	}
	// A token that has every wanted claim needs no userinfo.
	full := iss.Token(t, "bob", map[string]any{"email": "bob@example.com", "groups": []string{"x"}})
	wantStatus(t, x.get("/", bearer(full)), 200)
	if n := ui.calls.Load(); n != 1 {
		t.Errorf("userinfo asked for a token that has every claim")
	}
}

func TestUserInfoNoAuthorizationFromUserInfo(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ui := newFakeUserInfo(t)
	ui.set(200, "application/json", `{"sub":"alice","groups":["ops"],"scope":"admin"}`)
	h := userInfoHandler(iss, ui.srv.URL, "")
	h.RequireScopes = []string{"admin"}
	x := newHX(t, h)
	wantStatus(t, x.get("/", bearer(iss.Token(t, "alice", nil))), 403)
}

func TestUserInfoFailures(t *testing.T) {
	huge := `{"sub":"alice","pad":"` + strings.Repeat("x", userInfoMaxBytes) + `"}`
	tests := []struct {
		name               string
		status             int
		ctype, body        string
		refused, continued int
	}{
		{"sub mismatch", 200, "application/json", `{"sub":"mallory","groups":["admin"]}`, 503, 200},
		{"html", 200, "text/html", `<html><body>Sign in</body></html>`, 503, 200},
		{"huge body", 200, "application/json", huge, 503, 200},
		{"error status", 500, "application/json", `{"error":"server_error"}`, 503, 200},
		{"token refused", 401, "application/json", `{"error":"invalid_token"}`, 503, 200},
	}
	for _, tt := range tests {
		for _, policy := range []string{"refuse", "continue"} {
			t.Run(tt.name+"/"+policy, func(t *testing.T) {
				iss := identitytest.NewIssuer(t)
				ui := newFakeUserInfo(t)
				ui.set(tt.status, tt.ctype, tt.body)
				h := userInfoHandler(iss, ui.srv.URL, policy)
				h.RequireClaims = []ClaimRule{{Claim: "sub"}}
				x := newHX(t, h)
				res := x.get("/", bearer(iss.Token(t, "alice", nil)))
				want := tt.refused
				if policy == "continue" {
					want = tt.continued
				}
				wantStatus(t, res, want)
				if res.status == 200 && (res.up.header.Get("X-User-Groups") != "" || res.up.header.Get("X-User-Id") != "alice") {
					t.Errorf("continue: headers %v, want the token's own claims only", res.up.header)
				}
				if n := x.logs.FilterMessageSnippet("userinfo endpoint unavailable").Len(); n != 1 {
					t.Errorf("failure logged %d times, want once", n)
				}
			})
		}
	}
}

func TestUserInfoSingleFlight(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ui := newFakeUserInfo(t)
	ui.set(200, "application/json", `{"sub":"alice","email":"a@example.com","groups":["g"]}`)
	wantUserInfoCoalesced(t, ui, func() *hx { return newHX(t, userInfoHandler(iss, ui.srv.URL, "")) }, iss.Token(t, "alice", nil))
}

// wantUserInfoCoalesced sends eight concurrent requests with tok to the
// handler newX builds while ui holds its answers, and checks that all pass
// and that they asked userinfo fewer times than they were.
func wantUserInfoCoalesced(t *testing.T, ui *fakeUserInfo, newX func() *hx, tok string) {
	t.Helper()
	release := make(chan struct{})
	ui.mu.Lock()
	ui.release = release
	ui.mu.Unlock()
	x := newX()
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			if err := x.h.ServeHTTP(w, r, noopNext{}); err == nil {
				statuses[i] = w.Code
			}
		})
	}
	// Every request is verified and waits on the one userinfo call.
	for ui.calls.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Errorf("request %d: status %d", i, s)
		}
	}
	// The requests that reached the endpoint while the first call was
	// held joined it; only one that missed both the call and the cache
	// could start another.
	if c := ui.calls.Load(); c >= n {
		t.Errorf("%d userinfo calls for %d concurrent requests: not coalesced", c, n)
	}
}

// noopNext is an upstream that answers 200.
type noopNext struct{}

func (noopNext) ServeHTTP(w http.ResponseWriter, _ *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
}

func TestUserInfoConfig(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`identity {
		issuer https://auth.example.com {
			userinfo {
				on_error continue
				cache_ttl 1m
			}
		}
		issuer https://other.example.com {
			userinfo
		}
		audience api
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if u := h.Issuers[0].UserInfo; u == nil || u.OnError != "continue" || u.CacheTTL == nil || *u.CacheTTL != *durPtr(time.Minute) {
		t.Errorf("first issuer userinfo %+v", u)
	}
	if h.Issuers[1].UserInfo == nil {
		t.Error("bare userinfo not parsed")
	}
	wantUnmarshalError(t, "identity {\n issuer https://a.example {\n userinfo {\n on_error maybe\n }\n }\n }", "on_error")
	bad := &Handler{Issuers: []IssuerConfig{{Issuer: "https://a.example", JWKSFile: "k.json", UserInfo: &UserInfoConfig{}}}, Audiences: []string{"api"}}
	wantErrorContaining(t, bad.checkConfig(), "set endpoint")
	bad.Issuers[0].UserInfo = &UserInfoConfig{Endpoint: "http://idp.example/userinfo"}
	wantErrorContaining(t, bad.checkConfig(), "https")
}
