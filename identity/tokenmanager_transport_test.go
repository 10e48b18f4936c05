package identity_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// dpopTokenServer issues numbered DPoP-bound tokens to requests with a
// valid token-request proof, and remembers the key each is bound to.
type dpopTokenServer struct {
	*fakeEndpoint
	issued atomic.Int64
	mu     sync.Mutex
	bound  map[string]string // access token → jkt
}

func newDPoPTokenServer(t *testing.T) *dpopTokenServer {
	ts := &dpopTokenServer{bound: map[string]string{}}
	ts.fakeEndpoint = newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		proof, err := identity.DPoPProofFromHeader(r.Header)
		var p *identity.DPoPProof
		if err == nil {
			p, err = identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{Method: r.Method, URI: "http://" + r.Host + r.URL.Path})
		}
		if err != nil {
			writeJSON(w, 400, `{"error":"invalid_dpop_proof"}`)
			return
		}
		tok := fmt.Sprintf("dpop-%d", ts.issued.Add(1))
		ts.mu.Lock()
		ts.bound[tok] = p.Thumbprint
		ts.mu.Unlock()
		writeJSON(w, 200, `{"access_token":"`+tok+`","token_type":"DPoP","expires_in":3600}`)
	})
	return ts
}

func (ts *dpopTokenServer) jkt(tok string) string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.bound[tok]
}

// resourceRequest is what the resource server saw of one request.
type resourceRequest struct {
	authorization, body string
	proofErr            error
	jti                 string
}

// dpopResource is a resource server that accepts DPoP-bound tokens of ts
// with a valid proof carrying its nonce "rs-nonce", and refuses revoked
// tokens with 401.
type dpopResource struct {
	*httptest.Server
	mu      sync.Mutex
	seen    []resourceRequest
	revoked map[string]bool
}

func newDPoPResource(t *testing.T, ts *dpopTokenServer) *dpopResource {
	rs := &dpopResource{revoked: map[string]bool{}}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		seen := resourceRequest{authorization: r.Header.Get("Authorization"), body: string(body)}
		proof, err := identity.DPoPProofFromHeader(r.Header)
		var p *identity.DPoPProof
		if err == nil {
			p, err = identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
				Method: r.Method, URI: "http://" + r.Host + r.URL.Path, AccessToken: tok, BoundJKT: ts.jkt(tok), Nonce: "rs-nonce",
			})
		}
		seen.proofErr = err
		if p != nil {
			seen.jti = p.ID
		}
		rs.mu.Lock()
		rs.seen = append(rs.seen, seen)
		revoked := rs.revoked[tok]
		rs.mu.Unlock()
		var pe *identity.DPoPProofError
		switch {
		case scheme != "DPoP":
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		case errors.As(err, &pe) && pe.Check == identity.DPoPCheckNonce:
			w.Header().Set("DPoP-Nonce", "rs-nonce")
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
			w.WriteHeader(http.StatusUnauthorized)
		case revoked:
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			_, _ = io.WriteString(w, "hello "+tok)
		}
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *dpopResource) requests() []resourceRequest {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]resourceRequest(nil), rs.seen...)
}

func (rs *dpopResource) revoke(tok string) {
	rs.mu.Lock()
	rs.revoked[tok] = true
	rs.mu.Unlock()
}

func TestTokenManagerTransportDPoP(t *testing.T) {
	key := mustDPoPKey(t, "ES256")
	ts := newDPoPTokenServer(t)
	rs := newDPoPResource(t, ts)
	m, err := identity.NewTokenManager(identity.TokenManagerOptions{Request: identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: ts.URL, ClientAuth: identity.ClientSecretPostAuth("svc", "s"), DPoP: key},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: m.Transport(nil)}
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := c.Post(rs.URL+"/orders?page=2", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// First request: no nonce yet → use_dpop_nonce → one retry with it.
	if code, body := post("one"); code != 200 || body != "hello dpop-1" {
		t.Fatalf("first request: %d %q", code, body)
	}
	// Second: the nonce is remembered, one request with a fresh proof.
	if code, _ := post("two"); code != 200 {
		t.Fatalf("second request: %d", code)
	}
	// Third: the token is revoked → 401 → new token, one retry.
	rs.revoke("dpop-1")
	if code, body := post("three"); code != 200 || body != "hello dpop-2" {
		t.Fatalf("after revocation: %d %q", code, body)
	}
	seen := rs.requests()
	want := []struct {
		auth, body string
		nonceErr   bool
	}{
		{"DPoP dpop-1", "one", true}, {"DPoP dpop-1", "one", false},
		{"DPoP dpop-1", "two", false},
		{"DPoP dpop-1", "three", false}, {"DPoP dpop-2", "three", false},
	}
	if len(seen) != len(want) {
		t.Fatalf("resource saw %d requests, want %d: %+v", len(seen), len(want), seen)
	}
	jtis := map[string]bool{}
	for i, w := range want {
		s := seen[i]
		if s.authorization != w.auth || s.body != w.body {
			t.Errorf("request %d: Authorization %q body %q, want %q %q", i, s.authorization, s.body, w.auth, w.body)
		}
		var pe *identity.DPoPProofError
		if gotNonceErr := errors.As(s.proofErr, &pe) && pe.Check == identity.DPoPCheckNonce; gotNonceErr != w.nonceErr || (!w.nonceErr && s.proofErr != nil) {
			t.Errorf("request %d: proof error %v", i, s.proofErr)
		}
		if jtis[s.jti] {
			t.Errorf("request %d reused proof jti %q", i, s.jti)
		}
		jtis[s.jti] = true
	}
	if n := ts.issued.Load(); n != 2 {
		t.Errorf("%d tokens issued, want 2", n)
	}
}

func TestTokenManagerTransportRetriesOnlyReplayableBodies(t *testing.T) {
	ts := newTokenServer(t, 3600)
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") == "Bearer tok-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}))
	defer api.Close()
	tests := []struct {
		name      string
		body      func() io.Reader
		wantCode  int
		wantCalls int64
	}{
		// An io.Reader that is not a bytes/strings reader gets no GetBody.
		{"streamed body", func() io.Reader { return io.MultiReader(strings.NewReader("x")) }, 401, 1},
		{"replayable body", func() io.Reader { return strings.NewReader("x") }, 200, 2},
		{"no body", func() io.Reader { return nil }, 200, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts.issued.Store(0)
			calls.Store(0)
			m := newManager(t, ts, &fakeClock{now: time.Now()})
			req, err := http.NewRequest(http.MethodPost, api.URL, tc.body())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: m.Transport(nil)}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode || calls.Load() != tc.wantCalls {
				t.Errorf("status %d after %d calls, want %d after %d", resp.StatusCode, calls.Load(), tc.wantCode, tc.wantCalls)
			}
		})
	}
}

func TestTokenManagerFromProvider(t *testing.T) {
	ts := newTokenServer(t, 3600)
	disco := httptest.NewServer(nil)
	defer disco.Close()
	disco.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `{"issuer":"`+disco.URL+`","jwks_uri":"`+disco.URL+`/jwks","token_endpoint":"`+ts.URL+`",
			"authorization_endpoint":"`+disco.URL+`/a","response_types_supported":["code"],"subject_types_supported":["public"],
			"id_token_signing_alg_values_supported":["RS256"]}`)
	})
	p, err := identity.NewProvider(disco.URL, identity.ProviderOptions{Policy: identity.DiscoveryPolicy{AdditionalEndpointBases: []string{ts.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m, err := identity.NewTokenManager(identity.TokenManagerOptions{Provider: p, Request: identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{ClientAuth: identity.ClientSecretBasicAuth("svc", "s")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := m.AccessToken(context.Background()); err != nil || tok != "tok-1" {
		t.Fatalf("got %q %v", tok, err)
	}
}
