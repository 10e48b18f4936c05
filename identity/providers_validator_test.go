package identity_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Tenant IDs of the provider-shaped tokens.
const (
	provTenantA = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	provTenantB = "9188040d-6c67-4c5b-b112-36a304b66dad"
	provTenantC = "00000000-1111-2222-3333-444444444444"
)

// Issuer templates of Microsoft Entra ID tokens.
const (
	entraV2Template = "https://login.microsoftonline.com/{tenantid}/v2.0"
	entraV1Template = "https://sts.windows.net/{tenantid}/"
)

// provKeys returns the issuer's published keys as a static key source, so
// that tokens minted with any "iss" verify.
func provKeys(t *testing.T, iss *identitytest.Issuer) identity.KeySource {
	t.Helper()
	ks, err := identity.ParseKeySet(iss.PublicJWKS())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// provCase is one provider-shaped token and the expected outcome: a nil
// sentinel means accepted.
type provCase struct {
	name     string
	claims   map[string]any
	sentinel error
	claim    string
}

// runProvCases validates each case's token (minted by iss) with v.
func runProvCases(t *testing.T, v *identity.Validator, iss *identitytest.Issuer, cases []provCase, check func(*testing.T, *identity.Token)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := v.Validate(t.Context(), iss.Mint(t, c.claims))
			if c.sentinel == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if check != nil {
					check(t, tok)
				}
				return
			}
			valWantErr(t, err, c.sentinel, c.claim)
		})
	}
}

func entraIss(template, tid string) string {
	return strings.Replace(template, identity.TenantPlaceholder, tid, 1)
}

func TestValidatorEntraTenantTemplate(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	keys := provKeys(t, iss)
	v := valValidator(t,
		identity.IssuerConfig{Issuer: entraV2Template, Keys: keys, Audiences: []string{"api-client-id"}, Tenants: []string{provTenantA, provTenantB}},
		identity.IssuerConfig{Issuer: entraV1Template, Keys: keys, Audiences: []string{"api://orders"}, Tenants: []string{provTenantA}},
	)
	v2 := func(issTenant, tid any) map[string]any {
		return map[string]any{"iss": entraIss(entraV2Template, issTenant.(string)), "tid": tid, "aud": "api-client-id", "scp": "Orders.Read"}
	}
	v1 := func(issTenant, tid any) map[string]any {
		return map[string]any{"iss": entraIss(entraV1Template, issTenant.(string)), "tid": tid, "aud": "api://orders", "appid": "client"}
	}
	cases := []provCase{
		{"v2 first allowed tenant", v2(provTenantA, provTenantA), nil, ""},
		{"v2 second allowed tenant", v2(provTenantB, provTenantB), nil, ""},
		{"v2 tenant not allowed", v2(provTenantC, provTenantC), identity.ErrClaimValidation, "tid"},
		{"v2 tid missing", v2(provTenantA, nil), identity.ErrClaimValidation, "tid"},
		{"v2 tid not a string", v2(provTenantA, 42), identity.ErrClaimValidation, "tid"},
		{"v2 iss of another tenant than tid", v2(provTenantB, provTenantA), identity.ErrClaimValidation, "iss"},
		{"v2 iss of an allowed tenant, tid not allowed", v2(provTenantA, provTenantC), identity.ErrClaimValidation, "iss"},
		{"v2 iss with the common segment", v2("common", provTenantA), identity.ErrClaimValidation, "iss"},
		{"v2 iss the literal template", v2(identity.TenantPlaceholder, provTenantA), identity.ErrUnknownIssuer, "iss"},
		{"v2 iss with an extra path segment", v2(provTenantA+"/x", provTenantA), identity.ErrUnknownIssuer, "iss"},
		{"v2 iss with an empty tenant segment", v2("", provTenantA), identity.ErrUnknownIssuer, "iss"},
		{"v2 iss with a dot-dot segment", v2("..", ".."), identity.ErrUnknownIssuer, "iss"},
		{"v2 iss without the version", map[string]any{"iss": "https://login.microsoftonline.com/" + provTenantA, "tid": provTenantA, "aud": "api-client-id"}, identity.ErrUnknownIssuer, "iss"},
		{"v2 iss differing in case", map[string]any{"iss": "https://LOGIN.microsoftonline.com/" + provTenantA + "/v2.0", "tid": provTenantA, "aud": "api-client-id"}, identity.ErrUnknownIssuer, "iss"},
		{"v1 allowed tenant", v1(provTenantA, provTenantA), nil, ""},
		{"v1 tenant allowed for v2 only", v1(provTenantB, provTenantB), identity.ErrClaimValidation, "tid"},
		{"v1 iss without the trailing slash", map[string]any{"iss": "https://sts.windows.net/" + provTenantA, "tid": provTenantA, "aud": "api://orders"}, identity.ErrUnknownIssuer, "iss"},
		{"v1 token with the v2 audience", map[string]any{"iss": entraIss(entraV1Template, provTenantA), "tid": provTenantA, "aud": "api-client-id"}, identity.ErrClaimValidation, "aud"},
	}
	runProvCases(t, v, iss, cases, func(t *testing.T, tok *identity.Token) {
		// The configured template identifies the issuer (the handler keys
		// its per-issuer policy by it); the concrete iss stays in the claims.
		if tok.Issuer != entraV2Template && tok.Issuer != entraV1Template {
			t.Errorf("Token.Issuer = %q, want a configured template", tok.Issuer)
		}
		tid, _ := tok.Claims.String("tid")
		if tok.Claims.Issuer != entraIss(tok.Issuer, tid) {
			t.Errorf("Claims.Issuer = %q, want the template filled in with %q", tok.Claims.Issuer, tid)
		}
		if !v.KeyStillValid(tok.Issuer, tok.KeyThumbprint) {
			t.Errorf("KeyStillValid(%q) = false", tok.Issuer)
		}
	})
}

func TestValidatorEntraAnyTenant(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	v := valValidator(t, identity.IssuerConfig{Issuer: entraV2Template, Keys: provKeys(t, iss), Audiences: []string{"api"}, AnyTenant: true})
	claims := func(issTenant, tid string) map[string]any {
		return map[string]any{"iss": entraIss(entraV2Template, issTenant), "tid": tid, "aud": "api"}
	}
	runProvCases(t, v, iss, []provCase{
		{"any tenant", claims(provTenantC, provTenantC), nil, ""},
		{"iss still has to match tid", claims(provTenantC, provTenantA), identity.ErrClaimValidation, "iss"},
		{"tid still required", map[string]any{"iss": entraIss(entraV2Template, provTenantC), "aud": "api"}, identity.ErrClaimValidation, "tid"},
	}, nil)
}

func TestValidatorGoogleAliases(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	const client = "1234567890-abc.apps.googleusercontent.com"
	v := valValidator(t, identity.IssuerConfig{
		Issuer: "https://accounts.google.com", Aliases: []string{"accounts.google.com"},
		Keys: provKeys(t, iss), Audiences: []string{client},
	})
	google := func(issuer string) map[string]any {
		return map[string]any{"iss": issuer, "aud": client, "azp": client, "email": "a@example.com", "hd": "example.com"}
	}
	runProvCases(t, v, iss, []provCase{
		{"https spelling", google("https://accounts.google.com"), nil, ""},
		{"bare host spelling", google("accounts.google.com"), nil, ""},
		{"trailing slash refused", google("https://accounts.google.com/"), identity.ErrUnknownIssuer, "iss"},
		{"http spelling refused", google("http://accounts.google.com"), identity.ErrUnknownIssuer, "iss"},
		{"other case refused", google("Accounts.Google.com"), identity.ErrUnknownIssuer, "iss"},
	}, func(t *testing.T, tok *identity.Token) {
		if tok.Issuer != "https://accounts.google.com" {
			t.Errorf("Token.Issuer = %q, want the configured issuer", tok.Issuer)
		}
	})
}

func TestValidatorAuthorizedParty(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	keys := provKeys(t, iss)
	cfg := func(claim string) identity.IssuerConfig {
		return identity.IssuerConfig{Issuer: iss.URL, Keys: keys, AnyAudience: true,
			AuthorizedParties: []string{"web-app", "mobile-app"}, AuthorizedPartyClaim: claim}
	}
	t.Run("azp", func(t *testing.T) {
		runProvCases(t, valValidator(t, cfg("")), iss, []provCase{
			{"allowed", map[string]any{"azp": "web-app"}, nil, ""},
			{"second allowed", map[string]any{"azp": "mobile-app"}, nil, ""},
			{"other client", map[string]any{"azp": "other-app"}, identity.ErrClaimValidation, "azp"},
			{"absent", nil, identity.ErrClaimValidation, "azp"},
			{"null", map[string]any{"azp": nil}, identity.ErrClaimValidation, "azp"},
			{"array", map[string]any{"azp": []string{"web-app"}}, identity.ErrClaimValidation, "azp"},
			{"client elsewhere does not count", map[string]any{"client_id": "web-app"}, identity.ErrClaimValidation, "azp"},
		}, nil)
	})
	for _, claim := range []string{"appid", "cid", "client_id"} {
		t.Run(claim, func(t *testing.T) {
			runProvCases(t, valValidator(t, cfg(claim)), iss, []provCase{
				{"allowed", map[string]any{claim: "web-app"}, nil, ""},
				{"other client", map[string]any{claim: "other-app"}, identity.ErrClaimValidation, claim},
				{"absent, azp allowed", map[string]any{"azp": "web-app"}, identity.ErrClaimValidation, claim},
			}, nil)
		})
	}
	t.Run("not configured", func(t *testing.T) {
		v := valValidator(t, identity.IssuerConfig{Issuer: iss.URL, Keys: keys, AnyAudience: true})
		runProvCases(t, v, iss, []provCase{
			{"absent", nil, nil, ""},
			{"any client", map[string]any{"azp": "anything"}, nil, ""},
		}, nil)
	})
}

func TestValidatorProviderConfigErrors(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	keys := provKeys(t, iss)
	base := func(f func(c *identity.IssuerConfig)) identity.IssuerConfig {
		c := identity.IssuerConfig{Issuer: entraV2Template, Keys: keys, Audiences: []string{"api"}, Tenants: []string{provTenantA}}
		f(&c)
		return c
	}
	cases := []struct {
		name string
		cfgs []identity.IssuerConfig
		want string
	}{
		{"template without tenants", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) { c.Tenants = nil })}, "Tenants or AnyTenant"},
		{"template with tenants and any tenant", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) { c.AnyTenant = true })}, "Tenants or AnyTenant"},
		{"tenants without template", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) { c.Issuer = "https://login.microsoftonline.com/x/v2.0" })}, "need an issuer template"},
		{"any tenant without template", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) {
			c.Issuer, c.Tenants, c.AnyTenant = "https://login.microsoftonline.com/x/v2.0", nil, true
		})}, "need an issuer template"},
		{"two placeholders", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) { c.Issuer = "https://{tenantid}.example.com/{tenantid}" })}, "once"},
		{"tenant with a slash", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) { c.Tenants = []string{"a/b"} })}, "invalid tenant"},
		{"empty tenant", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) { c.Tenants = []string{""} })}, "invalid tenant"},
		{"aliases on a template", []identity.IssuerConfig{base(func(c *identity.IssuerConfig) { c.Aliases = []string{"x"} })}, "Aliases"},
		{"empty alias", []identity.IssuerConfig{{Issuer: "https://a", Keys: keys, AnyAudience: true, Aliases: []string{""}}}, "invalid alias"},
		{"alias equal to the issuer", []identity.IssuerConfig{{Issuer: "https://a", Keys: keys, AnyAudience: true, Aliases: []string{"https://a"}}}, "invalid alias"},
		{"alias of another issuer", []identity.IssuerConfig{
			{Issuer: "https://a", Keys: keys, AnyAudience: true},
			{Issuer: "https://b", Keys: keys, AnyAudience: true, Aliases: []string{"https://a"}},
		}, "already accepted"},
		{"same template twice", []identity.IssuerConfig{base(func(*identity.IssuerConfig) {}), base(func(*identity.IssuerConfig) {})}, "twice"},
		{"empty authorized party", []identity.IssuerConfig{{Issuer: "https://a", Keys: keys, AnyAudience: true, AuthorizedParties: []string{""}}}, "empty authorized party"},
		{"authorized party claim alone", []identity.IssuerConfig{{Issuer: "https://a", Keys: keys, AnyAudience: true, AuthorizedPartyClaim: "cid"}}, "without AuthorizedParties"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := identity.NewValidator(c.cfgs, identity.ValidatorOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want containing %q", err, c.want)
			}
		})
	}
}

func TestClaimsRolesAndGroups(t *testing.T) {
	cases := []struct {
		name          string
		payload       string
		roles, groups []string
		malformed     string
	}{
		{"absent", `{"sub":"u"}`, nil, nil, ""},
		{"arrays (Entra app roles, group IDs)", `{"roles":["Orders.Read","Orders.Write"],"groups":["g1","g2"]}`, []string{"Orders.Read", "Orders.Write"}, []string{"g1", "g2"}, ""},
		{"strings", `{"roles":"admin","groups":"/staff"}`, []string{"admin"}, []string{"/staff"}, ""},
		{"empty arrays", `{"roles":[],"groups":[]}`, []string{}, []string{}, ""},
		{"nested roles are not top-level roles", `{"realm_access":{"roles":["kc"]}}`, nil, nil, ""},
		{"roles with a number", `{"roles":["a",1]}`, nil, nil, "roles"},
		{"roles an object", `{"roles":{"a":true}}`, nil, nil, "roles"},
		{"roles null", `{"roles":null}`, nil, nil, "roles"},
		{"groups a number", `{"groups":7}`, nil, nil, "groups"},
		{"groups with an object", `{"groups":[{"id":"g"}]}`, nil, nil, "groups"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := identity.ParseClaims([]byte(c.payload))
			if c.malformed != "" {
				var ce *identity.ClaimError
				if !errors.As(err, &ce) || ce.Claim != c.malformed || ce.Reason != "malformed" {
					t.Fatalf("err = %v, want %s malformed", err, c.malformed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Roles, c.roles) || (got.Roles == nil) != (c.roles == nil) {
				t.Errorf("Roles = %#v, want %#v", got.Roles, c.roles)
			}
			if !slices.Equal(got.Groups, c.groups) || (got.Groups == nil) != (c.groups == nil) {
				t.Errorf("Groups = %#v, want %#v", got.Groups, c.groups)
			}
		})
	}
	// Where providers put them otherwise, Strings reads them.
	c, err := identity.ParseClaims([]byte(`{"realm_access":{"roles":["kc-admin"]},"cognito:groups":["admins"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Strings("realm_access.roles"), []string{"kc-admin"}) || !slices.Equal(c.Strings("cognito:groups"), []string{"admins"}) {
		t.Errorf("nested roles %q, cognito groups %q", c.Strings("realm_access.roles"), c.Strings("cognito:groups"))
	}
}

func TestValidatorRolesWrongTypeRefused(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	v := valValidator(t, identity.IssuerConfig{Issuer: iss.URL, Keys: provKeys(t, iss), AnyAudience: true})
	runProvCases(t, v, iss, []provCase{
		{"roles array", map[string]any{"roles": []string{"r"}, "groups": "g"}, nil, ""},
		{"roles with a number", map[string]any{"roles": []any{"r", 1}}, identity.ErrClaimValidation, "roles"},
		{"groups an object", map[string]any{"groups": map[string]any{"g": 1}}, identity.ErrClaimValidation, "groups"},
	}, func(t *testing.T, tok *identity.Token) {
		if !slices.Equal(tok.Claims.Roles, []string{"r"}) || !slices.Equal(tok.Claims.Groups, []string{"g"}) {
			t.Errorf("Roles %q Groups %q", tok.Claims.Roles, tok.Claims.Groups)
		}
	})
}

// entraCommonMeta is the shape of the discovery document of Entra ID's
// authority for tenant segment seg: endpoints under the authority, the
// issuer a template (userinfo, on graph.microsoft.com, left out).
func entraCommonMeta(seg, issuer string) map[string]any {
	base := "https://login.microsoftonline.com/" + seg
	return map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   nil,
	}
}

func TestDiscoveryValidateTenantTemplate(t *testing.T) {
	cases := []struct {
		name, authority, seg, issuer string
		want                         error
	}{
		{"common with the v2 template", "https://login.microsoftonline.com/common/v2.0", "common", entraV2Template, nil},
		{"organizations with the v2 template", "https://login.microsoftonline.com/organizations/v2.0", "organizations", entraV2Template, nil},
		{"consumers with the v2 template", "https://login.microsoftonline.com/consumers/v2.0", "consumers", entraV2Template, nil},
		{"common with a trailing slash", "https://login.microsoftonline.com/common/v2.0/", "common", entraV2Template, nil},
		{"single tenant still exact", "https://login.microsoftonline.com/" + provTenantA + "/v2.0", provTenantA, entraIss(entraV2Template, provTenantA), nil},
		{"single tenant with the template", "https://login.microsoftonline.com/" + provTenantA + "/v2.0", provTenantA, entraV2Template, identity.ErrIssuerMismatch},
		{"template on another host", "https://login.microsoftonline.com/common/v2.0", "common", "https://login.example.net/{tenantid}/v2.0", identity.ErrIssuerMismatch},
		{"template of the v1 issuer", "https://login.microsoftonline.com/common", "common", entraV1Template, identity.ErrIssuerMismatch},
		{"template with another version", "https://login.microsoftonline.com/common/v2.0", "common", "https://login.microsoftonline.com/{tenantid}/v3.0", identity.ErrIssuerMismatch},
		{"template with two placeholders", "https://login.microsoftonline.com/common/v2.0", "common", "https://login.microsoftonline.com/{tenantid}/{tenantid}", identity.ErrIssuerMismatch},
		{"template for any other segment", "https://idp.example.com/realm/v2.0", "realm", "https://idp.example.com/{tenantid}/v2.0", identity.ErrIssuerMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			meta := entraCommonMeta(c.seg, c.issuer)
			if c.authority == "https://idp.example.com/realm/v2.0" {
				meta = discoveryMeta("https://idp.example.com/realm/v2.0")
				meta["issuer"] = c.issuer
			}
			d, err := identity.ParseDiscovery(mustJSON(meta))
			if err != nil {
				t.Fatal(err)
			}
			matchesOnly(t, d.Validate(c.authority, identity.DiscoveryPolicy{}), c.want)
		})
	}
	// The template still fails every other check: an endpoint off the
	// authority's host is refused as before.
	meta := entraCommonMeta("common", entraV2Template)
	meta["userinfo_endpoint"] = "https://graph.microsoft.com/oidc/userinfo"
	d, err := identity.ParseDiscovery(mustJSON(meta))
	if err != nil {
		t.Fatal(err)
	}
	matchesOnly(t, d.Validate("https://login.microsoftonline.com/common/v2.0", identity.DiscoveryPolicy{}), identity.ErrEndpointNotAllowed)
	if err := d.Validate("https://login.microsoftonline.com/common/v2.0", identity.DiscoveryPolicy{ExcludedEndpoints: []string{"userinfo_endpoint"}}); err != nil {
		t.Fatalf("with userinfo excluded: %v", err)
	}
}

// TestProviderCommonAuthorityWithTemplate runs the multi-tenant pipeline: a
// provider on a "common" authority whose document gives the issuer
// template, and a validator for that template with its tenants.
func TestProviderCommonAuthorityWithTemplate(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithIssuerPath("/common/v2.0"),
		identitytest.WithMetadataOverride(func(m map[string]any) {
			m["issuer"] = strings.Replace(m["issuer"].(string), "/common/", "/"+identity.TenantPlaceholder+"/", 1)
		}))
	template := strings.Replace(iss.URL, "/common/", "/"+identity.TenantPlaceholder+"/", 1)
	p, err := identity.NewProvider(iss.URL, identity.ProviderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if _, err := p.Discovery(t.Context()); err != nil {
		t.Fatalf("discovery of the common authority: %v", err)
	}
	v := valValidator(t, identity.IssuerConfig{Issuer: template, Keys: p, Audiences: []string{"api"}, Tenants: []string{provTenantA}})
	runProvCases(t, v, iss, []provCase{
		{"allowed tenant", map[string]any{"iss": entraIss(template, provTenantA), "tid": provTenantA, "aud": "api"}, nil, ""},
		{"other tenant", map[string]any{"iss": entraIss(template, provTenantB), "tid": provTenantB, "aud": "api"}, identity.ErrClaimValidation, "tid"},
		{"the authority itself", map[string]any{"iss": iss.URL, "tid": "common", "aud": "api"}, identity.ErrClaimValidation, "tid"},
	}, nil)
}
