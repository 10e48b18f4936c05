package caddyidentity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// assertionAud returns the aud of the client assertion in form, which must
// be a single string (draft-ietf-oauth-rfc7523bis: never an array), after
// checking the assertion's signature with key.
func assertionAud(t *testing.T, form url.Values, key any) string {
	t.Helper()
	if got := form.Get("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		t.Fatalf("client_assertion_type = %q", got)
	}
	jws, err := jose.ParseSigned(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("client_assertion: %v", err)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		t.Fatalf("client_assertion signature: %v", err)
	}
	var claims struct {
		Audience any `json:"aud"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	aud, ok := claims.Audience.(string)
	if !ok {
		t.Fatalf("aud = %#v, want a single string", claims.Audience)
	}
	return aud
}

// formRecorder is an introspection endpoint that keeps the last form it
// received and answers every token active.
type formRecorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	form url.Values
}

func newFormRecorder(t *testing.T, issuer string) *formRecorder {
	fr := &formRecorder{}
	fr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fr.mu.Lock()
		fr.form = r.PostForm
		fr.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(activeResponse(issuer, time.Now(), nil))
	}))
	t.Cleanup(fr.srv.Close)
	return fr
}

func (fr *formRecorder) lastForm() url.Values {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.form
}

// TestIntrospectAssertionAudience reads the aud of the assertion the
// introspection endpoint receives for each assertion_audience.
func TestIntrospectAssertionAudience(t *testing.T) {
	key, path := writeClientKey(t)
	iss := identitytest.NewIssuer(t)
	ep := newFormRecorder(t, iss.URL)
	for _, tc := range []struct{ value, want string }{
		{"", ep.srv.URL},
		{"endpoint", ep.srv.URL},
		{"issuer", iss.URL},
		{"token_endpoint", iss.URL + identitytest.TokenPath},
		{"https://login.example.com/oauth2/token", "https://login.example.com/oauth2/token"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			h := introHandler(iss, ep.srv.URL)
			h.Issuers[0].Introspection = &IntrospectionConfig{Endpoint: ep.srv.URL, ClientID: "caddy", KeyFile: path, AssertionAudience: tc.value}
			x := newHX(t, h)
			wantStatus(t, x.get("/", bearer(opaqueToken(t))), 200)
			if got := assertionAud(t, ep.lastForm(), &key.PublicKey); got != tc.want {
				t.Errorf("aud = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIntrospectAssertionAudienceDiscovered runs assertion_audience
// against identitytest's own introspection endpoint (from discovery),
// which takes its issuer or the endpoint's URL as aud, not the token
// endpoint's: a wrong audience is an endpoint that refuses the handler.
func TestIntrospectAssertionAudienceDiscovered(t *testing.T) {
	key, path := writeClientKey(t)
	iss := identitytest.NewIssuer(t, identitytest.WithOpaqueAccessTokens(), identitytest.WithClientKey("caddy", &key.PublicKey))
	for _, tc := range []struct {
		value string
		want  int
	}{{"issuer", 200}, {"endpoint", 200}, {"token_endpoint", 503}} {
		t.Run(tc.value, func(t *testing.T) {
			h := introHandler(iss, "")
			h.Issuers[0].Introspection = &IntrospectionConfig{ClientID: "caddy", KeyFile: path, AssertionAudience: tc.value}
			x := newHX(t, h)
			res := x.get("/", bearer(serviceToken(t, iss)))
			if tc.want != 200 {
				wantRefusal(t, res, tc.want, "provider_unavailable")
				if x.logs.FilterMessage("introspection endpoint unavailable: opaque tokens cannot be checked").Len() != 1 {
					t.Errorf("refused client authentication not logged once: %v", x.logs.All())
				}
				return
			}
			wantStatus(t, res, 200)
			wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 401, "inactive")
		})
	}
}

// TestIntrospectAssertionAudienceTokenEndpointElsewhere: a discovered
// token endpoint off the issuer's origin is not made an audience (that
// would hand the assertions to another server): opaque tokens get 503 and
// the endpoint is not called.
func TestIntrospectAssertionAudienceTokenEndpointElsewhere(t *testing.T) {
	_, path := writeClientKey(t)
	iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
		m["token_endpoint"] = "https://other.example.com/token"
	}))
	ep := newFormRecorder(t, iss.URL)
	h := introHandler(iss, ep.srv.URL)
	h.Issuers[0].Introspection = &IntrospectionConfig{Endpoint: ep.srv.URL, ClientID: "caddy", KeyFile: path, AssertionAudience: "token_endpoint"}
	x := newHX(t, h)
	wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 503, "provider_unavailable")
	if ep.lastForm() != nil {
		t.Error("the endpoint was called")
	}
	if x.logs.FilterMessage("introspection endpoint unavailable: opaque tokens cannot be checked").Len() != 1 {
		t.Errorf("not logged once: %v", x.logs.All())
	}
}

// TestUpstreamAssertionAudience reads the aud of the assertion the token
// endpoint receives for each assertion_audience. The endpoint is a proxy
// in front of identitytest, which takes its issuer or its own token
// endpoint's URL as aud but not the proxy's: a wrong audience is a token
// endpoint that refuses the handler (503).
func TestUpstreamAssertionAudience(t *testing.T) {
	key, path := writeClientKey(t)
	iss := identitytest.NewIssuer(t, identitytest.WithClientKey("gateway", &key.PublicKey))
	proxy := newTokenProxy(t, iss)
	caller := iss.Token(t, "alice", nil)
	// The handlers stay up together: those with another aud must not
	// share the token of the one before.
	for _, tc := range []struct {
		value, want string
		status      int
	}{
		{"issuer", iss.URL, 200},
		{"", proxy.srv.URL, 503},
		{"endpoint", proxy.srv.URL, 503},
		{"token_endpoint", proxy.srv.URL, 503},
		{iss.URL + identitytest.TokenPath, iss.URL + identitytest.TokenPath, 200},
	} {
		h := serviceTokenHandler(iss, proxy.srv.URL)
		h.UpstreamToken.ClientID, h.UpstreamToken.ClientSecret = "gateway", ""
		h.UpstreamToken.KeyFile, h.UpstreamToken.AssertionAudience = path, tc.value
		x := newHX(t, h)
		res := x.get("/", bearer(caller))
		if tc.status != 200 {
			wantRefusal(t, res, tc.status, "upstream_token")
		} else {
			wantStatus(t, res, 200)
			if c := issuedToken(t, iss, res.up.header.Get("Authorization")); c.Subject != "gateway" {
				t.Errorf("%q: upstream token sub %q", tc.value, c.Subject)
			}
		}
		if got := assertionAud(t, proxy.lastForm(), &key.PublicKey); got != tc.want {
			t.Errorf("%q: aud = %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestAssertionAudienceConfigErrors(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	_, path := writeClientKey(t)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, iss.PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	intro := func(value string, change func(*IssuerConfig)) *Handler {
		h := introHandler(iss, "https://auth.example.com/introspect")
		h.Issuers[0].Introspection.ClientSecret, h.Issuers[0].Introspection.KeyFile = "", path
		h.Issuers[0].Introspection.AssertionAudience = value
		if change != nil {
			change(&h.Issuers[0])
		}
		return h
	}
	upstream := func(value string, change func(*Handler)) *Handler {
		h := serviceTokenHandler(iss, "https://auth.example.com/token")
		h.UpstreamToken.ClientSecret, h.UpstreamToken.KeyFile, h.UpstreamToken.AssertionAudience = "", path, value
		if change != nil {
			change(h)
		}
		return h
	}
	withSecret := func(is *IssuerConfig) { is.Introspection.KeyFile, is.Introspection.ClientSecret = "", introSecret }
	for _, tc := range []struct {
		name string
		h    *Handler
		want string
	}{
		{"relative URL", intro("/oauth2/token", nil), `assertion_audience "/oauth2/token" must be endpoint, issuer, token_endpoint or an absolute https URL`},
		{"a name misspelt", intro("isuer", nil), `assertion_audience "isuer" must be`},
		{"http off loopback", intro("http://auth.example.com/token", nil), "http only on loopback"},
		{"with a client secret", intro("issuer", withSecret), "applies to key_file"},
		{"token_endpoint without discovery", intro("token_endpoint", func(is *IssuerConfig) { is.JWKSFile = jwks }), "no discovery document to find the token endpoint in"},
		{"upstream relative URL", upstream("token", nil), `upstream_token: assertion_audience "token" must be`},
		{"upstream http off loopback", upstream("http://auth.example.com/token", nil), "http only on loopback"},
		{"upstream with a client secret", upstream("issuer", func(h *Handler) { h.UpstreamToken.KeyFile, h.UpstreamToken.ClientSecret = "", "s" }), "applies to key_file"},
		{"upstream issuer of several", upstream("issuer", func(h *Handler) {
			h.Issuers = append(h.Issuers, IssuerConfig{Issuer: "https://other.example.com"})
		}), "assertion_audience issuer: with several issuers, name one"},
		{"upstream placeholder to a relative URL", upstream("{env.CADDY_IDENTITY_TEST_UNSET_AUD}/token", nil), `assertion_audience "/token" must be`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := tc.h.Provision(ctx)
			_ = tc.h.Cleanup()
			wantErrorContaining(t, err, tc.want)
		})
	}
	// Accepted: http on loopback, and off loopback with insecure_allow_http.
	for _, h := range []*Handler{
		intro("http://127.0.0.1:9/token", nil),
		intro("http://auth.example.com/token", func(is *IssuerConfig) { is.InsecureAllowHTTP = true }),
		upstream("http://[::1]:9/token", nil),
	} {
		if err := h.checkConfig(); err != nil {
			t.Errorf("checkConfig: %v", err)
		}
	}
}

func TestUnmarshalCaddyfileAssertionAudience(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`identity {
		issuer https://auth.example.com {
			introspection {
				client_id caddy
				key_file /etc/caddy/introspection.key
				assertion_audience issuer
			}
		}
		audience api
		upstream_token client_credentials {
			client_id gateway
			key_file /etc/caddy/gateway.key
			assertion_audience https://auth.example.com/oauth2/token
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Issuers[0].Introspection.AssertionAudience; got != "issuer" {
		t.Errorf("introspection assertion_audience = %q", got)
	}
	if got := h.UpstreamToken.AssertionAudience; got != "https://auth.example.com/oauth2/token" {
		t.Errorf("upstream_token assertion_audience = %q", got)
	}
	for _, bad := range []struct{ input, want string }{
		{"identity {\n issuer https://a {\n introspection {\n client_id a\n assertion_audience\n }\n }\n }", "wrong argument count for assertion_audience"},
		{"identity {\n issuer https://a {\n introspection {\n client_id a\n assertion_audience issuer endpoint\n }\n }\n }", "wrong argument count"},
		{"identity {\n issuer https://a {\n introspection {\n client_id a\n assertion_audience issuer\n assertion_audience issuer\n }\n }\n }", "given twice"},
		{"identity {\n issuer https://a {\n introspection {\n client_id a\n assertion_audiences issuer\n }\n }\n }", `did you mean "assertion_audience"`},
		{"identity {\n upstream_token client_credentials {\n client_id a\n assertion_audience\n }\n }", "wrong argument count for assertion_audience"},
	} {
		wantUnmarshalError(t, bad.input, bad.want)
	}
}
