package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestE2EIntrospectionThroughCaddy gets an opaque access token from
// oidc-provider (client credentials for the opaque resource), has Caddy
// accept it by introspection at the endpoint of the provider's discovery
// document, authenticated as another client with client_secret_post and a
// secret from the environment, then revokes the token and checks that
// Caddy refuses it once the 1 s cache_ttl has passed.
func TestE2EIntrospectionThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	t.Setenv("CADDY_IDENTITY_E2E_INTROSPECTION_SECRET", testPostClientSecret)
	c := startCaddy(t, fmt.Sprintf(`		issuer %s {
			introspection {
				client_id %s
				client_secret {env.CADDY_IDENTITY_E2E_INTROSPECTION_SECRET}
				auth_method client_secret_post
				cache_ttl 1s
			}
		}
		audience %s %s
		claim_header sub X-User-Id
		claim_header client_id X-Client-Id
		claim_header scope X-Scopes`, p.URL(), testPostClientID, resourceOpaque, resourceRS256))

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
