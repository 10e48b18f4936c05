package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestTokenPresentingRequestsShareProtocolRequest checks how the requests
// that present a token (userinfo, registration) use their embedded
// ProtocolRequest: Parameters in the query (or the form of a POST),
// Header sent, ClientAuth refused before any request.
func TestTokenPresentingRequestsShareProtocolRequest(t *testing.T) {
	type seen struct{ method, query, body, auth, extra string }
	var last atomic.Pointer[seen]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		last.Store(&seen{r.Method, r.URL.RawQuery, r.PostForm.Encode(), r.Header.Get("Authorization"), r.Header.Get("X-Extra")})
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/register" {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"client_id":"c1"}`))
			return
		}
		_, _ = w.Write([]byte(`{"sub":"u1"}`))
	}))
	defer srv.Close()
	ctx := context.Background()
	params := url.Values{"claims_locales": {"de"}}
	hdr := http.Header{"X-Extra": {"1"}}
	pr := func(path string) identity.ProtocolRequest {
		return identity.ProtocolRequest{Address: srv.URL + path, Parameters: params, Header: hdr}
	}
	tests := []struct {
		name string
		call func() error
		want seen
	}{
		{"userinfo GET", func() error {
			_, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: pr("/userinfo"), Token: "at"})
			return err
		}, seen{"GET", "claims_locales=de", "", "Bearer at", "1"}},
		{"userinfo POST", func() error {
			_, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: pr("/userinfo"), Token: "at", UsePost: true})
			return err
		}, seen{"POST", "", "claims_locales=de", "Bearer at", "1"}},
		{"registration", func() error {
			_, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{ProtocolRequest: pr("/register"), InitialAccessToken: "iat"})
			return err
		}, seen{"POST", "claims_locales=de", "", "Bearer iat", "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			if got := *last.Load(); got != tc.want {
				t.Errorf("server saw %+v, want %+v", got, tc.want)
			}
		})
	}
	last.Store(nil)
	withAuth := pr("/userinfo")
	withAuth.ClientAuth = identity.ClientSecretBasicAuth("c", "s")
	if _, err := identity.RequestUserInfo(ctx, nil, identity.UserInfoRequest{ProtocolRequest: withAuth, Token: "at"}); err == nil || !strings.Contains(err.Error(), "ClientAuth") {
		t.Errorf("userinfo with client authentication: %v", err)
	}
	withAuth.Address = srv.URL + "/register"
	if _, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{ProtocolRequest: withAuth}); err == nil || !strings.Contains(err.Error(), "ClientAuth") {
		t.Errorf("registration with client authentication: %v", err)
	}
	if last.Load() != nil {
		t.Error("a request with client authentication was sent")
	}
}
