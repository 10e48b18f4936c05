package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// exchangeFixtureForm reads an annotated request fixture (JSON key/value
// pairs standing for the form body) without its _comment.
func exchangeFixtureForm(t *testing.T, name string) url.Values {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(specFixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "_comment")
	v := url.Values{}
	for k, s := range m {
		v.Set(k, s)
	}
	return v
}

// TestConformanceTokenExchange covers conformance/token-exchange.json (RFC 8693).
func TestConformanceTokenExchange(t *testing.T) {
	ctx := context.Background()
	serve := func(t *testing.T, status int, body []byte) *fakeEndpoint {
		return newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	}
	base := func(addr string) identity.TokenExchangeTokenRequest {
		return identity.TokenExchangeTokenRequest{
			ProtocolRequest:  identity.ProtocolRequest{Address: addr + "/token", ClientAuth: identity.ClientSecretBasicAuth("gateway", "s")},
			SubjectToken:     "eyJhbGciOiJFUzI1NiJ9.subject.tok",
			SubjectTokenType: identity.TokenTypeAccessToken,
		}
	}
	sameForm := func(t *testing.T, got, want url.Values) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("form %v\nwant %v", got, want)
		}
		for k := range want {
			if got.Get(k) != want.Get(k) || len(got[k]) != 1 {
				t.Errorf("%s = %q, want %q", k, got[k], want.Get(k))
			}
		}
	}
	runConformance(t, "token-exchange.json", map[string]func(*testing.T, conformanceCase){
		"EXCH-001": func(t *testing.T, c conformanceCase) {
			f := serve(t, 200, specFixture(t, c.Fixture))
			tok, err := identity.RequestTokenExchangeToken(ctx, nil, base(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", got.Header.Get("Content-Type"))
			}
			sameForm(t, got.Form, url.Values{
				"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token":      {"eyJhbGciOiJFUzI1NiJ9.subject.tok"},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			})
			if tok.AccessToken != "eyJhbGciOiJFUzI1NiIsImtpZCI6IjllciJ9.impersonation.tok" || tok.IssuedTokenType != identity.TokenTypeAccessToken ||
				tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 {
				t.Errorf("response %+v", tok)
			}
		},
		"EXCH-002": func(t *testing.T, c conformanceCase) {
			f := serve(t, 200, specFixture(t, c.Fixture))
			want := exchangeFixtureForm(t, "token-exchange/exchange-request-delegation.json")
			req := base(f.URL)
			req.ActorToken, req.ActorTokenType = want.Get("actor_token"), want.Get("actor_token_type")
			req.Resource = []string{want.Get("resource")}
			tok, err := identity.RequestTokenExchangeToken(ctx, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			sameForm(t, f.last(t).Form, want)
			if tok.AccessToken != "eyJhbGciOiJFUzI1NiIsImtpZCI6IjllciJ9.delegation.tok" || tok.Scope != "https://api.example.com/read https://api.example.com/write" {
				t.Errorf("response %+v", tok)
			}
		},
		"EXCH-003": func(t *testing.T, c conformanceCase) {
			var fx struct {
				URIs []string `json:"token_type_uris"`
			}
			if err := json.Unmarshal(specFixture(t, c.Fixture), &fx); err != nil {
				t.Fatal(err)
			}
			consts := []string{identity.TokenTypeAccessToken, identity.TokenTypeRefreshToken, identity.TokenTypeIDToken,
				identity.TokenTypeSAML1, identity.TokenTypeSAML2, identity.TokenTypeJWT}
			if len(fx.URIs) != 6 {
				t.Fatalf("fixture has %d URIs", len(fx.URIs))
			}
			f := serve(t, 200, []byte(`{"access_token":"a","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","token_type":"N_A"}`))
			for i, uri := range fx.URIs {
				if consts[i] != uri {
					t.Errorf("constant %q differs from %q", consts[i], uri)
				}
				req := base(f.URL)
				req.SubjectTokenType = uri
				if _, err := identity.RequestTokenExchangeToken(ctx, nil, req); err != nil {
					t.Fatal(err)
				}
				got := f.last(t)
				if got.Form.Get("subject_token_type") != uri {
					t.Errorf("sent %q for %q", got.Form.Get("subject_token_type"), uri)
				}
				if raw := string(got.Body); !strings.Contains(raw, "subject_token_type="+url.QueryEscape(uri)) {
					t.Errorf("body %q does not carry the full URI", raw)
				}
			}
		},
		"EXCH-004": func(t *testing.T, c conformanceCase) {
			// The server issues a JWT although an access token was
			// requested: issued_token_type may differ.
			f := serve(t, 200, []byte(`{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","token_type":"Bearer"}`))
			want := exchangeFixtureForm(t, c.Fixture)
			req := base(f.URL)
			req.RequestedTokenType = want.Get("requested_token_type")
			req.Audience = []string{want.Get("audience")}
			req.Scopes = []string{want.Get("scope")}
			tok, err := identity.RequestTokenExchangeToken(ctx, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			sameForm(t, f.last(t).Form, want)
			if tok.IssuedTokenType != identity.TokenTypeJWT {
				t.Errorf("issued_token_type %q", tok.IssuedTokenType)
			}
		},
		"EXCH-005": func(t *testing.T, c conformanceCase) {
			f := serve(t, 200, specFixture(t, c.Fixture))
			tok, err := identity.RequestTokenExchangeToken(ctx, nil, base(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "PHNhbWxwOlJlc3BvbnNlIHhtbG5zOnNhbWxw...omitted" || tok.IssuedTokenType != identity.TokenTypeSAML2 ||
				tok.TokenType != identity.TokenTypeNA || tok.ExpiresIn != 60 || tok.Scope != "" || tok.RefreshToken != "" {
				t.Errorf("response %+v", tok)
			}
		},
		"EXCH-006": func(t *testing.T, c conformanceCase) {
			for fixture, code := range map[string]string{
				c.Fixture: identity.ErrorInvalidGrant,
				"token-exchange/exchange-error-invalid-request.json": identity.ErrorInvalidRequest,
			} {
				f := serve(t, 400, specFixture(t, fixture))
				_, err := identity.RequestTokenExchangeToken(ctx, nil, base(f.URL))
				var pe *identity.ProtocolError
				if !errors.As(err, &pe) || pe.Code != code || pe.Description == "" || pe.StatusCode != 400 {
					t.Errorf("%s: got %#v", fixture, err)
				}
			}
		},
	})
}
