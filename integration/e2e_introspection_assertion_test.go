package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// wrongAudience is an assertion audience oidc-provider does not accept:
// neither its issuer, nor its token endpoint, nor the endpoint called.
const wrongAudience = "https://other-server.example.test/oauth2/token"

// TestE2EAssertionAudienceThroughCaddy: Caddy authenticates as
// test-client-jwt with private_key_jwt under each assertion_audience.
// oidc-provider takes the issuer identifier, the token endpoint and the
// endpoint called (the default), for introspection and for an upstream
// client-credentials token, and refuses any other audience with 401
// invalid_client, which Caddy answers with 503 (the provider refuses the
// handler, not the caller).
func TestE2EAssertionAudienceThroughCaddy(t *testing.T) {
	clientKey := newSigningKey(t, "ES256", "assertion-1")
	p := startProvider(t, providerOptions{ClientJWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{clientKey.Public()}}})
	keyFile := writeJWKFile(t, clientKey)
	opaque := p.accessToken(t, resourceOpaque)

	t.Run("provider", func(t *testing.T) {
		doc := providerDiscovery(t, p)
		auth := identity.PrivateKeyJWTAuth(testJWTClientID, clientKey, "")
		for _, aud := range []string{p.URL(), doc.TokenEndpoint, doc.IntrospectionEndpoint, wrongAudience} {
			auth.Audience = aud
			res, err := identity.IntrospectToken(clientsContext(t), nil, identity.IntrospectionRequest{
				ProtocolRequest: identity.ProtocolRequest{Address: doc.IntrospectionEndpoint, ClientAuth: auth},
				Token:           opaque,
			})
			if aud != wrongAudience {
				if err != nil || !res.Active {
					t.Errorf("introspection with aud %s: %v (active %v)", aud, err, res != nil && res.Active)
				}
				continue
			}
			pe := expectProtocolError(t, err, http.StatusUnauthorized, "invalid_client")
			t.Logf("introspection endpoint, aud %s: %d %s %q", aud, pe.StatusCode, pe.Code, pe.Description)
			_, err = identity.RequestClientCredentialsToken(clientsContext(t), nil, identity.ClientCredentialsTokenRequest{
				ProtocolRequest: identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: auth},
				Resource:        []string{resourceES256},
			})
			pe = expectProtocolError(t, err, http.StatusUnauthorized, "invalid_client")
			t.Logf("token endpoint, aud %s: %d %s %q", aud, pe.StatusCode, pe.Code, pe.Description)
		}
	})

	for _, tc := range []struct {
		audience string
		want     int
	}{
		{"", http.StatusOK},
		{"assertion_audience endpoint", http.StatusOK},
		{"assertion_audience issuer", http.StatusOK},
		{"assertion_audience token_endpoint", http.StatusOK},
		{"assertion_audience " + wrongAudience, http.StatusServiceUnavailable},
	} {
		t.Run("introspection "+tc.audience, func(t *testing.T) {
			c := startCaddy(t, fmt.Sprintf(`		issuer %s {
			introspection {
				client_id %s
				key_file %s
				%s
			}
		}
		audience %s
		claim_header client_id X-Client-Id`, p.URL(), testJWTClientID, keyFile, tc.audience, resourceOpaque))
			r := c.expectStatus(opaque, tc.want)
			if tc.want != http.StatusOK {
				if n := len(caddyLogEntries(t, c, "introspection endpoint unavailable: opaque tokens cannot be checked")); n != 1 {
					t.Errorf("the refused client authentication logged %d times, want once", n)
				}
				return
			}
			if got := r.Upstream.Values("X-Client-Id"); len(got) != 1 || got[0] != testClientID {
				t.Errorf("upstream X-Client-Id = %q, want [%q]", got, testClientID)
			}
		})
	}

	for _, tc := range []struct {
		audience string
		want     int
	}{
		{"issuer", http.StatusOK},
		{wrongAudience, http.StatusServiceUnavailable},
	} {
		t.Run("upstream_token "+tc.audience, func(t *testing.T) {
			c := startCaddy(t, identityBlockFor(p)+fmt.Sprintf(`
		upstream_token client_credentials {
			client_id %s
			key_file %s
			assertion_audience %s
			resource %s
			scopes api:read
			header X-Service-Token
		}`, testJWTClientID, keyFile, tc.audience, resourceES256))
			caller := p.accessToken(t, resourceRS256)
			r := c.expectStatus(caller, tc.want)
			if tc.want != http.StatusOK {
				return
			}
			service := r.Upstream.Get("X-Service-Token")
			if service == "" || service == caller || strings.Count(service, ".") != 2 {
				t.Fatalf("upstream X-Service-Token %q, want a JWT other than the caller's", service)
			}
			if got := c.expectStatus(service, http.StatusOK).Upstream.Get("X-User-Id"); got != testJWTClientID {
				t.Errorf("the service token's sub %q, want Caddy's client %q", got, testJWTClientID)
			}
		})
	}
}
