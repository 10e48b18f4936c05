package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// discoveryErrors are the distinct discovery and fetch failures; each test
// case must match exactly the one it expects.
var discoveryErrors = map[string]error{
	"ErrHTTPSRequired":       identity.ErrHTTPSRequired,
	"ErrIssuerMismatch":      identity.ErrIssuerMismatch,
	"ErrMissingMember":       identity.ErrMissingMember,
	"ErrEndpointNotAllowed":  identity.ErrEndpointNotAllowed,
	"ErrContentType":         identity.ErrContentType,
	"ErrNotJSON":             identity.ErrNotJSON,
	"ErrBodyTooLarge":        identity.ErrBodyTooLarge,
	"ErrRedirect":            identity.ErrRedirect,
	"ErrHTTPStatus":          identity.ErrHTTPStatus,
	"ErrProviderUnavailable": identity.ErrProviderUnavailable,
}

// matchesOnly fails unless err matches want and no other discovery error.
func matchesOnly(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for name, other := range discoveryErrors {
		if other != want && errors.Is(err, other) {
			t.Errorf("err = %v also matches %s: errors are not distinct", err, name)
		}
	}
}

// discoveryMeta is a valid OpenID Connect document for issuer.
func discoveryMeta(issuer string) map[string]any {
	return map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                issuer + "/authorize",
		"token_endpoint":                        issuer + "/token",
		"userinfo_endpoint":                     issuer + "/userinfo",
		"jwks_uri":                              issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	}
}

func TestDiscoveryURL(t *testing.T) {
	cases := []struct {
		issuer string
		kind   identity.MetadataKind
		want   string
	}{
		{"https://idp.example.com", identity.OpenIDConfiguration, "https://idp.example.com/.well-known/openid-configuration"},
		{"https://idp.example.com/", identity.OpenIDConfiguration, "https://idp.example.com/.well-known/openid-configuration"},
		{"https://idp.example.com/realms/main", identity.OpenIDConfiguration, "https://idp.example.com/realms/main/.well-known/openid-configuration"},
		{"https://idp.example.com/realms/main/", identity.OpenIDConfiguration, "https://idp.example.com/realms/main/.well-known/openid-configuration"},
		{"https://idp.example.com:8443/t", identity.OpenIDConfiguration, "https://idp.example.com:8443/t/.well-known/openid-configuration"},
		{"http://127.0.0.1:9000", identity.OpenIDConfiguration, "http://127.0.0.1:9000/.well-known/openid-configuration"},
		{"https://as.example.com", identity.OAuthAuthorizationServer, "https://as.example.com/.well-known/oauth-authorization-server"},
		{"https://as.example.com/", identity.OAuthAuthorizationServer, "https://as.example.com/.well-known/oauth-authorization-server"},
		{"https://as.example.com/tenant/1", identity.OAuthAuthorizationServer, "https://as.example.com/.well-known/oauth-authorization-server/tenant/1"},
	}
	for _, c := range cases {
		t.Run(c.kind.String()+" "+c.issuer, func(t *testing.T) {
			got, err := identity.DiscoveryURL(c.issuer, c.kind)
			if err != nil || got != c.want {
				t.Fatalf("DiscoveryURL = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	for _, bad := range []string{"", "idp.example.com", "/path", "https://", "ftp://idp.example.com", "https://idp.example.com?x=1", "https://idp.example.com#f", "https://user:pw@idp.example.com"} {
		t.Run("invalid "+bad, func(t *testing.T) {
			if _, err := identity.DiscoveryURL(bad, identity.OpenIDConfiguration); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestParseDiscoveryTypedMembers(t *testing.T) {
	doc := `{
	  "issuer": "https://idp.example.com",
	  "authorization_endpoint": "https://idp.example.com/authorize",
	  "token_endpoint": "https://idp.example.com/token",
	  "userinfo_endpoint": "https://idp.example.com/userinfo",
	  "jwks_uri": "https://idp.example.com/jwks",
	  "registration_endpoint": "https://idp.example.com/register",
	  "introspection_endpoint": "https://idp.example.com/introspect",
	  "revocation_endpoint": "https://idp.example.com/revoke",
	  "end_session_endpoint": "https://idp.example.com/logout",
	  "device_authorization_endpoint": "https://idp.example.com/device",
	  "pushed_authorization_request_endpoint": "https://idp.example.com/par",
	  "backchannel_authentication_endpoint": "https://idp.example.com/ciba",
	  "check_session_iframe": "https://idp.example.com/session",
	  "scopes_supported": ["openid", "profile"],
	  "response_types_supported": ["code"],
	  "response_modes_supported": ["query", "form_post"],
	  "grant_types_supported": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
	  "subject_types_supported": ["public"],
	  "id_token_signing_alg_values_supported": ["RS256", "ES256"],
	  "userinfo_signing_alg_values_supported": ["PS256"],
	  "token_endpoint_auth_methods_supported": ["private_key_jwt"],
	  "introspection_signing_alg_values_supported": ["EdDSA"],
	  "dpop_signing_alg_values_supported": ["ES256"],
	  "code_challenge_methods_supported": ["S256"],
	  "claims_supported": ["sub", "email"],
	  "claims_parameter_supported": true,
	  "request_uri_parameter_supported": false,
	  "require_pushed_authorization_requests": true,
	  "authorization_response_iss_parameter_supported": true,
	  "tls_client_certificate_bound_access_tokens": true,
	  "backchannel_logout_supported": true,
	  "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.idp.example.com/token"},
	  "authorization_details_types_supported": ["payment_initiation"],
	  "x_vendor_feature": {"enabled": true, "level": 3}
	}`
	d, err := identity.ParseDiscovery([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]any{
		"Issuer":                 {d.Issuer, "https://idp.example.com"},
		"TokenEndpoint":          {d.TokenEndpoint, "https://idp.example.com/token"},
		"JWKSURI":                {d.JWKSURI, "https://idp.example.com/jwks"},
		"IntrospectionEndpoint":  {d.IntrospectionEndpoint, "https://idp.example.com/introspect"},
		"RevocationEndpoint":     {d.RevocationEndpoint, "https://idp.example.com/revoke"},
		"EndSessionEndpoint":     {d.EndSessionEndpoint, "https://idp.example.com/logout"},
		"DeviceAuthorization":    {d.DeviceAuthorizationEndpoint, "https://idp.example.com/device"},
		"PAR":                    {d.PushedAuthorizationRequestEndpoint, "https://idp.example.com/par"},
		"CIBA":                   {d.BackchannelAuthenticationEndpoint, "https://idp.example.com/ciba"},
		"RegistrationEndpoint":   {d.RegistrationEndpoint, "https://idp.example.com/register"},
		"ClaimsParameter":        {d.ClaimsParameterSupported, true},
		"RequestURIParameter":    {d.RequestURIParameterSupported, false},
		"RequirePAR":             {d.RequirePushedAuthorizationReqs, true},
		"IssParameter":           {d.AuthorizationResponseIssParameterSupported, true},
		"MTLSBound":              {d.TLSClientCertificateBoundAccessTokens, true},
		"BackchannelLogout":      {d.BackchannelLogoutSupported, true},
		"MTLSAlias":              {d.MTLSEndpointAliases["token_endpoint"], "https://mtls.idp.example.com/token"},
		"IDTokenAlgs":            {strings.Join(d.IDTokenSigningAlgValuesSupported, " "), "RS256 ES256"},
		"GrantTypes":             {len(d.GrantTypesSupported), 2},
		"IntrospectionAlgs":      {strings.Join(d.IntrospectionSigningAlgValuesSupported, " "), "EdDSA"},
		"DPoPAlgs":               {strings.Join(d.DPoPSigningAlgValuesSupported, " "), "ES256"},
		"AuthorizationDetails":   {strings.Join(d.AuthorizationDetailsTypesSupported, " "), "payment_initiation"},
		"CodeChallengeMethods":   {strings.Join(d.CodeChallengeMethodsSupported, " "), "S256"},
		"TokenEndpointAuthMeths": {strings.Join(d.TokenEndpointAuthMethodsSupported, " "), "private_key_jwt"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	if raw, ok := d.Extra("x_vendor_feature"); !ok || string(raw) != `{"enabled": true, "level": 3}` {
		t.Errorf("Extra(unknown) = %s, %v", raw, ok)
	}
	if raw, ok := d.Extra("issuer"); !ok || string(raw) != `"https://idp.example.com"` {
		t.Errorf("Extra(known) = %s, %v", raw, ok)
	}
	if _, ok := d.Extra("absent"); ok {
		t.Error("Extra(absent) reported present")
	}
	if m := d.Members(); len(m) != 34 || !slices.IsSorted(m) {
		t.Errorf("Members = %d names (sorted %v), want 34 sorted", len(m), slices.IsSorted(m))
	}
	if got := d.SigningAlgorithms(); !slices.Equal(got, []string{"ES256", "RS256", "EdDSA", "PS256"}) {
		t.Errorf("SigningAlgorithms = %v", got)
	}

	// Round trips keep unknown members.
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back identity.DiscoveryDocument
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, ok := back.Extra("x_vendor_feature"); !ok || back.TokenEndpoint != d.TokenEndpoint {
		t.Error("a JSON round trip lost members")
	}
	// A document built in code marshals its typed fields.
	built, err := json.Marshal(identity.DiscoveryDocument{Issuer: "https://x.example.com", JWKSURI: "https://x.example.com/k"})
	if err != nil || string(built) != `{"issuer":"https://x.example.com","jwks_uri":"https://x.example.com/k"}` {
		t.Errorf("built document = %s, %v", built, err)
	}
}

func TestParseDiscoveryRejects(t *testing.T) {
	cases := map[string]string{
		"not JSON":              "<html>oops</html>",
		"empty":                 "",
		"null":                  "null",
		"array":                 "[]",
		"string":                `"https://idp.example.com"`,
		"truncated":             `{"issuer": "https://idp.example.com"`,
		"issuer is a number":    `{"issuer": 1}`,
		"list is a string":      `{"issuer": "https://a", "scopes_supported": "openid"}`,
		"boolean is a string":   `{"issuer": "https://a", "claims_parameter_supported": "yes"}`,
		"aliases is an array":   `{"issuer": "https://a", "mtls_endpoint_aliases": []}`,
		"trailing garbage":      `{"issuer": "https://a"} x`,
		"endpoint is an object": `{"issuer": "https://a", "token_endpoint": {}}`,
		"list holds a number":   `{"issuer": "https://a", "response_types_supported": ["code", 1]}`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := identity.ParseDiscovery([]byte(doc))
			matchesOnly(t, err, identity.ErrNotJSON)
			if d != nil {
				t.Error("a document was returned with the error")
			}
		})
	}
}

func TestDiscoveryValidate(t *testing.T) {
	const authority = "https://idp.example.com"
	edit := func(f func(m map[string]any)) map[string]any {
		m := discoveryMeta(authority)
		f(m)
		return m
	}
	noop := func(map[string]any) {}
	cases := []struct {
		name      string
		authority string
		meta      map[string]any
		policy    identity.DiscoveryPolicy
		want      error
		missing   []string
	}{
		{"valid", authority, edit(noop), identity.DiscoveryPolicy{}, nil, nil},
		{"issuer with trailing slash", authority, edit(func(m map[string]any) { m["issuer"] = authority + "/" }), identity.DiscoveryPolicy{}, identity.ErrIssuerMismatch, nil},
		{"authority with trailing slash", authority + "/", edit(noop), identity.DiscoveryPolicy{}, identity.ErrIssuerMismatch, nil},
		{"both with trailing slash", authority + "/", edit(func(m map[string]any) { m["issuer"] = authority + "/" }), identity.DiscoveryPolicy{}, nil, nil},
		{"issuer of another host", authority, edit(func(m map[string]any) { m["issuer"] = "https://attacker.example.com" }), identity.DiscoveryPolicy{}, identity.ErrIssuerMismatch, nil},
		{"issuer with another path", authority, edit(func(m map[string]any) { m["issuer"] = authority + "/tenant" }), identity.DiscoveryPolicy{}, identity.ErrIssuerMismatch, nil},
		{"issuer differing in case", authority, edit(func(m map[string]any) { m["issuer"] = "https://IDP.example.com" }), identity.DiscoveryPolicy{}, identity.ErrIssuerMismatch, nil},
		{"issuer with two trailing slashes", authority, edit(func(m map[string]any) { m["issuer"] = authority + "//" }), identity.DiscoveryPolicy{}, identity.ErrIssuerMismatch, nil},
		{"http authority", "http://idp.example.com", discoveryMeta("http://idp.example.com"), identity.DiscoveryPolicy{}, identity.ErrHTTPSRequired, nil},
		{"http authority allowed", "http://idp.example.com", discoveryMeta("http://idp.example.com"), identity.DiscoveryPolicy{AllowHTTP: true}, nil, nil},
		{"http loopback authority", "http://localhost:8080", discoveryMeta("http://localhost:8080"), identity.DiscoveryPolicy{}, nil, nil},
		{"missing jwks_uri", authority, edit(func(m map[string]any) { delete(m, "jwks_uri") }), identity.DiscoveryPolicy{}, identity.ErrMissingMember, []string{"jwks_uri"}},
		{"missing jwks_uri allowed", authority, edit(func(m map[string]any) { delete(m, "jwks_uri") }), identity.DiscoveryPolicy{AllowMissingJWKSURI: true}, nil, nil},
		{"empty jwks_uri", authority, edit(func(m map[string]any) { m["jwks_uri"] = "" }), identity.DiscoveryPolicy{}, identity.ErrMissingMember, []string{"jwks_uri"}},
		{"null issuer", authority, edit(func(m map[string]any) { m["issuer"] = nil }), identity.DiscoveryPolicy{}, identity.ErrMissingMember, []string{"issuer"}},
		{"empty required list", authority, edit(func(m map[string]any) { m["response_types_supported"] = []string{} }), identity.DiscoveryPolicy{}, identity.ErrMissingMember, []string{"response_types_supported"}},
		{"several missing", authority, edit(func(m map[string]any) {
			delete(m, "token_endpoint")
			delete(m, "subject_types_supported")
			delete(m, "id_token_signing_alg_values_supported")
		}), identity.DiscoveryPolicy{}, identity.ErrMissingMember, []string{"token_endpoint", "subject_types_supported", "id_token_signing_alg_values_supported"}},
		{"RFC 8414 needs no OIDC members", authority, map[string]any{"issuer": authority, "response_types_supported": []string{"code"}, "jwks_uri": authority + "/jwks"},
			identity.DiscoveryPolicy{Kind: identity.OAuthAuthorizationServer}, nil, nil},
		{"RFC 8414 still needs response_types_supported and jwks_uri", authority, map[string]any{"issuer": authority},
			identity.DiscoveryPolicy{Kind: identity.OAuthAuthorizationServer}, identity.ErrMissingMember, []string{"response_types_supported", "jwks_uri"}},
		{"endpoint on another host", authority, edit(func(m map[string]any) { m["token_endpoint"] = "https://evil.example.net/token" }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, nil},
		{"jwks_uri on another host", authority, edit(func(m map[string]any) { m["jwks_uri"] = "https://evil.example.net/jwks" }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, nil},
		{"endpoint on another port", authority, edit(func(m map[string]any) { m["userinfo_endpoint"] = "https://idp.example.com:8443/userinfo" }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, nil},
		{"endpoint on a subdomain", authority, edit(func(m map[string]any) { m["userinfo_endpoint"] = "https://api.idp.example.com/userinfo" }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, nil},
		{"extension endpoint on another host", authority, edit(func(m map[string]any) { m["frobnicate_endpoint"] = "https://evil.example.net/x" }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, nil},
		{"extension endpoint not a string", authority, edit(func(m map[string]any) { m["frobnicate_endpoint"] = 5 }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, nil},
		{"relative endpoint", authority, edit(func(m map[string]any) { m["token_endpoint"] = "/token" }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, nil},
		{"http endpoint", authority, edit(func(m map[string]any) { m["token_endpoint"] = "http://idp.example.com/token" }), identity.DiscoveryPolicy{}, identity.ErrHTTPSRequired, nil},
		{"excluded endpoint", authority, edit(func(m map[string]any) { m["end_session_endpoint"] = "https://logout.example.net/" }),
			identity.DiscoveryPolicy{ExcludedEndpoints: []string{"end_session_endpoint"}}, nil, nil},
		{"additional base host", authority, edit(func(m map[string]any) { m["authorization_endpoint"] = "https://login.example.net/authorize" }),
			identity.DiscoveryPolicy{AdditionalEndpointBases: []string{"https://login.example.net"}}, nil, nil},
		{"additional base with path", authority, edit(func(m map[string]any) { m["authorization_endpoint"] = "https://login.example.net/tenant/authorize" }),
			identity.DiscoveryPolicy{AdditionalEndpointBases: []string{"https://login.example.net/tenant/"}}, nil, nil},
		{"additional base path is a segment boundary", authority, edit(func(m map[string]any) { m["authorization_endpoint"] = "https://login.example.net/tenantevil/authorize" }),
			identity.DiscoveryPolicy{AdditionalEndpointBases: []string{"https://login.example.net/tenant"}}, identity.ErrEndpointNotAllowed, nil},
		{"invalid additional base", authority, edit(noop), identity.DiscoveryPolicy{AdditionalEndpointBases: []string{"not a url"}}, identity.ErrEndpointNotAllowed, nil},
		{"checked endpoints: others on other hosts pass", authority, edit(func(m map[string]any) {
			m["userinfo_endpoint"] = "https://graph.example.net/oidc/userinfo"
			m["token_endpoint"] = "https://login.example.net/token"
		}), identity.DiscoveryPolicy{CheckedEndpoints: []string{"jwks_uri"}}, nil, nil},
		{"checked endpoints: jwks_uri still checked", authority, edit(func(m map[string]any) { m["jwks_uri"] = "https://evil.example.net/jwks" }),
			identity.DiscoveryPolicy{CheckedEndpoints: []string{"jwks_uri"}}, identity.ErrEndpointNotAllowed, nil},
		{"checked endpoints: jwks_uri http refused", authority, edit(func(m map[string]any) { m["jwks_uri"] = "http://idp.example.com/jwks" }),
			identity.DiscoveryPolicy{CheckedEndpoints: []string{"jwks_uri"}}, identity.ErrHTTPSRequired, nil},
		{"checked endpoints: jwks_uri under an additional base", authority, edit(func(m map[string]any) { m["jwks_uri"] = "https://www.googleapis.com/oauth2/v3/certs" }),
			identity.DiscoveryPolicy{CheckedEndpoints: []string{"jwks_uri"}, AdditionalEndpointBases: []string{"https://www.googleapis.com/"}}, nil, nil},
		{"non-endpoint URLs are not checked", authority, edit(func(m map[string]any) { m["op_policy_uri"] = "https://legal.example.net/policy" }), identity.DiscoveryPolicy{}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := identity.ParseDiscovery(mustJSON(c.meta))
			if err != nil {
				t.Fatal(err)
			}
			err = d.Validate(c.authority, c.policy)
			matchesOnly(t, err, c.want)
			if c.missing != nil {
				var me *identity.MissingMembersError
				if !errors.As(err, &me) || !slices.Equal(me.Members, c.missing) {
					t.Errorf("missing = %v, want %v", me, c.missing)
				}
			}
		})
	}
}

// discServer serves the document returned by doc(serverURL) at the OpenID
// well-known path with handler tweaks, counting requests.
func discServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, self string)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	var self string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r, self)
	}))
	self = srv.URL
	t.Cleanup(srv.Close)
	return srv, &hits
}

func serveMeta(edit func(m map[string]any)) func(w http.ResponseWriter, r *http.Request, self string) {
	return func(w http.ResponseWriter, r *http.Request, self string) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		m := discoveryMeta(self)
		edit(m)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(mustJSON(m))
	}
}

func TestFetchDiscovery(t *testing.T) {
	ctx := context.Background()
	other, otherHits := discServer(t, serveMeta(func(map[string]any) {}))
	cases := []struct {
		name   string
		h      func(w http.ResponseWriter, r *http.Request, self string)
		policy identity.DiscoveryPolicy
		want   error
		status int
	}{
		{"valid", serveMeta(func(map[string]any) {}), identity.DiscoveryPolicy{}, nil, 0},
		{"404", func(w http.ResponseWriter, r *http.Request, _ string) { http.NotFound(w, r) }, identity.DiscoveryPolicy{}, identity.ErrHTTPStatus, 404},
		{"500", func(w http.ResponseWriter, _ *http.Request, _ string) { http.Error(w, "boom", 500) }, identity.DiscoveryPolicy{}, identity.ErrHTTPStatus, 500},
		{"HTML content type", func(w http.ResponseWriter, _ *http.Request, self string) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write(mustJSON(discoveryMeta(self)))
		}, identity.DiscoveryPolicy{}, identity.ErrContentType, 0},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request, _ string) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("<html>"))
		}, identity.DiscoveryPolicy{}, identity.ErrNotJSON, 0},
		{"member of the wrong type", serveMeta(func(m map[string]any) { m["scopes_supported"] = "openid" }), identity.DiscoveryPolicy{}, identity.ErrNotJSON, 0},
		{"body over the cap", serveMeta(func(m map[string]any) { m["x_padding"] = strings.Repeat("x", 4096) }), identity.DiscoveryPolicy{MaxBytes: 2048}, identity.ErrBodyTooLarge, 0},
		{"redirect to another host", func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, other.URL+"/.well-known/openid-configuration", http.StatusFound)
		}, identity.DiscoveryPolicy{}, identity.ErrRedirect, 0},
		{"redirect on the same host", func(w http.ResponseWriter, r *http.Request, self string) {
			if r.URL.Path == "/.well-known/openid-configuration" {
				http.Redirect(w, r, self+"/meta", http.StatusFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(mustJSON(discoveryMeta(self)))
		}, identity.DiscoveryPolicy{}, nil, 0},
		{"issuer mismatch", serveMeta(func(m map[string]any) { m["issuer"] = "https://attacker.example.com" }), identity.DiscoveryPolicy{}, identity.ErrIssuerMismatch, 0},
		{"missing jwks_uri", serveMeta(func(m map[string]any) { delete(m, "jwks_uri") }), identity.DiscoveryPolicy{}, identity.ErrMissingMember, 0},
		{"endpoint elsewhere", serveMeta(func(m map[string]any) { m["token_endpoint"] = "https://evil.example.net/token" }), identity.DiscoveryPolicy{}, identity.ErrEndpointNotAllowed, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := discServer(t, c.h)
			d, hdr, err := identity.FetchDiscovery(ctx, nil, srv.URL, c.policy)
			matchesOnly(t, err, c.want)
			if c.want == nil {
				if d == nil || d.Issuer != srv.URL || d.JWKSURI != srv.URL+"/jwks" || hdr == nil {
					t.Fatalf("document = %+v, header %v", d, hdr)
				}
				return
			}
			if d != nil {
				t.Error("a document was returned with the error")
			}
			if c.status != 0 {
				var se *identity.HTTPStatusError
				if !errors.As(err, &se) || se.StatusCode != c.status {
					t.Errorf("err = %v, want an HTTPStatusError %d", err, c.status)
				}
			}
		})
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other host was contacted %d times", n)
	}
	t.Run("http outside loopback fails without I/O", func(t *testing.T) {
		_, _, err := identity.FetchDiscovery(ctx, &http.Client{Transport: failingTransport{t}}, "http://idp.example.com", identity.DiscoveryPolicy{})
		matchesOnly(t, err, identity.ErrHTTPSRequired)
	})
	t.Run("RFC 8414 path", func(t *testing.T) {
		srv, _ := discServer(t, func(w http.ResponseWriter, r *http.Request, self string) {
			if r.URL.Path != "/.well-known/oauth-authorization-server/tenant" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(mustJSON(map[string]any{
				"issuer": self + "/tenant", "jwks_uri": self + "/tenant/jwks", "response_types_supported": []string{"code"},
				"token_endpoint": self + "/tenant/token",
			}))
		})
		d, _, err := identity.FetchDiscovery(ctx, nil, srv.URL+"/tenant", identity.DiscoveryPolicy{Kind: identity.OAuthAuthorizationServer})
		if err != nil || d.TokenEndpoint != srv.URL+"/tenant/token" {
			t.Fatalf("FetchDiscovery = %+v, %v", d, err)
		}
	})
	t.Run("HTTPS with a fixture naming provider.example.com", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(mustJSON(discoveryMeta("https://provider.example.com")))
		}))
		defer srv.Close()
		d, _, err := identity.FetchDiscovery(ctx, hostClient(t, srv), "https://provider.example.com", identity.DiscoveryPolicy{})
		if err != nil || d.Issuer != "https://provider.example.com" {
			t.Fatalf("FetchDiscovery = %+v, %v", d, err)
		}
	})
}

// failingTransport fails the test on any request.
type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("unexpected request to %s", r.URL)
	return nil, errors.New("no requests expected")
}

func TestMetadataKindString(t *testing.T) {
	got := map[identity.MetadataKind]string{
		identity.OpenIDConfiguration:      identity.OpenIDConfiguration.String(),
		identity.OAuthAuthorizationServer: identity.OAuthAuthorizationServer.String(),
	}
	want := map[identity.MetadataKind]string{
		identity.OpenIDConfiguration:      "openid-configuration",
		identity.OAuthAuthorizationServer: "oauth-authorization-server",
	}
	if !maps.Equal(got, want) {
		t.Errorf("String = %v", got)
	}
}
