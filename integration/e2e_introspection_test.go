package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// startIntrospectingCaddy starts Caddy with p as the issuer, introspecting
// opaque tokens at the endpoint of p's discovery document as another
// client (test-client-post, client_secret_post, the secret from the
// environment), with extra lines in the introspection block and the rest
// of the identity block in options.
func startIntrospectingCaddy(t *testing.T, p *oidcProvider, extra, options string) *caddyServer {
	t.Helper()
	t.Setenv("CADDY_IDENTITY_E2E_INTROSPECTION_SECRET", testPostClientSecret)
	return startCaddy(t, fmt.Sprintf(`		issuer %s {
			introspection {
				client_id %s
				client_secret {env.CADDY_IDENTITY_E2E_INTROSPECTION_SECRET}
				auth_method client_secret_post
				%s
			}
		}
		%s`, p.URL(), testPostClientID, extra, options))
}

// TestE2EIntrospectionThroughCaddy gets an opaque access token from
// oidc-provider (client credentials for the opaque resource), has Caddy
// accept it by introspection at the endpoint of the provider's discovery
// document, authenticated as another client with client_secret_post and a
// secret from the environment, then revokes the token and checks that
// Caddy refuses it once the 1 s cache_ttl has passed.
func TestE2EIntrospectionThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startIntrospectingCaddy(t, p, "cache_ttl 1s", fmt.Sprintf(`audience %s %s
		claim_header sub X-User-Id
		claim_header client_id X-Client-Id
		claim_header scope X-Scopes`, resourceOpaque, resourceRS256))

	tok := p.accessToken(t, resourceOpaque)
	if strings.Count(tok, ".") == 2 {
		t.Fatalf("the provider issued a JWT for the opaque resource: %s", tok)
	}
	r := c.get(tok, map[string]string{"X-User-Id": "mallory"})
	if r.Status != http.StatusOK {
		t.Fatalf("opaque token: status %d (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
	}
	want := map[string]string{"X-Client-Id": testClientID, "X-Scopes": "api:read"}
	for h, v := range want {
		if got := r.Upstream.Values(h); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q, want [%q]", h, got, v)
		}
	}
	// oidc-provider's answer for a client credentials token has no sub:
	// no X-User-Id, and the client's own copy is gone.
	if got := r.Upstream.Values("X-User-Id"); len(got) != 0 {
		t.Errorf("upstream X-User-Id = %q, want none", got)
	}
	if got := r.Upstream.Get("Authorization"); got != "" {
		t.Errorf("upstream got the token: Authorization %q", got)
	}

	// JWTs of the same issuer keep being verified with its keys.
	c.expectStatus(p.accessToken(t, resourceRS256), http.StatusOK)

	doc := providerDiscovery(t, p)
	if err := identity.RevokeToken(clientsContext(t), nil, identity.RevocationRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.RevocationEndpoint, ClientAuth: identity.ClientSecretBasicAuth(testClientID, testClientSecret)},
		Token:           tok, TokenTypeHint: identity.TokenTypeHintAccessToken,
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the cache_ttl of the accepted answer
	r = c.expectStatus(tok, http.StatusUnauthorized)
	if !strings.Contains(r.WWWAuthenticate, `error="invalid_token"`) || !strings.Contains(r.WWWAuthenticate, "not active") {
		t.Errorf("WWW-Authenticate %q, want invalid_token for a token that is not active", r.WWWAuthenticate)
	}
}

// TestE2EIntrospectionDPoPThroughCaddy gets an opaque DPoP-bound token from
// oidc-provider (client credentials with a proof, for the opaque
// resource), whose introspection answer carries cnf.jkt: Caddy accepts it
// only with the DPoP scheme and a proof of that key, and refuses it as a
// bearer token or with another key's proof.
func TestE2EIntrospectionDPoPThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startIntrospectingCaddy(t, p, "", fmt.Sprintf(`audience %s
		claim_header client_id X-Client-Id`, resourceOpaque))

	key := newDPoPKey(t, "ES256")
	tok := dpopToken(t, p, key, resourceOpaque)
	if strings.Count(tok, ".") == 2 {
		t.Fatalf("the provider issued a JWT for the opaque resource: %s", tok)
	}

	r := c.send(c.dpopRequest(key, tok, "/", ""))
	if r.Status != http.StatusOK {
		t.Fatalf("DPoP scheme with a proof of the token's key: status %d (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
	}
	if got := r.Upstream.Values("X-Client-Id"); len(got) != 1 || got[0] != testDPoPClientID {
		t.Errorf("upstream X-Client-Id = %q, want [%q]", got, testDPoPClientID)
	}
	for _, h := range []string{"Authorization", "Dpop"} {
		if got := r.Upstream.Get(h); got != "" {
			t.Errorf("upstream got %s %q", h, got)
		}
	}

	// As a bearer token (now answered from the introspection cache) it is
	// refused, and so is a proof by another key.
	expectRefused(t, c.get(tok, nil), `error="invalid_token"`, "DPoP-bound")
	expectRefused(t, c.send(c.dpopRequest(newDPoPKey(t, "ES256"), tok, "/", "")), `error="invalid_dpop_proof"`)
}
