package caddyidentity

import (
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestHandlerDiscoveryChecksOnlyJWKSURI: the handler fetches only jwks_uri,
// so a discovery document whose other endpoints live on other hosts (as
// with Entra ID's userinfo on graph.microsoft.com, Google's on
// googleapis.com, Cognito's hosted login domain) is accepted, while
// jwks_uri itself must stay on the issuer's host unless jwks_uri_bases
// allows another.
func TestHandlerDiscoveryChecksOnlyJWKSURI(t *testing.T) {
	t.Run("other endpoints on other hosts", func(t *testing.T) {
		iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
			m["userinfo_endpoint"] = "https://graph.example.test/oidc/userinfo"
			m["authorization_endpoint"] = "https://login.example.test/authorize"
			m["end_session_endpoint"] = "https://login.example.test/logout"
		}))
		x := newHX(t, basicHandler(iss))
		wantStatus(t, x.get("/", bearer(iss.Token(t, "u", nil))), 200)
	})

	// keys serves the JWKS on another host (another port of 127.0.0.1);
	// tokens are signed with its keys and carry the issuer's iss.
	keys := identitytest.NewIssuer(t)
	withForeignJWKS := func(t *testing.T) *identitytest.Issuer {
		return identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
			m["jwks_uri"] = keys.JWKSURL()
		}))
	}

	t.Run("jwks_uri on another host is refused", func(t *testing.T) {
		iss := withForeignJWKS(t)
		x := newHX(t, basicHandler(iss))
		wantStatus(t, x.get("/", bearer(keys.Token(t, "u", map[string]any{"iss": iss.URL}))), 503)
	})

	t.Run("jwks_uri under a jwks_uri base is accepted", func(t *testing.T) {
		iss := withForeignJWKS(t)
		h := basicHandler(iss)
		h.Issuers[0].JWKSURIBases = []string{keys.URL + "/"}
		x := newHX(t, h)
		wantStatus(t, x.get("/", bearer(keys.Token(t, "u", map[string]any{"iss": iss.URL}))), 200)
	})
}

func TestCheckJWKSURIBases(t *testing.T) {
	tests := []struct {
		name    string
		is      IssuerConfig
		wantErr string
	}{
		{"none", IssuerConfig{Issuer: "https://accounts.google.com"}, ""},
		{"https prefix", IssuerConfig{Issuer: "https://accounts.google.com", JWKSURIBases: []string{"https://www.googleapis.com/oauth2/"}}, ""},
		{"placeholder", IssuerConfig{Issuer: "https://id.example.com", JWKSURIBases: []string{"{env.KEYS_BASE}"}}, ""},
		{"http refused", IssuerConfig{Issuer: "https://id.example.com", JWKSURIBases: []string{"http://keys.example.com/"}}, "https URL prefix"},
		{"http with insecure_allow_http", IssuerConfig{Issuer: "http://id.example.com", InsecureAllowHTTP: true, JWKSURIBases: []string{"http://keys.example.com/"}}, ""},
		{"no host", IssuerConfig{Issuer: "https://id.example.com", JWKSURIBases: []string{"/keys"}}, "https URL prefix"},
		{"query", IssuerConfig{Issuer: "https://id.example.com", JWKSURIBases: []string{"https://keys.example.com/?a=b"}}, "https URL prefix"},
		{"with jwks_url", IssuerConfig{Issuer: "https://id.example.com", JWKSURL: "https://keys.example.com/jwks", JWKSURIBases: []string{"https://keys.example.com/"}}, "apply to discovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkJWKSURIBases(&tt.is)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("checkJWKSURIBases = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
