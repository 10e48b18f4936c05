package caddyidentity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/goleak"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// dpopEnv is an issuer, a client's DPoP key and a token bound to it.
type dpopEnv struct {
	iss   *identitytest.Issuer
	key   *identity.DPoPKey
	token string
}

func newDPoPEnv(t *testing.T) *dpopEnv {
	t.Helper()
	iss := identitytest.NewIssuer(t)
	key := newDPoPKey(t)
	return &dpopEnv{iss: iss, key: key, token: boundToken(t, iss, key, nil)}
}

func newDPoPKey(t *testing.T) *identity.DPoPKey {
	t.Helper()
	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// boundToken mints a token for alice bound to key (cnf.jkt).
func boundToken(t *testing.T, iss *identitytest.Issuer, key *identity.DPoPKey, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"email": "alice@example.com", "cnf": map[string]any{"jkt": key.Thumbprint()}}
	for k, v := range extra {
		claims[k] = v
	}
	return iss.Token(t, "alice", claims)
}

// proofFor signs a proof by key for method and uri, bound to token.
func proofFor(t *testing.T, key *identity.DPoPKey, method, uri, token string) string {
	t.Helper()
	return proofAt(t, key, method, uri, token, time.Time{})
}

func proofAt(t *testing.T, key *identity.DPoPKey, method, uri, token string, iat time.Time) string {
	t.Helper()
	p, err := key.Proof(identity.DPoPProofOptions{Method: method, URI: uri, AccessToken: token, IssuedAt: iat})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// forgedProof builds a proof for GET http://example.com/ with the given
// alg, signed with an HMAC secret for HS256 and unsigned for none: what
// an attacker without a private key can make.
func forgedProof(t *testing.T, key *identity.DPoPKey, alg, token string) string {
	t.Helper()
	hdr, err := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": key.PublicJWK()})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{
		"jti": "forged-" + alg, "htm": "GET", "htu": "http://example.com/", "iat": time.Now().Unix(),
		"ath": identity.DPoPAccessTokenHash(token),
	})
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload)
	if alg == "none" {
		return input + "."
	}
	mac := hmac.New(sha256.New, []byte("secret-secret-secret-secret-1234"))
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// dpopRequest is a request to http://example.com<target> with the DPoP
// scheme and the given proof headers (none when empty).
func dpopRequest(method, target, token string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, "http://example.com"+target, nil)
	r.Header.Set("Authorization", "DPoP "+token)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// dpopHandler is basicHandler with the given dpop mode, stripping the
// X-Extra header of spoof as well.
func dpopHandler(iss *identitytest.Issuer, mode string) *Handler {
	h := basicHandler(iss)
	h.DPoP = mode
	h.StripHeaders = []string{"X-Extra"}
	return h
}

// wantRefusal checks status, the {http.auth.identity.error} label and
// that every wanted fragment is in the challenges (joined by " | ").
func wantRefusal(t *testing.T, res hxResult, status int, label string, challenge ...string) {
	t.Helper()
	wantStatus(t, res, status)
	if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != label {
		t.Errorf("error label = %q, want %q", got, label)
	}
	for _, c := range challenge {
		if !strings.Contains(res.challenge, c) {
			t.Errorf("challenge %q lacks %q", res.challenge, c)
		}
	}
}

const algsParam = `algs="RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA"`

func TestDPoPProofChecks(t *testing.T) {
	env := newDPoPEnv(t)
	other := newDPoPKey(t)
	x := newHX(t, dpopHandler(env.iss, ""))
	tok := env.token
	const uri = "http://example.com/api/orders"
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		label  string
		desc   string // error_description
	}{
		{"valid proof", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "GET", uri, tok))
		}, 200, "", ""},
		{"query is not part of htu", func() *http.Request {
			return dpopRequest("GET", "/api/orders?page=2", tok, proofFor(t, env.key, "GET", uri, tok))
		}, 200, "", ""},
		{"scheme in any letter case", func() *http.Request {
			r := dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "GET", uri, tok))
			r.Header.Set("Authorization", "dpop "+tok)
			return r
		}, 200, "", ""},
		{"missing proof", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok)
		}, 401, "dpop_proof", "exactly one DPoP proof"},
		{"two proofs", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "GET", uri, tok), proofFor(t, env.key, "GET", uri, tok))
		}, 401, "dpop_proof", "exactly one DPoP proof"},
		{"wrong htm", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "POST", uri, tok))
		}, 401, "dpop_proof", "another HTTP method"},
		{"htu with another path", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "GET", "http://example.com/api/admin", tok))
		}, 401, "dpop_proof", "another URI"},
		{"htu with another host", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "GET", "http://other.example.com/api/orders", tok))
		}, 401, "dpop_proof", "another URI"},
		{"htu with https for a plain http request", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "GET", "https://example.com/api/orders", tok))
		}, 401, "dpop_proof", "another URI"},
		{"proof for another token (ath)", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, env.key, "GET", uri, boundToken(t, env.iss, env.key, map[string]any{"n": 2})))
		}, 401, "dpop_proof", "another access token"},
		{"proof key is not cnf.jkt", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofFor(t, other, "GET", uri, tok))
		}, 401, "dpop_proof", "not the key the access token is bound to"},
		{"stale iat", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofAt(t, env.key, "GET", uri, tok, time.Now().Add(-2*time.Minute)))
		}, 401, "dpop_proof", "too old or issued in the future"},
		{"iat in the future", func() *http.Request {
			return dpopRequest("GET", "/api/orders", tok, proofAt(t, env.key, "GET", uri, tok, time.Now().Add(time.Minute)))
		}, 401, "dpop_proof", "too old or issued in the future"},
		{"alg none proof", func() *http.Request {
			return dpopRequest("GET", "/", tok, forgedProof(t, env.key, "none", tok))
		}, 401, "dpop_proof", "algorithm is not accepted"},
		{"HS256 proof", func() *http.Request {
			return dpopRequest("GET", "/", tok, forgedProof(t, env.key, "HS256", tok))
		}, 401, "dpop_proof", "algorithm is not accepted"},
		{"garbage proof", func() *http.Request {
			return dpopRequest("GET", "/", tok, "not.a.proof")
		}, 401, "dpop_proof", "malformed"},
		{"token without cnf.jkt", func() *http.Request {
			plain := env.iss.Token(t, "bob", nil)
			return dpopRequest("GET", "/api/orders", plain, proofFor(t, env.key, "GET", uri, plain))
		}, 401, "dpop_unbound", "not bound to a DPoP key"},
		{"cnf.jkt not a string", func() *http.Request {
			odd := env.iss.Token(t, "bob", map[string]any{"cnf": map[string]any{"jkt": 42}})
			return dpopRequest("GET", "/api/orders", odd, proofFor(t, env.key, "GET", uri, odd))
		}, 401, "dpop_unbound", "not bound to a DPoP key"},
		{"expired bound token", func() *http.Request {
			old := boundToken(t, env.iss, env.key, map[string]any{"iat": time.Now().Add(-2 * time.Hour), "exp": time.Now().Add(-time.Hour)})
			return dpopRequest("GET", "/api/orders", old, proofFor(t, env.key, "GET", uri, old))
		}, 401, "expired", "The access token expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := x.do(tt.req())
			if tt.status == 200 {
				wantStatus(t, res, 200)
				return
			}
			code := "invalid_dpop_proof"
			if !strings.HasPrefix(tt.label, "dpop_proof") {
				code = "invalid_token"
			}
			wantRefusal(t, res, tt.status, tt.label, `DPoP realm="restricted", error="`+code+`"`, tt.desc, algsParam)
		})
	}
}

func TestDPoPAcceptedRequestReachesUpstreamClean(t *testing.T) {
	env := newDPoPEnv(t)
	x := newHX(t, dpopHandler(env.iss, ""))
	r := dpopRequest("POST", "/api/orders", env.token, proofFor(t, env.key, "POST", "http://example.com/api/orders", env.token))
	spoof(r)
	res := x.do(r)
	wantStatus(t, res, 200)
	assertNoSpoof(t, res.up.header)
	for _, h := range []string{"Authorization", "Dpop"} {
		if v, ok := res.up.header[h]; ok {
			t.Errorf("upstream got %s: %q", h, v)
		}
	}
	if got := res.up.header.Get("X-User-Id"); got != "alice" {
		t.Errorf("X-User-Id = %q", got)
	}
	if got := res.repl.ReplaceAll("{http.auth.identity.dpop_jkt}", ""); got != env.key.Thumbprint() {
		t.Errorf("dpop_jkt placeholder = %q, want %q", got, env.key.Thumbprint())
	}
	if got := res.repl.ReplaceAll("{http.auth.user.id}", ""); got != "alice" {
		t.Errorf("user.id placeholder = %q", got)
	}

	// A bearer request gets no dpop_jkt.
	res = x.get("/", bearer(env.iss.Token(t, "bob", nil)))
	wantStatus(t, res, 200)
	if got := res.repl.ReplaceAll("{http.auth.identity.dpop_jkt}", "-"); got != "-" {
		t.Errorf("dpop_jkt on a bearer request = %q", got)
	}
}

func TestDPoPForwardTokenKeepsProof(t *testing.T) {
	env := newDPoPEnv(t)
	h := dpopHandler(env.iss, "")
	h.ForwardToken = true
	x := newHX(t, h)
	proof := proofFor(t, env.key, "GET", "http://example.com/", env.token)
	res := x.do(dpopRequest("GET", "/", env.token, proof))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("Authorization"); got != "DPoP "+env.token {
		t.Errorf("Authorization upstream = %q", got)
	}
	if got := res.up.header.Get("DPoP"); got != proof {
		t.Errorf("DPoP upstream = %q", got)
	}
}

func TestDPoPModes(t *testing.T) {
	env := newDPoPEnv(t)
	plain := env.iss.Token(t, "bob", nil)
	proof := func() string { return proofFor(t, env.key, "GET", "http://example.com/", env.token) }
	bearerReq := func(tok string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.com/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}
	}
	noToken := func() *http.Request { return httptest.NewRequest("GET", "http://example.com/", nil) }
	dpopReq := func() *http.Request { return dpopRequest("GET", "/", env.token, proof()) }
	const (
		bearerCh = `Bearer realm="restricted"`
		dpopCh   = `DPoP realm="restricted", ` + algsParam
	)
	tests := []struct {
		name       string
		mode       string
		req        func() *http.Request
		status     int
		label      string
		challenges []string // every WWW-Authenticate line, in order (prefixes)
	}{
		{"allow: DPoP accepted", "allow", dpopReq, 200, "", nil},
		{"allow: plain bearer token accepted", "allow", bearerReq(plain), 200, "", nil},
		{"allow: bound token as bearer refused", "allow", bearerReq(env.token), 401, "dpop_bound_as_bearer",
			[]string{`Bearer realm="restricted", error="invalid_token", error_description="The access token is DPoP-bound`, dpopCh}},
		{"allow: no token gets the plain Bearer challenge (RFC 6750 §3)", "allow", noToken, 401, "missing", []string{bearerCh}},
		{"default is allow", "", bearerReq(env.token), 401, "dpop_bound_as_bearer", nil},
		{"require: DPoP accepted", "require", dpopReq, 200, "", nil},
		{"require: plain bearer token refused", "require", bearerReq(plain), 401, "dpop_required", []string{dpopCh}},
		{"require: bound token as bearer refused", "require", bearerReq(env.token), 401, "dpop_required", []string{dpopCh}},
		{"require: no token offers DPoP only", "require", noToken, 401, "missing", []string{dpopCh}},
		{"require: two tokens is a DPoP invalid_request", "require", func() *http.Request {
			r := dpopReq()
			r.Header.Add("Authorization", "DPoP "+env.token)
			return r
		}, 400, "invalid_request", []string{`DPoP realm="restricted", error="invalid_request"`}},
		{"off: DPoP scheme is no token", "off", dpopReq, 401, "missing", []string{bearerCh}},
		{"off: bound token accepted as bearer", "off", bearerReq(env.token), 200, "", nil},
		{"off: no token offers Bearer only", "off", noToken, 401, "missing", []string{bearerCh}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newHX(t, dpopHandler(env.iss, tt.mode))
			r := tt.req()
			spoof(r)
			res := x.do(r)
			lines := res.challenges
			wantStatus(t, res, tt.status)
			if tt.status == 200 {
				assertNoSpoof(t, res.up.header)
				return
			}
			assertNoSpoof(t, r.Header)
			if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != tt.label {
				t.Errorf("error label = %q, want %q", got, tt.label)
			}
			if tt.challenges == nil {
				return
			}
			if len(lines) != len(tt.challenges) {
				t.Fatalf("challenges %q, want %d lines", lines, len(tt.challenges))
			}
			for i, want := range tt.challenges {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("challenge %d = %q, want prefix %q", i, lines[i], want)
				}
			}
		})
	}
}

func TestDPoPReplayedProofRefused(t *testing.T) {
	env := newDPoPEnv(t)
	x := newHX(t, dpopHandler(env.iss, ""))
	proof := proofFor(t, env.key, "GET", "http://example.com/", env.token)
	wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proof)), 200)
	res := x.do(dpopRequest("GET", "/", env.token, proof))
	wantRefusal(t, res, 401, "dpop_proof", `error="invalid_dpop_proof"`, "already used")
	// A fresh proof still works.
	wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))), 200)
}

// TestDPoPCacheNeverBypassesProof: the token's validation comes from the
// cache, the proof is verified every time.
func TestDPoPCacheNeverBypassesProof(t *testing.T) {
	env := newDPoPEnv(t)
	x := newHX(t, dpopHandler(env.iss, ""))
	good := func() *http.Request {
		return dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))
	}
	wantStatus(t, x.do(good()), 200)
	for _, tt := range []struct {
		name string
		req  *http.Request
	}{
		{"no proof", dpopRequest("GET", "/", env.token)},
		{"proof for another URI", dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/x", env.token))},
		{"proof by another key", dpopRequest("GET", "/", env.token, proofFor(t, newDPoPKey(t), "GET", "http://example.com/", env.token))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h0, _ := ccHitsMisses(t, x.h)
			res := x.do(tt.req)
			wantRefusal(t, res, 401, "dpop_proof", `error="invalid_dpop_proof"`)
			if tt.name != "no proof" {
				if h1, _ := ccHitsMisses(t, x.h); h1-h0 != 1 {
					t.Errorf("token not answered from the cache (hits +%v)", h1-h0)
				}
			}
		})
	}
	// Once admitted through DPoP, the cached token is still no bearer token.
	h0, _ := ccHitsMisses(t, x.h)
	wantRefusal(t, x.get("/", bearer(env.token)), 401, "dpop_bound_as_bearer", `error="invalid_token"`)
	if h1, _ := ccHitsMisses(t, x.h); h1-h0 != 1 {
		t.Errorf("bearer refusal not answered from the cache (hits +%v)", h1-h0)
	}
	wantStatus(t, x.do(good()), 200)
}

func TestDPoPInsufficientScopeChallenge(t *testing.T) {
	env := newDPoPEnv(t)
	h := dpopHandler(env.iss, "")
	h.RequireScopes = []string{"orders:write"}
	x := newHX(t, h)
	res := x.do(dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token)))
	wantRefusal(t, res, 403, "insufficient_scope", `DPoP realm="restricted", error="insufficient_scope"`, `scope="orders:write"`, algsParam)
}

// TestDPoPRequestTarget: htu is checked against the URI the client
// addressed: the path before rewrites, X-Forwarded-Proto only from a
// trusted proxy, and never X-Forwarded-Host (load balancers that keep
// Host often pass the client's X-Forwarded-Host on unchanged).
func TestDPoPRequestTarget(t *testing.T) {
	env := newDPoPEnv(t)
	x := newHX(t, dpopHandler(env.iss, ""))
	forwarded := func(r *http.Request) {
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Host", "api.example.com")
	}
	// prepared is r as Caddy's server hands it to handlers, with the
	// trusted_proxy verdict set.
	prepared := func(r *http.Request, trusted bool) *http.Request {
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
		caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, trusted)
		return r
	}
	tests := []struct {
		name   string
		htu    string
		req    func(proof string) *http.Request
		status int
	}{
		{"X-Forwarded-Proto from a trusted proxy", "https://example.com/v1", func(p string) *http.Request {
			r := prepared(dpopRequest("GET", "/v1", env.token, p), true)
			forwarded(r)
			return r
		}, 200},
		{"X-Forwarded-Host even from a trusted proxy is not the host", "https://api.example.com/v1", func(p string) *http.Request {
			r := prepared(dpopRequest("GET", "/v1", env.token, p), true)
			forwarded(r)
			return r
		}, 401},
		{"forwarded headers from anyone else are ignored", "https://example.com/v1", func(p string) *http.Request {
			r := prepared(dpopRequest("GET", "/v1", env.token, p), false)
			forwarded(r)
			return r
		}, 401},
		{"untrusted client cannot claim the host it has a proof for", "http://api.example.com/v1", func(p string) *http.Request {
			r := dpopRequest("GET", "/v1", env.token, p)
			r.Header.Set("X-Forwarded-Host", "api.example.com")
			return r
		}, 401},
		{"a list of forwarded values is ambiguous", "https://example.com/v1", func(p string) *http.Request {
			r := prepared(dpopRequest("GET", "/v1", env.token, p), true)
			forwarded(r)
			r.Header.Set("X-Forwarded-Proto", "https, http")
			r.Header.Set("X-Forwarded-Host", "api.example.com, example.com")
			return r
		}, 401},
		{"path before a rewrite", "http://example.com/api/v1/orders", func(p string) *http.Request {
			r := prepared(dpopRequest("GET", "/api/v1/orders", env.token, p), false)
			r.URL.Path = "/orders" // handle_path /api/v1/*
			return r
		}, 200},
		{"rewritten path is not the target", "http://example.com/orders", func(p string) *http.Request {
			r := prepared(dpopRequest("GET", "/api/v1/orders", env.token, p), false)
			r.URL.Path = "/orders"
			return r
		}, 401},
		{"TLS connection is https", "https://example.com/v1", func(p string) *http.Request {
			r := dpopRequest("GET", "/v1", env.token, p)
			r.TLS = &tls.ConnectionState{}
			return r
		}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := x.do(tt.req(proofFor(t, env.key, "GET", tt.htu, env.token)))
			if tt.status == 200 {
				wantStatus(t, res, 200)
				return
			}
			wantRefusal(t, res, tt.status, "dpop_proof", "another URI")
		})
	}
}

func TestDPoPLogsNeitherTokenNorProof(t *testing.T) {
	env := newDPoPEnv(t)
	x := newHX(t, dpopHandler(env.iss, ""))
	proof := proofFor(t, env.key, "GET", "http://example.com/elsewhere", env.token)
	wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proof)), 401)
	wantStatus(t, x.get("/", bearer(env.token)), 401)
	if x.logs.Len() == 0 {
		t.Fatal("no rejection logged")
	}
	sig := proof[strings.LastIndexByte(proof, '.')+1:]
	tokSig := env.token[strings.LastIndexByte(env.token, '.')+1:]
	for _, e := range x.logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + stringOf(v)
		}
		for _, secret := range []string{proof, sig, env.token, tokSig} {
			if strings.Contains(line, secret) {
				t.Fatalf("log line reveals the proof or token: %s", line)
			}
		}
	}
}

func stringOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDPoPConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		sources []TokenSource
		want    string
	}{
		{"unknown mode", "maybe", nil, "dpop must be off, allow or require"},
		{"require with a cookie source", "require", []TokenSource{{From: "cookie", Name: "at"}}, "only in the Authorization header"},
		{"require with another header", "require", []TokenSource{{From: "header", Name: "X-Token"}}, "only in the Authorization header"},
		{"DPoP scheme through token_from", "allow", []TokenSource{{From: "header", Name: "Authorization", Scheme: "dpop"}}, "remove the DPoP scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Handler{Issuers: []IssuerConfig{{Issuer: "https://a"}}, Audiences: []string{"api"}, DPoP: tt.mode, TokenSources: tt.sources}
			if err := h.checkConfig(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
	ok := Handler{Issuers: []IssuerConfig{{Issuer: "https://a"}}, Audiences: []string{"api"}, DPoP: "require",
		TokenSources: []TokenSource{{From: "header", Name: "authorization"}}}
	if err := ok.checkConfig(); err != nil {
		t.Fatalf("require with the Authorization header: %v", err)
	}
}

// TestDPoPOtherTokenSources: DPoP applies to the Authorization header;
// a bound token in any other place is a bearer token, and refused.
func TestDPoPOtherTokenSources(t *testing.T) {
	env := newDPoPEnv(t)
	h := dpopHandler(env.iss, "")
	h.TokenSources = []TokenSource{{From: "header", Name: "Authorization"}, {From: "cookie", Name: "at"}}
	x := newHX(t, h)
	r := httptest.NewRequest("GET", "http://example.com/", nil)
	r.AddCookie(&http.Cookie{Name: "at", Value: env.token})
	wantRefusal(t, x.do(r), 401, "dpop_bound_as_bearer")
	wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))), 200)
}

// TestDPoPNoGoroutineLeak: the replay cache of each handler goes with it.
func TestDPoPNoGoroutineLeak(t *testing.T) {
	env := newDPoPEnv(t)
	ignore := goleak.IgnoreCurrent()
	for range 3 {
		h := dpopHandler(env.iss, "require")
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		x := &hx{t: t, h: h}
		wantStatus(t, x.do(dpopRequest("GET", "/", env.token, proofFor(t, env.key, "GET", "http://example.com/", env.token))), 200)
		if err := h.Cleanup(); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	checkNoHandlerGoroutines(t, ignore)
}
