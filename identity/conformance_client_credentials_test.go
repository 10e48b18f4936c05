package identity_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// countingTransport counts the requests a client sends.
type countingTransport struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

const ccResponse = `{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"Bearer","expires_in":3600,"scope":"a b"}`

func ccRequest(addr string, auth identity.ClientAuth) identity.ClientCredentialsTokenRequest {
	return identity.ClientCredentialsTokenRequest{ProtocolRequest: identity.ProtocolRequest{Address: addr + "/token", ClientAuth: auth}}
}

// TestConformanceClientCredentials covers conformance/client-credentials.json
// (RFC 6749 §4.4, §2.3, §5.1–5.2).
func TestConformanceClientCredentials(t *testing.T) {
	ctx := context.Background()
	runConformance(t, "client-credentials.json", map[string]func(*testing.T, conformanceCase){
		"CC-001": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 200, ccResponse)
			tok, err := identity.RequestClientCredentialsToken(ctx, nil, ccRequest(f.URL, identity.ClientAuth{ClientID: "c", ClientSecret: "s"}))
			if err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.Method != http.MethodPost || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || got.Form.Get("grant_type") != "client_credentials" {
				t.Errorf("request %s %v %v", got.Method, got.Header, got.Form)
			}
			if tok.AccessToken != "2YotnFZFEjr1zCsicMWpAA" || tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 || tok.Expiry.IsZero() || tok.Scope != "a b" {
				t.Errorf("typed response %+v", tok)
			}
		},
		"CC-002": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 200, ccResponse)
			id, secret := "client id/1", "s3cr=t&+"
			if _, err := identity.RequestClientCredentialsToken(ctx, nil, ccRequest(f.URL, identity.ClientAuth{ClientID: id, ClientSecret: secret})); err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			u, p := basicCreds(t, got.Header.Get("Authorization"))
			if u != url.QueryEscape(id) || p != url.QueryEscape(secret) {
				t.Errorf("Basic %q:%q, want form-urlencoded %q:%q", u, p, url.QueryEscape(id), url.QueryEscape(secret))
			}
			if got.Form.Has("client_id") || got.Form.Has("client_secret") {
				t.Errorf("client credentials in the body: %v", got.Form)
			}
		},
		"CC-003": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 200, ccResponse)
			if _, err := identity.RequestClientCredentialsToken(ctx, nil, ccRequest(f.URL, identity.ClientSecretPostAuth("c", "s"))); err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.Form.Get("client_id") != "c" || got.Form.Get("client_secret") != "s" || got.Header.Get("Authorization") != "" {
				t.Errorf("client_secret_post: %v %v", got.Form, got.Header)
			}
		},
		"CC-004": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 401, `{"error":"invalid_client","error_description":"unknown client","error_uri":"https://as.example/errors/invalid_client"}`)
			_, err := identity.RequestClientCredentialsToken(ctx, nil, ccRequest(f.URL, identity.ClientAuth{ClientID: "c", ClientSecret: "s"}))
			var pe *identity.ProtocolError
			if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidClient || pe.Description != "unknown client" ||
				pe.URI != "https://as.example/errors/invalid_client" || pe.StatusCode != 401 {
				t.Errorf("got %#v", err)
			}
		},
		"CC-005": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 200, ccResponse)
			req := ccRequest(f.URL, identity.ClientAuth{ClientID: "c", ClientSecret: "s"})
			req.Scopes = []string{"a", "b"}
			if _, err := identity.RequestClientCredentialsToken(ctx, nil, req); err != nil {
				t.Fatal(err)
			}
			if got := f.last(t); got.Form.Get("scope") != "a b" || len(got.Form["scope"]) != 1 {
				t.Errorf("scope = %q", got.Form["scope"])
			}
		},
		"CC-006": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 200, ccResponse)
			rt := &countingTransport{base: http.DefaultTransport}
			client := &http.Client{Transport: rt}
			req := ccRequest(f.URL, identity.ClientAuth{ClientID: "c", ClientSecret: "s"})
			req.Parameters = url.Values{"tenant": {"acme"}, "custom": {"1", "2"}}
			if _, err := identity.RequestClientCredentialsToken(ctx, client, req); err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.Form.Get("tenant") != "acme" || len(got.Form["custom"]) != 2 {
				t.Errorf("extra parameters missing: %v", got.Form)
			}
			if rt.n.Load() != 1 {
				t.Errorf("supplied client performed %d requests", rt.n.Load())
			}
		},
	})
}
