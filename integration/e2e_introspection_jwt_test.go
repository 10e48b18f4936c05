package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// writeJWKFile writes key (a private JWK) to a file of its own and returns
// the path.
func writeJWKFile(t *testing.T, key jose.JSONWebKey) string {
	t.Helper()
	data, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "introspection.jwk")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestE2EIntrospectionPrivateKeyJWTThroughCaddy: Caddy introspects an
// opaque oidc-provider token at the endpoint of the discovery document,
// authenticated as test-client-jwt with private_key_jwt (the key in a JWK
// file), taking plain JSON answers and, with accept jwt, only RFC 9701
// signed ones, which oidc-provider signs RS256 with its published keys.
// Refusals show that the assertion and the signed answer are checked: a
// key the provider does not know, and an algorithm allow-list without the
// provider's RS256, both leave opaque tokens unverifiable (503).
func TestE2EIntrospectionPrivateKeyJWTThroughCaddy(t *testing.T) {
	clientKey := newSigningKey(t, "ES256", "introspection-1")
	p := startProvider(t, providerOptions{ClientJWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{clientKey.Public()}}})
	keyFile := writeJWKFile(t, clientKey)
	tok := p.accessToken(t, resourceOpaque)
	if strings.Count(tok, ".") == 2 {
		t.Fatalf("the provider issued a JWT for the opaque resource: %s", tok)
	}
	for _, tc := range []struct {
		name, keyFile, introspection, issuer string
		want                                 int
	}{
		{"plain answers", keyFile, "", "", http.StatusOK},
		{"signed answers", keyFile, "accept jwt", "", http.StatusOK},
		{"signed answers, RS256 not allowed", keyFile, "accept jwt", "algorithms ES256", http.StatusServiceUnavailable},
		{"a key the provider does not know", writeJWKFile(t, newSigningKey(t, "ES256", "introspection-1")), "", "", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCaddy(t, fmt.Sprintf(`		issuer %s {
			%s
			introspection {
				client_id %s
				key_file %s
				%s
			}
		}
		audience %s
		claim_header client_id X-Client-Id`, p.URL(), tc.issuer, testJWTClientID, tc.keyFile, tc.introspection, resourceOpaque))
			r := c.expectStatus(tok, tc.want)
			if tc.want != http.StatusOK {
				return
			}
			if got := r.Upstream.Values("X-Client-Id"); len(got) != 1 || got[0] != testClientID {
				t.Errorf("upstream X-Client-Id = %q, want [%q]", got, testClientID)
			}
			// A token the provider never issued is inactive: the answer
			// came, authenticated and (with accept jwt) verified.
			expectRefused(t, c.get("not-a-token-of-the-provider", nil), `error="invalid_token"`)
		})
	}
}

// TestE2EIntrospectionOrderThroughCaddy: two oidc-providers, both
// introspecting, asked in introspection_order. Each one's opaque token is
// accepted for its own issuer (the first provider says inactive to the
// second one's token, which then goes on), and a token neither issued is
// inactive at both.
func TestE2EIntrospectionOrderThroughCaddy(t *testing.T) {
	first, second := startProvider(t, providerOptions{}), startProvider(t, providerOptions{})
	t.Setenv("CADDY_IDENTITY_E2E_INTROSPECTION_SECRET", testPostClientSecret)
	issuer := func(p *oidcProvider) string {
		return fmt.Sprintf(`		issuer %s {
			introspection {
				client_id %s
				client_secret {env.CADDY_IDENTITY_E2E_INTROSPECTION_SECRET}
				auth_method client_secret_post
			}
		}
`, p.URL(), testPostClientID)
	}
	c := startCaddy(t, issuer(first)+issuer(second)+fmt.Sprintf(`		introspection_order %s %s
		audience %s
		claim_header iss X-Token-Issuer`, first.URL(), second.URL(), resourceOpaque))
	for _, p := range []*oidcProvider{first, second, first} {
		tok := p.accessToken(t, resourceOpaque)
		r := c.expectStatus(tok, http.StatusOK)
		if got := r.Upstream.Get("X-Token-Issuer"); got != p.URL() {
			t.Errorf("accepted with iss %q, want %q", got, p.URL())
		}
	}
	expectRefused(t, c.get("not-a-token-of-either-provider", nil), `error="invalid_token"`, "not active")
}
