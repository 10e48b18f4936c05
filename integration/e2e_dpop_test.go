package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// DPoP-bound access tokens of oidc-provider through Caddy's identity handler
// (option dpop allow|require|off): "Authorization: DPoP <token>" with a fresh
// proof of the bound key per request.

// dpopToken gets a client-credentials access token bound to key from
// oidc-provider (test-client-dpop) for resource, scope api:read.
func dpopToken(t *testing.T, p *oidcProvider, key *identity.DPoPKey, resource string) string {
	t.Helper()
	doc := providerDiscovery(t, p)
	tok, err := identity.RequestClientCredentialsToken(clientsContext(t), nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint,
			ClientAuth: identity.ClientSecretBasicAuth(testDPoPClientID, testDPoPClientSecret), DPoP: key},
		Scopes:   []string{"api:read"},
		Resource: []string{resource},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !tok.DPoPBound() {
		t.Fatalf("token_type %q, want DPoP", tok.TokenType)
	}
	return tok.AccessToken
}

// send sends req to Caddy as is (no redirects followed) and decodes the answer.
func (c *caddyServer) send(req *http.Request) caddyResponse {
	c.t.Helper()
	resp, err := httpClient().Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return c.readResponse(resp)
}

// dpopRequest builds GET <Caddy>/<path> authorized with token and a fresh
// proof of key for proofURI ("" means the request URI).
func (c *caddyServer) dpopRequest(key *identity.DPoPKey, token, path, proofURI string) *http.Request {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.URL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if proofURI == "" {
		if err := key.AuthorizeRequest(req, token); err != nil {
			c.t.Fatal(err)
		}
		return req
	}
	proof, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: proofURI, AccessToken: token})
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	return req
}

// expectRefused fails unless r is a 401 whose challenges contain every want.
func expectRefused(t *testing.T, r caddyResponse, want ...string) {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401 (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
	}
	for _, w := range want {
		if !strings.Contains(r.WWWAuthenticate, w) {
			t.Errorf("WWW-Authenticate %q lacks %q", r.WWWAuthenticate, w)
		}
	}
}

func TestE2EDPoPThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p)) // dpop allow is the default
	key := newDPoPKey(t, "ES256")
	tok := dpopToken(t, p, key, resourceRS256)

	t.Run("DoDPoPRequest with a fresh proof accepted, identity forwarded, token and proof stripped", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, c.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-User-Id", "mallory")
		resp, err := identity.DoDPoPRequest(clientsContext(t), nil, key, req, tok)
		if err != nil {
			t.Fatal(err)
		}
		r := c.readResponse(resp)
		if r.Status != http.StatusOK {
			t.Fatalf("status %d (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
		}
		want := map[string]string{"X-User-Id": testDPoPClientID, "X-Client-Id": testDPoPClientID, "X-Scopes": "api:read"}
		for h, v := range want {
			if got := r.Upstream.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want [%q]", h, got, v)
			}
		}
		for _, h := range []string{"Authorization", "Dpop"} {
			if got := r.Upstream.Get(h); got != "" {
				t.Errorf("upstream got %s %q", h, got)
			}
		}
	})

	t.Run("every request with a new proof", func(t *testing.T) {
		for i := range 3 {
			if r := c.send(c.dpopRequest(key, tok, fmt.Sprintf("/n/%d?q=%d", i, i), "")); r.Status != http.StatusOK {
				t.Fatalf("request %d: status %d (WWW-Authenticate %q)", i, r.Status, r.WWWAuthenticate)
			}
		}
	})

	t.Run("RS256 proof key, ES256 token", func(t *testing.T) {
		rsKey := newDPoPKey(t, "RS256")
		esTok := dpopToken(t, p, rsKey, resourceES256)
		if r := c.send(c.dpopRequest(rsKey, esTok, "/", "")); r.Status != http.StatusOK {
			t.Fatalf("status %d (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
		}
	})

	t.Run("bound token as Bearer refused", func(t *testing.T) {
		expectRefused(t, c.get(tok, nil), `error="invalid_token"`, "DPoP")
	})

	t.Run("replayed proof refused", func(t *testing.T) {
		first := c.dpopRequest(key, tok, "/replay", "")
		if r := c.send(first); r.Status != http.StatusOK {
			t.Fatalf("first use: status %d (WWW-Authenticate %q)", r.Status, r.WWWAuthenticate)
		}
		again, err := http.NewRequest(http.MethodGet, c.URL+"/replay", nil)
		if err != nil {
			t.Fatal(err)
		}
		again.Header = first.Header.Clone()
		expectRefused(t, c.send(again), `error="invalid_dpop_proof"`)
	})

	t.Run("no proof refused", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, c.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "DPoP "+tok)
		expectRefused(t, c.send(req), `error="invalid_dpop_proof"`)
	})

	t.Run("proof of another key refused", func(t *testing.T) {
		expectRefused(t, c.send(c.dpopRequest(newDPoPKey(t, "ES256"), tok, "/", "")), `error="invalid_dpop_proof"`)
	})

	t.Run("proof for another URI refused", func(t *testing.T) {
		expectRefused(t, c.send(c.dpopRequest(key, tok, "/", c.URL+"/elsewhere")), `error="invalid_dpop_proof"`)
	})

	t.Run("proof for another token refused", func(t *testing.T) {
		other := dpopToken(t, p, key, resourceRS256)
		req := c.dpopRequest(key, other, "/", "")
		req.Header.Set("Authorization", "DPoP "+tok)
		expectRefused(t, c.send(req), `error="invalid_dpop_proof"`)
	})

	t.Run("unbound token with the DPoP scheme refused", func(t *testing.T) {
		expectRefused(t, c.send(c.dpopRequest(key, p.accessToken(t, resourceRS256), "/", "")), `error="invalid_token"`)
	})

	t.Run("plain bearer token still accepted", func(t *testing.T) {
		c.expectStatus(p.accessToken(t, resourceRS256), http.StatusOK)
	})
}

func TestE2EDPoPRequireAndOffThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	key := newDPoPKey(t, "ES256")
	tok := dpopToken(t, p, key, resourceRS256)
	bearer := p.accessToken(t, resourceRS256)

	t.Run("require", func(t *testing.T) {
		c := startCaddy(t, identityBlockFor(p)+"\n\t\tdpop require")
		if r := c.send(c.dpopRequest(key, tok, "/", "")); r.Status != http.StatusOK {
			t.Fatalf("DPoP: status %d (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
		}
		r := c.get(bearer, nil)
		expectRefused(t, r, "DPoP")
		if strings.HasPrefix(r.WWWAuthenticate, "Bearer") {
			t.Errorf("WWW-Authenticate %q offers Bearer", r.WWWAuthenticate)
		}
		expectRefused(t, c.get(tok, nil))
	})

	t.Run("off", func(t *testing.T) {
		c := startCaddy(t, identityBlockFor(p)+"\n\t\tdpop off")
		// Binding ignored: the bound token passes as a bearer token, the
		// DPoP scheme is not recognized.
		c.expectStatus(tok, http.StatusOK)
		c.expectStatus(bearer, http.StatusOK)
		expectRefused(t, c.send(c.dpopRequest(key, tok, "/", "")))
	})
}
