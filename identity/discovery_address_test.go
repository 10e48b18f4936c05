package identity_test

import (
	"context"
	"errors"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

func TestDiscoveryAcceptsTheDiscoveryAddress(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithIssuerPath("/realms/demo"))
	ctx := context.Background()
	oauth := identity.DiscoveryPolicy{Kind: identity.OAuthAuthorizationServer}
	tests := []struct {
		name    string
		address string
		policy  identity.DiscoveryPolicy
		want    error
	}{
		{"issuer", iss.URL, identity.DiscoveryPolicy{}, nil},
		{"OpenID discovery address", iss.DiscoveryURL(), identity.DiscoveryPolicy{}, nil},
		{"OpenID discovery address with a trailing slash", iss.DiscoveryURL() + "/", identity.DiscoveryPolicy{}, nil},
		{"RFC 8414 address", iss.OAuthMetadataURL(), oauth, nil},
		{"RFC 8414 address for OpenID", iss.OAuthMetadataURL(), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed},
		{"OpenID address for RFC 8414", iss.DiscoveryURL(), oauth, identity.ErrEndpointNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, _, err := identity.FetchDiscovery(ctx, iss.Client(), tc.address, tc.policy)
			if !errors.Is(err, tc.want) {
				t.Fatalf("FetchDiscovery: %v, want %v", err, tc.want)
			}
			if err == nil && doc.Issuer != iss.URL {
				t.Errorf("issuer %q", doc.Issuer)
			}
			p, err := identity.NewProvider(tc.address, identity.ProviderOptions{HTTPClient: iss.Client(), Policy: tc.policy})
			if !errors.Is(err, tc.want) {
				t.Fatalf("NewProvider: %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			defer p.Close()
			if p.Issuer() != iss.URL {
				t.Errorf("provider issuer %q", p.Issuer())
			}
			if _, err := p.Discovery(ctx); err != nil {
				t.Errorf("Discovery: %v", err)
			}
		})
	}
}
