package caddyidentity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// countedUserInfo puts a counting proxy in front of iss's own userinfo
// endpoint (which accepts a DPoP-bound token only with a proof of its key)
// and returns its URL and the count of requests that reached it.
func countedUserInfo(t *testing.T, iss *identitytest.Issuer) (string, *atomic.Int32) {
	t.Helper()
	target, err := url.Parse(iss.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + identitytest.UserInfoPath, &calls
}

// grantedToken is an access token from iss's token endpoint for the
// client_credentials client "caller", bound to key when it is not nil.
func grantedToken(t *testing.T, iss *identitytest.Issuer, key *identity.DPoPKey) string {
	t.Helper()
	tok, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: iss.URL + identitytest.TokenPath, ClientAuth: identity.ClientSecretBasicAuth("caller", "pw"), DPoP: key},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tok.DPoPBound() != (key != nil) {
		t.Fatalf("token bound %v, want %v", tok.DPoPBound(), key != nil)
	}
	return tok.AccessToken
}

// boundSkipLines are the handler's lines about tokens not sent to userinfo.
func boundSkipLines(x *hx) int {
	return x.logs.FilterMessageSnippet("userinfo not asked for sender-constrained tokens").Len()
}

// TestUserInfoDPoPBound sends DPoP-bound tokens, issued by identitytest
// (JWTs, or opaque tokens whose introspection answer has cnf.jkt), whose
// claims lack what the handler wants from userinfo: the endpoint is never
// asked (it would refuse a bearer call), on_error decides under a reason
// of its own, and the skip is logged once, not as an outage.
func TestUserInfoDPoPBound(t *testing.T) {
	for _, tt := range []struct {
		onError string
		opaque  bool
		status  int
	}{
		{"refuse", false, http.StatusServiceUnavailable},
		{"", false, http.StatusServiceUnavailable},
		{"continue", false, http.StatusOK},
		{"refuse", true, http.StatusServiceUnavailable},
		{"continue", true, http.StatusOK},
	} {
		name := "jwt"
		opts := []identitytest.Option{identitytest.WithClient("caller", "pw")}
		if tt.opaque {
			name = "introspected"
			opts = append(opts, identitytest.WithOpaqueAccessTokens())
		}
		t.Run(name+"/on_error "+tt.onError, func(t *testing.T) {
			iss := identitytest.NewIssuer(t, opts...)
			endpoint, calls := countedUserInfo(t, iss)
			h := userInfoHandler(iss, endpoint, tt.onError)
			h.Audiences, h.AnyAudience = nil, true // identitytest's client_credentials tokens have no aud
			if tt.opaque {
				h.Issuers[0].Introspection = &IntrospectionConfig{ClientID: identitytest.DefaultClientID, ClientSecret: identitytest.DefaultClientSecret}
			}
			x := newHX(t, h)
			key := newDPoPKey(t)
			for range 3 {
				tok := grantedToken(t, iss, key)
				if isCompactJWS(tok) == tt.opaque {
					t.Fatalf("token %q: not the form under test", tok)
				}
				const uri = "http://example.com/api"
				res := x.do(dpopRequest(http.MethodGet, "/api", tok, proofFor(t, key, http.MethodGet, uri, tok)))
				if tt.status == http.StatusOK {
					wantStatus(t, res, http.StatusOK)
					if res.up.header.Get("X-User-Id") != "caller" || res.up.header.Get("X-User-Email") != "" {
						t.Errorf("upstream headers %v, want the token's own claims only", res.up.header)
					}
				} else {
					wantRefusal(t, res, tt.status, "userinfo_not_for_bound_tokens")
					if res.challenge != "" {
						t.Errorf("challenge %q: the client is not at fault", res.challenge)
					}
				}
			}
			// A bound token without its binding gets the 401 that says
			// so, not the 503: the binding is checked first.
			tok := grantedToken(t, iss, key)
			wantRefusal(t, x.get("/api", bearer(tok)), http.StatusUnauthorized, "dpop_bound_as_bearer")
			other := newDPoPKey(t)
			const uri = "http://example.com/api"
			wantRefusal(t, x.do(dpopRequest(http.MethodGet, "/api", tok, proofFor(t, other, http.MethodGet, uri, tok))), http.StatusUnauthorized, "dpop_proof")
			if n := calls.Load(); n != 0 {
				t.Errorf("userinfo asked %d times with DPoP-bound tokens", n)
			}
			if n := boundSkipLines(x); n != 1 {
				t.Errorf("skip logged %d times for 4 tokens in a minute, want once", n)
			}
			if n := x.logs.FilterMessageSnippet("unavailable").Len(); n != 0 {
				t.Errorf("%d lines call the skip an outage", n)
			}

			// The same handler still completes an unbound token: the
			// endpoint is reachable, only bound tokens are kept from it.
			plain := grantedToken(t, iss, nil)
			res := x.get("/", bearer(plain))
			wantStatus(t, res, http.StatusOK)
			if res.up.header.Get("X-User-Email") != "caller@example.test" {
				t.Errorf("unbound token: X-User-Email = %q, want the userinfo email", res.up.header.Get("X-User-Email"))
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("userinfo asked %d times for one unbound token, want once", n)
			}
		})
	}
}

// TestUserInfoCertificateBound: a token bound to a client certificate
// (RFC 8705) is kept from userinfo too, over a connection with its
// certificate, whatever cert_binding says.
func TestUserInfoCertificateBound(t *testing.T) {
	for _, tt := range []struct {
		onError, certBinding string
		status               int
	}{
		{"refuse", "", http.StatusServiceUnavailable},
		{"continue", "", http.StatusOK},
		{"refuse", "off", http.StatusServiceUnavailable},
	} {
		t.Run(tt.onError+"/cert_binding "+tt.certBinding, func(t *testing.T) {
			iss := identitytest.NewIssuer(t)
			endpoint, calls := countedUserInfo(t, iss)
			h := userInfoHandler(iss, endpoint, tt.onError)
			h.CertBinding = tt.certBinding
			x := newHX(t, h)
			cert, thumb := newClientCert(t, "bound client")
			other, _ := newClientCert(t, "other client")
			tok := certBoundToken(t, iss, map[string]any{cnfCertThumbprint: thumb})
			if tt.certBinding == "" {
				// Without its certificate: the 401 of the binding, not the 503.
				wantRefusal(t, x.do(certRequest(tok, tlsWith(other))), http.StatusUnauthorized, "cert_binding")
			}
			res := x.do(certRequest(tok, tlsWith(cert)))
			if tt.status == http.StatusOK {
				wantStatus(t, res, http.StatusOK)
				if res.up.header.Get("X-User-Email") != "alice@example.com" || res.up.header.Get("X-User-Groups") != "" {
					t.Errorf("upstream headers %v, want the token's own claims only", res.up.header)
				}
			} else {
				wantRefusal(t, res, tt.status, "userinfo_not_for_bound_tokens")
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("userinfo asked %d times with a certificate-bound token", n)
			}
			lines := x.logs.FilterMessageSnippet("userinfo not asked for sender-constrained tokens").All()
			if len(lines) != 1 || lines[0].ContextMap()["binding"] != "certificate" {
				t.Errorf("skip lines %v, want one with binding certificate", lines)
			}
		})
	}
}

// TestUserInfoBoundLogOncePerMinute: the skip line is written at most once
// a minute per issuer, and says how many tokens it stands for.
func TestUserInfoBoundLogOncePerMinute(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	endpoint, calls := countedUserInfo(t, iss)
	h := userInfoHandler(iss, endpoint, "refuse")
	clk := &testClock{now: time.Now()}
	h.now = clk.Now
	x := newHX(t, h)
	cert, thumb := newClientCert(t, "bound client")
	minted := 0
	send := func(n int) {
		for range n {
			minted++
			tok := iss.Mint(t, map[string]any{"sub": "alice", "n": minted, "cnf": map[string]any{cnfCertThumbprint: thumb}})
			for range 2 { // the second time from the cache: no new skip
				wantRefusal(t, x.do(certRequest(tok, tlsWith(cert))), http.StatusServiceUnavailable, "userinfo_not_for_bound_tokens")
			}
		}
	}
	send(4)
	clk.advance(userInfoBoundLogEvery - time.Second)
	send(2)
	if n := boundSkipLines(x); n != 1 {
		t.Fatalf("%d lines within a minute, want 1", n)
	}
	clk.advance(time.Second)
	send(1)
	lines := x.logs.FilterMessageSnippet("userinfo not asked for sender-constrained tokens").All()
	if len(lines) != 2 {
		t.Fatalf("%d lines after a minute, want 2", len(lines))
	}
	for i, want := range []int64{1, 6} {
		if got := lines[i].ContextMap()["tokens"]; got != want {
			t.Errorf("line %d: tokens = %v, want %d", i, got, want)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("userinfo asked %d times", n)
	}
}

// TestUserInfoDPoPRequireConfig: with dpop require every token is bound,
// so userinfo with on_error refuse would refuse every request that needs
// it: a configuration error. on_error continue is accepted, with a
// warning that userinfo is never asked.
func TestUserInfoDPoPRequireConfig(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	for _, onError := range []string{"", "refuse"} {
		h := userInfoHandler(iss, iss.URL+identitytest.UserInfoPath, onError)
		h.DPoP = "require"
		wantErrorContaining(t, h.checkConfig(), "dpop require")
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		cancel()
		wantErrorContaining(t, err, "on_error continue")
	}
	h := userInfoHandler(iss, iss.URL+identitytest.UserInfoPath, "continue")
	h.DPoP = "require"
	x := newHX(t, h)
	if n := x.logs.FilterMessageSnippet("userinfo is never asked with dpop require").Len(); n != 1 {
		t.Errorf("%d warnings about a userinfo that is never asked, want 1", n)
	}
}
