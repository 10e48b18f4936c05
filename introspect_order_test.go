package caddyidentity

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// twoIntrospectors is a handler whose issuers a and b introspect at their
// fake endpoints, asked in order (issuer URLs).
func twoIntrospectors(a, b *identitytest.Issuer, epA, epB *introEndpoint, order ...string) *Handler {
	intro := func(ep *introEndpoint) *IntrospectionConfig {
		return &IntrospectionConfig{Endpoint: ep.srv.URL, ClientID: "caddy", ClientSecret: introSecret}
	}
	return &Handler{
		Issuers: []IssuerConfig{
			{Issuer: a.URL, Introspection: intro(epA)},
			{Issuer: b.URL, Introspection: intro(epB)},
		},
		Audiences:          []string{identitytest.DefaultAudience},
		IntrospectionOrder: order,
	}
}

// answers makes ep answer active for the tokens of owned (as issuer iss)
// and inactive for any other.
func answers(ep *introEndpoint, iss string, owned ...string) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	active, _ := json.Marshal(activeResponse(iss, time.Now(), nil))
	ep.answer = func(token string) (int, string) {
		if slices.Contains(owned, token) {
			return 200, string(active)
		}
		return 200, `{"active":false}`
	}
}

func TestIntrospectionOrder(t *testing.T) {
	a, b := identitytest.NewIssuer(t), identitytest.NewIssuer(t)
	tokA, tokB, unknown := opaqueToken(t)+"-a", opaqueToken(t)+"-b", opaqueToken(t)+"-unknown"
	type step struct {
		name   string
		token  string
		downA  bool
		later  time.Duration // the clock moves on this much first
		want   int
		label  string
		issuer string // the issuer that accepted the token
		callsA int    // calls made by this step
		callsB int
	}
	tests := []struct {
		name  string
		order func(a, b string) []string
		steps []step
	}{
		{"a then b", func(a, b string) []string { return []string{a, b} }, []step{
			{name: "a's token: b is not asked", token: tokA, want: 200, issuer: a.URL, callsA: 1},
			{name: "b's token: a says inactive first", token: tokB, want: 200, issuer: b.URL, callsA: 1, callsB: 1},
			{name: "b's token again: b's cache, nobody asked", token: tokB, want: 200, issuer: b.URL},
			{name: "unknown: both asked", token: unknown, want: 401, label: "inactive", callsA: 1, callsB: 1},
			{name: "unknown again: both inactive answers remembered", token: unknown, want: 401, label: "inactive"},
		}},
		{"b then a", func(a, b string) []string { return []string{b, a} }, []step{
			{name: "a's token: b asked first", token: tokA, want: 200, issuer: a.URL, callsA: 1, callsB: 1},
			{name: "b's token: a is not asked", token: tokB, want: 200, issuer: b.URL, callsB: 1},
		}},
		{"a down", func(a, b string) []string { return []string{a, b} }, []step{
			{name: "b's token: accepted by b", token: tokB, downA: true, want: 200, issuer: b.URL, callsA: 1, callsB: 1},
			{name: "unknown: a, in outage, is not asked but may have issued it", token: unknown, downA: true, want: 503, label: "provider_unavailable", callsB: 1},
			{name: "a's token, a back but not probed yet", token: tokA, want: 503, label: "provider_unavailable", callsB: 1},
			{name: "a's token at the next probe", token: tokA, later: outageProbeInterval, want: 200, issuer: a.URL, callsA: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epA, epB := newIntroEndpoint(t), newIntroEndpoint(t)
			answers(epB, b.URL, tokB)
			h := twoIntrospectors(a, b, epA, epB, tt.order(a.URL, b.URL)...)
			clk := &ccClock{t: time.Now()}
			h.now = clk.Now
			x := newHX(t, h)
			for _, s := range tt.steps {
				clk.Set(clk.Now().Add(s.later))
				if s.downA {
					epA.set(500, "down")
				} else {
					answers(epA, a.URL, tokA)
				}
				a0, b0 := epA.callCount(), epB.callCount()
				res := x.get("/", bearer(s.token))
				if s.want == 200 {
					wantStatus(t, res, 200)
					if got := res.repl.ReplaceAll("{http.auth.identity.issuer}", ""); got != s.issuer {
						t.Errorf("%s: accepted for issuer %q, want %q", s.name, got, s.issuer)
					}
				} else {
					wantRefusal(t, res, s.want, s.label)
				}
				if da, db := epA.callCount()-a0, epB.callCount()-b0; da != s.callsA || db != s.callsB {
					t.Errorf("%s: calls a +%d b +%d, want +%d +%d", s.name, da, db, s.callsA, s.callsB)
				}
			}
		})
	}
}

// TestIntrospectionOrderFirstActiveDecides: an issuer that answers active
// decides, even to refuse; the token never goes on to the next issuer.
func TestIntrospectionOrderFirstActiveDecides(t *testing.T) {
	a, b := identitytest.NewIssuer(t), identitytest.NewIssuer(t)
	epA, epB := newIntroEndpoint(t), newIntroEndpoint(t)
	epA.set(200, activeResponse(a.URL, time.Now(), map[string]any{"aud": "another-api"}))
	epB.set(200, activeResponse(b.URL, time.Now(), nil))
	x := newHX(t, twoIntrospectors(a, b, epA, epB, a.URL, b.URL))
	wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 401, "audience")
	if n := epB.callCount(); n != 0 {
		t.Fatalf("b asked %d times after a's active answer", n)
	}
}

func TestIntrospectionOrderConfig(t *testing.T) {
	base := func() *Handler {
		return &Handler{
			Issuers: []IssuerConfig{
				{Issuer: "https://a.example", Introspection: &IntrospectionConfig{ClientID: "c"}},
				{Issuer: "https://b.example", Introspection: &IntrospectionConfig{ClientID: "c"}},
				{Issuer: "https://c.example"},
			},
			AnyAudience: true,
		}
	}
	for _, tt := range []struct {
		name  string
		order []string
		one   bool // only a has introspection
		want  string
	}{
		{"both named", []string{"https://b.example", "https://a.example"}, false, ""},
		{"none named", nil, false, "introspection_order must list"},
		{"one missing", []string{"https://a.example"}, false, `"https://b.example" is missing`},
		{"named twice", []string{"https://a.example", "https://a.example", "https://b.example"}, false, "named twice"},
		{"an issuer without introspection", []string{"https://a.example", "https://b.example", "https://c.example"}, false, "not an issuer with introspection"},
		{"unknown issuer", []string{"https://a.example", "https://x.example"}, false, "not an issuer with introspection"},
		{"one introspector, not named", nil, true, ""},
		{"one introspector, named", []string{"https://a.example"}, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			if tt.one {
				h.Issuers[1].Introspection = nil
			}
			h.IntrospectionOrder = tt.order
			err := h.checkConfig()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErrorContaining(t, err, tt.want)
		})
	}
}

func TestUnmarshalCaddyfileIntrospectionCompleted(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`identity {
		issuer https://a.example.com {
			introspection {
				client_id caddy
				key_file  /etc/caddy/introspection.key
				auth_method private_key_jwt
				accept    jwt
			}
		}
		issuer https://b.example.com {
			introspection {
				client_id     caddy
				client_secret {env.B_SECRET}
			}
		}
		introspection_order https://b.example.com https://a.example.com
		audience api
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := IntrospectionConfig{ClientID: "caddy", KeyFile: "/etc/caddy/introspection.key", AuthMethod: "private_key_jwt", Accept: "jwt"}
	if got := *h.Issuers[0].Introspection; got != want {
		t.Errorf("introspection = %+v, want %+v", got, want)
	}
	if got := h.IntrospectionOrder; len(got) != 2 || got[0] != "https://b.example.com" || got[1] != "https://a.example.com" {
		t.Errorf("introspection_order = %q", got)
	}
	if err := h.checkConfig(); err != nil {
		t.Errorf("checkConfig: %v", err)
	}

	for _, tt := range []struct{ name, block, want string }{
		{"secret and key", "client_id c\nclient_secret s\nkey_file k", "exclusive"},
		{"bad accept", "client_id c\naccept xml", "accept: want json or jwt"},
		{"accept twice", "client_id c\naccept jwt\naccept json", "twice"},
		{"key_file twice", "client_id c\nkey_file a\nkey_file b", "twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantUnmarshalError(t, "identity {\nissuer https://a {\nintrospection {\n"+tt.block+"\n}\n}\n}", tt.want)
		})
	}
	wantUnmarshalError(t, "identity {\nissuer https://a\nintrospection_order\n}", "wrong argument count")
	wantUnmarshalError(t, "identity {\nissuer https://a\nintrospection_order https://a\nintrospection_order https://a\n}", "twice")

	for _, tt := range []struct {
		name string
		c    IntrospectionConfig
		want string
	}{
		{"key_file with a secret method", IntrospectionConfig{ClientID: "c", KeyFile: "k", AuthMethod: "client_secret_post"}, "key_file authenticates with private_key_jwt"},
		{"private_key_jwt without key_file", IntrospectionConfig{ClientID: "c", ClientSecret: "s", AuthMethod: "private_key_jwt"}, "needs key_file"},
		{"bad accept", IntrospectionConfig{ClientID: "c", Accept: "XML"}, "accept must be"},
		{"secret and key", IntrospectionConfig{ClientID: "c", ClientSecret: "s", KeyFile: "k"}, "exclusive"},
	} {
		t.Run("JSON "+tt.name, func(t *testing.T) {
			c := tt.c
			h := Handler{Issuers: []IssuerConfig{{Issuer: "https://a", Introspection: &c}}, AnyAudience: true}
			wantErrorContaining(t, h.checkConfig(), tt.want)
		})
	}
}

func TestIntrospectionCompletedJSON(t *testing.T) {
	var h Handler
	err := json.Unmarshal([]byte(`{
		"issuers": [
			{"issuer": "https://a.example.com", "introspection": {"client_id": "caddy", "key_file": "/k.pem", "accept": "jwt"}},
			{"issuer": "https://b.example.com", "introspection": {"client_id": "caddy", "client_secret": "s", "auth_method": "client_secret_post"}}
		],
		"introspection_order": ["https://a.example.com", "https://b.example.com"],
		"audiences": ["api"]
	}`), &h)
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Issuers[0].Introspection; c.KeyFile != "/k.pem" || c.Accept != "jwt" {
		t.Errorf("introspection = %+v", c)
	}
	if len(h.IntrospectionOrder) != 2 {
		t.Errorf("introspection_order = %q", h.IntrospectionOrder)
	}
	if err := h.checkConfig(); err != nil {
		t.Errorf("checkConfig: %v", err)
	}
	h.IntrospectionOrder = nil
	wantErrorContaining(t, h.checkConfig(), "introspection_order must list")
}

// TestIntrospectionCacheCountsByIssuer: with several introspecting
// issuers, a cache miss counts for the issuer that answered active, a hit
// for the issuer of the cached entry, and a token no issuer vouched for
// for the unattributed label.
func TestIntrospectionCacheCountsByIssuer(t *testing.T) {
	a, b := identitytest.NewIssuer(t), identitytest.NewIssuer(t)
	epA, epB := newIntroEndpoint(t), newIntroEndpoint(t)
	tokB, unknown := opaqueToken(t)+"-b", opaqueToken(t)+"-unknown"
	answers(epA, a.URL)
	answers(epB, b.URL, tokB)
	x := newHX(t, twoIntrospectors(a, b, epA, epB, a.URL, b.URL))
	m := processMetrics()
	counts := func() map[string]float64 {
		out := map[string]float64{}
		for _, iss := range []string{a.URL, b.URL, ""} {
			out["hits "+iss] = ccCount(t, m.cacheHits.WithLabelValues(iss))
			out["misses "+iss] = ccCount(t, m.cacheMisses.WithLabelValues(iss))
		}
		return out
	}
	for _, s := range []struct {
		token string
		want  int
		count string // the one counter that moves
	}{
		{tokB, 200, "misses " + b.URL}, // a answers inactive, b active
		{tokB, 200, "hits " + b.URL},   // b's cached entry
		{unknown, 401, "misses "},      // both answer inactive
		{unknown, 401, "hits "},        // both inactive answers remembered
	} {
		before := counts()
		wantStatus(t, x.get("/", bearer(s.token)), s.want)
		for k, v := range counts() {
			want := before[k]
			if k == s.count {
				want++
			}
			if v != want {
				t.Errorf("after the request counting %q: %q moved by %v", s.count, k, v-before[k])
			}
		}
	}
}
