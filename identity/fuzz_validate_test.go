package identity_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// fuzzHMACSecret is the HS256 secret of the fuzz validator (seeds signed
// with it exercise the whole claims path).
const fuzzHMACSecret = "fuzz-secret-0123456789abcdef-0123456789abcdef"

// validateSentinels lists every error Validate may return; each error must
// match at least one.
func validateSentinels() []error {
	return []error{
		identity.ErrMalformed, identity.ErrTokenTooLarge, identity.ErrAlgNone, identity.ErrUnsupportedAlg,
		identity.ErrUnsupportedHeader, identity.ErrSignature, identity.ErrKeyNotFound, identity.ErrKeyConversion,
		identity.ErrClaimValidation, identity.ErrUnknownIssuer, identity.ErrProviderUnavailable,
	}
}

// FuzzValidate feeds arbitrary tokens to a validator with the fixture RSA
// key (published without "alg") and an HMAC secret. It must never panic,
// every error must match a documented sentinel, and an accepted token must
// pass the independent check of validateOracle: go-jose verifies it with
// the fixture key or the secret, and its claims fit the configuration.
// Seeds (valid RS256 and HS256 tokens from the fixture key, alg none,
// duplicate members, JWE, oversized numbers, a bad signature, …) live in
// testdata/fuzz/FuzzValidate; tokens the fixture key signs with algorithms
// outside the allow-list, with another key or for another audience are
// added here.
func FuzzValidate(f *testing.F) {
	fx := valFixtureKey(f)
	cfg := valConfig(valKeySet(f, fx))
	cfg.Algorithms = []string{"RS256", "PS256", "HS256"}
	cfg.HMACSecret = []byte(fuzzHMACSecret)
	cfg.Types = []string{"at+jwt", "jwt"}
	cfg.RequiredClaims = []string{"sub"}
	v, err := identity.NewValidator([]identity.IssuerConfig{cfg}, identity.ValidatorOptions{MaxTokenBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	oracle := validateOracle(fx, cfg)
	seed := valMint(f, fx, map[string]any{"typ": "at+jwt"}, valClaims(map[string]any{"scope": "a b"}))
	if _, err := v.Validate(f.Context(), seed); err != nil {
		f.Fatalf("the valid seed is rejected: %v", err)
	}
	if _, err := oracle.Check(seed); err != nil {
		f.Fatalf("the oracle refuses the valid seed: %v", err)
	}
	f.Add(seed)
	at := map[string]any{"typ": "at+jwt"}
	other := valNewKey(f, "RS256", fx.pub.KeyID, false)
	for _, tok := range []string{
		valMint(f, fx.as("RS512"), at, valClaims(nil)),
		valMint(f, fx.as("PS384"), at, valClaims(nil)),
		valMint(f, other, at, valClaims(nil)),
		valMint(f, fx, at, valClaims(map[string]any{"aud": "other"})),
		valMint(f, fx, at, valClaims(map[string]any{"exp": valNow.Add(-time.Hour).Unix()})),
	} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		tok, err := v.Validate(t.Context(), token)
		if err != nil {
			if tok != nil {
				t.Fatal("token and error")
			}
			for _, s := range validateSentinels() {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v matches no sentinel", err)
		}
		claims, err := oracle.Check(token)
		if err != nil {
			t.Fatalf("accepted a token the independent check refuses: %v", err)
		}
		if tok.Issuer != valIssuer || tok.Claims.Issuer != valIssuer || claims["sub"] == nil {
			t.Fatalf("accepted issuer %q, sub %v", tok.Issuer, claims["sub"])
		}
		if len(token) > 4096 || strings.Count(token, ".") != 2 {
			t.Fatalf("accepted a token of %d bytes with %d dots", len(token), strings.Count(token, "."))
		}
	})
}

// validateOracle is the independent check of a token the fuzz validator
// accepted: the configuration's algorithms, the fixture key or the HMAC
// secret, issuer, audience, types and time with the default leeway.
func validateOracle(fx valKey, cfg identity.IssuerConfig) identitytest.TokenCheck {
	return identitytest.TokenCheck{
		Algorithms: cfg.Algorithms,
		Keys:       jose.JSONWebKeySet{Keys: []jose.JSONWebKey{fx.pub}},
		HMACSecret: cfg.HMACSecret,
		Issuer:     cfg.Issuer,
		Audience:   cfg.Audiences[0],
		Types:      cfg.Types,
		Now:        valNow,
		Leeway:     identity.DefaultLeeway,
	}
}

// FuzzParseClaims checks the strict JSON parser against encoding/json: it
// must never panic, and whatever it accepts must decode identically with
// encoding/json (UseNumber).
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"a":2}`, `{"s":"\ud83d\ude00\ud800"}`, `{"n":-0.5e+3}`, `{"o":{"l":[true,false,null]}}`,
		`{"exp":"1","aud":[1]}`, `{"x":"` + "\xff" + `"}`, `[]`, `{"a":1}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := identity.ParseClaims(data)
		if err != nil {
			var ce *identity.ClaimError
			if !errors.Is(err, identity.ErrMalformed) && !errors.As(err, &ce) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var want map[string]any
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("accepted input encoding/json rejects: %v", err)
		}
		if !reflect.DeepEqual(c.Raw(), want) {
			t.Fatalf("decoded differently:\n got %#v\nwant %#v", c.Raw(), want)
		}
	})
}
