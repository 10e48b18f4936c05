package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestE2EUpstreamTokenClientCredentials: Caddy verifies the caller's token
// and hands the upstream a client-credentials token of its own, issued by
// oidc-provider for another resource. That token is in turn accepted by
// the same Caddy, which shows it is a valid token of the provider naming
// Caddy's client.
func TestE2EUpstreamTokenClientCredentials(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p)+fmt.Sprintf(`
		upstream_token client_credentials {
			client_id %s
			client_secret %s
			resource %s
			scopes api:read
			header X-Service-Token
		}`, testClientID, testClientSecret, resourceES256))

	caller := p.clientCredentials(t, postClient(), resourceRS256, "api:read").AccessToken
	r := c.expectStatus(caller, http.StatusOK)
	service := r.Upstream.Get("X-Service-Token")
	if service == "" || service == caller || strings.Count(service, ".") != 2 {
		t.Fatalf("upstream X-Service-Token %q, want a JWT other than the caller's", service)
	}
	if got := r.Upstream.Get("X-User-Id"); got != testPostClientID {
		t.Errorf("X-User-Id %q, want the caller %q", got, testPostClientID)
	}
	again := c.expectStatus(caller, http.StatusOK)
	if again.Upstream.Get("X-Service-Token") != service {
		t.Error("the service token was not reused")
	}
	seen := c.expectStatus(service, http.StatusOK)
	if got := seen.Upstream.Get("X-User-Id"); got != testClientID {
		t.Errorf("the service token's sub %q, want Caddy's client %q", got, testClientID)
	}
}
