package caddyidentity

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestIntrospectDiscoveredEndpointPolicy: the introspection_endpoint of a
// discovery document gets the policy of jwks_uri (the issuer's origin or
// its jwks_uri_bases), since the client secret and every opaque token are
// sent there. Elsewhere it is refused (503, the provider's fault) without
// a call; an endpoint set in the config is the operator's choice.
func TestIntrospectDiscoveredEndpointPolicy(t *testing.T) {
	ep := newIntroEndpoint(t)
	iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
		m[identity.DiscoveryIntrospectionEndpoint] = ep.srv.URL + "/introspect"
	}))
	ep.set(200, activeResponse(iss.URL, time.Now(), nil))
	for _, tc := range []struct {
		name   string
		edit   func(h *Handler)
		want   int
		called bool
	}{
		{"another origin", nil, 503, false},
		{"another origin, other bases", func(h *Handler) { h.Issuers[0].JWKSURIBases = []string{"http://127.0.0.1:1"} }, 503, false},
		{"under jwks_uri_bases", func(h *Handler) { h.Issuers[0].JWKSURIBases = []string{ep.srv.URL + "/"} }, 200, true},
		{"under jwks_uri_bases, another path", func(h *Handler) { h.Issuers[0].JWKSURIBases = []string{ep.srv.URL + "/keys"} }, 503, false},
		{"configured endpoint", func(h *Handler) { h.Issuers[0].Introspection.Endpoint = ep.srv.URL + "/introspect" }, 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := introHandler(iss, "")
			if tc.edit != nil {
				tc.edit(h)
			}
			before := ep.callCount()
			x := newHX(t, h)
			res := x.get("/", bearer(opaqueToken(t)))
			if tc.want == 200 {
				wantStatus(t, res, 200)
			} else {
				wantRefusal(t, res, tc.want, "provider_unavailable")
			}
			if called := ep.callCount() > before; called != tc.called {
				t.Errorf("endpoint called: %v, want %v", called, tc.called)
			}
		})
	}
}

// TestIntrospectFloodSparesCachedTokens: made-up opaque tokens can hold
// every introspection slot (maxIntrospections), but a token whose answer
// is cached, active or inactive, is answered without a slot; only tokens
// the handler has not seen wait for one (up to the timeout). What the
// bound does not give is fairness between clients for new tokens: that
// is rate limiting's job, in front of the handler (SECURITY.md).
func TestIntrospectFloodSparesCachedTokens(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	ep := newIntroEndpoint(t)
	release := make(chan struct{})
	active, revoked := opaqueToken(t)+"-active", opaqueToken(t)+"-revoked"
	activeBody, _ := json.Marshal(activeResponse(iss.URL, time.Now(), nil))
	ep.mu.Lock()
	ep.answer = func(tok string) (int, string) {
		switch tok {
		case active:
			return 200, string(activeBody)
		case revoked:
			return 200, `{"active":false}`
		}
		<-release
		return 200, `{"active":false}`
	}
	ep.mu.Unlock()
	x := newHX(t, introHandler(iss, ep.srv.URL))
	wantStatus(t, x.get("/", bearer(active)), 200)
	wantRefusal(t, x.get("/", bearer(revoked)), 401, "inactive")

	var wg sync.WaitGroup
	flood := make([]int, maxIntrospections+8)
	for i := range flood {
		wg.Go(func() { flood[i] = x.get("/", bearer(fmt.Sprintf("%s-flood-%d", opaqueToken(t), i))).status })
	}
	for {
		ep.mu.Lock()
		n := ep.inflight
		ep.mu.Unlock()
		if n == maxIntrospections {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	calls := ep.callCount()
	wantStatus(t, x.get("/", bearer(active)), 200)
	wantRefusal(t, x.get("/", bearer(revoked)), 401, "inactive")
	if n := ep.callCount(); n != calls {
		t.Errorf("cached tokens cost %d introspections during the flood", n-calls)
	}
	close(release)
	wg.Wait()
	for i, st := range flood {
		if st != 401 {
			t.Errorf("flood request %d: status %d, want 401", i, st)
		}
	}
}
