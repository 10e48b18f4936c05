package caddyidentity

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestCaddyfileDPoPOptions parses the dpop block, with and without a mode,
// and adapts it to the JSON the handler decodes.
func TestCaddyfileDPoPOptions(t *testing.T) {
	full := &DPoPOptions{
		ProofAlgorithms: []string{"ES256", "PS256"},
		ProofMaxAge:     caddy.Duration(30 * time.Second),
		ProofLeeway:     caddy.Duration(2 * time.Second),
		Nonce:           &DPoPNonceConfig{Secret: "{env.DPOP_NONCE_SECRET}", Lifetime: caddy.Duration(2 * time.Minute)},
	}
	tests := []struct {
		name, dpop string
		mode       string
		want       *DPoPOptions
	}{
		{"every option", `dpop require {
		proof_algorithms ES256 PS256
		proof_max_age 30s
		proof_leeway 2s
		nonce {
			secret {env.DPOP_NONCE_SECRET}
			lifetime 2m
		}
	}`, "require", full},
		{"a block without a mode (allow)", `dpop {
		nonce {
			secret {env.DPOP_NONCE_SECRET}
		}
	}`, "", &DPoPOptions{Nonce: &DPoPNonceConfig{Secret: "{env.DPOP_NONCE_SECRET}"}}},
		{"a mode without a block", "dpop allow", "allow", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := "identity {\n\tissuer https://auth.example.com\n\taudience api\n\t" + tt.dpop + "\n}"
			var direct Handler
			if err := direct.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
				t.Fatal(err)
			}
			if direct.DPoP != tt.mode || !reflect.DeepEqual(direct.DPoPOptions, tt.want) {
				t.Fatalf("parsed dpop %q %+v, want %q %+v", direct.DPoP, direct.DPoPOptions, tt.mode, tt.want)
			}
			if err := direct.checkConfig(); err != nil {
				t.Fatal(err)
			}
			hs := identityHandlers(t, adaptCaddyfile(t, "example.com {\n"+indent(block)+"}\n"))
			if len(hs) != 1 {
				t.Fatalf("adapted: %s", hs)
			}
			if tt.want != nil && !strings.Contains(string(hs[0]), `"dpop_options":{`) {
				t.Errorf("no dpop_options in %s", hs[0])
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
}

func TestCaddyfileDPoPOptionsErrors(t *testing.T) {
	dpop := func(body string) string {
		return "identity {\nissuer https://a\naudience api\n" + body + "\n}"
	}
	tests := []struct{ name, input, want string }{
		{"empty block without a mode", dpop("dpop {\n}"), "wrong argument count"},
		{"two modes", dpop("dpop allow require"), "wrong argument count"},
		{"unknown mode before the block", dpop("dpop maybe {\nproof_max_age 30s\n}"), "want off, allow or require"},
		{"block after dpop given", dpop("dpop allow\ndpop {\nproof_max_age 30s\n}"), "dpop given twice"},
		{"mode after a block", dpop("dpop {\nproof_max_age 30s\n}\ndpop allow"), "dpop given twice"},
		{"misspelled option", dpop("dpop {\nproof_algoritms ES256\n}"), `did you mean "proof_algorithms"?`},
		{"no algorithms", dpop("dpop {\nproof_algorithms\n}"), "wrong argument count"},
		{"HMAC", dpop("dpop {\nproof_algorithms ES256 HS256\n}"), "HMAC is never accepted"},
		{"none", dpop("dpop {\nproof_algorithms none\n}"), `"none" is never accepted`},
		{"unknown algorithm", dpop("dpop {\nproof_algorithms ES257\n}"), `unknown algorithm "ES257"`},
		{"max age above the bound", dpop("dpop {\nproof_max_age 10m\n}"), "want a duration up to 5m0s"},
		{"negative max age", dpop("dpop {\nproof_max_age -1s\n}"), "proof_max_age -1s"},
		{"leeway above the bound", dpop("dpop {\nproof_leeway 2m\n}"), "want a duration up to 1m0s"},
		{"not a duration", dpop("dpop {\nproof_leeway soon\n}"), "proof_leeway"},
		{"option twice", dpop("dpop {\nproof_max_age 30s\nproof_max_age 40s\n}"), "proof_max_age given twice"},
		{"dpop off with options", dpop("dpop off {\nproof_max_age 30s\n}"), "dpop off takes no options"},
		{"nonce without a secret", dpop("dpop {\nnonce {\nlifetime 5m\n}\n}"), "secret is required"},
		{"nonce secret too short", dpop("dpop {\nnonce {\nsecret short-secret\n}\n}"), "secret has 12 bytes, want at least 32"},
		{"nonce lifetime too short", dpop("dpop {\nnonce {\nsecret {env.S}\nlifetime 1s\n}\n}"), "want between 10s and 1h0m0s"},
		{"nonce lifetime too long", dpop("dpop {\nnonce {\nsecret {env.S}\nlifetime 2h\n}\n}"), "want between 10s and 1h0m0s"},
		{"nonce lifetime zero", dpop("dpop {\nnonce {\nsecret {env.S}\nlifetime 0s\n}\n}"), "invalid duration"},
		{"nonce secret twice", dpop("dpop {\nnonce {\nsecret {env.S}\nsecret {env.T}\n}\n}"), "secret given twice"},
		{"nonce with an argument", dpop("dpop {\nnonce {env.S}\n}"), "wrong argument count"},
		{"unknown nonce option", dpop("dpop {\nnonce {\nsecret {env.S}\nsalt x\n}\n}"), `unrecognized option "salt" in the nonce block`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantUnmarshalError(t, tt.input, tt.want)
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); strings.Contains(err.Error(), "short-secret") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestDPoPOptionsJSON: a JSON configuration gets the same checks, when
// the config is checked and, for a secret from a placeholder, at
// provisioning, naming an unset variable and never showing the secret.
func TestDPoPOptionsJSON(t *testing.T) {
	const short = "only-twenty-bytes-ok"
	t.Setenv("CADDY_IDENTITY_TEST_SHORT_SECRET", short)
	base := func(mode string, o *DPoPOptions) *Handler {
		return &Handler{Issuers: []IssuerConfig{{Issuer: "https://idp.example.com"}}, Audiences: []string{"api"}, DPoP: mode, DPoPOptions: o}
	}
	nonce := func(secret string, lifetime time.Duration) *DPoPOptions {
		return &DPoPOptions{Nonce: &DPoPNonceConfig{Secret: secret, Lifetime: caddy.Duration(lifetime)}}
	}
	checked := []struct {
		name string
		h    *Handler
		want string
	}{
		{"HMAC", base("", &DPoPOptions{ProofAlgorithms: []string{"HS512"}}), "HMAC is never accepted"},
		{"none", base("", &DPoPOptions{ProofAlgorithms: []string{"none"}}), `"none" is never accepted`},
		{"max age", base("", &DPoPOptions{ProofMaxAge: caddy.Duration(6 * time.Minute)}), "proof_max_age 6m0s"},
		{"negative leeway", base("", &DPoPOptions{ProofLeeway: caddy.Duration(-time.Second)}), "proof_leeway -1s"},
		{"off with options", base("off", &DPoPOptions{}), "dpop off takes no options"},
		{"no secret", base("", nonce("", 0)), "secret is required"},
		{"short secret", base("", nonce(short, 0)), "secret has 20 bytes"},
		{"negative lifetime", base("", nonce("{env.S}", -time.Minute)), "lifetime -1m0s"},
	}
	for _, tt := range checked {
		t.Run(tt.name, func(t *testing.T) {
			wantErrorContaining(t, tt.h.checkConfig(), tt.want)
		})
	}
	provisioned := []struct{ name, secret, want string }{
		{"unset variable", "{env.CADDY_IDENTITY_TEST_UNSET}", "dpop nonce secret {env.CADDY_IDENTITY_TEST_UNSET} is empty: the environment variable CADDY_IDENTITY_TEST_UNSET is not set"},
		{"short variable", "{env.CADDY_IDENTITY_TEST_SHORT_SECRET}", "dpop nonce secret has 20 bytes, want at least 32"},
	}
	for _, tt := range provisioned {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(base("", nonce(tt.secret, 0)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			_, err = ctx.LoadModuleByID("http.handlers.identity", raw)
			cancel()
			wantErrorContaining(t, err, tt.want)
			if strings.Contains(err.Error(), short) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestDPoPOptionsDefaults: without options the stage keeps the documented
// defaults, and a secret from a set variable turns nonces on.
func TestDPoPOptionsDefaults(t *testing.T) {
	env := newDPoPEnv(t)
	x := newHX(t, dpopHandler(env.iss, ""))
	st := &x.h.dpop
	if !reflect.DeepEqual(st.algorithms, dpopAlgorithms) || st.maxAge != identity.DefaultDPoPMaxAge || st.leeway != identity.DefaultDPoPClockSkew || st.nonce.nonces != nil {
		t.Errorf("defaults: algorithms %v, max age %v, leeway %v, nonces %v", st.algorithms, st.maxAge, st.leeway, st.nonce.nonces)
	}
	t.Setenv("CADDY_IDENTITY_TEST_NONCE_SECRET", nonceSecret)
	h := dpopHandler(env.iss, "")
	h.DPoPOptions = &DPoPOptions{Nonce: &DPoPNonceConfig{Secret: "{env.CADDY_IDENTITY_TEST_NONCE_SECRET}"}}
	x = newHX(t, h)
	n := x.h.dpop.nonce.nonces
	if n == nil || n.Lifetime() != identity.DefaultDPoPNonceLifetime {
		t.Fatalf("nonces from the variable: %+v", n)
	}
	same, err := identity.NewDPoPNonces([]byte(nonceSecret), 0)
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); n.Nonce(now) != same.Nonce(now) {
		t.Errorf("nonce %q, want that of the secret in the variable, %q", n.Nonce(now), same.Nonce(now))
	}
}
