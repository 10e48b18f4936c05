package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// The standard modules (Caddyfile adapter, reverse_proxy, ...) and the identity handler, as in cmd/caddy.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-identity/caddy-identity"
)

// caddyRecoveryTimeout bounds the waits for Caddy to pick up a change at the provider (rotated key, provider back
// up). The handler rate-limits forced key refreshes (5 s cooldown by default), so this leaves room for a few.
const caddyRecoveryTimeout = 30 * time.Second

// upstreamSeen is what the echo upstream received.
type upstreamSeen struct {
	Headers http.Header `json:"headers"`
}

// newEchoUpstream starts an upstream that answers 200 with the request headers it received as JSON.
func newEchoUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(upstreamSeen{Headers: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// caddyServer is Caddy running in this process with one site: identity in front of an echo upstream.
type caddyServer struct {
	t       testing.TB
	URL     string
	logPath string
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCaddy loads a Caddyfile into the in-process Caddy (admin API off, ports picked free, logs in a temp file
// printed on failure) with this site block body in front of a fresh echo upstream, and stops Caddy on cleanup.
// identityBlock is the body of the identity directive.
func startCaddy(t testing.TB, identityBlock string) *caddyServer {
	t.Helper()
	return startCaddyAt(t, freePort(t), identityBlock, newEchoUpstream(t).URL)
}

// startCaddyAt is startCaddy on a given HTTP port in front of a given upstream.
func startCaddyAt(t testing.TB, httpPort int, identityBlock, upstreamURL string) *caddyServer {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	logPath := loadCaddySites(t, httpPort, fmt.Sprintf(`%s {
	identity {
%s
	}
	reverse_proxy %s
}
`, url, identityBlock, upstreamURL))
	return &caddyServer{t: t, URL: url, logPath: logPath}
}

// loadCaddySites loads a Caddyfile with these site blocks into the in-process Caddy (admin API off, HTTP on
// httpPort unless a site names its own port, logs in a temp file printed on failure), stops Caddy on cleanup and
// returns the log's path.
func loadCaddySites(t testing.TB, httpPort int, sites string) string {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "caddy.log")
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	http_port %d
	https_port %d
	storage file_system %s
	log {
		output file %s
		format json
		level DEBUG
	}
}

%s`, httpPort, freePort(t), filepath.Join(dir, "storage"), logPath, sites)

	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		t.Logf("Caddyfile warning: %s", w.String())
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
		if t.Failed() {
			t.Logf("---- Caddyfile ----\n%s\n---- caddy.log ----\n%s", caddyfile, readLog(logPath))
		}
	})
	if err := caddy.Load(cfgJSON, true); err != nil {
		t.Fatalf("loading the config into Caddy: %v\n%s", err, caddyfile)
	}
	return logPath
}

// caddyResponse is an answer of Caddy to a test request.
type caddyResponse struct {
	Status          int
	WWWAuthenticate string
	Body            string
	// Upstream holds the headers the upstream received (status 200 only).
	Upstream http.Header
}

// get sends GET / through Caddy with the bearer token (none when empty) and extra request headers.
func (c *caddyServer) get(token string, extra map[string]string) caddyResponse {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.URL+"/", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", c.URL, err)
	}
	return c.readResponse(resp)
}

// readResponse reads an answer of Caddy, decoding the upstream's echo of
// the request headers when the request got through.
func (c *caddyServer) readResponse(resp *http.Response) caddyResponse {
	c.t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out := caddyResponse{Status: resp.StatusCode, WWWAuthenticate: resp.Header.Get("WWW-Authenticate"), Body: string(body)}
	if resp.StatusCode == http.StatusOK {
		var seen upstreamSeen
		if err := json.Unmarshal(body, &seen); err != nil {
			c.t.Fatalf("upstream answer is not the echo: %v: %s", err, body)
		}
		out.Upstream = seen.Headers
	}
	return out
}

// expectStatus sends the token through Caddy and fails unless the status is want.
func (c *caddyServer) expectStatus(token string, want int) caddyResponse {
	c.t.Helper()
	r := c.get(token, nil)
	if r.Status != want {
		c.t.Fatalf("status %d, want %d (WWW-Authenticate %q): %s", r.Status, want, r.WWWAuthenticate, r.Body)
	}
	return r
}

// eventuallyStatus retries the request until Caddy answers want, failing after caddyRecoveryTimeout.
func (c *caddyServer) eventuallyStatus(token string, want int) time.Duration {
	c.t.Helper()
	start := time.Now()
	var last caddyResponse
	for time.Since(start) < caddyRecoveryTimeout {
		last = c.get(token, nil)
		if last.Status == want {
			return time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Fatalf("no status %d within %s; last %d (WWW-Authenticate %q): %s", want, caddyRecoveryTimeout, last.Status,
		last.WWWAuthenticate, last.Body)
	return 0
}

// identityBlockFor is the identity directive body used by the end-to-end tests: the provider as issuer, the
// RS256 and ES256 resources as audiences, and a few claims forwarded.
func identityBlockFor(p *oidcProvider) string {
	return fmt.Sprintf(`		issuer %s
		audience %s %s
		claim_header sub X-User-Id
		claim_header client_id X-Client-Id
		claim_header scope X-Scopes`, p.URL(), resourceRS256, resourceES256)
}

func TestE2EThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p))

	t.Run("RS256 token accepted, identity forwarded, spoofed headers and token stripped", func(t *testing.T) {
		tok := p.accessToken(t, resourceRS256)
		r := c.get(tok, map[string]string{"X-User-Id": "mallory", "X-Client-Id": "evil"})
		if r.Status != http.StatusOK {
			t.Fatalf("status %d (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
		}
		want := map[string]string{"X-User-Id": testClientID, "X-Client-Id": testClientID, "X-Scopes": "api:read"}
		for h, v := range want {
			if got := r.Upstream.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want [%q]", h, got, v)
			}
		}
		if got := r.Upstream.Get("Authorization"); got != "" {
			t.Errorf("upstream got the token: Authorization %q", got)
		}
	})

	t.Run("ES256 token accepted", func(t *testing.T) {
		tok := p.clientCredentials(t, postClient(), resourceES256, "api:read api:write").AccessToken
		r := c.expectStatus(tok, http.StatusOK)
		if got := r.Upstream.Get("X-User-Id"); got != testPostClientID {
			t.Errorf("X-User-Id %q, want %q", got, testPostClientID)
		}
		if got := r.Upstream.Get("X-Scopes"); got != "api:read api:write" {
			t.Errorf("X-Scopes %q", got)
		}
	})

	t.Run("wrong audience refused", func(t *testing.T) {
		r := c.expectStatus(p.accessToken(t, resourceOther), http.StatusUnauthorized)
		if !strings.Contains(r.WWWAuthenticate, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q lacks invalid_token", r.WWWAuthenticate)
		}
	})

	t.Run("opaque token refused", func(t *testing.T) {
		c.expectStatus(p.accessToken(t, resourceOpaque), http.StatusUnauthorized)
	})

	t.Run("no token challenged", func(t *testing.T) {
		r := c.expectStatus("", http.StatusUnauthorized)
		if !strings.HasPrefix(r.WWWAuthenticate, "Bearer ") || strings.Contains(r.WWWAuthenticate, "error=") {
			t.Errorf("WWW-Authenticate %q, want a Bearer challenge without error", r.WWWAuthenticate)
		}
	})
}

func TestE2EKeyRotationWithoutCaddyRestart(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p))
	oldToken := p.accessToken(t, resourceRS256)
	c.expectStatus(oldToken, http.StatusOK)

	newKey := p.RotateKey("RS256")
	newToken := p.accessToken(t, resourceRS256)
	if h, _ := verifyJWT(t, newToken, p.fetchJWKS(t)); h.KeyID != newKey.KeyID {
		t.Fatalf("new token kid %s, want %s", h.KeyID, newKey.KeyID)
	}
	took := c.eventuallyStatus(newToken, http.StatusOK)
	t.Logf("token signed by the rotated-in key %s accepted after %s", newKey.KeyID, took.Round(time.Millisecond))
	c.expectStatus(oldToken, http.StatusOK)
}

func TestE2EProviderStoppedCachedKeysStillAccepted(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p))
	first := p.accessToken(t, resourceRS256)
	unseen := p.clientCredentials(t, postClient(), resourceRS256, "api:write").AccessToken
	unseenES := p.accessToken(t, resourceES256)
	c.expectStatus(first, http.StatusOK)

	p.Stop()
	c.expectStatus(first, http.StatusOK)
	// Tokens Caddy has never seen are verified with the cached keys, not refused.
	c.expectStatus(unseen, http.StatusOK)
	c.expectStatus(unseenES, http.StatusOK)
}

func TestE2EProviderDownAtCaddyStart(t *testing.T) {
	p := startProvider(t, providerOptions{})
	tok := p.accessToken(t, resourceRS256)
	p.Stop()

	c := startCaddy(t, identityBlockFor(p))
	r := c.expectStatus(tok, http.StatusServiceUnavailable)
	t.Logf("provider down: %d, WWW-Authenticate %q", r.Status, r.WWWAuthenticate)

	p.Start()
	took := c.eventuallyStatus(tok, http.StatusOK)
	t.Logf("accepted %s after the provider came back", took.Round(time.Millisecond))
}

func TestE2EScopeAndExpiryThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, fmt.Sprintf(`		issuer %s
		audience %s %s
		require_scope api:write
		leeway 0s`, p.URL(), resourceRS256, resourceShort))

	t.Run("missing scope refused with insufficient_scope", func(t *testing.T) {
		r := c.expectStatus(p.accessToken(t, resourceRS256), http.StatusForbidden)
		if !strings.Contains(r.WWWAuthenticate, `error="insufficient_scope"`) || !strings.Contains(r.WWWAuthenticate, "api:write") {
			t.Errorf("WWW-Authenticate %q, want insufficient_scope naming api:write", r.WWWAuthenticate)
		}
	})

	t.Run("token refused once expired, even after it was accepted", func(t *testing.T) {
		tok := p.clientCredentials(t, basicClient(), resourceShort, "api:read api:write").AccessToken
		_, claims := verifyJWT(t, tok, p.fetchJWKS(t))
		exp, ok := claims["exp"].(float64)
		if !ok {
			t.Fatalf("no exp in %v", claims)
		}
		wait := time.Until(time.Unix(int64(exp)+1, 0))
		if wait > 30*time.Second {
			t.Fatalf("token of the short resource expires in %s, want about 5 s", wait)
		}
		c.expectStatus(tok, http.StatusOK)
		time.Sleep(wait)
		r := c.expectStatus(tok, http.StatusUnauthorized)
		if !strings.Contains(r.WWWAuthenticate, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q lacks invalid_token", r.WWWAuthenticate)
		}
	})
}
