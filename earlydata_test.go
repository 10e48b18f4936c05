package caddyidentity

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestEarlyDataUnsafeMethodTooEarly: a request with a token in TLS 1.3
// early data (0-RTT, which Caddy accepts over HTTP/3 unless allow_0rtt is
// off) can be replayed by anyone on the path; with an unsafe method it
// gets 425 Too Early, before any verification (so a DPoP proof's jti is
// not spent), and the client sends it again after the handshake.
func TestEarlyDataUnsafeMethodTooEarly(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	x := newHX(t, basicHandler(iss))
	opt := basicHandler(iss)
	opt.Optional = true
	xo := newHX(t, opt)
	key := newDPoPKey(t)
	tok := iss.Token(t, "alice", nil)
	bound := boundToken(t, iss, key, nil)
	request := func(method string, complete bool, dpop bool) *http.Request {
		r := httptest.NewRequest(method, "https://example.com/", nil)
		r.TLS = &tls.ConnectionState{HandshakeComplete: complete}
		if dpop {
			r.Header.Set("Authorization", "DPoP "+bound)
			r.Header.Set("DPoP", proofFor(t, key, method, "https://example.com/", bound))
		} else {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		return r
	}
	for _, tc := range []struct {
		name     string
		method   string
		complete bool
		dpop     bool
		want     int
	}{
		{"POST in early data", http.MethodPost, false, false, http.StatusTooEarly},
		{"PUT in early data", http.MethodPut, false, false, http.StatusTooEarly},
		{"DELETE in early data", http.MethodDelete, false, false, http.StatusTooEarly},
		{"PATCH in early data, DPoP", http.MethodPatch, false, true, http.StatusTooEarly},
		{"GET in early data", http.MethodGet, false, false, http.StatusOK},
		{"HEAD in early data", http.MethodHead, false, false, http.StatusOK},
		{"POST after the handshake", http.MethodPost, true, false, http.StatusOK},
		{"POST after the handshake, DPoP", http.MethodPost, true, true, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := x.do(request(tc.method, tc.complete, tc.dpop))
			if tc.want == http.StatusOK {
				wantStatus(t, res, http.StatusOK)
				return
			}
			wantRefusal(t, res, tc.want, "too_early")
			if res.challenge != "" {
				t.Errorf("challenge %q on a 425", res.challenge)
			}
		})
	}
	t.Run("the DPoP proof is not spent by the 425", func(t *testing.T) {
		r := request(http.MethodPost, false, true)
		proof := r.Header.Get("DPoP")
		wantRefusal(t, x.do(r), http.StatusTooEarly, "too_early")
		again := request(http.MethodPost, true, true)
		again.Header.Set("DPoP", proof)
		wantStatus(t, x.do(again), http.StatusOK)
	})
	t.Run("anonymous request on the optional path", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "https://example.com/", nil)
		r.TLS = &tls.ConnectionState{HandshakeComplete: false}
		wantStatus(t, xo.do(r), http.StatusOK)
	})
}
