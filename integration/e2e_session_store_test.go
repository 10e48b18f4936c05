package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// storedSessionWait bounds the waits for a logout to reach the store: the provider sends its back-channel
// logout while it ends its own session, and the instances learn of it through Redis.
const storedSessionWait = 10 * time.Second

// storedSessionSite is the site block of one instance: the browser sign-in of the web client with its sessions
// in Redis. Each instance gets its own store timeout, so that the two sites of this Caddy have their own Redis
// client and ended list and share only the Redis server, as two Caddy processes would.
func storedSessionSite(site, issuer, key, postLogout, redisAddr string, timeout time.Duration, upstream string) string {
	return fmt.Sprintf(`%s {
	identity {
		issuer %s
		claim_header sub X-User-Id
		claim_header email X-User-Email
		login {
			client_id web-client
			client_secret web-secret
			scopes openid email profile offline_access
			session_key %s
			post_logout_redirect_uri %s
			forward_access_token
			session_store redis
			userinfo
		}
		store redis {
			address %s
			timeout %s
		}
	}
	reverse_proxy %s
}
`, site, issuer, key, postLogout, redisAddr, timeout, upstream)
}

// browserCookies returns the browser's cookies for a URL as a Cookie header: a copy of the session cookie that
// the browser itself may lose on sign-out.
func (b *browserSession) browserCookies(step, u string) string {
	b.t.Helper()
	var cookies []*network.Cookie
	b.run(step, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{u}).Do(ctx)
		return err
	}))
	parts := make([]string, 0, len(cookies))
	for _, c := range cookies {
		parts = append(parts, c.Name+"="+c.Value)
	}
	if len(parts) == 0 {
		b.t.Fatalf("%s: the browser has no cookie for %s", step, u)
	}
	return strings.Join(parts, "; ")
}

// scriptRequest sends what a script of the page would (fetch with credentials) to a site with a Cookie header,
// and returns the status and, when the upstream was reached, the user id it was given.
func scriptRequest(t *testing.T, site, cookie string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, site+"/api/data", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Sec-Fetch-Mode", "cors")
	req.Header.Set("Accept", "application/json")
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s/api/data: %v", site, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, ""
	}
	// The page upstream shows the headers it received as JSON in #headers.
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, rest, _ := strings.Cut(string(page), `<pre id="headers">`)
	text, _, _ := strings.Cut(rest, "</pre>")
	var hdr http.Header
	if err := json.Unmarshal([]byte(html.UnescapeString(text)), &hdr); err != nil {
		t.Fatalf("%s/api/data: not the upstream page: %v: %s", site, err, page)
	}
	return resp.StatusCode, hdr.Get("X-User-Id")
}

// eventuallyRefused waits until a site refuses the cookie (401), failing after storedSessionWait.
func eventuallyRefused(t *testing.T, what, site, cookie string) {
	t.Helper()
	deadline := time.Now().Add(storedSessionWait)
	for {
		status, _ := scriptRequest(t, site, cookie)
		if status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s still answers %d to the session cookie after %s", what, site, status, storedSessionWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedRecords returns the keys of the stored session records and of their index.
func storedRecords(dump map[string][]string) (records, index []string) {
	for k := range dump {
		switch {
		case strings.HasPrefix(k, "caddy-identity:session:") && !strings.HasSuffix(k, ":refresh"):
			records = append(records, k)
		case strings.HasPrefix(k, "caddy-identity:session-index:"):
			index = append(index, k)
		}
	}
	return records, index
}

// waitRecords waits until the store holds n session records, failing after storedSessionWait.
func waitRecords(t *testing.T, rs *redisServer, what string, n int) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(storedSessionWait)
	for {
		dump := rs.dump(t)
		records, _ := storedRecords(dump)
		if len(records) == n {
			return dump
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d session records in Redis, want %d: %v", what, len(records), n, records)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserStoredSessionTwoInstances signs in with a real Chromium at oidc-provider through instance A of a
// fleet of two (two sites of one Caddy, each with its own Redis client and local state, sharing only a real
// redis-server, with login { session_store redis }): the session works at B at once; Redis holds the session
// sealed (no access token, ID token or email in clear, in keys or values); signing out at B makes A refuse a copy
// of the cookie and deletes the record; ending the session at the provider sends a back-channel logout to A,
// which deletes the record and its index, and B refuses the session.
func TestBrowserStoredSessionTwoInstances(t *testing.T) {
	chromium(t)
	rs := startRedisServer(t)
	portA, portB := freePort(t), freePort(t)
	siteA, siteB := fmt.Sprintf("http://127.0.0.1:%d", portA), fmt.Sprintf("http://127.0.0.1:%d", portB)
	p := startProvider(t, providerOptions{
		WebClient: &webClientOptions{
			RedirectURI:           siteA + "/oauth2/callback",
			PostLogoutRedirectURI: siteA + "/bye",
			BackchannelLogoutURI:  siteA + "/oauth2/backchannel_logout",
		},
	})
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	upstream := newPageUpstream(t).URL
	loadCaddySites(t, portA,
		storedSessionSite(siteA, p.URL(), key, siteA+"/bye", rs.Addr, 2*time.Second, upstream)+
			storedSessionSite(siteB, p.URL(), key, siteA+"/bye", rs.Addr, 2*time.Second+time.Millisecond, upstream))

	// Sign in at A; the same browser (cookies are per host, not per port: a load balancer's view) is served
	// by B without going to the provider.
	b := newBrowserSession(t)
	b.run("open protected page at A", chromedp.Navigate(siteA+"/app"))
	if loc := b.location(); !strings.HasPrefix(loc, p.URL()) {
		t.Fatalf("protected page did not lead to the provider: %s", loc)
	}
	b.signInAtProvider("sign-in at A")
	h := b.upstreamHeaders("upstream page at A")
	if h.Get("X-User-Id") != "alice" || h.Get("X-User-Email") == "" {
		t.Fatalf("identity headers at the upstream of A: %v", h)
	}
	accessToken, email := strings.TrimPrefix(h.Get("Authorization"), "Bearer "), h.Get("X-User-Email")
	if accessToken == "" {
		t.Fatal("no access token forwarded by A")
	}
	auths := p.countRequests("GET", "/auth")
	b.run("open page at B", chromedp.Navigate(siteB+"/at-b"))
	if h := b.upstreamHeaders("upstream page at B"); h.Get("X-User-Id") != "alice" || h.Get("X-User-Email") != email {
		t.Fatalf("identity headers at the upstream of B: %v", h)
	}
	if loc := b.location(); loc != siteB+"/at-b" {
		t.Errorf("at B landed on %s, want %s/at-b", loc, siteB)
	}
	if n := p.countRequests("GET", "/auth"); n != auths {
		t.Errorf("B sent the browser to the provider (%d authorization requests, was %d)", n, auths)
	}
	cookie := b.browserCookies("copy the cookie", siteA)
	if status, user := scriptRequest(t, siteB, cookie); status != http.StatusOK || user != "alice" {
		t.Fatalf("B with a copy of the cookie: %d, user %q", status, user)
	}

	dump := waitRecords(t, rs, "after the sign-in", 1)
	records, index := storedRecords(dump)
	if len(index) != 2 {
		t.Errorf("session index keys %v, want one for the sid and one for the subject", index)
	}

	// Sign out at B: the browser goes on to the provider's logout page (with the ID token as
	// id_token_hint); before it is confirmed there, A already refuses a copy of the cookie.
	b.run("sign out at B", chromedp.Click(`#signout`, chromedp.ByQuery))
	b.run("provider logout page", chromedp.WaitVisible(`button[name="logout"][value="yes"]`, chromedp.ByQuery))
	waitRecords(t, rs, "after the sign-out at B", 0)
	if status, _ := scriptRequest(t, siteA, cookie); status != http.StatusUnauthorized {
		t.Errorf("A after the sign-out at B: %d, want 401", status)
	}

	// Nothing of the tokens in clear in Redis: the access token, the email, and the ID token, which the sign-out
	// handed to the provider in its URL.
	secrets := map[string]string{"access token": accessToken, "email": email}
	if u, err := url.Parse(b.location()); err == nil && u.Query().Get("id_token_hint") != "" {
		secrets["ID token"] = u.Query().Get("id_token_hint")
	} else {
		t.Errorf("the provider's logout page has no id_token_hint: %s", b.location())
	}
	for what, secret := range secrets {
		for k, vals := range dump {
			if strings.Contains(k, secret) {
				t.Errorf("Redis key %q holds the %s in clear", k, what)
			}
			for _, v := range vals {
				if strings.Contains(v, secret) {
					t.Errorf("Redis value of %q holds the %s in clear", k, what)
				}
			}
		}
	}
	if len(records) == 1 && len(dump[records[0]]) == 1 && strings.Contains(dump[records[0]][0], "alice") {
		t.Errorf("the stored session shows the subject in clear")
	}

	b.run("confirm logout at the provider", chromedp.Click(`button[name="logout"][value="yes"]`, chromedp.ByQuery))
	b.run("back to the login form", chromedp.WaitVisible(`input[name="login"]`, chromedp.ByQuery))

	// Sign in again at A, then end the session at the provider: its back-channel logout reaches A, which
	// deletes the stored record and its index; B refuses the session.
	b.run("open protected page at A again", chromedp.Navigate(siteA+"/again"))
	b.signInAtProvider("second sign-in at A")
	if h := b.upstreamHeaders("signed in again"); h.Get("X-User-Id") != "alice" {
		t.Fatalf("second sign-in: %v", h)
	}
	cookie = b.browserCookies("copy the new cookie", siteA)
	if status, user := scriptRequest(t, siteB, cookie); status != http.StatusOK || user != "alice" {
		t.Fatalf("B with the new session: %d, user %q", status, user)
	}
	_, indexBefore := storedRecords(waitRecords(t, rs, "after the second sign-in", 1))
	b.run("provider end session", chromedp.Navigate(p.URL()+"/session/end"),
		chromedp.WaitVisible(`button[name="logout"][value="yes"]`, chromedp.ByQuery))
	b.run("confirm provider logout", chromedp.Click(`button[name="logout"][value="yes"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`button[name="logout"]`, chromedp.ByQuery))
	dump = waitRecords(t, rs, "after the back-channel logout", 0)
	// The logout token names the sid: its index is deleted, the subject's stays.
	if _, index := storedRecords(dump); len(index) != len(indexBefore)-1 {
		t.Errorf("session index keys after the back-channel logout: %v, want one fewer than %v", index, indexBefore)
	}
	eventuallyRefused(t, "after the back-channel logout at A", siteB, cookie)
}
