package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// userOpaqueToken runs the authorization code flow of test-client for
// account with scopes openid email profile and no resource: oidc-provider
// then issues an opaque access token without aud, the only kind its
// userinfo endpoint accepts.
func userOpaqueToken(t *testing.T, p *oidcProvider, account string) string {
	t.Helper()
	verifier, challenge := pkcePair(t)
	cb := p.authorize(t, url.Values{
		"client_id": {testClientID}, "scope": {"openid email profile"}, "login_hint": {account},
		"state": {randomString(t)}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	})
	status, tr := p.token(t, basicClient(), url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {testRedirectURI},
		"code_verifier": {verifier},
	})
	if status != http.StatusOK || tr.AccessToken == "" || strings.Count(tr.AccessToken, ".") == 2 {
		t.Fatalf("code redemption: status %d %+v, want an opaque access token", status, tr)
	}
	return tr.AccessToken
}

// TestE2EUserInfoClaimsThroughCaddy: a user's opaque access token, whose
// introspection carries sub but no email nor name, is accepted by
// introspection, and Caddy completes it from oidc-provider's userinfo
// endpoint (found in discovery): the upstream gets the email and name, and
// require_claim sees email_verified. A client's own token (no sub, no user
// to ask about) keeps its own claims and fails that rule.
func TestE2EUserInfoClaimsThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	t.Setenv("CADDY_IDENTITY_E2E_INTROSPECTION_SECRET", testPostClientSecret)
	// Tokens for userinfo have no aud at oidc-provider: the handler accepts
	// any audience, from its own client test-client only.
	c := startCaddy(t, fmt.Sprintf(`		issuer %s {
			introspection {
				client_id %s
				client_secret {env.CADDY_IDENTITY_E2E_INTROSPECTION_SECRET}
				auth_method client_secret_post
			}
			userinfo
		}
		audience any
		authorized_party %s
		claim_header sub X-User-Id
		claim_header email X-User-Email
		claim_header name X-User-Name
		require_claim email_verified true`, p.URL(), testPostClientID, testClientID))

	tok := userOpaqueToken(t, p, "heidi")
	doc := providerDiscovery(t, p)
	intro, err := identity.IntrospectToken(clientsContext(t), nil, identity.IntrospectionRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: doc.IntrospectionEndpoint, ClientAuth: identity.ClientSecretBasicAuth(testClientID, testClientSecret)},
		Token:           tok,
	})
	if err != nil {
		t.Fatal(err)
	}
	var members map[string]any
	if err := json.Unmarshal(intro.Raw, &members); err != nil {
		t.Fatal(err)
	}
	if _, ok := members["email"]; intro.Subject != "heidi" || ok || members["name"] != nil {
		t.Fatalf("introspection %s: want sub heidi and neither email nor name", intro.Raw)
	}

	r := c.expectStatus(tok, http.StatusOK)
	want := map[string]string{"X-User-Id": "heidi", "X-User-Email": "heidi@example.test", "X-User-Name": "heidi"}
	for h, v := range want {
		if got := r.Upstream.Values(h); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q, want [%q]", h, got, v)
		}
	}

	// A client-credentials token of test-client: opaque, no aud, no sub.
	cc := p.clientCredentials(t, basicClient(), "", "").AccessToken
	refused := c.expectStatus(cc, http.StatusForbidden)
	if !strings.Contains(refused.WWWAuthenticate, "does not satisfy the access policy") {
		t.Errorf("client token: WWW-Authenticate %q, want the claim rule's refusal", refused.WWWAuthenticate)
	}
}
