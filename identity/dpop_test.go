package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"

	"github.com/caddy-identity/caddy-identity/identity"
)

// testProofHeader is the header of a well-formed proof by key, besides alg.
func testProofHeader(key *identity.DPoPKey) map[string]any {
	return map[string]any{"typ": identity.JWTTypeDPoPProof, "jwk": key.PublicJWK()}
}

// testProofClaims is the payload of a well-formed token-request proof.
func testProofClaims(method, uri string, iat time.Time) map[string]any {
	return map[string]any{"jti": base64.RawURLEncoding.EncodeToString([]byte(iat.String() + uri)), "htm": method, "htu": uri, "iat": iat.Unix()}
}

// signTestProof signs claims (a JSON value, or raw bytes) with key and alg
// and the extra protected header members of header, so that tests can
// build the broken proofs Proof never makes.
func signTestProof(t testing.TB, key any, alg string, header map[string]any, claims any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range header {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, ok := claims.([]byte)
	if !ok {
		if payload, err = json.Marshal(claims); err != nil {
			t.Fatal(err)
		}
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedTestProof is an alg "none" proof with an empty signature.
func unsignedTestProof(header, claims map[string]any) string {
	h := map[string]any{"alg": "none"}
	for k, v := range header {
		h[k] = v
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb) + "."
}

// proofErr keeps the error of VerifyDPoPProof.
func proofErr(_ *identity.DPoPProof, err error) error { return err }

// assertDPoPCheck asserts err is a *DPoPProofError of check matching
// ErrDPoPProof.
func assertDPoPCheck(t testing.TB, err error, check identity.DPoPCheck) {
	t.Helper()
	var pe *identity.DPoPProofError
	if !errors.Is(err, identity.ErrDPoPProof) || !errors.As(err, &pe) {
		t.Fatalf("error %v, want a DPoPProofError (%s)", err, check)
	}
	if pe.Check != check {
		t.Errorf("check %q (%v), want %q", pe.Check, err, check)
	}
}

// withClaim returns a copy of the claims of a good proof with name set to
// v, or removed when v is nil.
func withClaim(base map[string]any, name string, v any) map[string]any {
	out := maps.Clone(base)
	if v == nil {
		delete(out, name)
	} else {
		out[name] = v
	}
	return out
}

func TestVerifyDPoPProofRefuses(t *testing.T) {
	const (
		uri = "https://rs.example/api"
		at  = "access-token"
	)
	now := time.Unix(1_750_000_000, 0)
	es := mustDPoPKey(t, "ES256")
	other := mustDPoPKey(t, "ES256")
	esKey := es.PrivateJWK().Key
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	claims := withClaim(testProofClaims(http.MethodGet, uri, now), "ath", identity.DPoPAccessTokenHash(at))
	header := testProofHeader(es)
	good := signTestProof(t, esKey, "ES256", header, claims)
	base := identity.DPoPVerifyOptions{Method: http.MethodGet, URI: uri, AccessToken: at, BoundJKT: es.Thumbprint(), Now: now}
	with := func(edit func(o *identity.DPoPVerifyOptions)) identity.DPoPVerifyOptions {
		o := base
		edit(&o)
		return o
	}
	headerWith := func(name string, v any) map[string]any { return withClaim(header, name, v) }
	signed := func(c map[string]any) string { return signTestProof(t, esKey, "ES256", header, c) }
	privateJWK := es.PrivateJWK()

	tests := []struct {
		name  string
		proof string
		opts  identity.DPoPVerifyOptions
		check identity.DPoPCheck
		cause error
	}{
		{"empty proof", "", base, identity.DPoPCheckJWS, identity.ErrMalformed},
		{"over the size cap", good, with(func(o *identity.DPoPVerifyOptions) { o.MaxProofBytes = 64 }), identity.DPoPCheckJWS, identity.ErrTokenTooLarge},
		{"two parts", good[:strings.LastIndex(good, ".")], base, identity.DPoPCheckJWS, identity.ErrMalformed},
		{"JWE", "a.b.c.d.e", base, identity.DPoPCheckJWS, identity.ErrMalformed},
		{"bad base64url", "!!." + good[strings.Index(good, ".")+1:], base, identity.DPoPCheckJWS, identity.ErrMalformed},
		{"payload not JSON", signTestProof(t, esKey, "ES256", header, []byte("not json")), base, identity.DPoPCheckJWS, identity.ErrMalformed},
		{"critical header", signTestProof(t, esKey, "ES256", headerWith("crit", []string{"exp"}), claims), base, identity.DPoPCheckJWS, identity.ErrUnsupportedHeader},
		{"typ missing", signTestProof(t, esKey, "ES256", headerWith("typ", nil), claims), base, identity.DPoPCheckType, nil},
		{"typ JWT", signTestProof(t, esKey, "ES256", headerWith("typ", "JWT"), claims), base, identity.DPoPCheckType, nil},
		{"alg none", unsignedTestProof(header, claims), base, identity.DPoPCheckAlgorithm, identity.ErrAlgNone},
		{"alg HS256", signTestProof(t, []byte(strings.Repeat("s", 32)), "HS256", header, claims), base, identity.DPoPCheckAlgorithm, identity.ErrUnsupportedAlg},
		{"alg outside the allow-list", good, with(func(o *identity.DPoPVerifyOptions) { o.Algorithms = []string{"RS256"} }), identity.DPoPCheckAlgorithm, identity.ErrUnsupportedAlg},
		{"jwk missing", signTestProof(t, esKey, "ES256", headerWith("jwk", nil), claims), base, identity.DPoPCheckJWK, nil},
		{"jwk not an object", signTestProof(t, esKey, "ES256", headerWith("jwk", "key"), claims), base, identity.DPoPCheckJWK, nil},
		{"jwk private", signTestProof(t, esKey, "ES256", headerWith("jwk", privateJWK), claims), base, identity.DPoPCheckJWK, nil},
		{"jwk symmetric", signTestProof(t, esKey, "ES256", headerWith("jwk", map[string]string{"kty": "oct", "k": "c2VjcmV0"}), claims), base, identity.DPoPCheckJWK, nil},
		{"jwk RSA 1024", signTestProof(t, weak, "RS256", headerWith("jwk", jose.JSONWebKey{Key: &weak.PublicKey}), claims), base, identity.DPoPCheckJWK, identity.ErrKeyConversion},
		{"jwk curve does not fit alg", signTestProof(t, esKey, "ES256", headerWith("jwk", jose.JSONWebKey{Key: &p384.PublicKey}), claims), base, identity.DPoPCheckJWK, identity.ErrUnsupportedAlg},
		{"jwk for encryption", signTestProof(t, esKey, "ES256", headerWith("jwk", jose.JSONWebKey{Key: es.PublicJWK().Key, Use: "enc"}), claims), base, identity.DPoPCheckJWK, identity.ErrKeyConversion},
		{"signature by another key", signTestProof(t, other.PrivateJWK().Key, "ES256", header, claims), base, identity.DPoPCheckSignature, identity.ErrSignature},
		{"jti missing", signed(withClaim(claims, "jti", nil)), base, identity.DPoPCheckJTI, nil},
		{"jti empty", signed(withClaim(claims, "jti", "")), base, identity.DPoPCheckJTI, nil},
		{"jti longer than the cap", signed(withClaim(claims, "jti", strings.Repeat("j", identity.MaxDPoPJTIBytes+1))), base, identity.DPoPCheckJTI, nil},
		{"jti not a string", signed(withClaim(claims, "jti", 7)), base, identity.DPoPCheckJTI, nil},
		{"htm other method", good, with(func(o *identity.DPoPVerifyOptions) { o.Method = http.MethodPost }), identity.DPoPCheckMethod, nil},
		{"htm lower case", signed(withClaim(claims, "htm", "get")), base, identity.DPoPCheckMethod, nil},
		{"htm missing", signed(withClaim(claims, "htm", nil)), base, identity.DPoPCheckMethod, nil},
		{"htu other path", good, with(func(o *identity.DPoPVerifyOptions) { o.URI = "https://rs.example/other" }), identity.DPoPCheckURI, nil},
		{"htu other host", good, with(func(o *identity.DPoPVerifyOptions) { o.URI = "https://evil.example/api" }), identity.DPoPCheckURI, nil},
		{"htu other scheme", good, with(func(o *identity.DPoPVerifyOptions) { o.URI = "http://rs.example/api" }), identity.DPoPCheckURI, nil},
		{"htu other port", good, with(func(o *identity.DPoPVerifyOptions) { o.URI = "https://rs.example:8443/api" }), identity.DPoPCheckURI, nil},
		{"htu missing", signed(withClaim(claims, "htu", nil)), base, identity.DPoPCheckURI, nil},
		{"htu relative", signed(withClaim(claims, "htu", "/api")), base, identity.DPoPCheckURI, nil},
		{"htu with user info", signed(withClaim(claims, "htu", "https://u@rs.example/api")), base, identity.DPoPCheckURI, nil},
		{"iat missing", signed(withClaim(claims, "iat", nil)), base, identity.DPoPCheckIssuedAt, nil},
		{"iat a string", signed(withClaim(claims, "iat", "1750000000")), base, identity.DPoPCheckIssuedAt, nil},
		{"iat negative", signed(withClaim(claims, "iat", -1)), base, identity.DPoPCheckIssuedAt, nil},
		{"iat too old", signed(withClaim(claims, "iat", now.Add(-identity.DefaultDPoPMaxAge-time.Second).Unix())), base, identity.DPoPCheckIssuedAt, nil},
		{"iat in the future", signed(withClaim(claims, "iat", now.Add(identity.DefaultDPoPClockSkew+time.Second).Unix())), base, identity.DPoPCheckIssuedAt, nil},
		{"iat older than a short MaxAge", good, with(func(o *identity.DPoPVerifyOptions) { o.MaxAge, o.Now = time.Second, now.Add(2*time.Second) }), identity.DPoPCheckIssuedAt, nil},
		{"nonce expected, none sent", good, with(func(o *identity.DPoPVerifyOptions) { o.Nonce = "n-1" }), identity.DPoPCheckNonce, nil},
		{"nonce stale", signed(withClaim(claims, "nonce", "n-0")), with(func(o *identity.DPoPVerifyOptions) { o.Nonce = "n-1" }), identity.DPoPCheckNonce, nil},
		{"nonce not a string", signed(withClaim(claims, "nonce", 7)), base, identity.DPoPCheckNonce, nil},
		{"ath missing", signed(withClaim(claims, "ath", nil)), base, identity.DPoPCheckAccessTokenHash, nil},
		{"ath of another token", good, with(func(o *identity.DPoPVerifyOptions) { o.AccessToken = "other-token" }), identity.DPoPCheckAccessTokenHash, nil},
		{"ath not a string", signed(withClaim(claims, "ath", true)), base, identity.DPoPCheckAccessTokenHash, nil},
		{"token not bound", good, with(func(o *identity.DPoPVerifyOptions) { o.BoundJKT = "" }), identity.DPoPCheckJKT, nil},
		{"token bound to another key", good, with(func(o *identity.DPoPVerifyOptions) { o.BoundJKT = other.Thumbprint() }), identity.DPoPCheckJKT, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := identity.VerifyDPoPProof(tc.proof, tc.opts)
			if p != nil {
				t.Errorf("proof accepted: %+v", p)
			}
			assertDPoPCheck(t, err, tc.check)
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("error %v does not match %v", err, tc.cause)
			}
		})
	}
	t.Run("a jti of the longest length passes", func(t *testing.T) {
		if _, err := identity.VerifyDPoPProof(signed(withClaim(claims, "jti", strings.Repeat("j", identity.MaxDPoPJTIBytes))), base); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the good proof passes", func(t *testing.T) {
		p, err := identity.VerifyDPoPProof(good, base)
		if err != nil {
			t.Fatal(err)
		}
		if p.Thumbprint != es.Thumbprint() || p.Method != http.MethodGet || p.URI != uri || !p.IssuedAt.Equal(now) || p.Algorithm != "ES256" {
			t.Errorf("proof %+v", p)
		}
	})
}

func TestVerifyDPoPProofNormalizesHTU(t *testing.T) {
	key := mustDPoPKey(t, "ES256")
	now := time.Now()
	for _, tc := range []struct{ htu, request string }{
		{"https://RS.Example/api", "https://rs.example/api"},
		{"HTTPS://rs.example:443/api", "https://rs.example/api"},
		{"http://rs.example:80/api", "http://rs.example/api"},
		{"https://rs.example/api", "https://rs.example/api?q=1#f"},
		{"https://rs.example", "https://rs.example/"},
		{"https://rs.example/a%7eb/%c3%a9", "https://rs.example/a~b/%C3%A9"},
		{"https://rs.example/a/./b/../c", "https://rs.example/a/c"},
		{"https://[::1]:443/api", "https://[::1]/api"},
	} {
		t.Run(tc.htu+" = "+tc.request, func(t *testing.T) {
			proof := signTestProof(t, key.PrivateJWK().Key, "ES256", testProofHeader(key), testProofClaims(http.MethodGet, tc.htu, now))
			if _, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{Method: http.MethodGet, URI: tc.request, Now: now}); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestDPoPProofFromHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		ok      bool
	}{
		{"one", []string{"a.b.c"}, true},
		{"none", nil, false},
		{"two", []string{"a.b.c", "d.e.f"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.headers {
				h.Add(identity.HTTPHeaderDPoP, v)
			}
			proof, err := identity.DPoPProofFromHeader(h)
			if tc.ok {
				if err != nil || proof != tc.headers[0] {
					t.Errorf("%q, %v", proof, err)
				}
				return
			}
			assertDPoPCheck(t, err, identity.DPoPCheckHeader)
		})
	}
}

func TestDPoPProofErrorCode(t *testing.T) {
	for check, want := range map[identity.DPoPCheck]string{
		identity.DPoPCheckNonce:     identity.ErrorUseDPoPNonce,
		identity.DPoPCheckSignature: identity.ErrorInvalidDPoPProof,
		identity.DPoPCheckURI:       identity.ErrorInvalidDPoPProof,
	} {
		if got := (&identity.DPoPProofError{Check: check}).ErrorCode(); got != want {
			t.Errorf("%s: %s, want %s", check, got, want)
		}
	}
}

func TestDPoPReplayCacheRefusesSecondUse(t *testing.T) {
	current := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, current) })
	replay, err := identity.NewDPoPReplayCache(16)
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	key := mustDPoPKey(t, "ES256")
	const uri = "https://rs.example/api"
	proof, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	opts := identity.DPoPVerifyOptions{Method: http.MethodGet, URI: uri, Replay: replay}
	if _, err := identity.VerifyDPoPProof(proof, opts); err != nil {
		t.Fatal(err)
	}
	assertDPoPCheck(t, proofErr(identity.VerifyDPoPProof(proof, opts)), identity.DPoPCheckJTI)
	fresh, _ := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri})
	if _, err := identity.VerifyDPoPProof(fresh, opts); err != nil {
		t.Errorf("a new proof of the same key refused: %v", err)
	}
	if _, err := identity.NewDPoPReplayCache(-1); err == nil {
		t.Error("negative size accepted")
	}
}

func TestLoadDPoPKeyRefuses(t *testing.T) {
	es := mustDPoPKey(t, "ES256")
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name string
		jwk  jose.JSONWebKey
		want error
	}{
		{"public key", es.PublicJWK(), identity.ErrKeyConversion},
		{"symmetric key", jose.JSONWebKey{Key: []byte("secret")}, identity.ErrDPoPUnsupportedAlgorithm},
		{"P-384 key", jose.JSONWebKey{Key: p384}, identity.ErrDPoPUnsupportedAlgorithm},
		{"alg that does not fit", jose.JSONWebKey{Key: es.PrivateJWK().Key, Algorithm: "RS256"}, identity.ErrDPoPUnsupportedAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := identity.LoadDPoPKey(tc.jwk); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("round trip", func(t *testing.T) {
		back, err := identity.LoadDPoPKey(es.PrivateJWK())
		if err != nil || back.Thumbprint() != es.Thumbprint() || back.Algorithm() != "ES256" {
			t.Errorf("%v, %v", back, err)
		}
	})
}

func TestDPoPKeyProofRefusesBadInput(t *testing.T) {
	key := mustDPoPKey(t, "ES256")
	for _, tc := range []struct{ name, method, uri string }{
		{"no method", "", "https://rs.example/"},
		{"relative URI", http.MethodGet, "/api"},
		{"not http", http.MethodGet, "ftp://rs.example/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := key.Proof(identity.DPoPProofOptions{Method: tc.method, URI: tc.uri}); err == nil {
				t.Error("proof made")
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, "https://rs.example/", nil)
	if err := key.AuthorizeRequest(req, ""); err == nil {
		t.Error("AuthorizeRequest without a token succeeded")
	}
	if _, err := identity.DoDPoPRequest(t.Context(), nil, nil, req, "at"); err == nil {
		t.Error("DoDPoPRequest without a key succeeded")
	}
}

func TestDPoPKeyNonces(t *testing.T) {
	key := mustDPoPKey(t, "ES256")
	key.RememberNonce("https://AS.example:443/token", "n1")
	key.RememberNonce("https://as.example/ignored", "")
	key.RememberNonce("/relative", "n2")
	for uri, want := range map[string]string{
		"https://as.example/other":    "n1",
		"https://as.example:8443/":    "",
		"http://as.example/token":     "",
		"https://rs.example/resource": "",
		"/relative":                   "",
	} {
		if got := key.Nonce(uri); got != want {
			t.Errorf("Nonce(%s) = %q, want %q", uri, got, want)
		}
	}
	proof, _ := key.Proof(identity.DPoPProofOptions{Method: http.MethodPost, URI: "https://as.example/token"})
	if got := decodeProof(t, proof).Payload["nonce"]; got != "n1" {
		t.Errorf("proof nonce %v", got)
	}
	proof, _ = key.Proof(identity.DPoPProofOptions{Method: http.MethodPost, URI: "https://as.example/token", Nonce: "explicit"})
	if got := decodeProof(t, proof).Payload["nonce"]; got != "explicit" {
		t.Errorf("proof nonce %v", got)
	}
}

// mustDPoPKey generates a DPoP key or fails the test.
func mustDPoPKey(t testing.TB, alg string) *identity.DPoPKey {
	t.Helper()
	key, err := identity.NewDPoPKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestDoDPoPRequestWithoutReplayableBodyReturnsTheChallenge(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set(identity.HTTPHeaderDPoPNonce, "n1")
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	key := mustDPoPKey(t, "ES256")
	req, _ := http.NewRequest(http.MethodPost, f.URL+"/api", io.NopCloser(strings.NewReader("once")))
	resp, err := identity.DoDPoPRequest(t.Context(), nil, key, req, "at")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || f.count() != 1 || key.Nonce(f.URL) != "n1" {
		t.Errorf("status %d after %d requests, nonce %q", resp.StatusCode, f.count(), key.Nonce(f.URL))
	}
}

func TestTokenRequestRetriesDPoPNonceOnlyOnce(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set(identity.HTTPHeaderDPoPNonce, "always-new")
		writeJSON(w, http.StatusBadRequest, `{"error":"use_dpop_nonce"}`)
	})
	req := ccRequest(f.URL, identity.PublicClientAuth("c"))
	req.DPoP = mustDPoPKey(t, "ES256")
	_, err := identity.RequestClientCredentialsToken(t.Context(), nil, req)
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.Code != identity.ErrorUseDPoPNonce || f.count() != 2 {
		t.Errorf("error %v after %d requests, want use_dpop_nonce after 2", err, f.count())
	}
}
