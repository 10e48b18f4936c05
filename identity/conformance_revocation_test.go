package identity_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestConformanceRevocation covers conformance/revocation.json (RFC 7009).
func TestConformanceRevocation(t *testing.T) {
	ctx := context.Background()
	serve := func(t *testing.T, status int, body []byte) *fakeEndpoint {
		return newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
			if len(body) > 0 {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	}
	request := func(addr, token string) identity.RevocationRequest {
		return identity.RevocationRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: addr + "/revoke", ClientAuth: identity.ClientSecretBasicAuth("c", "s")},
			Token:           token,
		}
	}
	protocolError := func(t *testing.T, err error, code string, status int) {
		t.Helper()
		var pe *identity.ProtocolError
		if !errors.As(err, &pe) || pe.Code != code || pe.Description == "" || pe.StatusCode != status {
			t.Errorf("got %#v, want %s (HTTP %d)", err, code, status)
		}
	}
	runConformance(t, "revocation.json", map[string]func(*testing.T, conformanceCase){
		"REV-001": func(t *testing.T, c conformanceCase) {
			for _, body := range [][]byte{specFixture(t, c.Fixture), specFixture(t, "revocation/revoke-success-empty-object.json")} {
				f := serve(t, 200, body)
				errValid := identity.RevokeToken(ctx, nil, request(f.URL, "valid-refresh-token"))
				errUnknown := identity.RevokeToken(ctx, nil, request(f.URL, "unknown-or-expired"))
				if errValid != nil || errUnknown != nil {
					t.Errorf("body %q: %v / %v", body, errValid, errUnknown)
				}
				got := f.last(t)
				if got.Method != http.MethodPost || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || got.Form.Get("token") != "unknown-or-expired" {
					t.Errorf("request %s %v %v", got.Method, got.Header, got.Form)
				}
			}
		},
		"REV-002": func(t *testing.T, _ conformanceCase) {
			f := serve(t, 200, nil)
			for _, hint := range []string{identity.TokenTypeHintAccessToken, identity.TokenTypeHintRefreshToken} {
				req := request(f.URL, "tok")
				req.TokenTypeHint = hint
				if err := identity.RevokeToken(ctx, nil, req); err != nil {
					t.Fatal(err)
				}
				if got := f.last(t).Form; got.Get("token_type_hint") != hint || got.Get("token") != "tok" {
					t.Errorf("form %v", got)
				}
			}
		},
		"REV-003": func(t *testing.T, c conformanceCase) {
			f := serve(t, 400, specFixture(t, c.Fixture))
			protocolError(t, identity.RevokeToken(ctx, nil, request(f.URL, "t")), identity.ErrorUnsupportedTokenType, 400)
		},
		"REV-004": func(t *testing.T, c conformanceCase) {
			f := serve(t, 401, specFixture(t, c.Fixture))
			protocolError(t, identity.RevokeToken(ctx, nil, request(f.URL, "t")), identity.ErrorInvalidClient, 401)
		},
		"REV-005": func(t *testing.T, c conformanceCase) {
			doc, err := identity.ParseDiscovery(specFixture(t, c.Fixture))
			if err != nil {
				t.Fatal(err)
			}
			srv, client := newRoutedTLS(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
			req := request("", "t")
			req.Address = doc.RevocationEndpoint
			if err := identity.RevokeToken(ctx, client, req); err != nil {
				t.Fatal(err)
			}
			if got := <-srv.hosts; got != "server.example.com/revoke" {
				t.Errorf("request went to %q, not the discovered revocation_endpoint", got)
			}
		},
	})
}
