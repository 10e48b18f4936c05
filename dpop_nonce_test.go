package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Secrets of the nonce tests: 32 bytes or more.
const (
	nonceSecret      = "nonce-test-secret-0123456789abcdef"
	otherNonceSecret = "another-nonce-secret-0123456789abc"
	nonceLifetime    = time.Minute
)

// nonceHandler is dpopHandler with server nonces keyed by secret, slots
// of nonceLifetime, and the clock of clk.
func nonceHandler(env *dpopEnv, mode, secret string, clk *testClock) *Handler {
	h := dpopHandler(env.iss, mode)
	h.DPoPOptions = &DPoPOptions{Nonce: &DPoPNonceConfig{Secret: secret, Lifetime: caddy.Duration(nonceLifetime)}}
	h.now = clk.Now
	return h
}

// nonceClock starts 5 s into a nonce slot, ahead of the real time (which
// the test tokens' iat come from).
func nonceClock() *testClock {
	return &testClock{now: time.Now().Truncate(nonceLifetime).Add(nonceLifetime + 5*time.Second)}
}

// nonceOf is the nonce a server with secret sends at now.
func nonceOf(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	n, err := identity.NewDPoPNonces([]byte(secret), nonceLifetime)
	if err != nil {
		t.Fatal(err)
	}
	return n.Nonce(now)
}

// noncedProof signs a proof by key for GET uri bound to token, issued at
// iat, with nonce (none when empty).
func noncedProof(t *testing.T, key *identity.DPoPKey, uri, token, nonce string, iat time.Time) string {
	t.Helper()
	p, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, AccessToken: token, Nonce: nonce, IssuedAt: iat})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const nonceChallenge = `DPoP realm="restricted", error="use_dpop_nonce", error_description="The DPoP proof must carry the nonce of the DPoP-Nonce header", ` + algsParam

// TestDPoPNonceRules walks one client through the nonce rules, in order,
// on one handler whose clock moves from slot to slot.
func TestDPoPNonceRules(t *testing.T) {
	env := newDPoPEnv(t)
	clk := nonceClock()
	x := newHX(t, nonceHandler(env, "", nonceSecret, clk))
	const uri = "http://example.com/api"
	tok := env.token
	var accepted string // the proof of the first accepted request
	proof := func(nonce string) string { return noncedProof(t, env.key, uri, tok, nonce, clk.Now()) }
	current := func() string { return nonceOf(t, nonceSecret, clk.Now()) }
	first := current()
	steps := []struct {
		name    string
		advance time.Duration
		req     func() *http.Request
		status  int
		label   string
		// challenge is the whole WWW-Authenticate value, or a fragment for
		// other refusals than the nonce's.
		challenge string
		// nonce is the DPoP-Nonce the response must carry, "" for none.
		nonce func() string
	}{
		{"proof without a nonce", 0, func() *http.Request { return dpopRequest("GET", "/api", tok, proof("")) },
			401, "dpop_nonce", nonceChallenge, current},
		{"retry with the nonce of the challenge", 0, func() *http.Request {
			accepted = proof(first)
			return dpopRequest("GET", "/api", tok, accepted)
		}, 200, "", "", nil},
		{"the same proof again: the jti replay rule still holds", 0, func() *http.Request { return dpopRequest("GET", "/api", tok, accepted) },
			401, "dpop_proof", `error="invalid_dpop_proof", error_description="The DPoP proof has no jti, a jti too long, or was already used"`, current},
		{"the nonce in a new proof", 0, func() *http.Request { return dpopRequest("GET", "/api", tok, proof(first)) }, 200, "", "", nil},
		{"a nonce from another secret", 0, func() *http.Request {
			return dpopRequest("GET", "/api", tok, proof(nonceOf(t, otherNonceSecret, clk.Now())))
		}, 401, "dpop_nonce", nonceChallenge, current},
		{"a made-up nonce", 0, func() *http.Request { return dpopRequest("GET", "/api", tok, proof("made-up")) },
			401, "dpop_nonce", nonceChallenge, current},
		{"a nonce of the previous slot, accepted with the current one sent along", nonceLifetime,
			func() *http.Request { return dpopRequest("GET", "/api", tok, proof(first)) }, 200, "", "", current},
		{"the current nonce, nothing sent along", 0, func() *http.Request { return dpopRequest("GET", "/api", tok, proof(current())) },
			200, "", "", nil},
		{"an expired nonce (two slots old)", nonceLifetime, func() *http.Request { return dpopRequest("GET", "/api", tok, proof(first)) },
			401, "dpop_nonce", nonceChallenge, current},
		{"a valid nonce in a proof for another URI", 0, func() *http.Request {
			return dpopRequest("GET", "/api", tok, noncedProof(t, env.key, "http://example.com/admin", tok, current(), clk.Now()))
		}, 401, "dpop_proof", `error="invalid_dpop_proof", error_description="The DPoP proof is for another URI"`, current},
		{"a bound token as a bearer token gets a nonce with its DPoP challenge", 0, func() *http.Request {
			r := httptest.NewRequest("GET", uri, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}, 401, "dpop_bound_as_bearer", `error="invalid_token"`, current},
		{"a plain bearer token: no DPoP, no nonce", 0, func() *http.Request {
			r := httptest.NewRequest("GET", uri, nil)
			r.Header.Set("Authorization", "Bearer "+env.iss.Token(t, "bob", nil))
			return r
		}, 200, "", "", nil},
		{"no token: the Bearer challenge only, no nonce", 0, func() *http.Request { return httptest.NewRequest("GET", uri, nil) },
			401, "missing", `Bearer realm="restricted"`, nil},
	}
	for _, st := range steps {
		clk.advance(st.advance)
		res := x.do(st.req())
		if st.status == 200 {
			wantStatus(t, res, 200)
		} else {
			wantRefusal(t, res, st.status, st.label, st.challenge)
			if st.label == "dpop_nonce" && res.challenge != st.challenge {
				t.Errorf("%s: challenge\n%s\nwant\n%s", st.name, res.challenge, st.challenge)
			}
		}
		want := ""
		if st.nonce != nil {
			want = st.nonce()
		}
		if got := res.header.Get("DPoP-Nonce"); got != want {
			t.Errorf("%s: DPoP-Nonce %q, want %q", st.name, got, want)
		}
		if t.Failed() {
			t.Fatalf("step %q failed", st.name)
		}
	}
}

// TestDPoPNonceRequireMode: with dpop require every challenge is in the
// DPoP scheme, so every refusal carries a nonce.
func TestDPoPNonceRequireMode(t *testing.T) {
	env := newDPoPEnv(t)
	clk := nonceClock()
	x := newHX(t, nonceHandler(env, "require", nonceSecret, clk))
	for name, hdr := range map[string]map[string]string{
		"no token":             nil,
		"a plain bearer token": bearer(env.iss.Token(t, "bob", nil)),
	} {
		res := x.get("/", hdr)
		wantStatus(t, res, 401)
		if !strings.HasPrefix(res.challenge, "DPoP ") {
			t.Errorf("%s: challenge %q", name, res.challenge)
		}
		if got, want := res.header.Get("DPoP-Nonce"), nonceOf(t, nonceSecret, clk.Now()); got != want {
			t.Errorf("%s: DPoP-Nonce %q, want %q", name, got, want)
		}
	}
}

// TestDPoPNonceFleet: two handlers (two instances) with one secret accept
// each other's nonces without sharing anything else; one with another
// secret does not.
func TestDPoPNonceFleet(t *testing.T) {
	env := newDPoPEnv(t)
	clk := nonceClock()
	a := newHX(t, nonceHandler(env, "", nonceSecret, clk))
	b := newHX(t, nonceHandler(env, "", nonceSecret, clk))
	c := newHX(t, nonceHandler(env, "", otherNonceSecret, clk))
	const uri = "http://example.com/"
	challenge := a.do(dpopRequest("GET", "/", env.token, noncedProof(t, env.key, uri, env.token, "", clk.Now())))
	wantRefusal(t, challenge, 401, "dpop_nonce", `error="use_dpop_nonce"`)
	nonce := challenge.header.Get("DPoP-Nonce")
	for name, x := range map[string]*hx{"the issuing instance": a, "another instance with the secret": b} {
		wantStatus(t, x.do(dpopRequest("GET", "/", env.token, noncedProof(t, env.key, uri, env.token, nonce, clk.Now()))), 200)
		if t.Failed() {
			t.Fatalf("%s refused the nonce", name)
		}
	}
	res := c.do(dpopRequest("GET", "/", env.token, noncedProof(t, env.key, uri, env.token, nonce, clk.Now())))
	wantRefusal(t, res, 401, "dpop_nonce", `error="use_dpop_nonce"`)
	if got := res.header.Get("DPoP-Nonce"); got == nonce || got == "" {
		t.Errorf("instance with another secret sent DPoP-Nonce %q (the foreign one was %q)", got, nonce)
	}
}

// TestDPoPNonceWithLibraryClient: the library's DPoP client meets the
// handler's nonce challenge, retries once with the nonce and remembers it:
// the next request needs no retry.
func TestDPoPNonceWithLibraryClient(t *testing.T) {
	env := newDPoPEnv(t)
	h := dpopHandler(env.iss, "")
	h.DPoPOptions = &DPoPOptions{Nonce: &DPoPNonceConfig{Secret: nonceSecret}}
	x := newHX(t, h)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		err := x.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			_, err := fmt.Fprint(w, "orders")
			return err
		}))
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			w.WriteHeader(he.StatusCode)
		}
	}))
	defer srv.Close()
	for i, wantRequests := range []int32{2, 3} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/orders", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := identity.DoDPoPRequest(t.Context(), srv.Client(), env.key, req, env.token)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || requests.Load() != wantRequests {
			t.Fatalf("call %d: status %d after %d requests, want 200 after %d", i+1, resp.StatusCode, requests.Load(), wantRequests)
		}
	}
}

// TestDPoPProofOptions: proof_algorithms narrows the accepted algorithms
// and the advertised algs; proof_max_age and proof_leeway move the iat
// window.
func TestDPoPProofOptions(t *testing.T) {
	env := newDPoPEnv(t)
	rs256, err := identity.NewDPoPKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	tokenRS := boundToken(t, env.iss, rs256, nil)
	h := dpopHandler(env.iss, "")
	h.DPoPOptions = &DPoPOptions{
		ProofAlgorithms: []string{"RS256", "PS256"},
		ProofMaxAge:     caddy.Duration(10 * time.Second),
		ProofLeeway:     caddy.Duration(30 * time.Second),
	}
	h.RequireScopes = []string{"orders:read"}
	x := newHX(t, h)
	const uri = "http://example.com/"
	read := map[string]any{"scope": "orders:read"}
	tokenRSRead := boundToken(t, env.iss, rs256, read)
	now := time.Now()
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		label  string
		desc   string
	}{
		{"an allowed algorithm", func() *http.Request {
			return dpopRequest("GET", "/", tokenRSRead, proofAt(t, rs256, "GET", uri, tokenRSRead, now))
		}, 200, "", ""},
		{"an algorithm of the default list left out", func() *http.Request {
			tok := boundToken(t, env.iss, env.key, read)
			return dpopRequest("GET", "/", tok, proofAt(t, env.key, "GET", uri, tok, now))
		}, 401, "dpop_proof", "The DPoP proof signature algorithm is not accepted"},
		{"iat older than proof_max_age", func() *http.Request {
			return dpopRequest("GET", "/", tokenRSRead, proofAt(t, rs256, "GET", uri, tokenRSRead, now.Add(-20*time.Second)))
		}, 401, "dpop_proof", "too old or issued in the future"},
		{"iat within proof_max_age", func() *http.Request {
			return dpopRequest("GET", "/", tokenRSRead, proofAt(t, rs256, "GET", uri, tokenRSRead, now.Add(-5*time.Second)))
		}, 200, "", ""},
		{"iat ahead within proof_leeway (beyond the default 5 s)", func() *http.Request {
			return dpopRequest("GET", "/", tokenRSRead, proofAt(t, rs256, "GET", uri, tokenRSRead, now.Add(20*time.Second)))
		}, 200, "", ""},
		{"iat ahead beyond proof_leeway", func() *http.Request {
			return dpopRequest("GET", "/", tokenRSRead, proofAt(t, rs256, "GET", uri, tokenRSRead, now.Add(time.Minute)))
		}, 401, "dpop_proof", "too old or issued in the future"},
		{"the policy's 403 advertises the configured algorithms", func() *http.Request {
			return dpopRequest("GET", "/", tokenRS, proofAt(t, rs256, "GET", uri, tokenRS, now))
		}, 403, "insufficient_scope", `error="insufficient_scope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := x.do(tt.req())
			if tt.status == 200 {
				wantStatus(t, res, 200)
				return
			}
			wantRefusal(t, res, tt.status, tt.label, `DPoP realm="restricted"`, tt.desc, `algs="RS256 PS256"`)
			if res.header.Get("DPoP-Nonce") != "" {
				t.Error("DPoP-Nonce sent without nonces configured")
			}
		})
	}
}

// TestDPoPNonceSecretNeverLogged: the secret appears in no log line of
// provisioning, an accepted request or a refused one.
func TestDPoPNonceSecretNeverLogged(t *testing.T) {
	env := newDPoPEnv(t)
	clk := nonceClock()
	x := newHX(t, nonceHandler(env, "", nonceSecret, clk))
	const uri = "http://example.com/"
	x.do(dpopRequest("GET", "/", env.token, noncedProof(t, env.key, uri, env.token, "", clk.Now())))
	x.do(dpopRequest("GET", "/", env.token, noncedProof(t, env.key, uri, env.token, nonceOf(t, nonceSecret, clk.Now()), clk.Now())))
	if x.logs.Len() == 0 {
		t.Fatal("no log lines to check")
	}
	for _, e := range x.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, nonceSecret) {
			t.Errorf("log line holds the nonce secret: %s", line)
		}
	}
}

// TestDPoPNonceWithSharedStore: two instances sharing Redis and a nonce
// secret, with proof_max_age 20s. Instance b accepts the nonce a issued;
// a proof refused for its nonce writes nothing to Redis; a proof accepted
// at a is refused at b (the jti rule holds with nonces), and its key lives
// no longer than proof_max_age.
func TestDPoPNonceWithSharedStore(t *testing.T) {
	srv := startRedis(t)
	env := newDPoPEnv(t)
	clk := nonceClock()
	newInstance := func(i int) *hx {
		h := nonceHandler(env, "", nonceSecret, clk)
		h.DPoPOptions.ProofMaxAge = caddy.Duration(20 * time.Second)
		h.Store = srv.storeOf(i, "")
		return newHX(t, h)
	}
	a, b := newInstance(1), newInstance(2)
	const uri = "http://example.com/"
	keys := func() []string {
		t.Helper()
		k, err := srv.client().Keys(context.Background(), defaultStorePrefix+"dpop:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	challenge := a.do(dpopRequest("GET", "/", env.token, noncedProof(t, env.key, uri, env.token, "", clk.Now())))
	wantRefusal(t, challenge, 401, "dpop_nonce", `error="use_dpop_nonce"`)
	if k := keys(); len(k) != 0 {
		t.Fatalf("a proof refused for its nonce was recorded: %v", k)
	}
	proof := noncedProof(t, env.key, uri, env.token, challenge.header.Get("DPoP-Nonce"), clk.Now())
	wantStatus(t, a.do(dpopRequest("GET", "/", env.token, proof)), 200)
	wantRefusal(t, b.do(dpopRequest("GET", "/", env.token, proof)), 401, "dpop_proof", "already used")
	k := keys()
	if len(k) != 1 {
		t.Fatalf("keys %v, want the accepted proof", k)
	}
	if ttl := srv.client().PTTL(context.Background(), k[0]).Val(); ttl <= 0 || ttl > 20*time.Second {
		t.Errorf("TTL %v, want within proof_max_age 20s", ttl)
	}
}
