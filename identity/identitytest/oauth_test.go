package identitytest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// oauthClient talks to the issuer's endpoints without following redirects.
type oauthClient struct {
	t   *testing.T
	iss *identitytest.Issuer
}

// post sends form to path with client_secret_post credentials (id, secret;
// none when id is "") and returns the status and the decoded JSON body.
func (c oauthClient) post(path, id, secret string, form url.Values) (int, map[string]any) {
	c.t.Helper()
	if id != "" {
		form.Set("client_id", id)
		if secret != "" {
			form.Set("client_secret", secret)
		}
	}
	resp, err := http.PostForm(c.iss.URL+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body
}

// authorize runs the authorization endpoint and returns the callback
// parameters (nil when it did not redirect).
func (c oauthClient) authorize(q url.Values) url.Values {
	c.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(c.iss.URL + identitytest.AuthorizePath + "?" + q.Encode())
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		c.t.Fatal(err)
	}
	return u.Query()
}

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestOAuthEndpointsRefuse(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"), identitytest.WithClient("spa", ""))
	c := oauthClient{t, iss}
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	authz := url.Values{
		"response_type": {"code"}, "client_id": {"client"}, "redirect_uri": {"https://app.example/cb"},
		"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}, "scope": {"openid"},
		"state": {"st"}, "nonce": {"n"}, "login_hint": {"bob"},
	}
	without := func(name string) url.Values {
		q := url.Values{}
		for k, v := range authz {
			if k != name {
				q[k] = v
			}
		}
		return q
	}
	for _, name := range []string{"response_type", "client_id", "redirect_uri", "code_challenge"} {
		if cb := c.authorize(without(name)); cb != nil {
			t.Errorf("authorization without %s redirected: %v", name, cb)
		}
	}
	cb := c.authorize(authz)
	if cb.Get("state") != "st" || cb.Get("iss") != iss.URL || cb.Get("code") == "" {
		t.Fatalf("callback %v", cb)
	}
	code := func() string { return c.authorize(authz).Get("code") }
	redeem := func(code, v string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}, "code_verifier": {v}}
	}
	tests := []struct {
		name         string
		path         string
		id, secret   string
		form         url.Values
		status       int
		errorCode    string
		wantInactive bool
	}{
		{"wrong secret", identitytest.TokenPath, "client", "nope", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", false},
		{"unknown client", identitytest.TokenPath, "ghost", "x", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", false},
		{"public client credentials", identitytest.TokenPath, "spa", "", url.Values{"grant_type": {"client_credentials"}}, 400, "unauthorized_client", false},
		{"unknown grant", identitytest.TokenPath, "client", "secret", url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type", false},
		{"wrong verifier", identitytest.TokenPath, "client", "secret", redeem(code(), "x"+verifier[1:]), 400, "invalid_grant", false},
		{"code of another client", identitytest.TokenPath, "spa", "", redeem(code(), verifier), 400, "invalid_grant", false},
		{"unknown refresh token", identitytest.TokenPath, "client", "secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}}, 400, "invalid_grant", false},
		{"introspection by a public client", identitytest.IntrospectionPath, "spa", "", url.Values{"token": {"x"}}, 401, "invalid_client", false},
		{"introspection of an unknown token", identitytest.IntrospectionPath, "client", "secret", url.Values{"token": {"x"}}, 200, "", true},
		{"revocation without client", identitytest.RevocationPath, "", "", url.Values{"token": {"x"}}, 401, "invalid_client", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.post(tc.path, tc.id, tc.secret, tc.form)
			if status != tc.status || (tc.errorCode != "" && body["error"] != tc.errorCode) || (tc.wantInactive && body["active"] != false) {
				t.Errorf("status %d body %v, want %d %q", status, body, tc.status, tc.errorCode)
			}
		})
	}

	// A code is single-use; a refresh token rotates; revoked tokens are
	// inactive; userinfo wants a live access token.
	first := code()
	if status, body := c.post(identitytest.TokenPath, "client", "secret", redeem(first, verifier)); status != 200 || body["id_token"] == nil {
		t.Fatalf("redemption: %d %v", status, body)
	} else {
		rt := body["refresh_token"].(string)
		at := body["access_token"].(string)
		if status, _ := c.post(identitytest.TokenPath, "client", "secret", redeem(first, verifier)); status != 400 {
			t.Errorf("code replay answered %d", status)
		}
		refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if status, _ := c.post(identitytest.TokenPath, "client", "secret", refresh); status != 200 {
			t.Errorf("refresh answered %d", status)
		}
		if status, _ := c.post(identitytest.TokenPath, "client", "secret", refresh); status != 400 {
			t.Errorf("spent refresh token answered %d", status)
		}
		if status, _ := c.post(identitytest.RevocationPath, "client", "secret", url.Values{"token": {at}}); status != 200 {
			t.Errorf("revocation answered %d", status)
		}
		if _, body := c.post(identitytest.IntrospectionPath, "client", "secret", url.Values{"token": {at}}); body["active"] != false {
			t.Errorf("revoked token introspected as %v", body)
		}
		req, _ := http.NewRequest(http.MethodGet, iss.URL+identitytest.UserInfoPath, nil)
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("userinfo with a revoked token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestDeviceParAndExchangeRefuse(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"), identitytest.WithClient("spa", ""), identitytest.WithClient("other", "pw"))
	c := oauthClient{t, iss}
	status, da := c.post(identitytest.DeviceAuthPath, "client", "secret", url.Values{"scope": {"openid"}})
	if status != 200 || da["device_code"] == nil {
		t.Fatalf("device authorization: %d %v", status, da)
	}
	device := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da["device_code"].(string)}}
	if _, body := c.post(identitytest.TokenPath, "client", "secret", device); body["error"] != "authorization_pending" {
		t.Errorf("before approval: %v", body)
	}
	if _, body := c.post(identitytest.TokenPath, "other", "pw", device); body["error"] != "invalid_grant" {
		t.Errorf("device code of another client: %v", body)
	}
	if iss.ApproveDevice("NOPE-NOPE", "alice") || !iss.ApproveDevice(da["user_code"].(string), "alice") {
		t.Fatal("ApproveDevice")
	}
	if status, body := c.post(identitytest.TokenPath, "client", "secret", device); status != 200 || body["id_token"] == nil {
		t.Errorf("after approval: %d %v", status, body)
	}
	if _, body := c.post(identitytest.TokenPath, "client", "secret", device); body["error"] != "invalid_grant" {
		t.Errorf("device code reused: %v", body)
	}

	status, par := c.post(identitytest.PARPath, "client", "secret", url.Values{
		"response_type": {"code"}, "redirect_uri": {"https://app.example/cb"}, "code_challenge": {challenge("v")}, "code_challenge_method": {"S256"},
	})
	if status != 201 {
		t.Fatalf("PAR: %d %v", status, par)
	}
	byURI := url.Values{"client_id": {"client"}, "request_uri": {par["request_uri"].(string)}}
	if cb := c.authorize(url.Values{"client_id": {"other"}, "request_uri": byURI["request_uri"]}); cb != nil {
		t.Error("request_uri used by another client")
	}
	if cb := c.authorize(byURI); cb == nil || cb.Get("code") == "" {
		t.Errorf("request_uri refused: %v", cb)
	}
	if cb := c.authorize(byURI); cb != nil {
		t.Error("request_uri used twice")
	}

	_, tok := c.post(identitytest.TokenPath, "client", "secret", url.Values{"grant_type": {"client_credentials"}})
	exchange := func(subject string) url.Values {
		return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
	}
	if _, body := c.post(identitytest.TokenPath, "spa", "", exchange(tok["access_token"].(string))); body["error"] != "unauthorized_client" {
		t.Errorf("exchange by a public client: %v", body)
	}
	if _, body := c.post(identitytest.TokenPath, "client", "secret", exchange("forged")); body["error"] != "invalid_grant" {
		t.Errorf("exchange of an unknown token: %v", body)
	}
	if status, body := c.post(identitytest.TokenPath, "other", "pw", exchange(tok["access_token"].(string))); status != 200 || body["issued_token_type"] == nil {
		t.Errorf("exchange: %d %v", status, body)
	}
}

func TestRegistrationRefuses(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	c := oauthClient{t, iss}
	do := func(method, url, token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	reg := iss.URL + identitytest.RegistrationPath
	if status, _ := do(http.MethodPost, reg, "", "[1]"); status != 400 {
		t.Errorf("non-object metadata answered %d", status)
	}
	status, client := do(http.MethodPost, reg, "", `{"client_name":"x"}`)
	if status != 201 {
		t.Fatalf("registration: %d %v", status, client)
	}
	uri, rat, id := client["registration_client_uri"].(string), client["registration_access_token"].(string), client["client_id"].(string)
	if status, _ := do(http.MethodGet, uri, "wrong", ""); status != 401 {
		t.Errorf("read with a wrong token answered %d", status)
	}
	if status, _ := do(http.MethodPut, uri, rat, `{"client_id":"someone-else"}`); status != 400 {
		t.Errorf("update of another client_id answered %d", status)
	}
	if status, _ := do(http.MethodDelete, uri, rat, ""); status != 204 {
		t.Errorf("delete answered %d", status)
	}
	if status, _ := c.post(identitytest.TokenPath, id, client["client_secret"].(string), url.Values{"grant_type": {"client_credentials"}}); status != 401 {
		t.Errorf("deleted client got a token: %d", status)
	}
	if status, _ := do(http.MethodGet, uri, rat, ""); status != 401 {
		t.Errorf("read after delete answered %d", status)
	}
}

func TestOpaqueAccessTokens(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithOpaqueAccessTokens())
	c := oauthClient{t, iss}
	status, body := c.post(identitytest.TokenPath, "client", "secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	at, _ := body["access_token"].(string)
	if status != 200 || at == "" || strings.Contains(at, ".") {
		t.Fatalf("token response %d %v, want an opaque access token", status, body)
	}
	_, intro := c.post(identitytest.IntrospectionPath, "client", "secret", url.Values{"token": {at}})
	if intro["active"] != true || intro["sub"] != "client" || intro["scope"] != "read" || intro["iss"] != iss.URL {
		t.Errorf("introspection %v", intro)
	}
	req, _ := http.NewRequest(http.MethodGet, iss.URL+identitytest.UserInfoPath, nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var claims map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&claims); err != nil || resp.StatusCode != 200 || claims["email"] != "client@example.test" {
		t.Errorf("userinfo %d %v (%v)", resp.StatusCode, claims, err)
	}
}
