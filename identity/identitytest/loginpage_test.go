package identitytest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// loginForm is what the login page answered: its status, body and the
// pending request of its form.
type loginForm struct {
	status  int
	body    string
	request string
}

var requestField = regexp.MustCompile(`name="` + identitytest.LoginFieldRequest + `" value="([^"]*)"`)

// readLoginForm reads a login page answer.
func readLoginForm(t *testing.T, resp *http.Response) loginForm {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := loginForm{status: resp.StatusCode, body: string(raw)}
	if m := requestField.FindStringSubmatch(f.body); m != nil {
		f.request = m[1]
	}
	return f
}

func TestLoginPage(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"),
		identitytest.WithLoginPage(map[string]string{"alice": "wonderland", "bob": "builder"}))
	c := oauthClient{t, iss}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	authz := url.Values{
		"response_type": {"code"}, "client_id": {"client"}, "redirect_uri": {"https://app.example/cb?x=1"},
		"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}, "scope": {"openid"},
		"state": {"st"}, "nonce": {"n"}, "login_hint": {"alice"},
	}
	open := func(q url.Values) loginForm {
		t.Helper()
		resp, err := noFollow.Get(iss.URL + identitytest.AuthorizePath + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return readLoginForm(t, resp)
	}
	post := func(request, user, password string) *http.Response {
		t.Helper()
		resp, err := noFollow.PostForm(iss.URL+identitytest.AuthorizePath, url.Values{
			identitytest.LoginFieldRequest: {request}, identitytest.LoginFieldUsername: {user}, identitytest.LoginFieldPassword: {password},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	page := open(authz)
	if page.status != http.StatusOK || page.request == "" || !strings.Contains(page.body, `value="alice"`) ||
		!strings.Contains(page.body, `action="`+iss.URL+identitytest.AuthorizePath+`"`) {
		t.Fatalf("login page: %d\n%s", page.status, page.body)
	}
	// Invalid requests are refused before any form.
	bad := url.Values{}
	for k, v := range authz {
		bad[k] = v
	}
	bad.Del("code_challenge")
	if f := open(bad); f.status != http.StatusBadRequest || f.request != "" {
		t.Errorf("request without PKCE: %d %q", f.status, f.body)
	}

	for _, tc := range []struct{ name, request, user, password string }{
		{"wrong password", page.request, "alice", "builder"},
		{"unknown user", page.request, "mallory", "wonderland"},
		{"empty password", page.request, "alice", ""},
		{"another user's password", page.request, "bob", "wonderland"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := readLoginForm(t, post(tc.request, tc.user, tc.password))
			if f.status != http.StatusOK || f.request != page.request || !strings.Contains(f.body, identitytest.LoginFailedMessage) {
				t.Errorf("got %d, request %q:\n%s", f.status, f.request, f.body)
			}
		})
	}
	if f := readLoginForm(t, post("forged", "alice", "wonderland")); f.status != http.StatusBadRequest {
		t.Errorf("unknown pending request: %d %s", f.status, f.body)
	}

	// The right password, after the failures, completes the request.
	resp := post(page.request, "alice", "wonderland")
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Host != "app.example" || loc.Path != "/cb" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cb := loc.Query()
	if cb.Get("x") != "1" || cb.Get("state") != "st" || cb.Get("iss") != iss.URL || cb.Get("code") == "" {
		t.Errorf("callback %v", cb)
	}
	if f := readLoginForm(t, post(page.request, "alice", "wonderland")); f.status != http.StatusBadRequest {
		t.Errorf("pending request used twice: %d", f.status)
	}
	status, tok := c.post(identitytest.TokenPath, "client", "secret", url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Get("code")},
		"redirect_uri": {"https://app.example/cb?x=1"}, "code_verifier": {verifier},
	})
	idToken, _ := tok["id_token"].(string)
	if status != http.StatusOK || idToken == "" {
		t.Fatalf("code exchange: %d %v", status, tok)
	}
	if claims := payload(t, idToken); claims["sub"] != "alice" || claims["nonce"] != "n" {
		t.Errorf("ID token claims %v, want sub alice", claims)
	}

	// A pushed request shows the form too; bob signs in.
	status, par := c.post(identitytest.PARPath, "client", "secret", url.Values{
		"response_type": {"code"}, "redirect_uri": {"https://app.example/cb"},
		"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}, "scope": {"openid"},
	})
	if status != http.StatusCreated {
		t.Fatalf("PAR: %d %v", status, par)
	}
	page = open(url.Values{"client_id": {"client"}, "request_uri": {par["request_uri"].(string)}})
	if page.status != http.StatusOK || page.request == "" || strings.Contains(page.body, `value="alice"`) {
		t.Fatalf("login page of a pushed request: %d\n%s", page.status, page.body)
	}
	resp = post(page.request, "bob", "builder")
	resp.Body.Close()
	loc, _ = url.Parse(resp.Header.Get("Location"))
	status, tok = c.post(identitytest.TokenPath, "client", "secret", url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier},
	})
	idToken, _ = tok["id_token"].(string)
	if status != http.StatusOK || idToken == "" || payload(t, idToken)["sub"] != "bob" {
		t.Errorf("bob's code exchange: %d %v", status, tok)
	}
}

func TestAuthorizeWithoutLoginPageRefusesPost(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	resp, err := http.PostForm(iss.URL+identitytest.AuthorizePath, url.Values{identitytest.LoginFieldUsername: {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
		t.Errorf("POST without a login page: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// payload decodes the claims of a JWT without verifying it.
func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}
