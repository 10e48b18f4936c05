package caddyidentity

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// adaptError adapts a whole Caddyfile like `caddy adapt` and returns its
// error, failing the test when there is none.
func adaptError(t *testing.T, input string) string {
	t.Helper()
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err == nil {
		t.Fatalf("adapt succeeded, want an error:\n%s", input)
	}
	return err.Error()
}

// TestMisconfigurationsRefusedAtAdapt: the mistakes of issue 19's table that
// need no network are refused by `caddy adapt` (and so `caddy validate`)
// with the file and line, and say what to write instead.
func TestMisconfigurationsRefusedAtAdapt(t *testing.T) {
	site := func(lines ...string) string {
		return "example.com {\n\tidentity {\n\t\tissuer https://idp.example.com\n\t\taudience api\n\t\t" +
			strings.Join(lines, "\n\t\t") + "\n\t}\n\trespond ok\n}\n"
	}
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"claim_header the wrong way round", site("claim_header X-User-Email email"),
			[]string{"Caddyfile:5", "did you mean `claim_header email X-User-Email`"}},
		{"claim path with a space", site(`claim_header "realm roles" X-Roles`),
			[]string{"Caddyfile:5", `"realm roles" is not a claim path`}},
		{"header name with a colon", site(`claim_header sub "X-User:Id"`),
			[]string{"Caddyfile:5", `invalid header name "X-User:Id"`}},
		{"strip_header with a space", site(`strip_header "X Forwarded User"`),
			[]string{"Caddyfile:5", "strip_header: invalid header name"}},
		{"token_from header with the scheme", site(`token_from header "Authorization: Bearer"`),
			[]string{"Caddyfile:5", "`token_from header Authorization Bearer`"}},
		{"token_from cookie with a space", site(`token_from cookie "access token"`),
			[]string{"Caddyfile:5", `token_from cookie "access token": not a valid cookie name`}},
		{"token_from without the place", site("token_from access_token"),
			[]string{"Caddyfile:5", "`token_from cookie access_token`", "usage: token_from header <name>"}},
		{"require_claim key=value", site("require_claim role=admin"),
			[]string{"Caddyfile:5", "did you mean `require_claim role admin`"}},
		{"audience with a comma", site("audience api,web"),
			[]string{"Caddyfile:5", "`audience api web`"}},
		{"require_scope with a comma", site("require_scope read,write"),
			[]string{"Caddyfile:5", "`require_scope read write`"}},
		{"misspelled option", site("audiance api"),
			[]string{"Caddyfile:5", `did you mean "audience"?`}},
		{"claim_header with one argument", site("claim_header email"),
			[]string{"Caddyfile:5", "usage: claim_header <claim.path> <Header-Name>, e.g. claim_header email X-User-Email"}},
		{"issuer option at top level", site("alias https://other"),
			[]string{"Caddyfile:5", "it goes in an issuer block"}},
		{"issuer from an unset {$VAR}", "example.com {\n\tidentity {\n\t\tissuer {$CADDY_IDENTITY_TEST_UNSET}\n\t\taudience api\n\t}\n}\n",
			[]string{"Caddyfile:3", "environment variable is not set"}},
		{"discovery address as issuer", "example.com {\n\tidentity {\n\t\tissuer https://idp.example.com/realms/demo/.well-known/openid-configuration\n\t\taudience api\n\t}\n}\n",
			[]string{"Caddyfile:3", "`issuer https://idp.example.com/realms/demo`"}},
		{"http issuer", "example.com {\n\tidentity {\n\t\tissuer http://keycloak:8080/realms/demo\n\t\taudience api\n\t}\n}\n",
			[]string{"Caddyfile:3", "insecure_allow_http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := adaptError(t, tt.input)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("error %q\nlacks %q", got, w)
				}
			}
			if strings.Count(got, "identity:") > 0 {
				t.Errorf("error %q repeats the module's prefix", got)
			}
		})
	}
}

// TestMisconfigurationsAccepted: the corrected spellings that the errors
// above suggest are accepted, as is http with insecure_allow_http or on
// loopback.
func TestMisconfigurationsAccepted(t *testing.T) {
	for _, body := range []string{
		"issuer https://idp.example.com\naudience api web\nclaim_header email X-User-Email\nrequire_claim role admin\ntoken_from header Authorization Bearer\ntoken_from cookie access_token\nrequire_scope read write",
		"issuer http://keycloak:8080/realms/demo\ninsecure_allow_http\naudience api",
		"issuer http://keycloak:8080/realms/demo {\ninsecure_allow_http\n}\naudience api",
		"issuer http://127.0.0.1:8080\naudience api",
		"issuer https://idp.example.com\naudience api\nclaim_header x-custom X-Custom",
	} {
		adaptCaddyfileLenient(t, "example.com {\n\tidentity {\n"+body+"\n\t}\n\trespond ok\n}\n")
	}
}

// TestMisconfigurationsRefusedInJSON: the same checks apply to JSON
// configurations, at provisioning.
func TestMisconfigurationsRefusedInJSON(t *testing.T) {
	base := func(edit func(h *Handler)) *Handler {
		h := &Handler{Issuers: []IssuerConfig{{Issuer: "https://idp.example.com"}}, Audiences: []string{"api"}}
		edit(h)
		return h
	}
	tests := []struct {
		name string
		h    *Handler
		want string
	}{
		{"claim header swapped", base(func(h *Handler) { h.ClaimHeaders = []ClaimHeader{{Claim: "X-User-Email", Header: "email"}} }), "did you mean `claim_header email X-User-Email`"},
		{"token header with scheme", base(func(h *Handler) { h.TokenSources = []TokenSource{{From: "header", Name: "Authorization: Bearer"}} }), "`token_from header Authorization Bearer`"},
		{"cookie with space", base(func(h *Handler) { h.TokenSources = []TokenSource{{From: "cookie", Name: "access token"}} }), "not a valid cookie name"},
		{"claim rule key=value", base(func(h *Handler) { h.RequireClaims = []ClaimRule{{Claim: "role=admin"}} }), "did you mean `require_claim role admin`"},
		{"audience comma", base(func(h *Handler) { h.Audiences = []string{"api,web"} }), "contains a comma"},
		{"issuer audience comma", base(func(h *Handler) { h.Issuers[0].Audiences = []string{"api, web"} }), "`audience api web`"},
		{"http issuer", base(func(h *Handler) { h.Issuers[0].Issuer = "http://keycloak:8080/realms/demo" }), "insecure_allow_http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrorContaining(t, tt.h.checkConfig(), tt.want)
		})
	}
}

// TestUnsetEnvPlaceholderNamed: `issuer {env.OIDC_ISSUER}` with the
// variable unset is refused at provisioning (caddy validate) naming the
// placeholder, not as an issuer "" that is "not an absolute URL".
func TestUnsetEnvPlaceholderNamed(t *testing.T) {
	t.Setenv("CADDY_IDENTITY_TEST_SET", "https://idp.example.com")
	for _, tt := range []struct{ issuer, aud, want string }{
		{"{env.CADDY_IDENTITY_TEST_UNSET}", "api", "issuer {env.CADDY_IDENTITY_TEST_UNSET} is empty: the environment variable CADDY_IDENTITY_TEST_UNSET is not set"},
		{"{env.CADDY_IDENTITY_TEST_SET}", "{env.CADDY_IDENTITY_TEST_NOAUD}", "audience {env.CADDY_IDENTITY_TEST_NOAUD} is empty"},
	} {
		raw, err := json.Marshal(Handler{Issuers: []IssuerConfig{{Issuer: tt.issuer}}, Audiences: []string{tt.aud}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		_, err = ctx.LoadModuleByID("http.handlers.identity", raw)
		cancel()
		wantErrorContaining(t, err, tt.want)
		if err != nil && strings.Contains(err.Error(), "not an absolute") {
			t.Errorf("error %q still reports the empty issuer as a URL problem", err)
		}
	}
}

// TestProvisionErrorsSayOnce: a configuration that adapts but fails at
// provisioning reaches the user through Caddy, which already names the
// module ("provision http.handlers.identity: "); the handler's own message
// follows without a second "identity:" and says which option to change.
func TestProvisionErrorsSayOnce(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"unset env issuer", "issuer {env.CADDY_IDENTITY_TEST_UNSET}\n\t\taudience api", "issuer {env.CADDY_IDENTITY_TEST_UNSET} is empty"},
		{"no audience", "issuer https://idp.example.com", "an audience is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfgJSON := adaptCaddyfileLenient(t, "{\n\tadmin off\n}\n:8080 {\n\tidentity {\n\t\t"+tt.body+"\n\t}\n\trespond ok\n}\n")
			var cfg caddy.Config
			if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&cfg)
			wantErrorContaining(t, err, tt.want)
			if err == nil {
				return
			}
			msg := err.Error()
			if !strings.Contains(msg, "http.handlers.identity: ") {
				t.Errorf("error %q does not name the module", msg)
			}
			if strings.Contains(msg, "identity: identity:") {
				t.Errorf("error %q repeats the prefix", msg)
			}
		})
	}
}
