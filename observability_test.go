package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// chain sends r through outer then inner, as two identity handlers of one
// route, to a recording upstream, with the request variables Caddy sets.
func chain(t *testing.T, outer, inner *hx, r *http.Request) (status int, reached bool) {
	t.Helper()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	up := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached = true
		if r.Header.Get("Authorization") != "" {
			t.Error("the token reached the upstream")
		}
		w.WriteHeader(http.StatusOK)
		return nil
	})
	err := outer.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return inner.h.ServeHTTP(w, r, up)
	}))
	status = w.Code
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		status = he.StatusCode
	}
	return status, reached
}

// TestStackedHandlers: a second identity handler on the route after one
// that accepted and removed the token checks that same token against its
// own rules, instead of answering a valid token with 401 "missing" (and
// the metrics counting the request as accepted and rejected).
func TestStackedHandlers(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	outer := newHX(t, basicHandler(iss))
	strict := basicHandler(iss)
	strict.RequireScopes = []string{"admin"}
	inner := newHX(t, strict)
	get := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/admin", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	if st, reached := chain(t, outer, inner, get(iss.Token(t, "u", map[string]any{"scope": "admin"}))); st != 200 || !reached {
		t.Errorf("token with the inner handler's scope: %d, reached %v; want 200 through both", st, reached)
	}
	if st, reached := chain(t, outer, inner, get(iss.Token(t, "u", map[string]any{"scope": "read"}))); st != 403 || reached {
		t.Errorf("token without the inner handler's scope: %d, reached %v; want 403", st, reached)
	}
	if n := inner.logs.FilterField(zap.String("reason", "missing")).Len(); n != 0 {
		t.Errorf("the inner handler refused %d requests as without a token", n)
	}
	other := identitytest.NewIssuer(t)
	both := &Handler{Issuers: []IssuerConfig{{Issuer: iss.URL}, {Issuer: other.URL}}, Audiences: []string{identitytest.DefaultAudience}}
	onlyOther := newHX(t, basicHandler(other))
	if st, _ := chain(t, newHX(t, both), onlyOther, get(iss.Token(t, "u", nil))); st != 401 {
		t.Errorf("token of an issuer the inner handler does not trust: %d, want 401", st)
	}
}

// TestRejectionLogCarriesHostAndURI: the DEBUG line of a rejection names
// the host and the URI's path, to match it with the access log line,
// without the query string, where a token may be.
func TestRejectionLogCarriesHostAndURI(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	h := basicHandler(iss)
	h.TokenSources = []TokenSource{{From: "query", Name: "access_token"}}
	x := newHX(t, h)
	wantStatus(t, x.get("/orders/7?page=2&access_token=not.a.token", nil), 401)
	lines := x.logs.FilterMessage("request rejected").All()
	if len(lines) != 1 {
		t.Fatalf("%d rejection lines, want 1", len(lines))
	}
	fields := lines[0].ContextMap()
	if fields["host"] != "example.com" || fields["uri"] != "/orders/7" {
		t.Errorf("host %v, uri %v; want example.com, /orders/7", fields["host"], fields["uri"])
	}
}

// TestRejectionSummary: rejections are summed up by issuer and reason in
// one INFO line per interval, so that a wall of 401s shows at the default
// log level; nothing is logged for an interval without rejections.
func TestRejectionSummary(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, basicHandler(iss))
	for range 3 {
		wantStatus(t, x.get("/", nil), 401)
	}
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", map[string]any{"aud": "other"}))), 401)
	x.h.refuser.summary.flush()
	x.h.refuser.summary.flush()
	lines := x.logs.FilterMessage("requests rejected in the last minute").All()
	if len(lines) != 1 || lines[0].Level != zapcore.InfoLevel {
		t.Fatalf("%d summary lines, want one at INFO", len(lines))
	}
	fields := lines[0].ContextMap()
	reasons, _ := fields["reasons"].(map[string]any)
	if fields["issuer"] != iss.URL || fields["total"] != uint64(4) || reasons["missing"] != uint64(3) || reasons["audience"] != uint64(1) {
		t.Errorf("summary %v, want issuer %s, total 4, missing 3, audience 1", fields, iss.URL)
	}
}

// TestRejectionReasonInAccessLog: Caddy's access log line of a refused
// request carries the reason (identity_error) without any configuration,
// and the documented log_append recipe adds the issuer of accepted ones.
func TestRejectionReasonInAccessLog(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newRecorder(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	tester := ctInit(t, ctGlobal+fmt.Sprintf(`%s {
	log {
		output file %s
	}
	log_append identity_issuer {http.auth.identity.issuer}
	identity {
		issuer %s
		audience %s
	}
	reverse_proxy %s
}
`, ctSite, accessLog, iss.URL, identitytest.DefaultAudience, up.addr()), "caddyfile")
	for _, tok := range []string{"", iss.Token(t, "u", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), iss.Token(t, "u", nil)} {
		req, _ := http.NewRequest(http.MethodGet, ctSite+"/", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var raw string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(accessLog)
		if raw = string(b); strings.Count(raw, "\n") >= 3 {
			break
		}
	}
	lines := strings.Split(strings.TrimSpace(raw), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d access log lines, want 3:\n%s", len(lines), raw)
	}
	for i, want := range []string{`"identity_error":"missing"`, `"identity_error":"expired"`, fmt.Sprintf(`"identity_issuer":%q`, iss.URL)} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("access log line %d lacks %s:\n%s", i, want, lines[i])
		}
	}
	if strings.Contains(lines[2], "identity_error") {
		t.Errorf("an accepted request has a rejection reason:\n%s", lines[2])
	}
}

// TestStackedHandlersDPoP: a DPoP-bound token that the first handler
// accepted with its proof passes a later handler (dpop allow or require)
// without the proof being verified again (its jti is spent), while a
// bound token accepted as a bearer token by a handler with dpop off is
// still refused as one by a later handler that checks bindings.
func TestStackedHandlersDPoP(t *testing.T) {
	env := newDPoPEnv(t)
	outer := newHX(t, dpopHandler(env.iss, ""))
	for _, mode := range []string{"", "require"} {
		inner := newHX(t, dpopHandler(env.iss, mode))
		r := dpopRequest("GET", "/x", env.token, proofFor(t, env.key, "GET", "http://example.com/x", env.token))
		if st, reached := chain(t, outer, inner, r); st != 200 || !reached {
			t.Errorf("dpop %q after a DPoP-accepted token: %d, reached %v; want 200", mode, st, reached)
		}
	}
	off := newHX(t, dpopHandler(env.iss, "off"))
	r := httptest.NewRequest(http.MethodGet, "http://example.com/x", nil)
	r.Header.Set("Authorization", "Bearer "+env.token)
	if st, _ := chain(t, off, newHX(t, dpopHandler(env.iss, "")), r); st != 401 {
		t.Errorf("bound token as bearer through dpop off, then dpop allow: %d, want 401", st)
	}
}

// TestStackedTokenHidden: the token kept for a later identity handler does
// not show through {http.vars.*} placeholders or logs.
func TestStackedTokenHidden(t *testing.T) {
	at := &stackedToken{token: "secret.token.value", dpopJKT: "jkt"}
	for _, s := range []string{caddy.ToString(at), fmt.Sprint(at), fmt.Sprintf("%v", any(at))} {
		if strings.Contains(s, "secret") || strings.Contains(s, "jkt") {
			t.Errorf("stacked token rendered as %q", s)
		}
	}
}

// TestMetricsLabelledByIssuer: requests are counted under the issuer that
// accepted or refused the token; on a handler with several issuers a
// refusal before any issuer is known is counted under issuer "" (the
// series stay bounded by the configuration: no label comes from a token).
func TestMetricsLabelledByIssuer(t *testing.T) {
	a, b := identitytest.NewIssuer(t), identitytest.NewIssuer(t)
	h := &Handler{
		Issuers:       []IssuerConfig{{Issuer: a.URL}, {Issuer: b.URL}},
		Audiences:     []string{identitytest.DefaultAudience},
		RequireScopes: []string{"read"},
	}
	x := newHX(t, h)
	m := processMetrics()
	counters := []struct {
		name string
		c    func() float64
		want float64
	}{
		{"missing, no issuer", func() float64 { return ccCount(t, m.rejected.WithLabelValues("", "", "missing")) }, 2},
		{"accepted by b", func() float64 { return ccCount(t, m.accepted.WithLabelValues("", b.URL)) }, 2},
		{"scope refused for a", func() float64 { return ccCount(t, m.rejected.WithLabelValues("", a.URL, "insufficient_scope")) }, 1},
		{"forged iss", func() float64 { return ccCount(t, m.rejected.WithLabelValues("", "https://evil.example", "issuer")) }, 0},
		{"cache hit of b", func() float64 { return ccCount(t, m.cacheHits.WithLabelValues(b.URL)) }, 1},
		{"cache miss of b", func() float64 { return ccCount(t, m.cacheMisses.WithLabelValues(b.URL)) }, 1},
		{"cache hit of a", func() float64 { return ccCount(t, m.cacheHits.WithLabelValues(a.URL)) }, 0},
		{"cache miss of a (verified, then refused by the policy)", func() float64 { return ccCount(t, m.cacheMisses.WithLabelValues(a.URL)) }, 1},
		{"cache miss, no issuer (forged iss)", func() float64 { return ccCount(t, m.cacheMisses.WithLabelValues("")) }, 1},
	}
	before := make([]float64, len(counters))
	for i, c := range counters {
		before[i] = c.c()
	}
	wantStatus(t, x.get("/", nil), 401)
	wantStatus(t, x.get("/", nil), 401)
	bTok := b.Token(t, "u", map[string]any{"scope": "read"})
	wantStatus(t, x.get("/", bearer(bTok)), 200)
	wantStatus(t, x.get("/", bearer(a.Token(t, "u", map[string]any{"scope": "write"}))), 403)
	wantStatus(t, x.get("/", bearer(a.Token(t, "u", map[string]any{"iss": "https://evil.example"}))), 401)
	wantStatus(t, x.get("/", bearer(bTok)), 200)
	for i, c := range counters {
		if got := c.c() - before[i]; got != c.want {
			t.Errorf("%s: counted %v, want %v", c.name, got, c.want)
		}
	}
}
