package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// valNow is the fixed clock of the validator tests.
var valNow = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)

const (
	valIssuer   = "https://issuer.example.com"
	valAudience = "test-client"
)

func valFixedNow() time.Time { return valNow }

// valKey is a signing key and its public JWK.
type valKey struct {
	alg  string
	priv any // crypto.Signer, or []byte for HMAC
	pub  jose.JSONWebKey
}

// valFixtureKey is the committed RSA key of testdata/signing-key.jwk.json
// (kid test-key-1), with which the RS256 and PS256 FuzzValidate seeds are
// signed; TestTestdata makes and checks both.
func valFixtureKey(tb testing.TB) valKey {
	tb.Helper()
	b, err := os.ReadFile(testdataKeyFile)
	if err != nil {
		tb.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		tb.Fatal(err)
	}
	pub := k.Public()
	pub.KeyID = testdataKeyID
	pub.Use = "sig"
	pub.Algorithm = "" // the file says RS256; tests also sign RS384..PS512 with it
	return valKey{alg: "RS256", priv: k.Key, pub: pub}
}

// valNewKey generates a key for alg with the given kid; the public JWK
// has no "alg" unless withAlg.
func valNewKey(tb testing.TB, alg, kid string, withAlg bool) valKey {
	tb.Helper()
	var priv crypto.Signer
	var err error
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case alg == "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case alg == "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case alg == "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case alg == "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("no key type for %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Use: "sig"}
	if withAlg {
		pub.Algorithm = alg
	}
	return valKey{alg: alg, priv: priv, pub: pub}
}

// as returns k signing with alg instead.
func (k valKey) as(alg string) valKey {
	k.alg = alg
	return k
}

// idKey converts the public JWK into an identity.Key with its thumbprint.
func (k valKey) idKey(tb testing.TB) identity.Key {
	tb.Helper()
	tp, err := k.pub.Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	return identity.Key{JWK: k.pub, Thumbprint: base64.RawURLEncoding.EncodeToString(tp)}
}

// valKeySet builds a real identity.KeySet from the public keys.
func valKeySet(tb testing.TB, keys ...valKey) *identity.KeySet {
	tb.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	ks, err := identity.ParseKeySet(b)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

func valB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// valSignInput signs the JWS signing input with key for alg.
func valSignInput(tb testing.TB, alg string, key any, input []byte) []byte {
	tb.Helper()
	var h crypto.Hash
	switch {
	case strings.HasSuffix(alg, "256"):
		h = crypto.SHA256
	case strings.HasSuffix(alg, "384"):
		h = crypto.SHA384
	case strings.HasSuffix(alg, "512"):
		h = crypto.SHA512
	}
	digest := func() []byte {
		d := h.New()
		d.Write(input)
		return d.Sum(nil)
	}
	var sig []byte
	var err error
	switch {
	case strings.HasPrefix(alg, "HS"):
		m := hmac.New(h.New, key.([]byte))
		m.Write(input)
		sig = m.Sum(nil)
	case strings.HasPrefix(alg, "RS"):
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), h, digest())
	case strings.HasPrefix(alg, "PS"):
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), h, digest(), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case strings.HasPrefix(alg, "ES"):
		k := key.(*ecdsa.PrivateKey)
		r, s, e := ecdsa.Sign(rand.Reader, k, digest())
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		err = e
	case alg == "EdDSA":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), input)
	default:
		tb.Fatalf("cannot sign %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// valMintRaw signs exactly the given header and payload bytes.
func valMintRaw(tb testing.TB, alg string, key any, header, payload []byte) string {
	tb.Helper()
	input := valB64(header) + "." + valB64(payload)
	return input + "." + valB64(valSignInput(tb, alg, key, []byte(input)))
}

// valMint signs claims with k; header members are added to alg and k's kid
// (a nil value removes one).
func valMint(tb testing.TB, k valKey, header, claims map[string]any) string {
	tb.Helper()
	h := map[string]any{"alg": k.alg}
	if k.pub.KeyID != "" {
		h["kid"] = k.pub.KeyID
	}
	for n, v := range header {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return valMintRaw(tb, k.alg, k.priv, hb, pb)
}

// valClaims returns valid claims for valIssuer/valAudience at valNow,
// with overrides applied (a nil value removes a claim).
func valClaims(overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss": valIssuer,
		"sub": "user-123",
		"aud": valAudience,
		"iat": valNow.Add(-time.Minute).Unix(),
		"nbf": valNow.Add(-time.Minute).Unix(),
		"exp": valNow.Add(time.Hour).Unix(),
	}
	for n, v := range overrides {
		if v == nil {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	return c
}

// valConfig is an issuer configuration for valIssuer with src.
func valConfig(src identity.KeySource) identity.IssuerConfig {
	return identity.IssuerConfig{
		Issuer:    valIssuer,
		Keys:      src,
		Audiences: []string{valAudience},
		Now:       valFixedNow,
	}
}

func valValidator(tb testing.TB, cfgs ...identity.IssuerConfig) *identity.Validator {
	tb.Helper()
	v, err := identity.NewValidator(cfgs, identity.ValidatorOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// valWantErr checks that err matches sentinel and, for claim errors, names
// claim.
func valWantErr(t *testing.T, err, sentinel error, claim string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v, want %v", err, sentinel)
	}
	if claim != "" {
		var ce *identity.ClaimError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *ClaimError", err)
		}
		if ce.Claim != claim {
			t.Fatalf("claim %q (%v), want %q", ce.Claim, err, claim)
		}
	}
}

// valRawSource returns its keys for every lookup, unfiltered, to exercise the
// validator's own checks of what a key source hands it.
type valRawSource []identity.Key

func (s valRawSource) CandidateKeys(context.Context, string, string) ([]identity.Key, error) {
	return s, nil
}

func (s valRawSource) HasKey(tp string) bool {
	for _, k := range s {
		if k.Thumbprint == tp {
			return true
		}
	}
	return false
}

// valRefreshingSource serves sets[i] and moves to the next set on Refresh; it
// never refreshes by itself, so any refresh is the validator's doing.
type valRefreshingSource struct {
	mu         sync.Mutex
	sets       []*identity.KeySet
	cur        int
	refreshErr error
	refreshes  atomic.Int32
	advertised []string
}

func (s *valRefreshingSource) set() *identity.KeySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sets[s.cur]
}

func (s *valRefreshingSource) CandidateKeys(ctx context.Context, kid, alg string) ([]identity.Key, error) {
	return s.set().CandidateKeys(ctx, kid, alg)
}

func (s *valRefreshingSource) HasKey(tp string) bool { return s.set().HasKey(tp) }

func (s *valRefreshingSource) Refresh(context.Context) error {
	s.refreshes.Add(1)
	if s.refreshErr != nil {
		return s.refreshErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur < len(s.sets)-1 {
		s.cur++
	}
	return nil
}

func (s *valRefreshingSource) AdvertisedAlgorithms() []string { return s.advertised }

func TestValidate_AcceptsEachAlgorithm(t *testing.T) {
	fx := valFixtureKey(t)
	keys := []valKey{
		fx,
		fx.as("RS384"), fx.as("RS512"), fx.as("PS256"), fx.as("PS384"), fx.as("PS512"),
		valNewKey(t, "ES256", "ec256", true),
		valNewKey(t, "ES384", "ec384", false),
		valNewKey(t, "ES512", "ec521", false),
		valNewKey(t, "EdDSA", "ed", true),
	}
	v := valValidator(t, valConfig(valKeySet(t, fx, keys[6], keys[7], keys[8], keys[9])))
	for _, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			tok, err := v.Validate(t.Context(), valMint(t, k, map[string]any{"typ": "at+jwt"}, valClaims(nil)))
			if err != nil {
				t.Fatal(err)
			}
			want := k.idKey(t).Thumbprint
			if tok.Issuer != valIssuer || tok.Algorithm != k.alg || tok.KeyID != k.pub.KeyID || tok.Type != "at+jwt" || tok.KeyThumbprint != want {
				t.Fatalf("token %+v", tok)
			}
			if tok.Claims.Subject != "user-123" || !tok.Claims.Expiry.Equal(valNow.Add(time.Hour)) ||
				len(tok.Claims.Audience) != 1 || tok.Claims.Audience[0] != valAudience {
				t.Fatalf("claims %+v", tok.Claims)
			}
			if !v.KeyStillValid(valIssuer, tok.KeyThumbprint) {
				t.Fatal("KeyStillValid false for the verifying key")
			}
		})
	}
}

func TestValidate_Rejects(t *testing.T) {
	fx := valFixtureKey(t)
	ec := valNewKey(t, "ES256", "ec", false)
	v := valValidator(t, valConfig(valKeySet(t, fx, ec)))
	good := valMint(t, fx, nil, valClaims(nil))
	parts := strings.Split(good, ".")
	hdr := func(h string) string { return valB64([]byte(h)) }
	pay := func(p string) []byte { return []byte(p) }
	okPayload, _ := json.Marshal(valClaims(nil))
	attacker := valNewKey(t, "ES256", "ec", false)
	attackerJWK, _ := attacker.pub.MarshalJSON()

	tests := []struct {
		name     string
		token    string
		sentinel error
		claim    string
	}{
		{"empty", "", identity.ErrMalformed, ""},
		{"two parts", parts[0] + "." + parts[1], identity.ErrMalformed, ""},
		{"four parts", good + ".x", identity.ErrMalformed, ""},
		{"JWE", parts[0] + ".a.b.c.d", identity.ErrMalformed, ""},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2], identity.ErrMalformed, ""},
		{"line break", parts[0][:4] + "\n" + parts[0][4:] + "." + parts[1] + "." + parts[2], identity.ErrMalformed, ""},
		{"std base64 alphabet", parts[0] + "." + parts[1] + "." + strings.ReplaceAll(parts[2], "-", "+") + "+", identity.ErrMalformed, ""},
		{"empty payload", parts[0] + ".." + parts[2], identity.ErrMalformed, ""},
		{"header not JSON", hdr("alg") + "." + parts[1] + "." + parts[2], identity.ErrMalformed, ""},
		{"header array", hdr(`["RS256"]`) + "." + parts[1] + "." + parts[2], identity.ErrMalformed, ""},
		{"header trailing data", hdr(`{"alg":"RS256"} x`) + "." + parts[1] + "." + parts[2], identity.ErrMalformed, ""},
		{"duplicate alg", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":"RS256","kid":"test-key-1","alg":"none"}`), okPayload), identity.ErrMalformed, ""},
		{"duplicate escaped member", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":"RS256","kid":"test-key-1","\u006bid":"x"}`), okPayload), identity.ErrMalformed, ""},
		{"duplicate exp in payload", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":"RS256","kid":"test-key-1"}`),
			pay(`{"iss":"`+valIssuer+`","aud":"`+valAudience+`","iat":1700000000,"exp":1,"exp":4102444800}`)), identity.ErrMalformed, ""},
		{"duplicate nested member", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":"RS256","kid":"test-key-1"}`),
			pay(`{"iss":"`+valIssuer+`","aud":"`+valAudience+`","iat":1700000000,"exp":4102444800,"r":{"a":1,"a":2}}`)), identity.ErrMalformed, ""},
		{"payload not object", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":"RS256","kid":"test-key-1"}`), pay(`"x"`)), identity.ErrMalformed, ""},
		{"payload invalid UTF-8", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":"RS256","kid":"test-key-1"}`),
			pay("{\"iss\":\""+valIssuer+"\",\"sub\":\"\xff\"}")), identity.ErrMalformed, ""},
		{"alg missing", valMint(t, fx, map[string]any{"alg": nil}, valClaims(nil)), identity.ErrMalformed, ""},
		{"alg not a string", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":256}`), okPayload), identity.ErrMalformed, ""},
		{"kid not a string", valMintRaw(t, "RS256", fx.priv, []byte(`{"alg":"RS256","kid":1}`), okPayload), identity.ErrMalformed, ""},
		{"nested JWT", valMint(t, fx, map[string]any{"cty": "JWT"}, valClaims(nil)), identity.ErrMalformed, ""},
		{"crit empty", valMint(t, fx, map[string]any{"crit": []string{}}, valClaims(nil)), identity.ErrMalformed, ""},
		{"crit not array", valMint(t, fx, map[string]any{"crit": "exp"}, valClaims(nil)), identity.ErrMalformed, ""},
		{"alg none", hdr(`{"alg":"none"}`) + "." + parts[1] + ".", identity.ErrAlgNone, ""},
		{"alg NONE with signature", hdr(`{"alg":"NONE"}`) + "." + parts[1] + "." + parts[2], identity.ErrAlgNone, ""},
		{"alg nOnE", hdr(`{"alg":"nOnE","kid":"test-key-1"}`) + "." + parts[1] + ".", identity.ErrAlgNone, ""},
		{"alg unknown", valMint(t, fx, map[string]any{"alg": "RS257"}, valClaims(nil)), identity.ErrUnsupportedAlg, ""},
		{"alg lower case", valMint(t, fx, map[string]any{"alg": "rs256"}, valClaims(nil)), identity.ErrUnsupportedAlg, ""},
		{"HS256 with the public key as secret", valMintRaw(t, "HS256", valPEM(t, fx), []byte(`{"alg":"HS256","kid":"test-key-1"}`), okPayload), identity.ErrUnsupportedAlg, ""},
		{"crit unknown", valMint(t, fx, map[string]any{"crit": []string{"exp"}, "exp": 1}, valClaims(nil)), identity.ErrUnsupportedHeader, ""},
		{"crit b64 false", valMint(t, fx, map[string]any{"crit": []string{"b64"}, "b64": false}, valClaims(nil)), identity.ErrUnsupportedHeader, ""},
		{"b64 false without crit", valMint(t, fx, map[string]any{"b64": false}, valClaims(nil)), identity.ErrUnsupportedHeader, ""},
		{"unknown issuer", valMint(t, fx, nil, valClaims(map[string]any{"iss": "https://attacker.example.com"})), identity.ErrUnknownIssuer, "iss"},
		{"issuer with trailing slash", valMint(t, fx, nil, valClaims(map[string]any{"iss": valIssuer + "/"})), identity.ErrUnknownIssuer, "iss"},
		{"issuer missing", valMint(t, fx, nil, valClaims(map[string]any{"iss": nil})), identity.ErrUnknownIssuer, "iss"},
		{"issuer not a string", valMint(t, fx, nil, valClaims(map[string]any{"iss": 1})), identity.ErrClaimValidation, "iss"},
		{"empty signature", parts[0] + "." + parts[1] + ".", identity.ErrSignature, ""},
		{"tampered payload", parts[0] + "." + valB64(pay(strings.Replace(string(okPayload), "user-123", "admin", 1))) + "." + parts[2], identity.ErrSignature, ""},
		{"other key same kid", valMint(t, valNewKey(t, "ES256", "ec", false), nil, valClaims(nil)), identity.ErrSignature, ""},
		{"unknown kid", valMint(t, valNewKey(t, "ES256", "nope", false), nil, valClaims(nil)), identity.ErrKeyNotFound, ""},
		{"embedded jwk ignored", valMint(t, attacker, map[string]any{"jwk": json.RawMessage(attackerJWK)}, valClaims(nil)), identity.ErrSignature, ""},
		{"jku and x5u ignored", valMint(t, valNewKey(t, "ES256", "remote", false), map[string]any{"jku": "https://attacker.example/jwks", "x5u": "https://attacker.example/cert"}, valClaims(nil)), identity.ErrKeyNotFound, ""},
		{"kid of an RSA key with ES256", valMint(t, valKey{alg: "ES256", priv: attacker.priv, pub: jose.JSONWebKey{KeyID: "test-key-1"}}, nil, valClaims(nil)), identity.ErrKeyNotFound, ""},
		{"exp string", valMint(t, fx, nil, valClaims(map[string]any{"exp": "4102444800"})), identity.ErrClaimValidation, "exp"},
		{"exp missing", valMint(t, fx, nil, valClaims(map[string]any{"exp": nil})), identity.ErrClaimValidation, "exp"},
		{"exp null", valMint(t, fx, nil, valClaims(map[string]any{"exp": json.RawMessage("null")})), identity.ErrClaimValidation, "exp"},
		{"exp huge", valMint(t, fx, nil, valClaims(map[string]any{"exp": json.RawMessage("1e300")})), identity.ErrClaimValidation, "exp"},
		{"expired beyond leeway", valMint(t, fx, nil, valClaims(map[string]any{"exp": valNow.Add(-61 * time.Second).Unix()})), identity.ErrClaimValidation, "exp"},
		{"expired exactly at leeway", valMint(t, fx, nil, valClaims(map[string]any{"exp": valNow.Add(-60 * time.Second).Unix()})), identity.ErrClaimValidation, "exp"},
		{"nbf future", valMint(t, fx, nil, valClaims(map[string]any{"nbf": valNow.Add(61 * time.Second).Unix()})), identity.ErrClaimValidation, "nbf"},
		{"nbf bool", valMint(t, fx, nil, valClaims(map[string]any{"nbf": true})), identity.ErrClaimValidation, "nbf"},
		{"iat future", valMint(t, fx, nil, valClaims(map[string]any{"iat": valNow.Add(2 * time.Minute).Unix()})), identity.ErrClaimValidation, "iat"},
		{"iat missing", valMint(t, fx, nil, valClaims(map[string]any{"iat": nil})), identity.ErrClaimValidation, "iat"},
		{"iat string", valMint(t, fx, nil, valClaims(map[string]any{"iat": "1700000000"})), identity.ErrClaimValidation, "iat"},
		{"aud other", valMint(t, fx, nil, valClaims(map[string]any{"aud": "other"})), identity.ErrClaimValidation, "aud"},
		{"aud array without ours", valMint(t, fx, nil, valClaims(map[string]any{"aud": []string{"a", "b"}})), identity.ErrClaimValidation, "aud"},
		{"aud missing", valMint(t, fx, nil, valClaims(map[string]any{"aud": nil})), identity.ErrClaimValidation, "aud"},
		{"aud number", valMint(t, fx, nil, valClaims(map[string]any{"aud": 1})), identity.ErrClaimValidation, "aud"},
		{"aud array of numbers", valMint(t, fx, nil, valClaims(map[string]any{"aud": []int{1}})), identity.ErrClaimValidation, "aud"},
		{"sub number", valMint(t, fx, nil, valClaims(map[string]any{"sub": 42})), identity.ErrClaimValidation, "sub"},
		{"jti object", valMint(t, fx, nil, valClaims(map[string]any{"jti": map[string]any{}})), identity.ErrClaimValidation, "jti"},
		{"scope number", valMint(t, fx, nil, valClaims(map[string]any{"scope": 1})), identity.ErrClaimValidation, "scope"},
		{"scp object", valMint(t, fx, nil, valClaims(map[string]any{"scp": map[string]any{}})), identity.ErrClaimValidation, "scp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Validate(t.Context(), tc.token)
			if tok != nil {
				t.Fatalf("got a token with error %v", err)
			}
			valWantErr(t, err, tc.sentinel, tc.claim)
		})
	}
}

// valPEM returns the public key of k as PKIX PEM bytes: what an attacker
// uses as an HMAC secret in the classic RS256→HS256 confusion.
func valPEM(tb testing.TB, k valKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.pub.Key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestValidate_TokenTooLarge(t *testing.T) {
	fx := valFixtureKey(t)
	v, err := identity.NewValidator([]identity.IssuerConfig{valConfig(valKeySet(t, fx))}, identity.ValidatorOptions{MaxTokenBytes: 600})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Validate(t.Context(), valMint(t, fx, nil, valClaims(map[string]any{"pad": strings.Repeat("x", 600)})))
	valWantErr(t, err, identity.ErrTokenTooLarge, "")
	// The default cap refuses a 9 KiB string of dots before any decoding.
	_, err = valValidator(t, valConfig(valKeySet(t, fx))).Validate(t.Context(), strings.Repeat(".", 9<<10))
	valWantErr(t, err, identity.ErrTokenTooLarge, "")
	if _, err := v.Validate(t.Context(), valMint(t, fx, nil, valClaims(nil))); err != nil {
		t.Fatalf("small token: %v", err)
	}
}

func TestValidate_Leeway(t *testing.T) {
	fx := valFixtureKey(t)
	ks := valKeySet(t, fx)
	at := func(d time.Duration) int64 { return valNow.Add(d).Unix() }
	tests := []struct {
		name   string
		leeway time.Duration
		claims map[string]any
		claim  string // "" accepts
	}{
		{"default, exp 59s ago", 0, map[string]any{"exp": at(-59 * time.Second)}, ""},
		{"default, exp 61s ago", 0, map[string]any{"exp": at(-61 * time.Second)}, "exp"},
		{"default, nbf in 59s", 0, map[string]any{"nbf": at(59 * time.Second)}, ""},
		{"default, iat in 59s", 0, map[string]any{"iat": at(59 * time.Second)}, ""},
		{"none, exp 1s ago", -1, map[string]any{"exp": at(-time.Second)}, "exp"},
		{"none, exp now", -1, map[string]any{"exp": at(0)}, "exp"},
		{"none, exp in 1s", -1, map[string]any{"exp": at(time.Second)}, ""},
		{"none, nbf in 1s", -1, map[string]any{"nbf": at(time.Second)}, "nbf"},
		{"none, nbf now", -1, map[string]any{"nbf": at(0)}, ""},
		{"none, iat in 1s", -1, map[string]any{"iat": at(time.Second)}, "iat"},
		{"5m, exp 4m ago", 5 * time.Minute, map[string]any{"exp": at(-4 * time.Minute)}, ""},
		{"5m, nbf in 6m", 5 * time.Minute, map[string]any{"nbf": at(6 * time.Minute)}, "nbf"},
		{"fractional exp", -1, map[string]any{"exp": json.RawMessage(`1700000000.5`)}, ""},
		{"fractional exp past", -1, map[string]any{"exp": json.RawMessage(`1700000000.0`)}, "exp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valConfig(ks)
			cfg.Leeway = tc.leeway
			_, err := valValidator(t, cfg).Validate(t.Context(), valMint(t, fx, nil, valClaims(tc.claims)))
			if tc.claim == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			valWantErr(t, err, identity.ErrClaimValidation, tc.claim)
		})
	}
}

func TestValidate_IssuerRules(t *testing.T) {
	fx := valFixtureKey(t)
	ks := valKeySet(t, fx)
	tests := []struct {
		name   string
		cfg    func(*identity.IssuerConfig)
		header map[string]any
		claims map[string]any
		claim  string // "" accepts
	}{
		{"AllowMissingExp", func(c *identity.IssuerConfig) { c.AllowMissingExp = true }, nil, map[string]any{"exp": nil}, ""},
		{"AllowMissingIssuedAt", func(c *identity.IssuerConfig) { c.AllowMissingIssuedAt = true }, nil, map[string]any{"iat": nil}, ""},
		{"AnyAudience without aud", func(c *identity.IssuerConfig) { c.Audiences, c.AnyAudience = nil, true }, nil, map[string]any{"aud": nil}, ""},
		{"AnyAudience other aud", func(c *identity.IssuerConfig) { c.Audiences, c.AnyAudience = nil, true }, nil, map[string]any{"aud": "x"}, ""},
		{"one of several audiences", func(c *identity.IssuerConfig) { c.Audiences = []string{"a", "b"} }, nil, map[string]any{"aud": []string{"c", "b"}}, ""},
		{"typ at+jwt", func(c *identity.IssuerConfig) { c.Types = []string{"at+jwt"} }, map[string]any{"typ": "at+jwt"}, nil, ""},
		{"typ application/AT+JWT", func(c *identity.IssuerConfig) { c.Types = []string{"at+jwt"} }, map[string]any{"typ": "application/AT+JWT"}, nil, ""},
		{"typ config with prefix", func(c *identity.IssuerConfig) { c.Types = []string{"application/at+jwt"} }, map[string]any{"typ": "at+JWT"}, nil, ""},
		{"typ JWT refused", func(c *identity.IssuerConfig) { c.Types = []string{"at+jwt"} }, map[string]any{"typ": "JWT"}, nil, "typ"},
		{"typ missing refused", func(c *identity.IssuerConfig) { c.Types = []string{"at+jwt"} }, nil, nil, "typ"},
		{"typ unchecked by default", func(*identity.IssuerConfig) {}, map[string]any{"typ": "whatever"}, nil, ""},
		{"nonce matches", func(c *identity.IssuerConfig) { c.Nonce = "n-1" }, nil, map[string]any{"nonce": "n-1"}, ""},
		{"nonce differs", func(c *identity.IssuerConfig) { c.Nonce = "n-1" }, nil, map[string]any{"nonce": "n-2"}, "nonce"},
		{"nonce missing", func(c *identity.IssuerConfig) { c.Nonce = "n-1" }, nil, nil, "nonce"},
		{"nonce not a string", func(c *identity.IssuerConfig) { c.Nonce = "1" }, nil, map[string]any{"nonce": 1}, "nonce"},
		{"max age ok", func(c *identity.IssuerConfig) { c.MaxAge = 5 * time.Minute }, nil, map[string]any{"iat": valNow.Add(-5 * time.Minute).Unix()}, ""},
		{"max age exceeded", func(c *identity.IssuerConfig) { c.MaxAge = 5 * time.Minute }, nil, map[string]any{"iat": valNow.Add(-7 * time.Minute).Unix()}, "iat"},
		{"max age needs iat", func(c *identity.IssuerConfig) { c.MaxAge, c.AllowMissingIssuedAt = time.Minute, true }, nil, map[string]any{"iat": nil}, "iat"},
		{"required claim present", func(c *identity.IssuerConfig) { c.RequiredClaims = []string{"email", "realm_access.roles"} }, nil,
			map[string]any{"email": "a@b.c", "realm_access": map[string]any{"roles": []string{"x"}}}, ""},
		{"required claim missing", func(c *identity.IssuerConfig) { c.RequiredClaims = []string{"email"} }, nil, nil, "email"},
		{"required claim null", func(c *identity.IssuerConfig) { c.RequiredClaims = []string{"email"} }, nil, map[string]any{"email": nil}, "email"},
		{"required nested claim missing", func(c *identity.IssuerConfig) { c.RequiredClaims = []string{"realm_access.roles"} }, nil,
			map[string]any{"realm_access": map[string]any{}}, "realm_access.roles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valConfig(ks)
			tc.cfg(&cfg)
			claims := valClaims(nil)
			for n, v := range tc.claims {
				claims[n] = v
				if v == nil && n != "email" {
					delete(claims, n)
				}
			}
			_, err := valValidator(t, cfg).Validate(t.Context(), valMint(t, fx, tc.header, claims))
			if tc.claim == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			valWantErr(t, err, identity.ErrClaimValidation, tc.claim)
		})
	}
}

func TestNewValidator_ConfigErrors(t *testing.T) {
	ks := valKeySet(t, valFixtureKey(t))
	secret := []byte(strings.Repeat("s", 64))
	tests := []struct {
		name     string
		cfgs     []identity.IssuerConfig
		sentinel error // nil: any error
	}{
		{"no issuers", nil, nil},
		{"empty issuer", []identity.IssuerConfig{{Keys: ks, AnyAudience: true}}, nil},
		{"duplicate issuer", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true}, {Issuer: "a", Keys: ks, AnyAudience: true}}, nil},
		{"no keys", []identity.IssuerConfig{{Issuer: "a", AnyAudience: true}}, nil},
		{"no audience", []identity.IssuerConfig{{Issuer: "a", Keys: ks}}, nil},
		{"audience and AnyAudience", []identity.IssuerConfig{{Issuer: "a", Keys: ks, Audiences: []string{"x"}, AnyAudience: true}}, nil},
		{"empty audience", []identity.IssuerConfig{{Issuer: "a", Keys: ks, Audiences: []string{""}}}, nil},
		{"none", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true, Algorithms: []string{"RS256", "none"}}}, identity.ErrAlgNone},
		{"None", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true, Algorithms: []string{"None"}}}, identity.ErrAlgNone},
		{"unknown alg", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true, Algorithms: []string{"RS1"}}}, identity.ErrUnsupportedAlg},
		{"HS256 without secret", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true, Algorithms: []string{"HS256"}}}, nil},
		{"short secret", []identity.IssuerConfig{{Issuer: "a", HMACSecret: secret[:31], AnyAudience: true, Algorithms: []string{"HS256"}}}, nil},
		{"HS512 secret too short", []identity.IssuerConfig{{Issuer: "a", HMACSecret: secret[:48], AnyAudience: true, Algorithms: []string{"HS512"}}}, nil},
		{"secret without HS alg", []identity.IssuerConfig{{Issuer: "a", Keys: ks, HMACSecret: secret, AnyAudience: true}}, nil},
		{"secret with only RS alg", []identity.IssuerConfig{{Issuer: "a", Keys: ks, HMACSecret: secret, AnyAudience: true, Algorithms: []string{"RS256"}}}, nil},
		{"RS256 without keys", []identity.IssuerConfig{{Issuer: "a", HMACSecret: secret, AnyAudience: true, Algorithms: []string{"HS256", "RS256"}}}, nil},
		{"empty type", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true, Types: []string{""}}}, nil},
		{"negative max age", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true, MaxAge: -1}}, nil},
		{"empty required claim", []identity.IssuerConfig{{Issuer: "a", Keys: ks, AnyAudience: true, RequiredClaims: []string{""}}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := identity.NewValidator(tc.cfgs, identity.ValidatorOptions{})
			if err == nil || v != nil {
				t.Fatalf("NewValidator accepted the configuration")
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Fatalf("error %v, want %v", err, tc.sentinel)
			}
		})
	}
}

func TestValidate_AlgorithmAllowList(t *testing.T) {
	fx := valFixtureKey(t)
	ec := valNewKey(t, "ES256", "ec", false)
	ks := valKeySet(t, fx, ec)
	rs, es, ps := valMint(t, fx, nil, valClaims(nil)), valMint(t, ec, nil, valClaims(nil)), valMint(t, fx.as("PS256"), nil, valClaims(nil))

	t.Run("explicit list", func(t *testing.T) {
		cfg := valConfig(ks)
		cfg.Algorithms = []string{"ES256"}
		v := valValidator(t, cfg)
		if _, err := v.Validate(t.Context(), es); err != nil {
			t.Fatal(err)
		}
		_, err := v.Validate(t.Context(), rs)
		valWantErr(t, err, identity.ErrUnsupportedAlg, "")
	})
	t.Run("advertised algorithms", func(t *testing.T) {
		src := &valRefreshingSource{sets: []*identity.KeySet{ks}, advertised: []string{"RS256", "HS256"}}
		v := valValidator(t, valConfig(src))
		if _, err := v.Validate(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{es, ps} {
			_, err := v.Validate(t.Context(), tok)
			valWantErr(t, err, identity.ErrUnsupportedAlg, "")
		}
		// HS256 is advertised but never allowed without an explicit secret.
		_, err := v.Validate(t.Context(), valMintRaw(t, "HS256", []byte(strings.Repeat("k", 32)), []byte(`{"alg":"HS256"}`), valJSON(t, valClaims(nil))))
		valWantErr(t, err, identity.ErrUnsupportedAlg, "")
	})
	t.Run("nothing advertised means defaults", func(t *testing.T) {
		v := valValidator(t, valConfig(&valRefreshingSource{sets: []*identity.KeySet{ks}}))
		for _, tok := range []string{rs, es, ps} {
			if _, err := v.Validate(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func valJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestValidate_KeyChecks(t *testing.T) {
	fx := valFixtureKey(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallKey := valKey{alg: "RS256", priv: small, pub: jose.JSONWebKey{Key: small.Public(), KeyID: "small"}}
	p384 := valNewKey(t, "ES384", "ec", false)
	tests := []struct {
		name     string
		signer   valKey
		keys     []identity.Key
		sentinel error
	}{
		{"key alg differs", fx.as("PS256"), []identity.Key{valWithJWK(fx.idKey(t), func(j *jose.JSONWebKey) { j.Algorithm = "RS256" })}, identity.ErrUnsupportedAlg},
		{"key use enc", fx, []identity.Key{valWithJWK(fx.idKey(t), func(j *jose.JSONWebKey) { j.Use = "enc" })}, identity.ErrKeyConversion},
		{"RSA 1024", smallKey, []identity.Key{smallKey.idKey(t)}, identity.ErrKeyConversion},
		{"private key", fx, []identity.Key{valWithJWK(fx.idKey(t), func(j *jose.JSONWebKey) { j.Key = fx.priv })}, identity.ErrKeyConversion},
		{"symmetric key", fx, []identity.Key{valWithJWK(fx.idKey(t), func(j *jose.JSONWebKey) { j.Key = []byte(strings.Repeat("k", 64)) })}, identity.ErrKeyConversion},
		{"curve mismatch", valKey{alg: "ES256", priv: valEC(t), pub: jose.JSONWebKey{KeyID: "ec"}}, []identity.Key{p384.idKey(t)}, identity.ErrUnsupportedAlg},
		{"RSA key for ES256", valKey{alg: "ES256", priv: valEC(t), pub: jose.JSONWebKey{KeyID: "test-key-1"}}, []identity.Key{fx.idKey(t)}, identity.ErrUnsupportedAlg},
		{"no candidates", fx, nil, identity.ErrKeyNotFound},
		{"bad key then good key", fx, []identity.Key{smallKey.idKey(t), fx.idKey(t)}, nil},
		{"wrong key then right key", fx, []identity.Key{valWithJWK(valNewKey(t, "RS256", "x", false).idKey(t), nil), fx.idKey(t)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := valValidator(t, valConfig(valRawSource(tc.keys)))
			tok, err := v.Validate(t.Context(), valMint(t, tc.signer, nil, valClaims(nil)))
			if tc.sentinel == nil {
				if err != nil {
					t.Fatal(err)
				}
				if tok.KeyThumbprint != fx.idKey(t).Thumbprint {
					t.Fatalf("verified by %s", tok.KeyThumbprint)
				}
				return
			}
			valWantErr(t, err, tc.sentinel, "")
		})
	}
}

func valWithJWK(k identity.Key, f func(*jose.JSONWebKey)) identity.Key {
	if f != nil {
		f(&k.JWK)
	}
	return k
}

func valEC(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestValidate_HMAC(t *testing.T) {
	fx := valFixtureKey(t)
	secret := []byte(strings.Repeat("0123456789abcdef", 4))
	cfg := valConfig(valKeySet(t, fx))
	cfg.HMACSecret = secret
	cfg.Algorithms = []string{"HS256", "HS512", "RS256"}
	v := valValidator(t, cfg)
	for _, alg := range []string{"HS256", "HS512"} {
		tok, err := v.Validate(t.Context(), valMint(t, valKey{alg: alg, priv: secret}, nil, valClaims(nil)))
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if tok.KeyThumbprint != "" || !v.KeyStillValid(valIssuer, "") {
			t.Fatalf("%s: thumbprint %q", alg, tok.KeyThumbprint)
		}
	}
	// Same issuer, RS256 still verified with the key set.
	if _, err := v.Validate(t.Context(), valMint(t, fx, nil, valClaims(nil))); err != nil {
		t.Fatal(err)
	}
	// A kid naming the RSA key does not make the validator use it as secret.
	_, err := v.Validate(t.Context(), valMintRaw(t, "HS256", valPEM(t, fx), []byte(`{"alg":"HS256","kid":"test-key-1"}`), valJSON(t, valClaims(nil))))
	valWantErr(t, err, identity.ErrSignature, "")
	_, err = v.Validate(t.Context(), valMint(t, valKey{alg: "HS384", priv: []byte(strings.Repeat("x", 48))}, nil, valClaims(nil)))
	valWantErr(t, err, identity.ErrUnsupportedAlg, "")
	_, err = v.Validate(t.Context(), valMint(t, valKey{alg: "HS256", priv: []byte(strings.Repeat("y", 32))}, nil, valClaims(nil)))
	valWantErr(t, err, identity.ErrSignature, "")

	// Only HMAC: no key source at all.
	hsOnly := identity.IssuerConfig{Issuer: valIssuer, HMACSecret: secret, Algorithms: []string{"HS256"}, AnyAudience: true, Now: valFixedNow}
	v2 := valValidator(t, hsOnly)
	if _, err := v2.Validate(t.Context(), valMint(t, valKey{alg: "HS256", priv: secret}, nil, valClaims(nil))); err != nil {
		t.Fatal(err)
	}
	_, err = v2.Validate(t.Context(), valMint(t, fx, nil, valClaims(nil)))
	valWantErr(t, err, identity.ErrUnsupportedAlg, "")
	if v2.KeyStillValid(valIssuer, fx.idKey(t).Thumbprint) {
		t.Fatal("KeyStillValid true without a key source")
	}
}

func TestValidate_MultipleIssuers(t *testing.T) {
	a, b := valFixtureKey(t), valNewKey(t, "ES256", "b-key", false)
	cfgA := valConfig(valKeySet(t, a))
	cfgA.Algorithms = []string{"RS256"}
	cfgB := identity.IssuerConfig{Issuer: "https://b.example.com/tenant", Keys: valKeySet(t, b), Audiences: []string{"api-b"}, Now: valFixedNow}
	v := valValidator(t, cfgA, cfgB)
	if got := v.Issuers(); len(got) != 2 || got[0] != valIssuer || got[1] != cfgB.Issuer {
		t.Fatalf("Issuers() = %v", got)
	}
	bClaims := valClaims(map[string]any{"iss": cfgB.Issuer, "aud": "api-b"})
	tok, err := v.Validate(t.Context(), valMint(t, b, nil, bClaims))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Issuer != cfgB.Issuer {
		t.Fatalf("issuer %q", tok.Issuer)
	}
	if _, err := v.Validate(t.Context(), valMint(t, a, nil, valClaims(nil))); err != nil {
		t.Fatal(err)
	}
	// B's key cannot sign for A (A allows only RS256, and A's keys are
	// A's), and A's key cannot sign for B.
	_, err = v.Validate(t.Context(), valMint(t, b, nil, valClaims(nil)))
	valWantErr(t, err, identity.ErrUnsupportedAlg, "")
	_, err = v.Validate(t.Context(), valMint(t, a, nil, bClaims))
	valWantErr(t, err, identity.ErrKeyNotFound, "")
	// Each issuer keeps its own audience.
	_, err = v.Validate(t.Context(), valMint(t, b, nil, valClaims(map[string]any{"iss": cfgB.Issuer})))
	valWantErr(t, err, identity.ErrClaimValidation, "aud")
	if v.KeyStillValid(cfgB.Issuer, a.idKey(t).Thumbprint) || !v.KeyStillValid(valIssuer, a.idKey(t).Thumbprint) || v.KeyStillValid("https://nobody", "") {
		t.Fatal("KeyStillValid mixes issuers")
	}
}

func TestValidate_RefreshOnSignatureFailure(t *testing.T) {
	old, rotated := valNewKey(t, "ES256", "k1", false), valNewKey(t, "ES256", "k1", false)
	t.Run("retry finds the rotated key", func(t *testing.T) {
		src := &valRefreshingSource{sets: []*identity.KeySet{valKeySet(t, old), valKeySet(t, rotated)}}
		v := valValidator(t, valConfig(src))
		tok, err := v.Validate(t.Context(), valMint(t, rotated, nil, valClaims(nil)))
		if err != nil {
			t.Fatal(err)
		}
		if n := src.refreshes.Load(); n != 1 || tok.KeyThumbprint != rotated.idKey(t).Thumbprint {
			t.Fatalf("refreshes %d, thumbprint %s", n, tok.KeyThumbprint)
		}
	})
	t.Run("one retry only", func(t *testing.T) {
		src := &valRefreshingSource{sets: []*identity.KeySet{valKeySet(t, old)}}
		v := valValidator(t, valConfig(src))
		_, err := v.Validate(t.Context(), valMint(t, rotated, nil, valClaims(nil)))
		valWantErr(t, err, identity.ErrSignature, "")
		if n := src.refreshes.Load(); n != 1 {
			t.Fatalf("refreshes %d", n)
		}
	})
	t.Run("failed refresh keeps the signature error", func(t *testing.T) {
		src := &valRefreshingSource{sets: []*identity.KeySet{valKeySet(t, old), valKeySet(t, rotated)}, refreshErr: identity.ErrProviderUnavailable}
		v := valValidator(t, valConfig(src))
		_, err := v.Validate(t.Context(), valMint(t, rotated, nil, valClaims(nil)))
		valWantErr(t, err, identity.ErrSignature, "")
	})
	t.Run("no refresh for claim failures", func(t *testing.T) {
		src := &valRefreshingSource{sets: []*identity.KeySet{valKeySet(t, old)}}
		v := valValidator(t, valConfig(src))
		_, err := v.Validate(t.Context(), valMint(t, old, nil, valClaims(map[string]any{"exp": 1})))
		valWantErr(t, err, identity.ErrClaimValidation, "exp")
		_, err = v.Validate(t.Context(), valMint(t, old, map[string]any{"alg": "none"}, valClaims(nil)))
		valWantErr(t, err, identity.ErrAlgNone, "")
		if n := src.refreshes.Load(); n != 0 {
			t.Fatalf("refreshes %d", n)
		}
	})
}

// valKidNotFoundForcesRefresh is conformance case JWT-010: a token whose kid
// is not in the cached key set makes the validator's key source fetch the
// set again, and the retried resolution finds the new key. It runs against
// the identitytest issuer and a real RemoteKeySet, and against a source
// that refreshes only when the validator asks.
func valKidNotFoundForcesRefresh(t *testing.T) {
	t.Run("RemoteKeySet", func(t *testing.T) {
		iss := identitytest.NewIssuer(t)
		rks, err := identity.NewRemoteKeySet(iss.JWKSURL(), identity.RemoteKeySetOptions{RefreshCooldown: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rks.Close() })
		v, err := identity.NewValidator([]identity.IssuerConfig{{Issuer: iss.URL, Keys: rks, Audiences: []string{"api"}}}, identity.ValidatorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Validate(t.Context(), iss.Token(t, "u", nil)); err != nil {
			t.Fatal(err)
		}
		if n := iss.JWKSFetches(); n != 1 {
			t.Fatalf("JWKS fetched %d times to warm the cache", n)
		}
		time.Sleep(5 * time.Millisecond) // past the cooldown
		newKID := iss.RotateKey("RS256")
		tok, err := v.Validate(t.Context(), iss.Token(t, "u", nil))
		if err != nil {
			t.Fatalf("token with rotated kid: %v", err)
		}
		if tok.KeyID != newKID || iss.JWKSFetches() < 2 {
			t.Fatalf("kid %s, fetches %d", tok.KeyID, iss.JWKSFetches())
		}
		// A kid that is nowhere still fails after the refresh.
		_, err = v.Validate(t.Context(), iss.Mint(t, nil, identitytest.KeyID("unknown-kid")))
		valWantErr(t, err, identity.ErrKeyNotFound, "")
	})
	t.Run("validator refreshes", func(t *testing.T) {
		k1, k2 := valNewKey(t, "EdDSA", "k1", false), valNewKey(t, "EdDSA", "k2", false)
		src := &valRefreshingSource{sets: []*identity.KeySet{valKeySet(t, k1), valKeySet(t, k1, k2)}}
		v := valValidator(t, valConfig(src))
		tok, err := v.Validate(t.Context(), valMint(t, k2, nil, valClaims(nil)))
		if err != nil {
			t.Fatal(err)
		}
		if tok.KeyID != "k2" || src.refreshes.Load() != 1 {
			t.Fatalf("kid %s, refreshes %d", tok.KeyID, src.refreshes.Load())
		}
		_, err = v.Validate(t.Context(), valMint(t, valNewKey(t, "EdDSA", "k3", false), nil, valClaims(nil)))
		valWantErr(t, err, identity.ErrKeyNotFound, "")
	})
}

func TestValidate_KidNotFound_ForcesRefresh(t *testing.T) { valKidNotFoundForcesRefresh(t) }

func TestValidate_DuplicateKidsAndNoKid(t *testing.T) {
	a, b := valNewKey(t, "ES256", "dup", false), valNewKey(t, "ES256", "dup", false)
	v := valValidator(t, valConfig(valKeySet(t, a, b)))
	tok, err := v.Validate(t.Context(), valMint(t, b, nil, valClaims(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if tok.KeyThumbprint != b.idKey(t).Thumbprint {
		t.Fatal("verified with the wrong duplicate")
	}
	single := valNewKey(t, "EdDSA", "", false)
	v2 := valValidator(t, valConfig(valKeySet(t, single)))
	if _, err := v2.Validate(t.Context(), valMint(t, single, nil, valClaims(nil))); err != nil {
		t.Fatalf("no kid, single key: %v", err)
	}
}

func TestValidate_Concurrent(t *testing.T) {
	k := valNewKey(t, "ES256", "c", false)
	v := valValidator(t, valConfig(valKeySet(t, k)))
	good, bad := valMint(t, k, nil, valClaims(nil)), valMint(t, k, nil, valClaims(map[string]any{"aud": "x"}))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := v.Validate(context.Background(), good); err != nil {
					t.Error(err)
				}
				if _, err := v.Validate(context.Background(), bad); err == nil {
					t.Error("bad token accepted", i)
				}
			}
		})
	}
	wg.Wait()
}

func TestValidate_ContextPassedToSource(t *testing.T) {
	k := valNewKey(t, "ES256", "c", false)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var seen context.Context
	src := valCtxSource{KeySet: valKeySet(t, k), seen: &seen}
	v := valValidator(t, valConfig(src))
	if _, err := v.Validate(ctx, valMint(t, k, nil, valClaims(nil))); err != nil {
		t.Fatal(err)
	}
	if seen != ctx {
		t.Fatal("the caller's context did not reach the key source")
	}
}

type valCtxSource struct {
	*identity.KeySet
	seen *context.Context
}

func (s valCtxSource) CandidateKeys(ctx context.Context, kid, alg string) ([]identity.Key, error) {
	*s.seen = ctx
	return s.KeySet.CandidateKeys(ctx, kid, alg)
}

// valErrSource fails every lookup with err.
type valErrSource struct{ err error }

func (s valErrSource) CandidateKeys(context.Context, string, string) ([]identity.Key, error) {
	return nil, s.err
}

func (valErrSource) HasKey(string) bool { return false }

func TestValidate_SourceErrors(t *testing.T) {
	k := valNewKey(t, "ES256", "k", false)
	tok := valMint(t, k, nil, valClaims(nil))
	for _, tc := range []struct {
		name   string
		err    error
		wantIs []error
	}{
		{"provider unavailable", fmt.Errorf("%w: jwks: 503", identity.ErrProviderUnavailable), []error{identity.ErrProviderUnavailable}},
		{"context canceled", context.Canceled, []error{identity.ErrProviderUnavailable, context.Canceled}},
		{"other failure", errors.New("boom"), []error{identity.ErrProviderUnavailable}},
		{"key not found", identity.ErrKeyNotFound, []error{identity.ErrKeyNotFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := valValidator(t, valConfig(valErrSource{tc.err})).Validate(t.Context(), tok)
			for _, want := range tc.wantIs {
				if !errors.Is(err, want) {
					t.Fatalf("error %v is not %v", err, want)
				}
			}
			if errors.Is(err, identity.ErrSignature) || errors.Is(err, identity.ErrClaimValidation) {
				t.Fatalf("error %v blames the token", err)
			}
		})
	}
}

// TestValidate_RefreshesAreRateLimited checks with a real RemoteKeySet that
// neither unknown kids nor bad signatures let clients make the validator
// hammer the JWKS endpoint.
func TestValidate_RefreshesAreRateLimited(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	rks, err := identity.NewRemoteKeySet(iss.JWKSURL(), identity.RemoteKeySetOptions{RefreshCooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rks.Close() })
	v := valValidator(t, identity.IssuerConfig{Issuer: iss.URL, Keys: rks, Audiences: []string{identitytest.DefaultAudience}})
	if _, err := v.Validate(t.Context(), iss.Token(t, "u", nil)); err != nil {
		t.Fatal(err)
	}
	forged := valNewKey(t, "ES256", iss.CurrentKeyID("ES256"), false)
	for i := range 200 {
		_, err := v.Validate(t.Context(), iss.Mint(t, nil, identitytest.KeyID(fmt.Sprintf("random-%d", i))))
		valWantErr(t, err, identity.ErrKeyNotFound, "")
		_, err = v.Validate(t.Context(), valMint(t, forged.as("ES256"), nil, map[string]any{
			"iss": iss.URL, "aud": identitytest.DefaultAudience, "sub": "x",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		}))
		valWantErr(t, err, identity.ErrSignature, "")
	}
	if n := iss.JWKSFetches(); n > 2 {
		t.Fatalf("400 bad tokens caused %d JWKS fetches", n)
	}
}

func TestValidate_ErrorMessagesAndCrossIssuerHMAC(t *testing.T) {
	fx := valFixtureKey(t)
	secret := []byte(strings.Repeat("h", 32))
	hsIssuer := identity.IssuerConfig{Issuer: "https://hs.example.com", HMACSecret: secret, Algorithms: []string{"HS256"}, AnyAudience: true, Now: valFixedNow}
	v := valValidator(t, valConfig(valKeySet(t, fx)), hsIssuer)

	// HS256 is allowed for the HMAC issuer only; the default issuer never
	// accepts it, even signed with that secret.
	hs := valKey{alg: "HS256", priv: secret}
	if _, err := v.Validate(t.Context(), valMint(t, hs, nil, valClaims(map[string]any{"iss": hsIssuer.Issuer}))); err != nil {
		t.Fatal(err)
	}
	_, err := v.Validate(t.Context(), valMint(t, hs, nil, valClaims(nil)))
	valWantErr(t, err, identity.ErrUnsupportedAlg, "")

	long := "https://attacker.example.com/" + strings.Repeat("a", 500)
	_, err = v.Validate(t.Context(), valMint(t, fx, nil, valClaims(map[string]any{"iss": long})))
	if msg := err.Error(); !strings.Contains(msg, "unknown issuer") || !strings.Contains(msg, "attacker.example.com") || len(msg) > 200 {
		t.Fatalf("unknown issuer message %q", msg)
	}
	_, err = v.Validate(t.Context(), valMint(t, fx, nil, valClaims(map[string]any{"iss": nil})))
	if msg := err.Error(); !strings.Contains(msg, "no iss") {
		t.Fatalf("missing issuer message %q", msg)
	}
	_, err = v.Validate(t.Context(), valMint(t, valNewKey(t, "RS256", "test-key-1", false), nil, valClaims(nil)))
	if msg := err.Error(); msg != identity.ErrSignature.Error() {
		t.Fatalf("signature message %q", msg)
	}
}
