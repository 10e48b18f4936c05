package identity_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// endpointCall invokes one endpoint function of the package against addr.
type endpointCall struct {
	name string
	// okOnAny200 marks calls that succeed on any 200 body (revocation,
	// deletion), so the non-JSON case does not apply.
	okOnAny200 bool
	call       func(ctx context.Context, c *http.Client, addr string, limit int64) error
}

func pr(addr string, limit int64) identity.ProtocolRequest {
	return identity.ProtocolRequest{Address: addr, ClientAuth: identity.ClientSecretBasicAuth("c", "s"), MaxResponseBytes: limit}
}

func allEndpointCalls() []endpointCall {
	return []endpointCall{
		{name: "client_credentials", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestClientCredentialsToken(ctx, c, identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(a, l)})
			return err
		}},
		{name: "refresh", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestRefreshToken(ctx, c, identity.RefreshTokenRequest{ProtocolRequest: pr(a, l), RefreshToken: "r"})
			return err
		}},
		{name: "authorization_code", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestAuthorizationCodeToken(ctx, c, identity.AuthorizationCodeTokenRequest{ProtocolRequest: pr(a, l), Code: "x"})
			return err
		}},
		{name: "device_token", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestDeviceToken(ctx, c, identity.DeviceTokenRequest{ProtocolRequest: pr(a, l), DeviceCode: "d"})
			return err
		}},
		{name: "token_exchange", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestTokenExchangeToken(ctx, c, identity.TokenExchangeTokenRequest{
				ProtocolRequest: pr(a, l), SubjectToken: "s", SubjectTokenType: "urn:ietf:params:oauth:token-type:access_token"})
			return err
		}},
		{name: "password", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestPasswordToken(ctx, c, identity.PasswordTokenRequest{ProtocolRequest: pr(a, l), UserName: "u", Password: "p"}) //nolint:staticcheck // deprecated grant under test
			return err
		}},
		{name: "custom_grant", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestToken(ctx, c, identity.TokenRequest{ProtocolRequest: pr(a, l), GrantType: "urn:example:grant"})
			return err
		}},
		{name: "device_authorization", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestDeviceAuthorization(ctx, c, identity.DeviceAuthorizationRequest{ProtocolRequest: pr(a, l)})
			return err
		}},
		{name: "par", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.PushAuthorizationRequest(ctx, c, identity.PushedAuthorizationRequest{ProtocolRequest: pr(a, l)})
			return err
		}},
		{name: "userinfo", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RequestUserInfo(ctx, c, identity.UserInfoRequest{ProtocolRequest: identity.ProtocolRequest{Address: a, MaxResponseBytes: l}, Token: "t"})
			return err
		}},
		{name: "introspection", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.IntrospectToken(ctx, c, identity.IntrospectionRequest{ProtocolRequest: pr(a, l), Token: "t"})
			return err
		}},
		{name: "revocation", okOnAny200: true, call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			return identity.RevokeToken(ctx, c, identity.RevocationRequest{ProtocolRequest: pr(a, l), Token: "t"})
		}},
		{name: "register", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.RegisterClient(ctx, c, identity.RegistrationRequest{ProtocolRequest: identity.ProtocolRequest{Address: a, MaxResponseBytes: l}})
			return err
		}},
		{name: "read_client", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.ReadClientConfiguration(ctx, c, identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: a, MaxResponseBytes: l}, RegistrationAccessToken: "rat"})
			return err
		}},
		{name: "update_client", call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			_, err := identity.UpdateClientConfiguration(ctx, c, identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: a, MaxResponseBytes: l}, RegistrationAccessToken: "rat", ClientID: "c"})
			return err
		}},
		{name: "delete_client", okOnAny200: true, call: func(ctx context.Context, c *http.Client, a string, l int64) error {
			return identity.DeleteClientConfiguration(ctx, c, identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: a, MaxResponseBytes: l}, RegistrationAccessToken: "rat"})
		}},
	}
}

// TestEndpointErrorBranches runs every endpoint call through every failure
// a server or the network can produce.
func TestEndpointErrorBranches(t *testing.T) {
	protocol := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		writeJSON(w, 400, `{"error":"invalid_request","error_description":"bad","error_uri":"https://e.example/x"}`)
	})
	serverError := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		_, _ = io.WriteString(w, "<html>bad gateway</html>")
	})
	notJSON := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "access_token=x&token_type=bearer")
	})
	huge := newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		status := 200
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/register") {
			status = 201
		}
		writeJSON(w, status, `{"pad":"`+strings.Repeat("x", 4096)+`"}`)
	})
	slow := slowFake(t, 5*time.Second)

	for _, ec := range allEndpointCalls() {
		t.Run(ec.name, func(t *testing.T) {
			ctx := context.Background()

			err := ec.call(ctx, nil, protocol.URL+"/ep", 0)
			var pe *identity.ProtocolError
			if !errors.As(err, &pe) || pe.Code != "invalid_request" || pe.Description != "bad" ||
				pe.URI != "https://e.example/x" || pe.StatusCode != 400 || len(pe.Body) == 0 {
				t.Errorf("protocol error: got %#v (%v)", pe, err)
			}

			err = ec.call(ctx, serverError.Client(), serverError.URL+"/ep", 0)
			var se *identity.HTTPStatusError
			if !errors.As(err, &se) || se.StatusCode != 502 || !errors.Is(err, identity.ErrHTTPStatus) || string(se.Body) != "<html>bad gateway</html>" {
				t.Errorf("status error: got %v", err)
			}

			err = ec.call(ctx, nil, notJSON.URL+"/ep", 0)
			if ec.okOnAny200 {
				if err != nil {
					t.Errorf("200 with any body: %v", err)
				}
			} else if !errors.Is(err, identity.ErrNotJSON) {
				t.Errorf("non-JSON: got %v", err)
			}

			if err := ec.call(ctx, nil, huge.URL+"/register", 1024); !errors.Is(err, identity.ErrBodyTooLarge) {
				t.Errorf("oversized: got %v", err)
			}

			tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			if err := ec.call(tctx, nil, slow.URL+"/ep", 0); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("timeout: got %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("timeout took %v", d)
			}

			if err := ec.call(ctx, nil, "http://idp.example.com/ep", 0); !errors.Is(err, identity.ErrHTTPSRequired) {
				t.Errorf("plain http: got %v", err)
			}
			if err := ec.call(ctx, nil, "not a url", 0); err == nil {
				t.Error("invalid address accepted")
			}
		})
	}
}

func TestEndpointClientTimeoutAndRedirect(t *testing.T) {
	slow := slowFake(t, 5*time.Second)
	c := &http.Client{Timeout: 50 * time.Millisecond}
	_, err := identity.RequestClientCredentialsToken(context.Background(), c, identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(slow.URL, 0)})
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("client timeout: got %v", err)
	}

	other := jsonFake(t, 200, `{"access_token":"elsewhere"}`)
	redirector := newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/token", http.StatusTemporaryRedirect)
	})
	_, err = identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(redirector.URL, 0)})
	if !errors.Is(err, identity.ErrRedirect) {
		t.Fatalf("cross-host redirect: got %v", err)
	}
	if other.count() != 0 {
		t.Fatal("credentials followed a redirect to another host")
	}
}

func TestProtocolErrorDetails(t *testing.T) {
	long := strings.Repeat("d", 10000)
	f := jsonFake(t, 400, `{"error":"invalid_scope","error_description":"`+long+`"}`)
	_, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(f.URL, 0)})
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
	if len(pe.Body) != 4096 {
		t.Errorf("body kept %d bytes, want capped at 4096", len(pe.Body))
	}
	if !strings.Contains(pe.Error(), `"invalid_scope"`) || !strings.Contains(pe.Error(), "HTTP 400") {
		t.Errorf("Error() = %q", pe.Error()[:60])
	}

	// 200 carrying an error member instead of a token (seen in the wild).
	f = jsonFake(t, 200, `{"error":"bad_verification_code"}`)
	_, err = identity.RequestAuthorizationCodeToken(context.Background(), nil, identity.AuthorizationCodeTokenRequest{ProtocolRequest: pr(f.URL, 0), Code: "c"})
	if !errors.As(err, &pe) || pe.Code != "bad_verification_code" || pe.StatusCode != 200 {
		t.Errorf("200 with error: got %v", err)
	}

	// JSON error body without an error member is a plain status error.
	f = jsonFake(t, 404, `{"message":"not found"}`)
	_, err = identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(f.URL, 0)})
	if !errors.Is(err, identity.ErrHTTPStatus) {
		t.Errorf("404 without error member: got %v", err)
	}

	// Trailing data after the object is not JSON.
	f = jsonFake(t, 200, `{"access_token":"a"} {"x":1}`)
	_, err = identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(f.URL, 0)})
	if !errors.Is(err, identity.ErrNotJSON) {
		t.Errorf("trailing data: got %v", err)
	}
	f = jsonFake(t, 200, `["access_token"]`)
	_, err = identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(f.URL, 0)})
	if !errors.Is(err, identity.ErrNotJSON) {
		t.Errorf("array: got %v", err)
	}
}

func TestProtocolRequestParametersAndHeaders(t *testing.T) {
	f := jsonFake(t, 200, `{"access_token":"a","token_type":"Bearer"}`)
	req := identity.ClientCredentialsTokenRequest{ProtocolRequest: pr(f.URL, 0), Scopes: []string{"api"}}
	req.Parameters = url.Values{"grant_type": {"evil"}, "scope": {"admin"}, "tenant": {"t1", "t2"}}
	req.Header = http.Header{"X-Trace": {"42"}}
	if _, err := identity.RequestClientCredentialsToken(context.Background(), nil, req); err != nil {
		t.Fatal(err)
	}
	got := f.last(t)
	if got.Form.Get("grant_type") != "client_credentials" || got.Form.Get("scope") != "api" {
		t.Errorf("extra parameters replaced built-in ones: %v", got.Form)
	}
	if len(got.Form["tenant"]) != 2 || got.Header.Get("X-Trace") != "42" {
		t.Errorf("extras not sent: %v %v", got.Form, got.Header)
	}
	if got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || got.Header.Get("Accept") != "application/json" || got.Method != http.MethodPost {
		t.Errorf("request shape: %s %v", got.Method, got.Header)
	}
	if _, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{}); err == nil {
		t.Error("empty address accepted")
	}
	req.AllowHTTP = true
	req.Address = "http://idp.invalid/token"
	if _, err := identity.RequestClientCredentialsToken(context.Background(), nil, req); err == nil || errors.Is(err, identity.ErrHTTPSRequired) {
		t.Errorf("AllowHTTP: got %v", err)
	}
}
