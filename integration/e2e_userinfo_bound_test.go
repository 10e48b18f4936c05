package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestE2EUserInfoDPoPBoundThroughCaddy: a user's opaque DPoP-bound access
// token from oidc-provider, whose introspection carries cnf.jkt and sub but
// no email. oidc-provider's userinfo endpoint would answer with the email
// only to a DPoP request with the client's proof (it refuses the token as
// a bearer token, see TestDPoPUserTokenAgainstProvider), so Caddy does not
// ask it: on_error refuse answers 503 with its own reason, on_error
// continue passes the token's own claims, and the log says why once,
// not as an outage of the endpoint.
func TestE2EUserInfoDPoPBoundThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	doc := providerDiscovery(t, p)
	t.Setenv("CADDY_IDENTITY_E2E_INTROSPECTION_SECRET", testPostClientSecret)
	for _, onError := range []string{"refuse", "continue"} {
		t.Run("on_error "+onError, func(t *testing.T) {
			c := startCaddy(t, fmt.Sprintf(`		issuer %s {
			introspection {
				client_id %s
				client_secret {env.CADDY_IDENTITY_E2E_INTROSPECTION_SECRET}
				auth_method client_secret_post
			}
			userinfo {
				on_error %s
			}
		}
		audience any
		authorized_party %s
		claim_header sub X-User-Id
		claim_header email X-User-Email`, p.URL(), testPostClientID, onError, testDPoPClientID))

			key := newDPoPKey(t, "ES256")
			tok := userToken(t, p, doc, identity.ClientSecretBasicAuth(testDPoPClientID, testDPoPClientSecret), key, "ivan").AccessToken
			if strings.Count(tok, ".") == 2 {
				t.Fatalf("the provider issued a JWT: %s", tok)
			}
			r := c.send(c.dpopRequest(key, tok, "/", ""))
			switch onError {
			case "refuse":
				if r.Status != http.StatusServiceUnavailable || r.WWWAuthenticate != "" {
					t.Fatalf("status %d (WWW-Authenticate %q), want 503 without a challenge: %s", r.Status, r.WWWAuthenticate, r.Body)
				}
			case "continue":
				if r.Status != http.StatusOK {
					t.Fatalf("status %d (WWW-Authenticate %q): %s", r.Status, r.WWWAuthenticate, r.Body)
				}
				if r.Upstream.Get("X-User-Id") != "ivan" || r.Upstream.Get("X-User-Email") != "" {
					t.Errorf("upstream X-User-Id %q, X-User-Email %q: want the introspected sub only",
						r.Upstream.Get("X-User-Id"), r.Upstream.Get("X-User-Email"))
				}
			}
			// Without its proof the token gets the binding's 401.
			expectRefused(t, c.get(tok, nil), `error="invalid_token"`, "DPoP-bound")

			log := readLog(c.logPath)
			if n := strings.Count(log, "userinfo not asked for sender-constrained tokens"); n != 1 {
				t.Errorf("%d skip lines, want 1", n)
			}
			if !strings.Contains(log, `"binding":"dpop"`) {
				t.Error("the skip line does not name the dpop binding")
			}
			if strings.Contains(log, "userinfo endpoint unavailable") {
				t.Error("the skip is logged as an outage of the userinfo endpoint")
			}
		})
	}
}
