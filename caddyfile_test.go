package caddyidentity

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func intPtr(n int) *int { return &n }

func durPtr(d time.Duration) *caddy.Duration {
	cd := caddy.Duration(d)
	return &cd
}

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{
			name: "minimal",
			input: `identity {
				issuer https://auth.example.com
				audience api
			}`,
			want: Handler{
				Issuers:   []IssuerConfig{{Issuer: "https://auth.example.com"}},
				Audiences: []string{"api"},
			},
		},
		{
			name: "everything at top level",
			input: `identity {
				issuer https://auth.example.com/realms/demo
				jwks_url https://auth.example.com/keys
				insecure_allow_http
				audience api  other
				audience third
				algorithms RS256 ES256
				token_type at+jwt
				leeway 30s
				max_age 12h
				token_from header Authorization Bearer
				token_from header X-Api-Token
				token_from cookie access_token
				token_from query access_token
				require_scope read:orders
				require_scope write:orders
				require_claim groups admin ops
				require_claim email_verified true
				require_claim tenant
				claim_header sub X-User-Id
				claim_header realm_access.roles X-User-Roles
				strip_header X-Forwarded-User X-Remote-User
				optional
				forward_token
				realm my-api
				cache_size 5000
				max_token_size 16KiB
				refresh_wait 1500ms
			}`,
			want: Handler{
				Issuers: []IssuerConfig{{
					Issuer:            "https://auth.example.com/realms/demo",
					JWKSURL:           "https://auth.example.com/keys",
					InsecureAllowHTTP: true,
				}},
				Audiences:  []string{"api", "other", "third"},
				Algorithms: []string{"RS256", "ES256"},
				TokenTypes: []string{"at+jwt"},
				Leeway:     durPtr(30 * time.Second),
				MaxAge:     caddy.Duration(12 * time.Hour),
				TokenSources: []TokenSource{
					{From: "header", Name: "Authorization", Scheme: "Bearer"},
					{From: "header", Name: "X-Api-Token"},
					{From: "cookie", Name: "access_token"},
					{From: "query", Name: "access_token"},
				},
				RequireScopes: []string{"read:orders", "write:orders"},
				RequireClaims: []ClaimRule{
					{Claim: "groups", Values: []string{"admin", "ops"}},
					{Claim: "email_verified", Values: []string{"true"}},
					{Claim: "tenant", Values: []string{}},
				},
				ClaimHeaders: []ClaimHeader{
					{Claim: "sub", Header: "X-User-Id"},
					{Claim: "realm_access.roles", Header: "X-User-Roles"},
				},
				StripHeaders: []string{"X-Forwarded-User", "X-Remote-User"},
				Optional:     true,
				ForwardToken: true,
				Realm:        "my-api",
				CacheSize:    intPtr(5000),
				MaxTokenSize: 16 * 1024,
				RefreshWait:  caddy.Duration(1500 * time.Millisecond),
			},
		},
		{
			name: "several issuers with blocks",
			input: `identity {
				issuer https://a.example.com {
					audience api-a
					algorithms ES256
					require_scope a:read
					require_claim tid 42
					token_type at+jwt
				}
				issuer https://b.example.com {
					jwks_file /etc/caddy/b.jwks
					audience any
				}
				issuer https://c.example.com
				audience shared
				require_scope common
				strip_token
				cache_size 0
				leeway 0s
			}`,
			want: Handler{
				Issuers: []IssuerConfig{
					{
						Issuer: "https://a.example.com", Audiences: []string{"api-a"}, Algorithms: []string{"ES256"},
						RequireScopes: []string{"a:read"}, RequireClaims: []ClaimRule{{Claim: "tid", Values: []string{"42"}}},
						TokenTypes: []string{"at+jwt"},
					},
					{Issuer: "https://b.example.com", JWKSFile: "/etc/caddy/b.jwks", AnyAudience: true},
					{Issuer: "https://c.example.com"},
				},
				Audiences:     []string{"shared"},
				RequireScopes: []string{"common"},
				CacheSize:     intPtr(0),
				Leeway:        durPtr(0),
			},
		},
		{
			name: "cert_binding off",
			input: `identity {
				issuer https://auth.example.com
				audience api
				cert_binding off
			}`,
			want: Handler{
				Issuers:     []IssuerConfig{{Issuer: "https://auth.example.com"}},
				Audiences:   []string{"api"},
				CertBinding: "off",
			},
		},
		{
			name: "audience any",
			input: `identity {
				issuer https://auth.example.com
				audience any
			}`,
			want: Handler{
				Issuers:     []IssuerConfig{{Issuer: "https://auth.example.com"}},
				AnyAudience: true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				gj, _ := json.MarshalIndent(got, "", "  ")
				wj, _ := json.MarshalIndent(tt.want, "", "  ")
				t.Fatalf("got\n%s\nwant\n%s", gj, wj)
			}
			if err := got.checkConfig(); err != nil {
				t.Fatalf("checkConfig: %v", err)
			}
		})
	}
}

// wantUnmarshalError requires the Caddyfile input to be refused with an
// error containing want.
func wantUnmarshalError(t *testing.T, input, want string) {
	t.Helper()
	var h Handler
	wantErrorContaining(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)), want)
}

// wantErrorContaining requires err to contain want.
func wantErrorContaining(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want containing %q", err, want)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"argument on directive", "identity foo {\n}", "wrong argument count"},
		{"unknown option", "identity {\nfoo bar\n}", "unrecognized option \"foo\" in the identity block"},
		{"unknown issuer option", "identity {\nissuer https://a {\nfoo\n}\n}", "unrecognized option"},
		{"issuer without url", "identity {\nissuer\n}", "issuer needs a URL"},
		{"issuer two urls", "identity {\nissuer https://a https://b\n}", "wrong argument count"},
		{"audience any mixed", "identity {\naudience a\naudience any\n}", "cannot be combined"},
		{"audience any then values", "identity {\naudience any\naudience a\n}", "cannot be combined"},
		{"bad leeway", "identity {\nleeway soon\n}", "leeway"},
		{"leeway twice", "identity {\nleeway 1s\nleeway 2s\n}", "twice"},
		{"max_age zero", "identity {\nmax_age 0s\n}", "max_age"},
		{"refresh_wait zero", "identity {\nrefresh_wait 0s\n}", "refresh_wait"},
		{"token_from unknown", "identity {\ntoken_from body x\n}", "want header, cookie or query"},
		{"token_from cookie scheme", "identity {\ntoken_from cookie a Bearer\n}", "wrong argument count"},
		{"token_from short", "identity {\ntoken_from header\n}", "wrong argument count"},
		{"claim_header one arg", "identity {\nclaim_header sub\n}", "wrong argument count"},
		{"forward and strip", "identity {\nforward_token\nstrip_token\n}", "exclusive"},
		{"optional arg", "identity {\noptional yes\n}", "wrong argument count"},
		{"cache_size negative", "identity {\ncache_size -1\n}", "cache_size"},
		{"cache_size word", "identity {\ncache_size big\n}", "cache_size"},
		{"max_token_size zero", "identity {\nmax_token_size 0\n}", "max_token_size"},
		{"max_token_size huge", "identity {\nmax_token_size 2MiB\n}", "max_token_size"},
		{"top jwks with two issuers", "identity {\nissuer https://a\nissuer https://b\njwks_url https://k\n}", "exactly one issuer"},
		{"top jwks and block jwks", "identity {\nissuer https://a {\njwks_url https://k1\n}\njwks_file /k2\n}", "both at top level"},
		{"empty require_scope", "identity {\nrequire_scope\n}", "wrong argument count"},
		{"empty require_claim", "identity {\nrequire_claim\n}", "wrong argument count"},
		{"dpop without mode", "identity {\ndpop\n}", "wrong argument count"},
		{"dpop unknown mode", "identity {\ndpop maybe\n}", "want off, allow or require"},
		{"dpop twice", "identity {\ndpop off\ndpop require\n}", "dpop given twice"},
		{"cert_binding without mode", "identity {\ncert_binding\n}", "wrong argument count"},
		{"cert_binding unknown mode", "identity {\ncert_binding strict\n}", "want check or off"},
		{"cert_binding twice", "identity {\ncert_binding off\ncert_binding check\n}", "cert_binding given twice"},
		{"audience any among values", "identity {\naudience a any\n}", "cannot be combined"},
		{"jwks_url twice", "identity {\nissuer https://a\njwks_url https://k1\njwks_url https://k2\n}", "jwks_url given twice"},
		{"jwks_file twice", "identity {\nissuer https://a\njwks_file /k1\njwks_file /k2\n}", "jwks_file given twice"},
		{"issuer jwks_url twice", "identity {\nissuer https://a {\njwks_url https://k1\njwks_url https://k2\n}\n}", "jwks_url given twice"},
		{"issuer jwks_file twice", "identity {\nissuer https://a {\njwks_file /k1\njwks_file /k2\n}\n}", "jwks_file given twice"},
		{"realm twice", "identity {\nrealm a\nrealm b\n}", "realm given twice"},
		{"cache_size twice", "identity {\ncache_size 1\ncache_size 0\n}", "cache_size given twice"},
		{"max_age twice", "identity {\nmax_age 1h\nmax_age 2h\n}", "max_age given twice"},
		{"refresh_wait twice", "identity {\nrefresh_wait 1s\nrefresh_wait 2s\n}", "refresh_wait given twice"},
		{"max_token_size twice", "identity {\nmax_token_size 4KiB\nmax_token_size 8KiB\n}", "max_token_size given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantUnmarshalError(t, tt.input, tt.want) })
	}
}

func TestCheckConfigErrors(t *testing.T) {
	base := func() Handler {
		return Handler{Issuers: []IssuerConfig{{Issuer: "https://a.example.com"}}, Audiences: []string{"api"}}
	}
	tests := []struct {
		name   string
		mutate func(h *Handler)
		want   string
	}{
		{"no issuer", func(h *Handler) { h.Issuers = nil }, "at least one issuer"},
		{"empty issuer", func(h *Handler) { h.Issuers[0].Issuer = "" }, "empty"},
		{"duplicate issuer", func(h *Handler) { h.Issuers = append(h.Issuers, h.Issuers[0]) }, "twice"},
		{"no audience", func(h *Handler) { h.Audiences = nil }, "audience is required"},
		{"audience and any", func(h *Handler) { h.AnyAudience = true }, "exclusive"},
		{"issuer audience and any", func(h *Handler) { h.Issuers[0].Audiences, h.Issuers[0].AnyAudience = []string{"a"}, true }, "exclusive"},
		{"jwks url and file", func(h *Handler) { h.Issuers[0].JWKSURL, h.Issuers[0].JWKSFile = "https://k", "/k" }, "exclusive"},
		{"alg none", func(h *Handler) { h.Algorithms = []string{"none"} }, "never accepted"},
		{"alg NONE in issuer", func(h *Handler) { h.Issuers[0].Algorithms = []string{"NONE"} }, "never accepted"},
		{"alg hmac", func(h *Handler) { h.Algorithms = []string{"HS256"} }, "HMAC"},
		{"alg unknown", func(h *Handler) { h.Algorithms = []string{"RS1"} }, "unknown algorithm"},
		{"negative leeway", func(h *Handler) { h.Leeway = durPtr(-time.Second) }, "leeway"},
		{"negative cache", func(h *Handler) { h.CacheSize = intPtr(-1) }, "cache_size"},
		{"negative max token", func(h *Handler) { h.MaxTokenSize = -1 }, "max_token_size"},
		{"max token over 1 MiB", func(h *Handler) { h.MaxTokenSize = MaxMaxTokenSize + 1 }, "max_token_size"},
		{"realm quote", func(h *Handler) { h.Realm = `a"b` }, "realm"},
		{"bad source", func(h *Handler) { h.TokenSources = []TokenSource{{From: "body", Name: "x"}} }, "must be header, cookie or query"},
		{"source without name", func(h *Handler) { h.TokenSources = []TokenSource{{From: "cookie"}} }, "name is required"},
		{"cookie scheme", func(h *Handler) { h.TokenSources = []TokenSource{{From: "cookie", Name: "a", Scheme: "Bearer"}} }, "headers only"},
		{"bad header name", func(h *Handler) { h.ClaimHeaders = []ClaimHeader{{Claim: "sub", Header: "X User"}} }, "invalid header name"},
		{"empty claim header", func(h *Handler) { h.ClaimHeaders = []ClaimHeader{{Claim: "", Header: "X-A"}} }, "needs a claim"},
		{"bad strip header", func(h *Handler) { h.StripHeaders = []string{"X:A"} }, "invalid header name"},
		{"empty claim rule", func(h *Handler) { h.RequireClaims = []ClaimRule{{}} }, "claim path"},
		{"bad scope", func(h *Handler) { h.RequireScopes = []string{`a"b`} }, "invalid scope"},
		{"empty issuer scope", func(h *Handler) { h.Issuers[0].RequireScopes = []string{""} }, "empty scope"},
		{"bad cert_binding", func(h *Handler) { h.CertBinding = "strict" }, "cert_binding must be check or off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.mutate(&h)
			wantErrorContaining(t, h.checkConfig(), tt.want)
		})
	}
	ok := base()
	if err := ok.checkConfig(); err != nil {
		t.Fatalf("base config: %v", err)
	}
}

// adaptCaddyfile adapts a whole Caddyfile to JSON like `caddy adapt` does
// and fails the test on errors and warnings.
func adaptCaddyfile(t *testing.T, input string) []byte {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("caddyfile adapter not registered")
	}
	out, warnings, err := adapter.Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, input)
	}
	for _, w := range warnings {
		t.Errorf("adapt warning: %s:%d: %s (directive %s)", w.File, w.Line, w.Message, w.Directive)
	}
	return out
}

// identityHandlers returns every "identity" handler object in an adapted
// config, in order.
func identityHandlers(t *testing.T, cfg []byte) []json.RawMessage {
	t.Helper()
	var found []json.RawMessage
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "identity" {
				b, err := json.Marshal(x)
				if err != nil {
					t.Fatal(err)
				}
				found = append(found, b)
			}
			for _, k := range sortedKeys(x) {
				walk(x[k])
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		t.Fatal(err)
	}
	walk(root)
	return found
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// TestAdaptRoundTrip adapts a Caddyfile, decodes the handler JSON back into
// a Handler, and checks it equals the directly parsed one and re-encodes to
// the same JSON.
func TestAdaptRoundTrip(t *testing.T) {
	block := `identity {
		issuer https://a.example.com {
			audience api-a
			require_claim groups admin
			introspection {
				endpoint https://a.example.com/introspect
				client_id caddy
				client_secret {env.INTROSPECTION_SECRET}
				auth_method client_secret_post
				cache_ttl 0
			}
		}
		issuer https://b.example.com {
			jwks_url https://b.example.com/keys
			audience any
		}
		algorithms RS256 ES256
		leeway 30s
		max_age 2h
		token_from header Authorization Bearer
		token_from cookie at
		require_scope read
		claim_header sub X-User-Id
		claim_header email X-User-Email
		optional
		forward_token
		realm api
		cache_size 0
		max_token_size 4096
		dpop off
		cert_binding off
	}`
	input := "example.com {\n\t" + strings.ReplaceAll(block, "\n\t", "\n\t") + "\n\treverse_proxy localhost:8080\n}\n"
	cfg := adaptCaddyfileLenient(t, input)
	hs := identityHandlers(t, cfg)
	if len(hs) != 1 {
		t.Fatalf("found %d identity handlers, want 1\n%s", len(hs), cfg)
	}
	var fromJSON Handler
	if err := json.Unmarshal(hs[0], &fromJSON); err != nil {
		t.Fatal(err)
	}
	var direct Handler
	if err := direct.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalizeEmpty(fromJSON), normalizeEmpty(direct)) {
		t.Fatalf("JSON round trip differs:\n%s", hs[0])
	}
	again, err := json.Marshal(fromJSON)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	_ = json.Unmarshal(again, &a)
	_ = json.Unmarshal(hs[0], &b)
	delete(b, "handler")
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("re-encoded JSON differs:\n%s\n%s", again, hs[0])
	}
	if !strings.Contains(string(hs[0]), `"cache_size":0`) {
		t.Fatalf("explicit cache_size 0 lost: %s", hs[0])
	}
	if !strings.Contains(string(hs[0]), `"cache_ttl":0`) {
		t.Fatalf("explicit introspection cache_ttl 0 lost: %s", hs[0])
	}
}

// adaptCaddyfileLenient adapts without failing on formatting warnings.
func adaptCaddyfileLenient(t *testing.T, input string) []byte {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, input)
	}
	return out
}

// normalizeEmpty maps empty value lists of claim rules to nil, as JSON's
// omitempty does.
func normalizeEmpty(h Handler) Handler {
	fix := func(rs []ClaimRule) {
		for i := range rs {
			if len(rs[i].Values) == 0 {
				rs[i].Values = nil
			}
		}
	}
	fix(h.RequireClaims)
	for i := range h.Issuers {
		fix(h.Issuers[i].RequireClaims)
	}
	return h
}

// TestDirectiveOrder checks that identity runs before request_header and
// reverse_proxy when written directly in a site block.
func TestDirectiveOrder(t *testing.T) {
	cfg := adaptCaddyfile(t, "example.com {\n\treverse_proxy localhost:8080\n\trequest_header X-Who {http.auth.user.id}\n\tidentity {\n\t\tissuer https://auth.example.com\n\t\taudience api\n\t}\n}\n")
	s := string(cfg)
	i, j, k := strings.Index(s, `"handler":"identity"`), strings.Index(s, `"handler":"headers"`), strings.Index(s, `"handler":"reverse_proxy"`)
	if i < 0 || j < 0 || k < 0 || i > j || j > k {
		t.Fatalf("handler order wrong (identity %d, headers %d, reverse_proxy %d):\n%s", i, j, k, s)
	}
}

var caddyfileBlock = regexp.MustCompile("(?s)```caddyfile\n(.*?)```")

// TestReadmeExamplesAdapt adapts every ```caddyfile block of README.md so
// that the documentation cannot rot. A block that is only an identity
// directive (it starts with "identity") is wrapped in a site block.
func TestReadmeExamplesAdapt(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := caddyfileBlock.FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d caddyfile blocks in README.md, expected many", len(blocks))
	}
	for i, m := range blocks {
		body := m[1]
		t.Run(firstLine(body, i), func(t *testing.T) {
			if strings.HasPrefix(body, "identity") {
				body = "example.com {\n" + indent(body) + "}\n"
			}
			cfg := adaptCaddyfile(t, body)
			hs := identityHandlers(t, cfg)
			if len(hs) == 0 {
				t.Fatalf("example has no identity handler:\n%s", body)
			}
			for _, raw := range hs {
				var h Handler
				dec := json.NewDecoder(strings.NewReader(string(raw)))
				if err := dec.Decode(&h); err != nil {
					t.Fatal(err)
				}
				if err := h.checkConfig(); err != nil {
					t.Fatalf("example config invalid: %v\n%s", err, body)
				}
			}
		})
	}
}

func firstLine(s string, i int) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line) + "#" + string(rune('a'+i%26))
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		if line != "" {
			b.WriteString("\t")
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	return b.String()
}

var jsonBlock = regexp.MustCompile("(?s)```json\n(.*?)```")

// TestReadmeJSONExample decodes the README's JSON handler example strictly
// and checks it is a valid configuration.
func TestReadmeJSONExample(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := jsonBlock.FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("no json block in README.md")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(m[1]), &obj); err != nil {
		t.Fatal(err)
	}
	delete(obj, "handler")
	rest, _ := json.Marshal(obj)
	dec := json.NewDecoder(strings.NewReader(string(rest)))
	dec.DisallowUnknownFields()
	var h Handler
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("README JSON example: %v", err)
	}
	if err := h.checkConfig(); err != nil {
		t.Fatalf("README JSON example invalid: %v", err)
	}
	if len(h.Issuers) != 3 || h.CacheSize == nil || *h.CacheSize != 10000 || h.Leeway == nil {
		t.Fatalf("decoded %+v", h)
	}
	if tmpl := h.Issuers[2]; len(tmpl.Tenants) != 1 || len(tmpl.AuthorizedParties) != 1 {
		t.Fatalf("template issuer decoded %+v", tmpl)
	}
}

func TestUnmarshalCaddyfileProviderOptions(t *testing.T) {
	input := `identity {
		issuer https://login.microsoftonline.com/{tenantid}/v2.0 {
			jwks_url https://login.microsoftonline.com/common/discovery/v2.0/keys
			tenants 72f988bf-86f1-41af-91ab-2d7cd011db47
			tenants 9188040d-6c67-4c5b-b112-36a304b66dad
			audience api-client-id
			authorized_party spa-client mobile-client
		}
		issuer https://sts.windows.net/{tenantid}/ {
			jwks_url https://login.microsoftonline.com/common/discovery/keys
			tenants any
			audience api://orders
			authorized_party legacy-client
			authorized_party_claim appid
		}
		issuer https://accounts.google.com {
			alias accounts.google.com
			jwks_url https://www.googleapis.com/oauth2/v3/certs
			audience 1234-abc.apps.googleusercontent.com
		}
		authorized_party default-client
		authorized_party_claim azp
	}`
	want := Handler{
		Issuers: []IssuerConfig{
			{
				Issuer:            "https://login.microsoftonline.com/{tenantid}/v2.0",
				JWKSURL:           "https://login.microsoftonline.com/common/discovery/v2.0/keys",
				Tenants:           []string{"72f988bf-86f1-41af-91ab-2d7cd011db47", "9188040d-6c67-4c5b-b112-36a304b66dad"},
				Audiences:         []string{"api-client-id"},
				AuthorizedParties: []string{"spa-client", "mobile-client"},
			},
			{
				Issuer:               "https://sts.windows.net/{tenantid}/",
				JWKSURL:              "https://login.microsoftonline.com/common/discovery/keys",
				AnyTenant:            true,
				Audiences:            []string{"api://orders"},
				AuthorizedParties:    []string{"legacy-client"},
				AuthorizedPartyClaim: "appid",
			},
			{
				Issuer:    "https://accounts.google.com",
				Aliases:   []string{"accounts.google.com"},
				JWKSURL:   "https://www.googleapis.com/oauth2/v3/certs",
				Audiences: []string{"1234-abc.apps.googleusercontent.com"},
			},
		},
		AuthorizedParties:    []string{"default-client"},
		AuthorizedPartyClaim: "azp",
	}
	var got Handler
	if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if err := got.checkConfig(); err != nil {
		t.Fatalf("checkConfig: %v", err)
	}

	// caddy adapt keeps the template's {tenantid} and round-trips.
	cfg := adaptCaddyfileLenient(t, "example.com {\n"+input+"\n\treverse_proxy localhost:8080\n}\n")
	hs := identityHandlers(t, cfg)
	if len(hs) != 1 {
		t.Fatalf("found %d identity handlers\n%s", len(hs), cfg)
	}
	var fromJSON Handler
	if err := json.Unmarshal(hs[0], &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, want) {
		t.Fatalf("adapted JSON differs:\n%s", hs[0])
	}
	for _, member := range []string{`"tenants":["72f988bf`, `"any_tenant":true`, `"aliases":["accounts.google.com"]`,
		`"authorized_parties":["spa-client","mobile-client"]`, `"authorized_party_claim":"appid"`, `{tenantid}/v2.0"`} {
		if !strings.Contains(string(hs[0]), member) {
			t.Errorf("adapted JSON lacks %s:\n%s", member, hs[0])
		}
	}
}

func TestUnmarshalCaddyfileProviderOptionErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"tenants without values", "identity {\nissuer https://a/{tenantid} {\ntenants\n}\n}", "wrong argument count"},
		{"tenants any then ids", "identity {\nissuer https://a/{tenantid} {\ntenants any\ntenants t1\n}\n}", "cannot be combined"},
		{"tenants ids then any", "identity {\nissuer https://a/{tenantid} {\ntenants t1\ntenants any\n}\n}", "cannot be combined"},
		{"tenants any among ids", "identity {\nissuer https://a/{tenantid} {\ntenants t1 any\n}\n}", "cannot be combined"},
		{"alias without values", "identity {\nissuer https://a {\nalias\n}\n}", "wrong argument count"},
		{"authorized_party without values", "identity {\nauthorized_party\n}", "wrong argument count"},
		{"authorized_party_claim two values", "identity {\nauthorized_party_claim a b\n}", "wrong argument count"},
		{"authorized_party_claim twice", "identity {\nauthorized_party_claim a\nauthorized_party_claim b\n}", "twice"},
		{"issuer authorized_party_claim twice", "identity {\nissuer https://a {\nauthorized_party_claim a\nauthorized_party_claim b\n}\n}", "twice"},
		{"tenants at top level", "identity {\ntenants t1\n}", "unrecognized option \"tenants\" in the identity block: it goes in an issuer block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantUnmarshalError(t, tt.input, tt.want) })
	}
}

// TestCheckConfigProviderErrors covers what `caddy validate` refuses about
// issuer templates, aliases and authorized parties.
func TestCheckConfigProviderErrors(t *testing.T) {
	const template = "https://login.microsoftonline.com/{tenantid}/v2.0"
	base := func() Handler {
		return Handler{
			Issuers:   []IssuerConfig{{Issuer: template, JWKSURL: "https://login.microsoftonline.com/common/discovery/v2.0/keys", Tenants: []string{"t1"}}},
			Audiences: []string{"api"},
		}
	}
	tests := []struct {
		name   string
		mutate func(h *Handler)
		want   string
	}{
		{"template without tenants", func(h *Handler) { h.Issuers[0].Tenants = nil }, "needs `tenants"},
		{"template with tenants and any", func(h *Handler) { h.Issuers[0].AnyTenant = true }, "exclusive"},
		{"template with an empty tenant", func(h *Handler) { h.Issuers[0].Tenants = []string{""} }, "empty tenant"},
		{"template without keys", func(h *Handler) { h.Issuers[0].JWKSURL = "" }, "jwks_url or jwks_file"},
		{"template with aliases", func(h *Handler) { h.Issuers[0].Aliases = []string{"x"} }, "aliases"},
		{"template with two placeholders", func(h *Handler) { h.Issuers[0].Issuer = "https://{tenantid}/{tenantid}" }, "once"},
		{"tenants without template", func(h *Handler) { h.Issuers[0].Issuer = "https://login.microsoftonline.com/t1/v2.0" }, "need an issuer template"},
		{"any tenant without template", func(h *Handler) {
			h.Issuers[0].Issuer, h.Issuers[0].Tenants, h.Issuers[0].AnyTenant = "https://a.example.com", nil, true
		}, "need an issuer template"},
		{"alias equal to the issuer", func(h *Handler) {
			h.Issuers[0] = IssuerConfig{Issuer: "https://a.example.com", Aliases: []string{"https://a.example.com"}}
		}, "alias"},
		{"empty authorized party", func(h *Handler) { h.AuthorizedParties = []string{""} }, "empty client ID"},
		{"authorized party claim alone", func(h *Handler) { h.AuthorizedPartyClaim = "cid" }, "needs authorized_party"},
		{"issuer authorized party claim alone", func(h *Handler) { h.Issuers[0].AuthorizedPartyClaim = "cid" }, "needs authorized_party"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.mutate(&h)
			wantErrorContaining(t, h.checkConfig(), tt.want)
		})
	}
	ok := base()
	if err := ok.checkConfig(); err != nil {
		t.Fatalf("base config: %v", err)
	}
	anyTenant := base()
	anyTenant.Issuers[0].Tenants, anyTenant.Issuers[0].AnyTenant = nil, true
	if err := anyTenant.checkConfig(); err != nil {
		t.Fatalf("any tenant: %v", err)
	}
}

// TestCaddyfileDPoP parses each dpop mode, checks the configuration and
// adapts it to the JSON the handler decodes.
func TestCaddyfileDPoP(t *testing.T) {
	for _, mode := range []string{"off", "allow", "require"} {
		t.Run(mode, func(t *testing.T) {
			block := "identity {\n\tissuer https://auth.example.com\n\taudience api\n\tdpop " + mode + "\n}"
			var direct Handler
			if err := direct.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
				t.Fatal(err)
			}
			if direct.DPoP != mode {
				t.Fatalf("DPoP = %q, want %q", direct.DPoP, mode)
			}
			if err := direct.checkConfig(); err != nil {
				t.Fatal(err)
			}
			hs := identityHandlers(t, adaptCaddyfile(t, "example.com {\n"+indent(block)+"}\n"))
			if len(hs) != 1 || !strings.Contains(string(hs[0]), `"dpop":"`+mode+`"`) {
				t.Fatalf("adapted: %s", hs)
			}
			var fromJSON Handler
			if err := json.Unmarshal(hs[0], &fromJSON); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromJSON, direct) {
				t.Fatalf("JSON round trip differs: %s", hs[0])
			}
		})
	}
	// require with another token place is refused when the config is checked.
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("identity {\nissuer https://a\naudience api\ndpop require\ntoken_from cookie at\n}")); err != nil {
		t.Fatal(err)
	}
	if err := h.checkConfig(); err == nil || !strings.Contains(err.Error(), "only in the Authorization header") {
		t.Fatalf("checkConfig = %v", err)
	}
}

func TestCaddyfileIntrospection(t *testing.T) {
	var h Handler
	input := `identity {
		issuer https://auth.example.com {
			introspection {
				endpoint      https://auth.example.com/oauth2/introspect
				client_id     caddy
				client_secret {env.INTROSPECTION_SECRET}
				auth_method   client_secret_post
				cache_ttl     30s
			}
		}
		audience api
	}`
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	want := &IntrospectionConfig{
		Endpoint:     "https://auth.example.com/oauth2/introspect",
		ClientID:     "caddy",
		ClientSecret: "{env.INTROSPECTION_SECRET}",
		AuthMethod:   "client_secret_post",
		CacheTTL:     durPtr(30 * time.Second),
	}
	if got := h.Issuers[0].Introspection; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if err := h.checkConfig(); err != nil {
		t.Fatalf("checkConfig: %v", err)
	}

	parseErrors := []struct{ name, input, want string }{
		{"missing client_id", "identity {\nissuer https://a {\nintrospection {\nclient_secret s\n}\n}\n}", "needs client_id"},
		{"argument", "identity {\nissuer https://a {\nintrospection x {\nclient_id c\n}\n}\n}", "wrong argument count"},
		{"unknown option", "identity {\nissuer https://a {\nintrospection {\nclient_id c\nfoo\n}\n}\n}", "unrecognized option"},
		{"bad auth_method", "identity {\nissuer https://a {\nintrospection {\nclient_id c\nauth_method none\n}\n}\n}", "auth_method"},
		{"bad cache_ttl", "identity {\nissuer https://a {\nintrospection {\nclient_id c\ncache_ttl -1s\n}\n}\n}", "cache_ttl"},
		{"client_id twice", "identity {\nissuer https://a {\nintrospection {\nclient_id c\nclient_id d\n}\n}\n}", "twice"},
		{"block twice", "identity {\nissuer https://a {\nintrospection {\nclient_id c\n}\nintrospection {\nclient_id c\n}\n}\n}", "introspection given twice"},
	}
	for _, tt := range parseErrors {
		t.Run(tt.name, func(t *testing.T) { wantUnmarshalError(t, tt.input, tt.want) })
	}

	configErrors := []struct{ name, input, want string }{
		{"two introspecting issuers", `identity {
			issuer https://a.example.com {
				introspection {
					client_id c
				}
			}
			issuer https://b.example.com {
				introspection {
					client_id c
				}
			}
			audience api
		}`, "introspection_order must list"},
		{"template issuer", `identity {
			issuer https://login.example.com/{tenantid}/v2.0 {
				jwks_url https://login.example.com/keys
				tenants t1
				introspection {
					endpoint https://login.example.com/introspect
					client_id c
				}
			}
			audience api
		}`, "issuer template"},
		{"http endpoint", `identity {
			issuer https://a.example.com {
				introspection {
					endpoint http://a.example.com/introspect
					client_id c
				}
			}
			audience api
		}`, "must be an absolute https URL"},
		{"jwks_file without endpoint", `identity {
			issuer https://a.example.com {
				jwks_file /etc/keys.json
				introspection {
					client_id c
				}
			}
			audience api
		}`, "set endpoint"},
	}
	for _, tt := range configErrors {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatal(err)
			}
			wantErrorContaining(t, h.checkConfig(), tt.want)
		})
	}

	// JSON without client_id, and http on loopback or with
	// insecure_allow_http, which is allowed.
	noID := Handler{Issuers: []IssuerConfig{{Issuer: "https://a", Introspection: &IntrospectionConfig{}}}, AnyAudience: true}
	wantErrorContaining(t, noID.checkConfig(), "client_id is required")
	for _, is := range []IssuerConfig{
		{Issuer: "https://a", Introspection: &IntrospectionConfig{ClientID: "c", Endpoint: "http://127.0.0.1:9000/introspect"}},
		{Issuer: "https://a", InsecureAllowHTTP: true, Introspection: &IntrospectionConfig{ClientID: "c", Endpoint: "http://idp.internal/introspect"}},
	} {
		ok := Handler{Issuers: []IssuerConfig{is}, AnyAudience: true}
		if err := ok.checkConfig(); err != nil {
			t.Errorf("%s: %v", is.Introspection.Endpoint, err)
		}
	}
}
