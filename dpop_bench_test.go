package caddyidentity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// BenchmarkDPoPNonce is the cost of server nonces on an accepted DPoP
// request (token cached, proof verified, jti recorded in process): the
// same request without and with a nonce to check, in one run.
func BenchmarkDPoPNonce(b *testing.B) {
	iss := identitytest.NewIssuer(b)
	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		b.Fatal(err)
	}
	token := iss.Token(b, "alice", map[string]any{"cnf": map[string]any{"jkt": key.Thumbprint()}})
	nonces, err := identity.NewDPoPNonces([]byte(nonceSecret), 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts *DPoPOptions
	}{
		{"no_nonce", nil},
		{"nonce", &DPoPOptions{Nonce: &DPoPNonceConfig{Secret: nonceSecret}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := dpopHandler(iss, "")
			h.DPoPOptions = tc.opts
			nonce := ""
			if tc.opts != nil {
				nonce = nonces.Nonce(time.Now())
			}
			benchDPoP(b, h, key, token, nonce)
		})
	}
}

// benchDPoP provisions h and serves it b.N DPoP requests for GET
// http://example.com/ with token, each with a fresh proof by key
// (carrying nonce when not empty), all made before the timer starts.
func benchDPoP(b *testing.B, h *Handler, key *identity.DPoPKey, token, nonce string) {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Cleanup()
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		p, err := key.Proof(identity.DPoPProofOptions{Method: "GET", URI: "http://example.com/", AccessToken: token, Nonce: nonce})
		if err != nil {
			b.Fatal(err)
		}
		r := dpopRequest("GET", "/", token, p)
		reqs[i] = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := h.ServeHTTP(w, reqs[i], benchNext); err != nil {
			b.Fatalf("request %d: %v", i, err)
		}
	}
}
