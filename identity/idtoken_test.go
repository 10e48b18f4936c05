package identity_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// halfHash is the at_hash/c_hash of value computed independently of the
// package: the left half of SHA-256 (or SHA-512), base64url.
func halfHash(value string, sha512Hash bool) string {
	var sum []byte
	if sha512Hash {
		s := sha512.Sum512([]byte(value))
		sum = s[:]
	} else {
		s := sha256.Sum256([]byte(value))
		sum = s[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// idTokenValidator returns a validator for iss that accepts ID tokens of
// client "web" (its audience).
func idTokenValidator(t *testing.T, iss *identitytest.Issuer) *identity.Validator {
	t.Helper()
	p, err := identity.NewProvider(iss.URL, identity.ProviderOptions{HTTPClient: iss.Client()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	v, err := identity.NewValidator([]identity.IssuerConfig{{Issuer: iss.URL, Keys: p, Audiences: []string{"web"}}}, identity.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidateIDToken(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256", "EdDSA"))
	v := idTokenValidator(t, iss)
	now := time.Now()
	base := map[string]any{"aud": "web", "nonce": "n-1", "sub": "alice"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, val := range base {
			m[k] = val
		}
		for k, val := range extra {
			m[k] = val
		}
		return m
	}
	login := identity.IDTokenCheck{ClientID: "web", Nonce: "n-1"}
	signIn, err := v.ValidateIDToken(context.Background(), iss.Mint(t, with(map[string]any{"azp": "web", "auth_time": now.Add(-time.Minute)})), identity.IDTokenCheck{ClientID: "web", Nonce: "n-1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims map[string]any
		opts   []identitytest.MintOption
		check  identity.IDTokenCheck
		claim  string // "" means accepted
	}{
		{"single audience without azp", with(nil), nil, login, ""},
		{"azp is the client", with(map[string]any{"azp": "web"}), nil, login, ""},
		{"azp is another client", with(map[string]any{"azp": "mobile"}), nil, login, "azp"},
		{"azp not a string", with(map[string]any{"azp": 7}), nil, login, "azp"},
		{"several audiences without azp", with(map[string]any{"aud": []string{"web", "api"}}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", TrustedAudiences: []string{"api"}}, "azp"},
		{"several trusted audiences with azp", with(map[string]any{"aud": []string{"web", "api"}, "azp": "web"}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", TrustedAudiences: []string{"api"}}, ""},
		{"untrusted extra audience", with(map[string]any{"aud": []string{"web", "evil"}, "azp": "web"}), nil, login, "aud"},
		{"client not an audience", with(map[string]any{"aud": []string{"web2"}}), nil, identity.IDTokenCheck{ClientID: "web2"}, "aud"},
		{"nonce differs", with(map[string]any{"nonce": "n-2"}), nil, login, "nonce"},
		{"nonce missing", with(map[string]any{"nonce": nil}), nil, login, "nonce"},
		{"nonce not asked for", with(map[string]any{"nonce": nil}), nil, identity.IDTokenCheck{ClientID: "web"}, ""},
		{"sub missing", with(map[string]any{"sub": nil}), nil, login, "sub"},
		{"iat missing", with(map[string]any{"iat": nil}), nil, login, "iat"},
		{"access token typ", with(nil), []identitytest.MintOption{identitytest.Header("typ", "at+jwt")}, login, "typ"},
		{"logout token typ", with(nil), []identitytest.MintOption{identitytest.Header("typ", "logout+jwt")}, login, "typ"},
		{"at_hash matches", with(map[string]any{"at_hash": halfHash("at-1", false)}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", AccessToken: "at-1"}, ""},
		{"at_hash EdDSA uses SHA-512", with(map[string]any{"at_hash": halfHash("at-1", true)}), []identitytest.MintOption{identitytest.Alg("EdDSA")},
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", AccessToken: "at-1"}, ""},
		{"at_hash of another token", with(map[string]any{"at_hash": halfHash("at-2", false)}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", AccessToken: "at-1"}, "at_hash"},
		{"at_hash absent from the token endpoint", with(nil), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", AccessToken: "at-1"}, ""},
		{"at_hash absent from the authorization endpoint", with(nil), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", AccessToken: "at-1", FromAuthorizationEndpoint: true}, "at_hash"},
		{"c_hash matches", with(map[string]any{"c_hash": halfHash("code-1", false)}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", Code: "code-1", FromAuthorizationEndpoint: true}, ""},
		{"c_hash of another code", with(map[string]any{"c_hash": halfHash("code-2", false)}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", Code: "code-1"}, "c_hash"},
		{"c_hash absent in the hybrid flow", with(nil), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", Code: "code-1", FromAuthorizationEndpoint: true}, "c_hash"},
		{"auth_time within max_age", with(map[string]any{"auth_time": now.Add(-time.Minute)}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", MaxAge: 5 * time.Minute}, ""},
		{"auth_time beyond max_age", with(map[string]any{"auth_time": now.Add(-time.Hour)}), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", MaxAge: 5 * time.Minute}, "auth_time"},
		{"auth_time missing with max_age", with(nil), nil,
			identity.IDTokenCheck{ClientID: "web", Nonce: "n-1", MaxAge: 5 * time.Minute}, "auth_time"},
		{"refresh: same login", with(map[string]any{"azp": "web", "auth_time": now.Add(-time.Minute)}), nil,
			identity.IDTokenCheck{ClientID: "web", Previous: signIn.Claims}, ""},
		{"refresh: no nonce", with(map[string]any{"azp": "web", "nonce": nil}), nil,
			identity.IDTokenCheck{ClientID: "web", Previous: signIn.Claims}, ""},
		{"refresh: other subject", with(map[string]any{"azp": "web", "sub": "mallory"}), nil,
			identity.IDTokenCheck{ClientID: "web", Previous: signIn.Claims}, "sub"},
		{"refresh: other nonce", with(map[string]any{"azp": "web", "nonce": "n-9"}), nil,
			identity.IDTokenCheck{ClientID: "web", Previous: signIn.Claims}, "nonce"},
		{"refresh: azp dropped", with(nil), nil,
			identity.IDTokenCheck{ClientID: "web", Previous: signIn.Claims}, "azp"},
		{"refresh: other auth_time", with(map[string]any{"azp": "web", "auth_time": now}), nil,
			identity.IDTokenCheck{ClientID: "web", Previous: signIn.Claims}, "auth_time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := iss.Mint(t, tc.claims, tc.opts...)
			tok, err := v.ValidateIDToken(context.Background(), raw, tc.check)
			if tc.claim == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tok.Claims.Subject != tc.claims["sub"] {
					t.Fatalf("subject %q", tok.Claims.Subject)
				}
				return
			}
			var ce *identity.ClaimError
			if !errors.As(err, &ce) || ce.Claim != tc.claim {
				t.Fatalf("got %v, want a claim error for %q", err, tc.claim)
			}
		})
	}
}

func TestValidateIDTokenCallerMistakes(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	v := idTokenValidator(t, iss)
	raw := iss.Mint(t, map[string]any{"aud": "web"})
	if _, err := v.ValidateIDToken(context.Background(), raw, identity.IDTokenCheck{}); !errors.Is(err, identity.ErrMissingClientID) {
		t.Errorf("no client ID: %v", err)
	}
	opts := identity.ValidateOptions{Issuer: iss.URL, HTTPClient: iss.Client()}
	if _, err := identity.ValidateIDToken(context.Background(), "", opts, identity.IDTokenCheck{ClientID: "web"}); !errors.Is(err, identity.ErrMissingToken) {
		t.Errorf("no token: %v", err)
	}
	if _, err := identity.ValidateAccessToken(context.Background(), raw, identity.ValidateOptions{Audience: "web"}); !errors.Is(err, identity.ErrMissingIssuer) {
		t.Errorf("no issuer: %v", err)
	}
}

func TestOneCallValidation(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	ctx := context.Background()
	opts := identity.ValidateOptions{Issuer: iss.URL, Audience: "api", HTTPClient: iss.Client()}
	tok, err := identity.ValidateAccessToken(ctx, iss.Token(t, "svc", map[string]any{"aud": "api"}), opts)
	if err != nil || tok.Claims.Subject != "svc" {
		t.Fatalf("access token: %v", err)
	}
	if _, err := identity.ValidateAccessToken(ctx, iss.Token(t, "svc", map[string]any{"aud": "other"}), opts); !errors.Is(err, identity.ErrClaimValidation) {
		t.Fatalf("wrong audience accepted: %v", err)
	}
	idt := iss.Mint(t, map[string]any{"aud": "web", "nonce": "n", "at_hash": halfHash("at", false)})
	tok, err = identity.ValidateIDToken(ctx, idt, opts, identity.IDTokenCheck{ClientID: "web", Nonce: "n", AccessToken: "at"})
	if err != nil || tok.Issuer != iss.URL {
		t.Fatalf("ID token: %v", err)
	}
	p, err := identity.NewProvider(iss.URL, identity.ProviderOptions{HTTPClient: iss.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	shared := identity.ValidateOptions{Provider: p, Audience: "api"}
	iss.ResetCounters()
	for range 3 {
		if _, err := identity.ValidateAccessToken(ctx, iss.Token(t, "svc", map[string]any{"aud": "api"}), shared); err != nil {
			t.Fatal(err)
		}
	}
	if n := iss.DiscoveryFetches(); n != 1 {
		t.Errorf("a shared provider fetched discovery %d times for 3 validations", n)
	}
}

func TestOneCallValidationWithoutDiscovery(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"), identitytest.WithoutDiscovery())
	p, err := identity.NewProvider(iss.URL, identity.ProviderOptions{JWKSURL: iss.JWKSURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tok, err := identity.ValidateAccessToken(context.Background(), iss.Token(t, "svc", nil), identity.ValidateOptions{Provider: p, Audience: identitytest.DefaultAudience})
	if err != nil || tok.Issuer != iss.URL {
		t.Fatalf("%v %v", tok, err)
	}
}
