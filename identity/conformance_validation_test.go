package identity_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// validationVector is one vector of conformance/validation.json. Unknown
// members fail decoding, so an option added to the specification cannot be
// silently ignored.
type validationVector struct {
	Name  string `json:"name"`
	Token struct {
		Static     string         `json:"static"`
		SigningKey string         `json:"signing_key"`
		HeaderKid  string         `json:"header_kid"`
		Alg        string         `json:"alg"`
		Header     map[string]any `json:"header"`
		Claims     map[string]any `json:"claims"`
	} `json:"token"`
	Options struct {
		Now              string   `json:"now"`
		ExpectedIssuer   string   `json:"expected_issuer"`
		ExpectedAudience string   `json:"expected_audience"`
		ExpectedNonce    string   `json:"expected_nonce"`
		ClockSkew        string   `json:"clock_skew"`
		RequiredClaims   []string `json:"required_claims"`
	} `json:"options"`
	Expect struct {
		Outcome string         `json:"outcome"`
		Error   string         `json:"error"`
		Claim   string         `json:"claim"`
		Claims  map[string]any `json:"claims"`
	} `json:"expect"`
}

// conformanceFixtureIssuer is the iss of the fixture tokens. Our validator
// always checks an exact issuer (it selects the issuer's keys by it), so a
// vector without expected_issuer is run with this one configured.
const conformanceFixtureIssuer = "https://issuer.example.com"

// canonicalErrors maps the specification's error codes to our sentinels.
func canonicalErrors() map[string]error {
	return map[string]error{
		"malformed":        identity.ErrMalformed,
		"alg_none":         identity.ErrAlgNone,
		"unsupported_alg":  identity.ErrUnsupportedAlg,
		"signature":        identity.ErrSignature,
		"key_conversion":   identity.ErrKeyConversion,
		"claim_validation": identity.ErrClaimValidation,
	}
}

func TestConformanceValidation(t *testing.T) {
	cases := map[string]func(*testing.T, conformanceCase){
		"JWT-010": func(t *testing.T, c conformanceCase) {
			if c.Execution != "native" || c.NativeTest != "TestValidate_KidNotFound_ForcesRefresh" {
				t.Fatalf("JWT-010 is no longer native with that test: execution %q, native_test %q", c.Execution, c.NativeTest)
			}
			// The named native test exists (this compiles) and passes.
			TestValidate_KidNotFound_ForcesRefresh(t)
		},
	}
	for _, id := range []string{"JWT-001", "JWT-002", "JWT-003", "JWT-004", "JWT-005", "JWT-006", "JWT-007", "JWT-008", "JWT-009", "JWT-011", "JWT-012", "JWT-013"} {
		cases[id] = runValidationVectors
	}
	runConformance(t, "validation.json", cases)
}

// runValidationVectors executes every vector of a case.
func runValidationVectors(t *testing.T, c conformanceCase) {
	if c.Execution == "native" || len(c.Vectors) == 0 {
		t.Fatalf("%s has no executable vectors", c.ID)
	}
	keys, err := identity.ParseKeySet(specFixture(t, "validation/jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range c.Vectors {
		var vec validationVector
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&vec); err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		name := vec.Name
		if name == "" {
			name = vec.Expect.Outcome
		}
		t.Run(name, func(t *testing.T) { runValidationVector(t, keys, &vec) })
	}
}

func runValidationVector(t *testing.T, keys *identity.KeySet, vec *validationVector) {
	now, err := time.Parse(time.RFC3339, vec.Options.Now)
	if err != nil {
		t.Fatalf("options.now: %v", err)
	}
	cfg := identity.IssuerConfig{
		Issuer:         vec.Options.ExpectedIssuer,
		Keys:           keys,
		Nonce:          vec.Options.ExpectedNonce,
		RequiredClaims: vec.Options.RequiredClaims,
		Now:            func() time.Time { return now },
	}
	if cfg.Issuer == "" {
		cfg.Issuer = conformanceFixtureIssuer
	}
	if vec.Options.ExpectedAudience != "" {
		cfg.Audiences = []string{vec.Options.ExpectedAudience}
	} else {
		cfg.AnyAudience = true
	}
	if vec.Options.ClockSkew != "" {
		skew, err := time.ParseDuration(vec.Options.ClockSkew)
		if err != nil {
			t.Fatalf("clock_skew: %v", err)
		}
		cfg.Leeway = skew
		if skew == 0 {
			cfg.Leeway = -1 // zero skew: no leeway at all
		}
	}
	v, err := identity.NewValidator([]identity.IssuerConfig{cfg}, identity.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}

	tok, err := v.Validate(t.Context(), conformanceToken(t, vec, now))
	codes := canonicalErrors()
	switch vec.Expect.Outcome {
	case "accept":
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		for name, want := range vec.Expect.Claims {
			got, ok := tok.Claims.Get(name)
			if !ok {
				t.Fatalf("claim %s missing", name)
			}
			if gj, wj := mustCompactJSON(t, got), mustCompactJSON(t, want); gj != wj {
				t.Fatalf("claim %s = %s, want %s", name, gj, wj)
			}
		}
	case "reject":
		want, ok := codes[vec.Expect.Error]
		if !ok {
			t.Fatalf("unknown canonical error %q", vec.Expect.Error)
		}
		if err == nil {
			t.Fatalf("accepted, want %s", vec.Expect.Error)
		}
		if !errors.Is(err, want) {
			t.Fatalf("error %v, want %s (%v)", err, vec.Expect.Error, want)
		}
		for code, other := range codes {
			if code != vec.Expect.Error && errors.Is(err, other) {
				t.Fatalf("error %v also matches %s", err, code)
			}
		}
		if vec.Expect.Claim != "" {
			var ce *identity.ClaimError
			if !errors.As(err, &ce) || ce.Claim != vec.Expect.Claim {
				t.Fatalf("error %v does not name claim %q", err, vec.Expect.Claim)
			}
		}
	default:
		t.Fatalf("unknown outcome %q", vec.Expect.Outcome)
	}
}

// conformanceToken reads a static token or mints one as the vector says:
// time claims given as durations are relative to now.
func conformanceToken(t *testing.T, vec *validationVector, now time.Time) string {
	t.Helper()
	if vec.Token.Static != "" {
		return strings.TrimSpace(string(specFixture(t, vec.Token.Static)))
	}
	claims := map[string]any{}
	for name, val := range vec.Token.Claims {
		claims[name] = val
		if s, ok := val.(string); ok && (name == "exp" || name == "nbf" || name == "iat") {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("claim %s: %v", name, err)
			}
			claims[name] = now.Add(d).Unix()
		}
	}
	var k valKey
	switch vec.Token.SigningKey {
	case "fixture":
		var priv jose.JSONWebKey
		if err := priv.UnmarshalJSON(specFixture(t, "validation/signing-key.jwk.json")); err != nil {
			t.Fatal(err)
		}
		k = valKey{alg: vec.Token.Alg, priv: priv.Key, pub: jose.JSONWebKey{KeyID: priv.KeyID}}
	case "ephemeral":
		k = valNewKey(t, vec.Token.Alg, "", false)
	default:
		t.Fatalf("unknown signing_key %q", vec.Token.SigningKey)
	}
	if vec.Token.HeaderKid != "" {
		k.pub.KeyID = vec.Token.HeaderKid
	}
	return valMint(t, k, vec.Token.Header, claims)
}

func mustCompactJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
