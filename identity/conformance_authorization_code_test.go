package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// pkceServer is a minimal authorization server: /authorize issues a code
// bound to the code_challenge and redirects; /token redeems it only with
// the matching code_verifier (RFC 7636 §4.6).
type pkceServer struct {
	*httptest.Server
	mu         sync.Mutex
	challenges map[string]string
}

func newPKCEServer(t *testing.T) *pkceServer {
	s := &pkceServer{challenges: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("response_type") != "code" {
			http.Error(w, "bad request", 400)
			return
		}
		code := identity.GenerateState()
		s.mu.Lock()
		s.challenges[code] = q.Get("code_challenge")
		s.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+q.Get("state"), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		ch, ok := s.challenges[r.PostForm.Get("code")]
		delete(s.challenges, r.PostForm.Get("code"))
		s.mu.Unlock()
		if !ok || s256(r.PostForm.Get("code_verifier")) != ch {
			writeJSON(w, 400, `{"error":"invalid_grant","error_description":"PKCE verification failed"}`)
			return
		}
		writeJSON(w, 200, `{"access_token":"at","token_type":"Bearer","expires_in":300,"id_token":"idt"}`)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// authorize follows the authorization request to its redirect and parses
// the callback.
func (s *pkceServer) authorize(t *testing.T, challenge string) string {
	t.Helper()
	state := identity.GenerateState()
	u, err := identity.AuthorizationRequest{Address: s.URL + "/authorize", ClientID: "app", RedirectURI: "https://app.example/cb",
		Scopes: []string{"openid"}, State: state, CodeChallenge: challenge}.URL()
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	res, err := identity.ParseAuthorizationCallbackURL(resp.Header.Get("Location"), state)
	if err != nil {
		t.Fatal(err)
	}
	return res.Code
}

// TestConformanceAuthorizationCode covers conformance/authorization-code.json
// (RFC 6749 §4.1, RFC 7636).
func TestConformanceAuthorizationCode(t *testing.T) {
	ctx := context.Background()
	codeRequest := func(addr string) identity.AuthorizationCodeTokenRequest {
		return identity.AuthorizationCodeTokenRequest{
			ProtocolRequest: identity.ProtocolRequest{Address: addr, ClientAuth: identity.ClientSecretBasicAuth("app", "s")},
			Code:            "SplxlOBeZQQYbYS6WxSbIA", RedirectURI: "https://client.example.com/cb",
		}
	}
	runConformance(t, "authorization-code.json", map[string]func(*testing.T, conformanceCase){
		"ACG-001": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 200, `{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","id_token":"idt"}`)
			tok, err := identity.RequestAuthorizationCodeToken(ctx, nil, codeRequest(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.Method != http.MethodPost || got.Form.Get("grant_type") != "authorization_code" ||
				got.Form.Get("code") != "SplxlOBeZQQYbYS6WxSbIA" || got.Form.Get("redirect_uri") != "https://client.example.com/cb" {
				t.Errorf("form %v", got.Form)
			}
			if tok.AccessToken != "at" || tok.RefreshToken != "rt" || tok.IDToken != "idt" || tok.ExpiresIn != 3600 {
				t.Errorf("response %+v", tok)
			}
		},
		"ACG-002": func(t *testing.T, _ conformanceCase) {
			seen := map[string]bool{}
			for range 200 {
				v := identity.GenerateCodeVerifier()
				if len(v) < 43 || len(v) > 128 || !identity.ValidCodeVerifier(v) {
					t.Fatalf("verifier %q", v)
				}
				for _, c := range v {
					if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
						t.Fatalf("verifier %q has %q", v, c)
					}
				}
				if seen[v] {
					t.Fatal("verifier repeated")
				}
				seen[v] = true
			}
		},
		"ACG-003": func(t *testing.T, c conformanceCase) {
			var fx struct {
				Verifier  string `json:"code_verifier"`
				Method    string `json:"code_challenge_method"`
				Challenge string `json:"code_challenge"`
			}
			if err := json.Unmarshal(specFixture(t, c.Fixture), &fx); err != nil {
				t.Fatal(err)
			}
			if got := identity.S256Challenge(fx.Verifier); got != fx.Challenge || got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
				t.Errorf("S256Challenge = %q, want %q", got, fx.Challenge)
			}
			if fx.Method != identity.CodeChallengeMethodS256 || !identity.ValidCodeVerifier(fx.Verifier) {
				t.Errorf("fixture method %q / verifier validity", fx.Method)
			}
		},
		"ACG-004": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 200, `{"access_token":"at","token_type":"Bearer"}`)
			req := codeRequest(f.URL)
			req.CodeVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
			if _, err := identity.RequestAuthorizationCodeToken(ctx, nil, req); err != nil {
				t.Fatal(err)
			}
			if got := f.last(t).Form.Get("code_verifier"); got != req.CodeVerifier {
				t.Errorf("code_verifier = %q", got)
			}
		},
		"ACG-005": func(t *testing.T, _ conformanceCase) {
			f := jsonFake(t, 400, `{"error":"invalid_grant","error_description":"code expired","error_uri":"https://as.example/e"}`)
			_, err := identity.RequestAuthorizationCodeToken(ctx, nil, codeRequest(f.URL))
			var pe *identity.ProtocolError
			if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidGrant || pe.Description != "code expired" || pe.URI != "https://as.example/e" || pe.StatusCode != 400 {
				t.Errorf("got %#v", err)
			}
		},
		// The live-provider round trip runs in integration/clients_test.go
		// against oidc-provider; here the same flow runs against an
		// in-process server that enforces RFC 7636 §4.6.
		"ACG-006": func(t *testing.T, _ conformanceCase) {
			s := newPKCEServer(t)
			pk := identity.NewPKCE()
			req := identity.AuthorizationCodeTokenRequest{
				ProtocolRequest: identity.ProtocolRequest{Address: s.URL + "/token", ClientAuth: identity.PublicClientAuth("app")},
				Code:            s.authorize(t, pk.Challenge), RedirectURI: "https://app.example/cb", CodeVerifier: pk.Verifier,
			}
			tok, err := identity.RequestAuthorizationCodeToken(ctx, nil, req)
			if err != nil || tok.AccessToken != "at" {
				t.Fatalf("verifier refused: %v", err)
			}
			req.Code, req.CodeVerifier = s.authorize(t, pk.Challenge), identity.GenerateCodeVerifier()
			_, err = identity.RequestAuthorizationCodeToken(ctx, nil, req)
			var pe *identity.ProtocolError
			if !errors.As(err, &pe) || pe.Code != identity.ErrorInvalidGrant {
				t.Errorf("wrong verifier: %v", err)
			}
		},
	})
}
