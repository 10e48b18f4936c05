package caddyidentity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Limits through the handler: token size caps at their exact boundary, a
// hanging provider never holds requests beyond their deadline or the
// outbound timeout, a provider that turns hostile never takes good keys
// away, and hostile metadata (too large, too many keys, keys on another
// host) ends in 503 without contacting anyone else.

// serveTimed calls the handler directly with ctx and returns the status
// and how long the handler took.
func serveTimed(s *identityServer, ctx context.Context, token string) (int, time.Duration) {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil).WithContext(ctx)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	start := time.Now()
	err := s.H.ServeHTTP(w, r, s.Upstream)
	d := time.Since(start)
	if err == nil {
		return w.Code, d
	}
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode, d
	}
	return http.StatusInternalServerError, d
}

// tokenOfLength returns a genuinely signed token of exactly n bytes: a
// header member and a claim are padded (one knob alone cannot reach every
// length, base64url never yields a length of 4k+1).
func tokenOfLength(t *testing.T, f *forger, n int) string {
	t.Helper()
	mint := func(hpad, ppad int) string {
		return f.RS256(t, f.Header("RS256", f.RSAKID, map[string]any{"x": strings.Repeat("h", hpad)}),
			f.Claims(map[string]any{"pad": strings.Repeat("p", ppad)}))
	}
	base := len(mint(0, 0))
	guess := (n - base) * 3 / 4
	for hpad := range 4 {
		for ppad := max(0, guess-8); ppad < guess+8; ppad++ {
			if tok := mint(hpad, ppad); len(tok) == n {
				return tok
			}
		}
	}
	t.Fatalf("no token of exactly %d bytes", n)
	return ""
}

// TestLimitsTokenSize: genuinely signed tokens of exactly the limit are
// accepted, one byte more is refused, for the default and configured
// limits.
func TestLimitsTokenSize(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	for _, limit := range []int{0, 2048, 12 << 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			h := attackHandler(iss)
			h.MaxTokenSize = limit
			s := newIdentityServer(t, h, nil)
			eff := limit
			if eff == 0 {
				eff = identity.DefaultMaxTokenBytes
			}
			for _, n := range []int{eff - 1, eff} {
				if r := s.get("/", "Bearer "+tokenOfLength(t, f, n)); r.Status != http.StatusOK {
					t.Errorf("token of %d bytes (limit %d): %d %q", n, eff, r.Status, r.Challenge)
				}
			}
			for _, n := range []int{eff + 1, eff + 2} {
				before := s.Upstream.Hits()
				r := s.get("/", "Bearer "+tokenOfLength(t, f, n))
				expectRefusal(t, s, f, before, r, "", atkInvalidToken)
			}
			expectServed(t, s, f)
		})
	}
}

// TestLimitsHangingProviderAtBoot: a provider that never answers holds a
// request no longer than its deadline, or the outbound timeout, then 503.
func TestLimitsHangingProviderAtBoot(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDelay(time.Minute)
	f := issuerForger(t, iss, atkAudience)
	s := newIdentityServer(t, attackHandler(iss), nil)

	t.Run("request deadline", func(t *testing.T) {
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			status, d := serveTimed(s, ctx, f.Valid(t))
			cancel()
			// Held until the outbound timeout (or the minute the provider
			// hangs) is the failure; half of it is generous on a loaded
			// machine.
			if d >= identity.DefaultHTTPTimeout/2 {
				t.Errorf("a request with a 300ms deadline was held %v by a hanging provider", d)
			}
			if status == http.StatusOK {
				t.Errorf("status 200 without keys")
			}
		}
	})
	t.Run("outbound timeout", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for identity.DefaultHTTPTimeout")
		}
		status, d := serveTimed(s, context.Background(), f.Valid(t))
		if d > identity.DefaultHTTPTimeout+5*time.Second {
			t.Errorf("a request without deadline was held %v (outbound timeout %v)", d, identity.DefaultHTTPTimeout)
		}
		if status != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", status)
		}
	})
	if n := s.Upstream.Hits(); n != 0 {
		t.Errorf("upstream reached %d times without keys", n)
	}
}

// TestLimitsHangingProviderAfterKeysCached: once keys are cached, valid
// tokens are served at once while random-kid refreshes hang on the
// provider. No request is timed: the valid requests must all be answered
// while every random-kid request is still held by the hanging refresh
// (until the test cancels them; the fetch itself would hang until the
// outbound timeout), which they could not be if they waited for it.
func TestLimitsHangingProviderAfterKeysCached(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the key refresh cooldown and the outbound timeout")
	}
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	h := attackHandler(iss)
	zero := 0
	h.CacheSize = &zero // verify every token in full
	s := newIdentityServer(t, h, nil)
	expectServed(t, s, f)
	// Past the refresh cooldown, so that a random kid really fetches (and
	// hangs) instead of being rate-limited.
	time.Sleep(identity.DefaultRefreshCooldown + 200*time.Millisecond)
	iss.SetDelay(time.Minute)
	iss.ResetCounters()

	// Random kids force refreshes that hang on the provider; requests with
	// known keys must not wait for them.
	held, release := context.WithCancel(context.Background())
	defer release()
	done := make(chan int, 4)
	for range 4 {
		go func() {
			status, _ := serveTimed(s, held, f.RandomKID(t))
			done <- status
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for iss.JWKSFetches() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no random kid forced a refresh")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), identity.DefaultHTTPTimeout)
		status, d := serveTimed(s, ctx, f.Valid(t))
		cancel()
		if status != http.StatusOK {
			t.Fatalf("valid request %d while the provider hangs: %d after %v", i, status, d)
		}
	}
	if n := len(done); n > 0 {
		t.Fatalf("%d random-kid requests ended before the 20 valid ones did: the refresh did not hang, or the valid requests waited for it", n)
	}
	release()
	for range 4 {
		select {
		case status := <-done:
			if status == http.StatusOK {
				t.Error("a random-kid token was accepted")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("random-kid request still held 30s after its context ended")
		}
	}
}

// TestLimitsBadJWKSKeepsKeys: a JWKS that turns empty, garbage or
// unusable is fetched (forced by a random kid) but never replaces the good
// keys.
func TestLimitsBadJWKSKeepsKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the key refresh cooldown")
	}
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	h := attackHandler(iss)
	zero := 0
	h.CacheSize = &zero
	s := newIdentityServer(t, h, nil)
	expectServed(t, s, f)

	for _, body := range []string{`{"keys":[]}`, "garbage", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`} {
		iss.SetJWKSBody([]byte(body), "")
		iss.ResetCounters()
		// Past the refresh cooldown, a random kid forces a refresh that
		// gets the bad body.
		time.Sleep(identity.DefaultRefreshCooldown + 200*time.Millisecond)
		before := s.Upstream.Hits()
		expectRefusal(t, s, f, before, s.get("/", "Bearer "+f.RandomKID(t)), "", atkInvalidToken)
		if iss.JWKSFetches() == 0 {
			t.Fatalf("%q: the random kid did not force a refresh", body)
		}
		for range 5 {
			expectServed(t, s, f)
		}
	}
	iss.SetJWKSBody(nil, "")
}

// TestLimitsHostileMetadata: hostile discovery or key set documents end in
// 503, without contacting a foreign host.
func TestLimitsHostileMetadata(t *testing.T) {
	attacker := newAttackerServer(t, []byte(`{"keys":[]}`), nil)
	cases := []struct {
		name string
		opts []identitytest.Option
		prep func(iss *identitytest.Issuer)
	}{
		{"jwks_uri on another host", []identitytest.Option{identitytest.WithMetadataOverride(func(m map[string]any) {
			m["jwks_uri"] = attacker.URL + "/jwks"
		})}, nil},
		{"issuer mismatch", []identitytest.Option{identitytest.WithMetadataOverride(func(m map[string]any) {
			m["issuer"] = attacker.URL
		})}, nil},
		{"discovery too large", []identitytest.Option{identitytest.WithMetadataOverride(func(m map[string]any) {
			m["padding"] = strings.Repeat("x", identity.DefaultMaxDocumentBytes)
		})}, nil},
		{"too many keys", nil, func(iss *identitytest.Issuer) {
			iss.SetJWKSBody(manyKeysJWKS(t, iss, identity.DefaultMaxKeys+1), "")
		}},
		{"JWKS too large", nil, func(iss *identitytest.Issuer) {
			var set map[string]any
			_ = json.Unmarshal(iss.PublicJWKS(), &set)
			set["padding"] = strings.Repeat("x", identity.DefaultMaxDocumentBytes)
			b, _ := json.Marshal(set)
			iss.SetJWKSBody(b, "")
		}},
		{"JWKS as HTML", nil, func(iss *identitytest.Issuer) { iss.SetJWKSBody(iss.PublicJWKS(), "text/html") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iss := identitytest.NewIssuer(t, c.opts...)
			if c.prep != nil {
				c.prep(iss)
			}
			f := issuerForger(t, iss, atkAudience)
			s := newIdentityServer(t, attackHandler(iss), nil)
			r := s.get("/", "Bearer "+f.Valid(t))
			if r.Status != http.StatusServiceUnavailable {
				t.Errorf("status %d %q, want 503", r.Status, r.Challenge)
			}
			if s.Upstream.Hits() != 0 {
				t.Error("upstream reached")
			}
		})
	}
	if c := attacker.Contacts(); len(c) > 0 {
		t.Errorf("the foreign host was contacted: %v", c)
	}
}

// manyKeysJWKS returns iss's key set with its first key repeated under new
// kids up to n keys.
func manyKeysJWKS(t *testing.T, iss *identitytest.Issuer, n int) []byte {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(iss.PublicJWKS(), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("issuer JWKS: %v", err)
	}
	first := set.Keys[0]
	for i := len(set.Keys); i < n; i++ {
		k := map[string]any{}
		for name, v := range first {
			k[name] = v
		}
		k["kid"] = fmt.Sprintf("extra-%d", i)
		set.Keys = append(set.Keys, k)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLimitsOutageLoggedOncePerStateChange: with the provider down, every
// request gets 503, but the outage is logged at WARN/ERROR once (one ERROR
// with the cause), not per request;
// the per-request rejections stay at DEBUG.
func TestLimitsOutageLoggedOncePerStateChange(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDown(true)
	f := issuerForger(t, iss, atkAudience)
	logFile := atkLogFile(t)
	s := newIdentityServer(t, attackHandler(iss), logFile)
	const requests = 30
	for i := range requests {
		if r := s.get("/", "Bearer "+f.Valid(t)); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("request %d: status %d, want 503", i, r.Status)
		}
	}
	// The outage may be reported by the background warm-up: wait for the
	// report. (A line the warm-up writes later can only add to the count
	// checked below.)
	logs := waitForLog(t, func() string { return atkReadLog(t, logFile) }, func(logs string) bool {
		return slices.ContainsFunc(parseAtkLog(logs), func(l atkLogLine) bool { return l.Level == "WARN" || l.Level == "ERROR" })
	}, "the outage")
	levels := map[string]int{}
	for _, l := range parseAtkLog(logs) {
		levels[l.Level]++
	}
	t.Logf("log lines by level after %d requests: %v", requests, levels)
	for _, l := range parseAtkLog(logs) {
		if l.Level == "WARN" || l.Level == "ERROR" {
			t.Log(l.Text)
		}
	}
	if n := levels["ERROR"] + levels["WARN"]; n != 1 {
		t.Errorf("%d WARN/ERROR lines for one outage and %d requests, want 1", n, requests)
	}
	if levels["DEBUG"] < requests {
		t.Errorf("%d DEBUG lines for %d refused requests", levels["DEBUG"], requests)
	}
	scanLogForSecrets(t, logs, s.Sent())
}
