package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/caddy-identity/caddy-identity/internal/testenv"
)

// browserAccessTokenTTL is the provider's access token lifetime in the
// browser test: the handler refreshes 30 s before expiry, so a request
// some seconds after sign-in already refreshes.
const browserAccessTokenTTL = 40 * time.Second

// newPageUpstream starts an upstream that answers an HTML page showing the
// request headers it received (as JSON in #headers) and a sign-out button.
func newPageUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr, _ := json.Marshal(r.Header)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>app</title></head><body><h1>%s</h1><pre id="headers">%s</pre>`+
			`<form method="post" action="/oauth2/logout"><button id="signout" type="submit">Sign out</button></form></body></html>`,
			html.EscapeString(r.URL.Path), html.EscapeString(string(hdr)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// chromium returns the path of a Chromium or Chrome binary, skipping the
// test when there is none (failing it under CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testenv.CI() {
		t.Fatal("CI=true and no chromium found (apt-get install chromium)")
	}
	skipBrowserOnce.Do(func() {
		testenv.Notice("integration: real-browser tests SKIPPED: no chromium in PATH (apt-get install chromium, or set CHROME)")
	})
	t.Skip("no chromium in PATH (apt-get install chromium, or set CHROME)")
	return ""
}

// skipBrowserOnce keeps the skip notice to one line per run.
var skipBrowserOnce sync.Once

// browserSession is a headless Chromium driven by chromedp, with a
// directory for the screenshots of each step.
type browserSession struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	step int
}

// newBrowserSession starts Chromium with a fresh profile.
func newBrowserSession(t *testing.T) *browserSession {
	t.Helper()
	dir, err := os.MkdirTemp("", "caddy-identity-browser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("browser screenshots in %s", dir)
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.WindowSize(1000, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	b := &browserSession{t: t, ctx: ctx, dir: dir}
	b.run("start", chromedp.Navigate("about:blank"))
	return b
}

// run performs actions, then saves a screenshot named after the step.
func (b *browserSession) run(step string, actions ...chromedp.Action) {
	b.t.Helper()
	b.step++
	err := chromedp.Run(b.ctx, actions...)
	var png []byte
	if shotErr := chromedp.Run(b.ctx, chromedp.CaptureScreenshot(&png)); shotErr == nil {
		name := fmt.Sprintf("%02d-%s.png", b.step, strings.ReplaceAll(step, " ", "-"))
		_ = os.WriteFile(filepath.Join(b.dir, name), png, 0o644)
	}
	if err != nil {
		var loc, body string
		_ = chromedp.Run(b.ctx, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body))
		b.t.Fatalf("step %q: %v (at %s, screenshots in %s)\n%s", step, err, loc, b.dir, body)
	}
}

// location returns the current URL.
func (b *browserSession) location() string {
	b.t.Helper()
	var loc string
	b.run("location", chromedp.Location(&loc))
	return loc
}

// upstreamHeaders reads the headers the upstream page shows.
func (b *browserSession) upstreamHeaders(step string) http.Header {
	b.t.Helper()
	var text string
	b.run(step, chromedp.WaitVisible(`#headers`, chromedp.ByQuery), chromedp.Text(`#headers`, &text, chromedp.ByQuery))
	var h http.Header
	if err := json.Unmarshal([]byte(text), &h); err != nil {
		b.t.Fatalf("%s: headers page: %v: %s", step, err, text)
	}
	return h
}

// fetchStatus runs fetch(path) in the page with the given credentials
// mode and returns the status.
func (b *browserSession) fetchStatus(step, path, credentials string) int {
	b.t.Helper()
	var status int
	js := fmt.Sprintf(`fetch(%q, {credentials: %q, headers: {Accept: "application/json"}}).then(r => r.status)`, path, credentials)
	b.run(step, chromedp.Evaluate(js, &status, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	return status
}

// signInAtProvider fills in the provider's login form and, when it asks,
// its consent page, then waits for the upstream page.
func (b *browserSession) signInAtProvider(step string) {
	b.t.Helper()
	b.run(step+" login form",
		chromedp.WaitVisible(`input[name="login"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="login"]`, "alice", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, "wonderland", chromedp.ByQuery),
	)
	b.run(step+" submit", chromedp.Click(`button[type="submit"]`, chromedp.ByQuery))
	for range 100 {
		var state string
		b.run(step+" wait", chromedp.Evaluate(`document.querySelector("#headers") ? "app" :
			(document.querySelector('input[name="prompt"][value="consent"]') ? "consent" : "")`, &state))
		switch state {
		case "app":
			return
		case "consent":
			b.run(step+" consent", chromedp.Click(`button[type="submit"]`, chromedp.ByQuery), chromedp.WaitVisible(`#headers`, chromedp.ByQuery))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s: neither the app nor a consent page after signing in (at %s)", step, b.location())
}

// countRequests counts the provider's log lines of a method and path.
func (p *oidcProvider) countRequests(method, path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.logs {
		n += strings.Count(readLog(l), " "+method+" "+path+" ->")
	}
	return n
}

// TestBrowserSignIn drives a real Chromium through the handler's sign-in
// at oidc-provider with its interactive login and consent pages: sign in,
// reload, scripts with and without the cookie, a refresh, sign-out, and a
// back-channel logout started at the provider.
func TestBrowserSignIn(t *testing.T) {
	chromium(t)
	port := freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := startProvider(t, providerOptions{
		AccessTokenTTL: browserAccessTokenTTL,
		WebClient: &webClientOptions{
			RedirectURI:           site + "/oauth2/callback",
			PostLogoutRedirectURI: site + "/bye",
			BackchannelLogoutURI:  site + "/oauth2/backchannel_logout",
		},
	})
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	startCaddyAt(t, port, fmt.Sprintf(`		issuer %s
		claim_header sub X-User-Id
		claim_header email X-User-Email
		login {
			client_id web-client
			client_secret web-secret
			scopes openid email profile offline_access
			session_key %s
			post_logout_redirect_uri %s/bye
			forward_access_token
			userinfo
		}`, p.URL(), key, site), newPageUpstream(t).URL)

	b := newBrowserSession(t)
	b.run("open protected page", chromedp.Navigate(site+"/app"))
	if loc := b.location(); !strings.HasPrefix(loc, p.URL()) {
		t.Fatalf("protected page did not lead to the provider: %s", loc)
	}
	b.signInAtProvider("first sign-in")
	h := b.upstreamHeaders("upstream page")
	if h.Get("X-User-Id") != "alice" || h.Get("X-User-Email") != "alice@example.test" {
		t.Fatalf("identity headers at the upstream: %v", h)
	}
	if c := h.Get("Cookie"); strings.Contains(c, "identity_") {
		t.Errorf("the upstream saw the session cookie: %q", c)
	}
	if loc := b.location(); loc != site+"/app" {
		t.Errorf("landed on %s, want %s/app", loc, site)
	}
	firstToken := h.Get("Authorization")

	auths := p.countRequests("GET", "/auth")
	b.run("reload", chromedp.Reload())
	if h := b.upstreamHeaders("after reload"); h.Get("X-User-Id") != "alice" {
		t.Fatalf("after reload: %v", h)
	}
	if n := p.countRequests("GET", "/auth"); n != auths {
		t.Errorf("reload went to the provider again (%d authorization requests, was %d)", n, auths)
	}

	if s := b.fetchStatus("fetch with cookie", "/api/data", "same-origin"); s != http.StatusOK {
		t.Errorf("fetch with the session cookie: %d", s)
	}
	if s := b.fetchStatus("fetch without cookie", "/api/data", "omit"); s != http.StatusUnauthorized {
		t.Errorf("fetch without the session cookie: %d, want 401", s)
	}

	// Within 30 s of the access token's expiry the next request refreshes.
	tokens := p.countRequests("POST", "/token")
	time.Sleep(browserAccessTokenTTL - 30*time.Second + 2*time.Second)
	b.run("reload after the access token's life", chromedp.Reload())
	h = b.upstreamHeaders("after refresh")
	if n := p.countRequests("POST", "/token"); n != tokens+1 {
		t.Errorf("%d token requests after the refresh, want %d", n, tokens+1)
	}
	if tok := h.Get("Authorization"); tok == "" || tok == firstToken || h.Get("X-User-Id") != "alice" {
		t.Errorf("after refresh: access token changed %v, headers %v", tok != firstToken, h)
	}

	// Sign out: the provider confirms, the session is gone and so is the
	// provider's: the next visit shows its login form.
	b.run("sign out", chromedp.Click(`#signout`, chromedp.ByQuery))
	b.run("provider logout page", chromedp.WaitVisible(`button[name="logout"][value="yes"]`, chromedp.ByQuery))
	b.run("confirm logout", chromedp.Click(`button[name="logout"][value="yes"]`, chromedp.ByQuery))
	// The provider sends the browser to /bye, which, without a session,
	// leads to the provider, which, without its session, asks to log in.
	b.run("back to the login form", chromedp.WaitVisible(`input[name="login"]`, chromedp.ByQuery))

	// Sign in again, then end the session at the provider: its
	// back-channel logout token ends the session at Caddy.
	b.run("open protected page again", chromedp.Navigate(site+"/again"))
	b.signInAtProvider("second sign-in")
	if h := b.upstreamHeaders("signed in again"); h.Get("X-User-Id") != "alice" {
		t.Fatalf("second sign-in: %v", h)
	}
	b.run("provider end session", chromedp.Navigate(p.URL()+"/session/end"),
		chromedp.WaitVisible(`button[name="logout"][value="yes"]`, chromedp.ByQuery))
	b.run("confirm provider logout", chromedp.Click(`button[name="logout"][value="yes"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`button[name="logout"]`, chromedp.ByQuery))
	// With the session still valid the page would show at once.
	b.run("protected page after back-channel logout", chromedp.Navigate(site+"/after"),
		chromedp.WaitVisible(`input[name="login"]`, chromedp.ByQuery))
}
