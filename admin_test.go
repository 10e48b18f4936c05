package caddyidentity

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// adminCall sends a request to the in-process Caddy's admin endpoint and
// returns the status and body.
func adminCall(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://localhost:%d%s", ctAdminPort, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// adminIssuers calls an /identity/issuers route and decodes the answer by
// issuer.
func adminIssuers(t *testing.T, method, path string) (map[string]issuerView, []byte) {
	t.Helper()
	st, body := adminCall(t, method, path)
	if st != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, st, body)
	}
	var views []issuerView
	if err := json.Unmarshal(body, &views); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, body)
	}
	out := make(map[string]issuerView, len(views))
	for _, v := range views {
		out[v.Issuer] = v
	}
	return out, body
}

func TestAdminIssuers(t *testing.T) {
	up := identitytest.NewIssuer(t)
	down := identitytest.NewIssuer(t)
	down.SetDown(true)
	rec := newRecorder(t)
	tester := ctLoad(t, fmt.Sprintf(`%s {
	handle /down/* {
		identity {
			issuer %s
			audience api
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
}
`, ctSite, down.URL, rec.addr(), up.URL, rec.addr()))

	tok := up.Token(t, "alice", nil)
	for range 2 { // a miss, then a hit
		if st, ch, _ := ctDo(t, tester, "/", [][2]string{authz(tok)}); st != 200 {
			t.Fatalf("token of the available issuer: %d %q", st, ch)
		}
	}
	downTok := down.Token(t, "bob", nil)
	if st, _, _ := ctDo(t, tester, "/down/x", [][2]string{authz(downTok)}); st != 503 {
		t.Fatalf("token of the unavailable issuer: %d, want 503", st)
	}

	views, body := adminIssuers(t, http.MethodGet, "/identity/issuers")
	for _, secret := range []string{tok, downTok, `"d":`, `"n":`, "PRIVATE"} {
		if strings.Contains(string(body), secret) {
			t.Fatalf("admin answer holds %q: %s", secret, body)
		}
	}
	a, ok := views[up.URL]
	if !ok {
		t.Fatalf("issuer %s missing: %s", up.URL, body)
	}
	if a.State != "fresh" || a.Source != "discovery" || !slices.Equal(a.KeyIDs, up.KeyIDs()) ||
		a.Keys == nil || a.Keys.Fetched.IsZero() || a.Keys.LastError != "" || a.Keys.NextRefresh.IsZero() ||
		a.Discovery == nil || a.Discovery.State != "fresh" {
		t.Fatalf("available issuer: %s", body)
	}
	if a.Handlers != 1 || a.TokenCache.Entries < 1 || a.TokenCache.Hits < 1 || a.TokenCache.Misses < 1 || a.TokenCache.HitRatio <= 0 {
		t.Fatalf("token cache of the available issuer: %+v", a.TokenCache)
	}
	b, ok := views[down.URL]
	if !ok {
		t.Fatalf("issuer %s missing: %s", down.URL, body)
	}
	if b.State != "unavailable" || len(b.KeyIDs) != 0 || b.Discovery == nil ||
		!strings.Contains(b.Discovery.LastError, "503") || b.Discovery.Failures < 1 {
		t.Fatalf("unavailable issuer: %s", body)
	}
	// The cache counts are the issuer's own: the unavailable issuer's
	// token was a miss of it, never a hit.
	if b.TokenCache.Misses < 1 || b.TokenCache.Hits != 0 || b.TokenCache.HitRatio != 0 {
		t.Fatalf("token cache of the unavailable issuer: %+v", b.TokenCache)
	}

	// Forced refreshes are rate-limited like an unknown kid: two in a
	// row make at most one fetch of the key set.
	before := up.JWKSFetches()
	adminIssuers(t, http.MethodPost, "/identity/issuers/refresh")
	adminIssuers(t, http.MethodPost, "/identity/issuers/refresh")
	if n := up.JWKSFetches() - before; n > 1 {
		t.Fatalf("two forced refreshes fetched the key set %d times", n)
	}

	// Once the provider is back, a forced refresh (after the cooldown)
	// makes its keys available.
	down.SetDown(false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		views, body = adminIssuers(t, http.MethodPost, "/identity/issuers/refresh")
		if v := views[down.URL]; v.State == "fresh" {
			if !slices.Equal(v.KeyIDs, down.KeyIDs()) || v.RefreshError != "" {
				t.Fatalf("recovered issuer: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("issuer still unavailable after recovery: %s", body)
		}
		time.Sleep(time.Second)
	}
	if st, _, _ := ctDo(t, tester, "/down/x", [][2]string{authz(downTok)}); st != 200 {
		t.Fatalf("token of the recovered issuer: %d", st)
	}

	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/identity/issuers"},
		{http.MethodGet, "/identity/issuers/refresh"},
	} {
		if st, body := adminCall(t, c.method, c.path); st != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s", c.method, c.path, st, body)
		}
	}
}
