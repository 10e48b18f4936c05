package caddyidentity

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Ports of the in-process Caddy used by the caddytest tests of this
// package. Other packages of the module that use caddytest must pick
// different ones.
const (
	ctAdminPort = 2999
	ctHTTPPort  = 9080
	ctHTTPSPort = 9443
)

// ctGlobal is the global options block every test config starts with.
var ctGlobal = fmt.Sprintf(`{
	admin localhost:%d
	skip_install_trust
	http_port %d
	https_port %d
	grace_period 1s
}
`, ctAdminPort, ctHTTPPort, ctHTTPSPort)

// ctSite is the site address of the test configs.
var ctSite = fmt.Sprintf("http://localhost:%d", ctHTTPPort)

// recorder is a test upstream that remembers the last request's headers.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits int
	last http.Header
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.hits++
		rec.last = r.Header.Clone()
		rec.mu.Unlock()
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// addr is the upstream's host:port for reverse_proxy.
func (rec *recorder) addr() string { return strings.TrimPrefix(rec.srv.URL, "http://") }

// take returns and clears what the upstream saw.
func (rec *recorder) take() (int, http.Header) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	h, n := rec.last, rec.hits
	rec.last, rec.hits = nil, 0
	return n, h
}

// ctLoad loads a Caddyfile (without its global block) into the shared
// in-process Caddy.
func ctLoad(t *testing.T, sites string) *caddytest.Tester {
	t.Helper()
	return ctInit(t, ctGlobal+sites, "caddyfile")
}

// ctInit loads a config (configType "json" or an adapter name) into the
// shared in-process Caddy and returns once the reload is complete (see
// ctAwaitReload). The first load of a test also makes sure the test ends
// with an empty config (ctReset), so that nothing of it (pooled providers,
// servers, listeners) meets the next test.
func ctInit(t *testing.T, config, configType string) *caddytest.Tester {
	t.Helper()
	if _, loaded := ctResetRegistered.LoadOrStore(t, true); !loaded {
		t.Cleanup(func() {
			ctResetRegistered.Delete(t)
			ctReset(t)
		})
	}
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: ctAdminPort})
	tester.InitServer(config, configType)
	ctAwaitReload(t)
	return tester
}

// ctResetRegistered holds the tests whose ctReset is registered.
var ctResetRegistered sync.Map

// ctReset loads a config with no server. Without it, the next test's config
// would be provisioned while this one is still loaded, and a provider of
// this test would be shared with it (the pool keeps providers by issuer
// URL across reloads, as it should): a test issuer of the next test on a
// reused loopback port would meet this test's keys.
func ctReset(t *testing.T) {
	resp, err := http.Post(fmt.Sprintf("http://localhost:%d/load", ctAdminPort), "text/caddyfile", strings.NewReader(ctGlobal))
	if err != nil {
		t.Errorf("unloading the test config: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Errorf("unloading the test config: %d %s", resp.StatusCode, body)
		return
	}
	ctAwaitReload(t)
}

// ctAwaitReload waits until the servers of the previous config have closed
// their listeners. Caddy binds the new config's listeners with SO_REUSEPORT
// beside the old ones and closes the old ones after /load has answered (the
// HTTP servers' shutdown and the admin server's run in goroutines): a
// connection that the kernel queued at an old listener in between is reset
// when that listener closes ("connection reset by peer", seen under load).
// The listening sockets are counted in /proc/net; where there is no
// /proc/net, Caddy's own count of the listeners in use is the best there is
// (it drops just before a listener closes).
func ctAwaitReload(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{ctAdminPort, ctHTTPPort, ctHTTPSPort} {
		for {
			n, ok := listeningSockets(port)
			if !ok {
				n = max(caddy.ListenerUsage("tcp", fmt.Sprintf(":%d", port)),
					caddy.ListenerUsage("tcp", fmt.Sprintf("localhost:%d", port)))
			}
			if n <= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("port %d: %d listeners 10 s after a config load; the previous config's servers did not stop", port, n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Keep-alive connections of caddytest's admin requests may belong to
	// the previous admin server, which closes them as it stops.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// listeningSockets counts the TCP sockets listening on port (any address)
// in /proc/net/tcp and tcp6; ok is false where they cannot be read.
func listeningSockets(port int) (n int, ok bool) {
	suffix := fmt.Sprintf(":%04X", port)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			return 0, false
		}
		for line := range strings.Lines(string(b)) {
			// sl local_address rem_address st ...; st 0A is LISTEN
			f := strings.Fields(line)
			if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], suffix) {
				n++
			}
		}
	}
	return n, true
}

// ctDo sends a request with raw header names (no canonicalization) and
// returns status, WWW-Authenticate and body.
func ctDo(t *testing.T, tester *caddytest.Tester, path string, hdr [][2]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ctSite+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range hdr {
		req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
	}
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body)
}

func authz(tok string) [2]string { return [2]string{"Authorization", "Bearer " + tok} }

func TestCaddyEndToEnd(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newRecorder(t)
	tester := ctLoad(t, fmt.Sprintf(`%s {
	handle /admin/* {
		identity {
			issuer %s
			audience api
			require_scope admin
			require_claim groups ops
		}
		reverse_proxy %s
	}
	handle {
		identity {
			issuer %s
			audience api
			claim_header sub X-User-Id
			claim_header email X-User-Email
			claim_header groups X-User-Groups
			realm demo
		}
		request_header X-Placeholder "{http.auth.user.id}|{http.auth.user.org.name}"
		reverse_proxy %s
	}
}
`, ctSite, iss.URL, up.addr(), iss.URL, up.addr()))

	tok := iss.Token(t, "alice", map[string]any{
		"email": "alice@example.com", "groups": []any{"dev", "ops"}, "org": map[string]any{"name": "acme"}, "scope": "read",
	})

	// no token
	st, ch, _ := ctDo(t, tester, "/", nil)
	if st != 401 || ch != `Bearer realm="demo"` {
		t.Fatalf("no token: %d %q", st, ch)
	}
	if n, _ := up.take(); n != 0 {
		t.Fatal("upstream reached without a token")
	}

	// valid token, with spoofed identity headers in every spelling
	spoofs := [][2]string{
		authz(tok),
		{"X-User-Id", "evil"}, {"X-User-Id", "evil2"}, {"x-user-id", "evil3"}, {"X_User_Id", "evil4"},
		{"x_user_email", "evil5"}, {"X-USER-GROUPS", ""}, {"X-Placeholder", "evil6"},
	}
	st, _, body := ctDo(t, tester, "/", spoofs)
	if st != 200 || body != "upstream" {
		t.Fatalf("valid token: %d %q", st, body)
	}
	n, seen := up.take()
	if n != 1 {
		t.Fatalf("upstream hits %d", n)
	}
	want := map[string]string{
		"X-User-Id": "alice", "X-User-Email": "alice@example.com", "X-User-Groups": "dev, ops",
		"X-Placeholder": "alice|acme",
	}
	for k, v := range want {
		if got := seen.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q, want %q", k, got, v)
		}
	}
	for k, vs := range seen {
		for _, v := range vs {
			if strings.HasPrefix(v, "evil") {
				t.Errorf("spoofed %s=%s reached the upstream", k, v)
			}
		}
		if normalizeHeaderName(k) != strings.ToLower(k) {
			t.Errorf("underscore variant %s reached the upstream", k)
		}
	}
	if seen.Get("Authorization") != "" {
		t.Error("token forwarded")
	}

	// bad token, spoofed headers: 401 and nothing upstream
	st, ch, _ = ctDo(t, tester, "/", [][2]string{authz(tok + "x"), {"X_User_Id", "evil"}})
	if st != 401 || !strings.Contains(ch, `error="invalid_token"`) {
		t.Fatalf("bad token: %d %q", st, ch)
	}
	if n, _ := up.take(); n != 0 {
		t.Fatal("upstream reached with a bad token")
	}

	// token in two places
	st, ch, _ = ctDo(t, tester, "/", [][2]string{authz(tok), authz(tok)})
	if st != 400 || !strings.Contains(ch, `error="invalid_request"`) {
		t.Fatalf("duplicate header: %d %q", st, ch)
	}

	// scope and claim rules on /admin
	st, ch, _ = ctDo(t, tester, "/admin/x", [][2]string{authz(tok)})
	if st != 403 || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="admin"`) {
		t.Fatalf("missing scope: %d %q", st, ch)
	}
	admin := iss.Token(t, "root", map[string]any{"scope": "admin", "groups": "ops"})
	st, _, _ = ctDo(t, tester, "/admin/x", [][2]string{authz(admin)})
	if st != 200 {
		t.Fatalf("admin: %d", st)
	}
	notOps := iss.Token(t, "root", map[string]any{"scope": "admin", "groups": "dev"})
	st, ch, _ = ctDo(t, tester, "/admin/x", [][2]string{authz(notOps)})
	if st != 403 || !strings.Contains(ch, "insufficient_scope") {
		t.Fatalf("claim rule: %d %q", st, ch)
	}
	up.take()

	// metrics in Caddy's registry
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", ctAdminPort))
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Labelled like Caddy's own metrics: the server, and the issuer.
	for _, m := range []string{
		fmt.Sprintf(`caddy_identity_tokens_accepted_total{issuer=%q,server="srv0"}`, iss.URL),
		fmt.Sprintf(`caddy_identity_tokens_rejected_total{issuer=%q,reason="insufficient_scope",server="srv0"}`, iss.URL),
		"caddy_identity_token_cache_hits_total", "caddy_identity_key_fetches_total",
	} {
		if !strings.Contains(string(mb), m) {
			t.Errorf("metric %s missing from /metrics", m)
		}
	}
}

func TestCaddyOptionalAndHandleErrors(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newRecorder(t)
	tester := ctLoad(t, fmt.Sprintf(`%s {
	handle /public/* {
		identity {
			issuer %s
			audience api
			optional
		}
		reverse_proxy %s
	}
	handle {
		identity {
			issuer %s
			audience api
		}
		reverse_proxy %s
	}
	handle_errors {
		respond "custom {err.status_code} {http.auth.identity.error}"
	}
}
`, ctSite, iss.URL, up.addr(), iss.URL, up.addr()))
	// optional: anonymous passes, spoofed headers removed
	st, _, _ := ctDo(t, tester, "/public/a", [][2]string{{"X_User_Id", "evil"}, {"x-user-email", "evil"}})
	if st != 200 {
		t.Fatalf("anonymous: %d", st)
	}
	if _, seen := up.take(); seen.Get("X-User-Email") != "" || len(seen.Values("X_User_Id")) != 0 {
		t.Fatalf("spoofed headers on the optional path: %v", seen)
	}
	st, _, _ = ctDo(t, tester, "/public/a", [][2]string{authz("garbage")})
	if st != 401 {
		t.Fatalf("optional with bad token: %d", st)
	}
	// handle_errors customises the body; the challenge stays
	st, ch, body := ctDo(t, tester, "/private", [][2]string{authz(iss.Mint(t, map[string]any{"aud": "other"}))})
	if st != 401 || !strings.Contains(ch, `error="invalid_token"`) || body != "custom 401 audience" {
		t.Fatalf("handle_errors: %d %q %q", st, ch, body)
	}
}

func TestCaddyMultipleIssuersAndRotation(t *testing.T) {
	a := identitytest.NewIssuer(t)
	b := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256", "EdDSA"))
	up := newRecorder(t)
	tester := ctLoad(t, fmt.Sprintf(`%s {
	identity {
		issuer %s {
			audience api-a
		}
		issuer %s {
			jwks_url %s
			audience api-b
			algorithms ES256 EdDSA
		}
	}
	reverse_proxy %s
}
`, ctSite, a.URL, b.URL, b.JWKSURL(), up.addr()))
	ok := func(tok string) {
		t.Helper()
		if st, ch, _ := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != 200 {
			t.Fatalf("status %d %q", st, ch)
		}
	}
	ok(a.Token(t, "ua", map[string]any{"aud": "api-a"}))
	ok(b.Mint(t, map[string]any{"aud": "api-b"}, identitytest.Alg("ES256")))
	ok(b.Mint(t, map[string]any{"aud": "api-b"}, identitytest.Alg("EdDSA")))
	if st, _, _ := ctDo(t, tester, "/", [][2]string{authz(a.Token(t, "ua", map[string]any{"aud": "api-b"}))}); st != 401 {
		t.Fatalf("audience of the other issuer accepted: %d", st)
	}
	// rotation: a token signed by a new key is accepted once the key set
	// was refetched (unknown kid → rate-limited refresh)
	a.RotateKey("RS256")
	rotated := a.Token(t, "ua", map[string]any{"aud": "api-a"})
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _, _ := ctDo(t, tester, "/", [][2]string{authz(rotated)})
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated key never accepted (last %d)", st)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestCaddyProviderOutages(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDown(true)
	up := newRecorder(t)
	site := fmt.Sprintf(`%s {
	identity {
		issuer %s
		audience api
	}
	reverse_proxy %s
}
`, ctSite, iss.URL, up.addr())
	tester := ctLoad(t, site) // Caddy starts although the provider is down
	tok := iss.Token(t, "u", nil)
	if st, ch, _ := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != 503 {
		t.Fatalf("provider down at boot: %d %q", st, ch)
	}
	iss.SetDown(false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _, _ := ctDo(t, tester, "/", [][2]string{authz(tok)})
		if st == 200 {
			break
		}
		if st != 503 || time.Now().After(deadline) {
			t.Fatalf("after recovery: %d", st)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// down again, keys cached: new tokens still verified
	iss.SetDown(true)
	if st, _, _ := ctDo(t, tester, "/", [][2]string{authz(iss.Token(t, "v", nil))}); st != 200 {
		t.Fatalf("provider down after keys cached: %d", st)
	}
	// a reload keeps the shared key cache: still accepted while down
	tester = ctLoad(t, site)
	if st, _, _ := ctDo(t, tester, "/", [][2]string{authz(iss.Token(t, "w", nil))}); st != 200 {
		t.Fatalf("after reload with provider down: %d", st)
	}
}

// identityGoroutines counts goroutines running code of this module.
func identityGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:goruntime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "caddy-identity/caddy-identity") && !strings.Contains(g, "identityGoroutines") &&
			!strings.Contains(g, "testing.tRunner") {
			n++
		}
	}
	return n
}

func TestCaddyReloadNoLeak(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	other := identitytest.NewIssuer(t)
	up := newRecorder(t)
	load := func(i int) *caddytest.Tester {
		// alternate configs so that each reload really changes something
		return ctLoad(t, fmt.Sprintf(`%s {
	identity {
		issuer %s
		issuer %s
		audience api
		realm r%d
	}
	reverse_proxy %s
}
`, ctSite, iss.URL, other.URL, i, up.addr()))
	}
	tester := load(0)
	tok := iss.Token(t, "u", nil)
	if st, _, _ := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != 200 {
		t.Fatalf("status %d", st)
	}
	time.Sleep(500 * time.Millisecond)
	base := identityGoroutines()
	for i := 1; i <= 6; i++ {
		tester = load(i)
		if st, _, _ := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != 200 {
			t.Fatalf("reload %d: status %d", i, st)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := identityGoroutines()
		if n <= base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("identity goroutines grew across reloads: %d → %d", base, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, ok := providerPool.References(fmtProviderKey(iss.URL, "", false)); !ok || n != 1 {
		t.Fatalf("provider references after reloads = %d (%v), want 1", n, ok)
	}
}

// TestCaddyJSONRoundTrip loads the JSON that the Caddyfile adapts to and
// checks it behaves the same.
func TestCaddyJSONRoundTrip(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newRecorder(t)
	cfg := adaptCaddyfileLenient(t, ctGlobal+fmt.Sprintf(`%s {
	identity {
		issuer %s
		audience api
		require_scope read
		token_from cookie at
		claim_header sub X-Sub
		cache_size 0
	}
	reverse_proxy %s
}
`, ctSite, iss.URL, up.addr()))
	var pretty map[string]any
	if err := json.Unmarshal(cfg, &pretty); err != nil {
		t.Fatal(err)
	}
	tester := ctInit(t, string(cfg), "json")
	tok := iss.Token(t, "json-user", map[string]any{"scope": "read"})
	st, _, _ := ctDo(t, tester, "/", [][2]string{{"Cookie", "at=" + tok}})
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	if _, seen := up.take(); seen.Get("X-Sub") != "json-user" || strings.Contains(seen.Get("Cookie"), "at=") {
		t.Fatalf("upstream saw %v", seen)
	}
	if st, _, _ := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != 401 {
		t.Fatalf("Authorization accepted although only the cookie is configured: %d", st)
	}
}

// TestCaddyOutageResponse: with the provider down, the 503 is answered by
// the handler itself on a server without handle_errors (so Caddy does not
// log an ERROR per request), and handed to handle_errors where there is
// one, so it can be customised.
func TestCaddyOutageResponse(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDown(true)
	up := newRecorder(t)
	site := func(errorRoutes string) string {
		return fmt.Sprintf(`%s {
	identity {
		issuer %s
		audience api
	}
	reverse_proxy %s
	%s
}
`, ctSite, iss.URL, up.addr(), errorRoutes)
	}
	tok := iss.Mint(t, nil)

	tester := ctLoad(t, site(""))
	if st, _, body := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != http.StatusServiceUnavailable || body != "" {
		t.Fatalf("without handle_errors: %d %q, want 503 with an empty body", st, body)
	}
	tester = ctLoad(t, site(`handle_errors {
		respond "custom {err.status_code} {http.auth.identity.error}"
	}`))
	if st, _, body := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != http.StatusServiceUnavailable || body != "custom 503 provider_unavailable" {
		t.Fatalf("with handle_errors: %d %q", st, body)
	}
	if n, _ := up.take(); n != 0 {
		t.Fatalf("upstream reached %d times during the outage", n)
	}
}

// TestCaddyDPoP runs DPoP through a real Caddy: the proof's htu is the URI
// the client addressed (before handle_path stripped the prefix), the token
// and proof do not reach the upstream, and {http.auth.identity.dpop_jkt}
// is usable by later handlers.
func TestCaddyDPoP(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newRecorder(t)
	tester := ctLoad(t, fmt.Sprintf(`%s {
	handle_path /api/* {
		identity {
			issuer %s
			audience api
			dpop require
		}
		request_header X-Dpop-Jkt {http.auth.identity.dpop_jkt}
		reverse_proxy %s
	}
	handle {
		identity {
			issuer %s
			audience api
		}
		reverse_proxy %s
	}
}
`, ctSite, iss.URL, up.addr(), iss.URL, up.addr()))
	key := newDPoPKey(t)
	tok := boundToken(t, iss, key, nil)
	plain := iss.Token(t, "bob", nil)
	dpop := func(htu string) [][2]string {
		return [][2]string{{"Authorization", "DPoP " + tok}, {"DPoP", proofFor(t, key, "GET", htu, tok)}, {"X-User-Id", "evil"}}
	}

	st, _, _ := ctDo(t, tester, "/api/orders", dpop(ctSite+"/api/orders"))
	if st != 200 {
		t.Fatalf("valid DPoP request: %d", st)
	}
	n, seen := up.take()
	if n != 1 || seen.Get("Authorization") != "" || seen.Get("DPoP") != "" {
		t.Fatalf("upstream saw the token or proof: %v", seen)
	}
	if seen.Get("X-User-Id") != "alice" || seen.Get("X-Dpop-Jkt") != key.Thumbprint() {
		t.Fatalf("upstream identity: X-User-Id %q, X-Dpop-Jkt %q", seen.Get("X-User-Id"), seen.Get("X-Dpop-Jkt"))
	}

	replayed := [][2]string{{"Authorization", "DPoP " + tok}, {"DPoP", proofFor(t, key, "GET", ctSite+"/api/x", tok)}}
	if st, _, _ := ctDo(t, tester, "/api/x", replayed); st != 200 {
		t.Fatalf("first use of a proof: %d", st)
	}
	up.take()
	for _, c := range []struct {
		name string
		path string
		hdr  [][2]string
		want string
	}{
		{"replayed proof", "/api/x", replayed, `error="invalid_dpop_proof"`},
		{"proof for the stripped path", "/api/orders", dpop(ctSite + "/orders"), `error="invalid_dpop_proof"`},
		{"bearer where DPoP is required", "/api/orders", [][2]string{authz(plain), {"X-User-Id", "evil"}}, `DPoP realm="restricted", algs=`},
		{"bound token as bearer (default allow)", "/other", [][2]string{authz(tok)}, `error="invalid_token"`},
	} {
		st, ch, _ := ctDo(t, tester, c.path, c.hdr)
		if st != 401 || !strings.Contains(ch, c.want) {
			t.Errorf("%s: %d %q, want 401 with %s", c.name, st, ch, c.want)
		}
		if n, _ := up.take(); n != 0 {
			t.Errorf("%s: upstream reached", c.name)
		}
	}
	// The default handler takes DPoP too.
	if st, _, _ := ctDo(t, tester, "/other", dpop(ctSite+"/other")); st != 200 {
		t.Fatalf("DPoP with the default mode: %d", st)
	}
	if _, seen := up.take(); seen.Get("X-User-Id") != "alice" || seen.Get("Authorization") != "" || seen.Get("DPoP") != "" {
		t.Fatalf("default mode upstream: %v", seen)
	}
}
