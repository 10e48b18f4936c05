package identitytest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// get fetches url with c and returns status, headers and body.
func get(t *testing.T, c *http.Client, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, body
}

// fetchKeySet fetches and parses the issuer's JWKS with go-jose.
func fetchKeySet(t *testing.T, iss *identitytest.Issuer) jose.JSONWebKeySet {
	t.Helper()
	status, _, body := get(t, iss.Client(), iss.JWKSURL())
	if status != http.StatusOK {
		t.Fatalf("JWKS status %d: %s", status, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS does not parse: %v\n%s", err, body)
	}
	return set
}

// verify checks token against set the way a relying party would: the header
// alg must be alg, the kid must name a key of the set, the signature must
// verify. It returns the payload claims.
func verify(t *testing.T, set jose.JSONWebKeySet, token, alg string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("parse %s token: %v", alg, err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in set", kid, len(keys))
	}
	if keys[0].Algorithm != alg || keys[0].Use != "sig" || !keys[0].IsPublic() {
		t.Fatalf("key %q: alg=%q use=%q public=%v", kid, keys[0].Algorithm, keys[0].Use, keys[0].IsPublic())
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify %s token with key %q: %v", alg, kid, err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// decodeHeader returns the protected header of a compact token.
func decodeHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDiscoveryDocument(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256", "EdDSA"),
		identitytest.WithCacheControl("max-age=300"),
		identitytest.WithMetadataOverride(func(m map[string]any) {
			m["introspection_endpoint"] = "https://elsewhere.example/introspect"
			delete(m, "userinfo_endpoint")
		}))
	if strings.HasSuffix(iss.URL, "/") || !strings.HasPrefix(iss.URL, "http://127.0.0.1:") {
		t.Fatalf("URL = %q", iss.URL)
	}
	status, hdr, body := get(t, http.DefaultClient, iss.DiscoveryURL())
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := hdr.Get("Cache-Control"); cc != "max-age=300" {
		t.Errorf("Cache-Control = %q", cc)
	}
	var doc struct {
		Issuer        string   `json:"issuer"`
		JWKSURI       string   `json:"jwks_uri"`
		Token         string   `json:"token_endpoint"`
		Authorization string   `json:"authorization_endpoint"`
		UserInfo      *string  `json:"userinfo_endpoint"`
		Introspection string   `json:"introspection_endpoint"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
		ResponseTypes []string `json:"response_types_supported"`
		SubjectTypes  []string `json:"subject_types_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != iss.URL || doc.JWKSURI != iss.JWKSURL() || doc.Token != iss.URL+"/token" ||
		doc.Authorization != iss.URL+"/authorize" {
		t.Errorf("endpoints: %+v", doc)
	}
	if doc.UserInfo != nil || doc.Introspection != "https://elsewhere.example/introspect" {
		t.Errorf("override not applied: %s", body)
	}
	if strings.Join(doc.Algs, ",") != "ES256,EdDSA" || len(doc.ResponseTypes) == 0 || len(doc.SubjectTypes) == 0 {
		t.Errorf("supported lists: %s", body)
	}
	status, _, body2 := get(t, http.DefaultClient, iss.OAuthMetadataURL())
	if status != http.StatusOK || string(body2) != string(body) {
		t.Errorf("RFC 8414 metadata: %d %s", status, body2)
	}
	if n := iss.DiscoveryFetches(); n != 2 {
		t.Errorf("DiscoveryFetches = %d, want 2", n)
	}
	if n := iss.JWKSFetches(); n != 0 {
		t.Errorf("JWKSFetches = %d, want 0", n)
	}
}

func TestIssuerPathAndJWKSPath(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithIssuerPath("/realms/demo/"),
		identitytest.WithJWKSPath("/protocol/certs"), identitytest.WithAlgorithms("ES256"))
	if !strings.HasSuffix(iss.URL, "/realms/demo") {
		t.Fatalf("URL = %q", iss.URL)
	}
	if got := iss.JWKSURL(); got != iss.URL+"/protocol/certs" {
		t.Fatalf("JWKSURL = %q", got)
	}
	if !strings.HasSuffix(iss.OAuthMetadataURL(), "/.well-known/oauth-authorization-server/realms/demo") {
		t.Fatalf("OAuthMetadataURL = %q", iss.OAuthMetadataURL())
	}
	for _, u := range []string{iss.DiscoveryURL(), iss.OAuthMetadataURL(), iss.JWKSURL()} {
		if status, _, body := get(t, http.DefaultClient, u); status != http.StatusOK {
			t.Errorf("%s: %d %s", u, status, body)
		}
	}
	if status, _, _ := get(t, http.DefaultClient, strings.TrimSuffix(iss.URL, "/realms/demo")+"/jwks"); status != http.StatusNotFound {
		t.Errorf("default JWKS path still served: %d", status)
	}
}

func TestMintedTokensVerifyWithGoJose(t *testing.T) {
	algs := []string{"RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA"}
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms(algs...))
	set := fetchKeySet(t, iss)
	if len(set.Keys) != len(algs) {
		t.Fatalf("%d keys published, want %d", len(set.Keys), len(algs))
	}
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			tok := iss.Mint(t, map[string]any{"scope": "read write"}, identitytest.Alg(alg))
			claims := verify(t, set, tok, alg)
			if claims["iss"] != iss.URL || claims["sub"] != identitytest.DefaultSubject ||
				claims["aud"] != identitytest.DefaultAudience || claims["scope"] != "read write" {
				t.Errorf("claims = %v", claims)
			}
			if h := decodeHeader(t, tok); h["kid"] != iss.CurrentKeyID(alg) {
				t.Errorf("kid = %v, want %s", h["kid"], iss.CurrentKeyID(alg))
			}
		})
	}
	if got := iss.PrivateKey(iss.CurrentKeyID("ES256")); got == nil {
		t.Error("PrivateKey of the current ES256 key is nil")
	}
	if iss.PrivateKey("nope") != nil {
		t.Error("PrivateKey of an unknown kid is not nil")
	}
}

func TestMintClaimsAndHeaders(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	set := fetchKeySet(t, iss)
	nbf := time.Unix(1_900_000_000, 0)

	tok := iss.Mint(t, map[string]any{"exp": nil, "nbf": nbf, "aud": []string{"a", "b"}},
		identitytest.Header("typ", "at+jwt"), identitytest.Header("x-extra", 7))
	claims := verify(t, set, tok, "ES256")
	if _, ok := claims["exp"]; ok {
		t.Error("exp not removed")
	}
	if claims["nbf"] != float64(nbf.Unix()) {
		t.Errorf("nbf = %v", claims["nbf"])
	}
	if aud, _ := claims["aud"].([]any); len(aud) != 2 {
		t.Errorf("aud = %v", claims["aud"])
	}
	iat, _ := claims["iat"].(float64)
	if d := time.Since(time.Unix(int64(iat), 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("iat = %v", claims["iat"])
	}
	if h := decodeHeader(t, tok); h["typ"] != "at+jwt" || h["x-extra"] != float64(7) || h["alg"] != "ES256" {
		t.Errorf("header = %v", h)
	}

	sub := iss.Token(t, "alice", map[string]any{"email": "alice@example.com"})
	if c := verify(t, set, sub, "ES256"); c["sub"] != "alice" || c["email"] != "alice@example.com" {
		t.Errorf("Token claims = %v", c)
	}

	if h := decodeHeader(t, iss.Mint(t, nil, identitytest.NoKeyID())); h["kid"] != nil {
		t.Errorf("NoKeyID header = %v", h)
	}
	if h := decodeHeader(t, iss.Mint(t, nil, identitytest.KeyID("other"))); h["kid"] != "other" {
		t.Errorf("KeyID header = %v", h)
	}

	none := iss.Mint(t, nil, identitytest.Alg("none"))
	if !strings.HasSuffix(none, ".") || decodeHeader(t, none)["alg"] != "none" {
		t.Errorf("unsecured token = %q", none)
	}

	secret := []byte(strings.Repeat("0123456789abcdef", 4))
	hs := iss.Mint(t, nil, identitytest.HMACSecret(secret), identitytest.Alg("HS384"))
	jws, err := jose.ParseSignedCompact(hs, []jose.SignatureAlgorithm{jose.HS384})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(secret); err != nil {
		t.Errorf("HS384 token: %v", err)
	}
	if _, ok := decodeHeader(t, hs)["kid"]; ok {
		t.Error("HMAC token has a kid")
	}

	for name, opts := range map[string][]identitytest.MintOption{
		"HS256 without secret": {identitytest.Alg("HS256")},
		"secret with ES256":    {identitytest.HMACSecret(secret), identitytest.Alg("ES256")},
		"unknown signing key":  {identitytest.SigningKey("nope")},
		"unsupported alg":      {identitytest.Alg("XS256")},
	} {
		if _, err := iss.MintToken(nil, opts...); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMintWithUnconfiguredAlgorithmPublishesKey(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	tok := iss.Mint(t, nil, identitytest.Alg("EdDSA"))
	verify(t, fetchKeySet(t, iss), tok, "EdDSA")
	if got := iss.Metadata()["id_token_signing_alg_values_supported"]; len(got.([]string)) != 1 {
		t.Errorf("advertised algorithms changed: %v", got)
	}
}

// TestKeyIDsPerIssuer: two issuers never publish the same key ID, so a
// verifier that keeps the keys of a closed issuer under its URL cannot take
// a new issuer's token on that URL for one of them.
func TestKeyIDsPerIssuer(t *testing.T) {
	a := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "EdDSA"))
	b := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "EdDSA"))
	if a.KeyIDTag() == b.KeyIDTag() || a.KeyIDTag() == "" {
		t.Fatalf("tags %q and %q", a.KeyIDTag(), b.KeyIDTag())
	}
	for _, iss := range []*identitytest.Issuer{a, b} {
		iss.PublicJWKS() // generates the first key of each algorithm
		iss.RotateKey("EdDSA")
		want := []string{"rs256-1." + iss.KeyIDTag(), "eddsa-1." + iss.KeyIDTag(), "eddsa-2." + iss.KeyIDTag()}
		if got := iss.KeyIDs(); !slices.Equal(got, want) {
			t.Errorf("KeyIDs = %v, want %v", got, want)
		}
	}
}

func TestRotateAndRemoveKeys(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	oldKID := iss.CurrentKeyID("ES256")
	oldTok := iss.Mint(t, nil)

	newKID := iss.RotateKey("ES256")
	if newKID == oldKID || iss.CurrentKeyID("ES256") != newKID {
		t.Fatalf("rotate: old %q new %q current %q", oldKID, newKID, iss.CurrentKeyID("ES256"))
	}
	if got := strings.Join(iss.KeyIDs(), ","); got != oldKID+","+newKID {
		t.Fatalf("KeyIDs = %s", got)
	}
	set := fetchKeySet(t, iss)
	newTok := iss.Mint(t, nil)
	if h := decodeHeader(t, newTok); h["kid"] != newKID {
		t.Errorf("new token kid = %v", h["kid"])
	}
	verify(t, set, newTok, "ES256")
	verify(t, set, oldTok, "ES256")
	verify(t, set, iss.Mint(t, nil, identitytest.SigningKey(oldKID)), "ES256")

	iss.RemoveKey(oldKID)
	set = fetchKeySet(t, iss)
	if len(set.Key(oldKID)) != 0 || len(set.Key(newKID)) != 1 {
		t.Fatalf("after RemoveKey: %v", iss.KeyIDs())
	}
	if iss.PrivateKey(oldKID) == nil {
		t.Error("removed key's private key is gone")
	}
	if !strings.Contains(string(iss.PublicJWKS()), newKID) || strings.Contains(string(iss.PublicJWKS()), oldKID) {
		t.Errorf("PublicJWKS = %s", iss.PublicJWKS())
	}
}

func TestDownUpFailuresAndCounters(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("EdDSA"))
	fetchKeySet(t, iss)

	iss.SetDown(true)
	for _, u := range []string{iss.DiscoveryURL(), iss.JWKSURL()} {
		if status, _, _ := get(t, http.DefaultClient, u); status != http.StatusServiceUnavailable {
			t.Errorf("down: %s answered %d", u, status)
		}
	}
	iss.SetDown(false)
	fetchKeySet(t, iss)

	iss.SetJWKSFailure(http.StatusInternalServerError, []byte("boom"))
	if status, _, body := get(t, http.DefaultClient, iss.JWKSURL()); status != 500 || string(body) != "boom" {
		t.Errorf("JWKS failure: %d %s", status, body)
	}
	if status, _, _ := get(t, http.DefaultClient, iss.DiscoveryURL()); status != http.StatusOK {
		t.Errorf("discovery during JWKS failure: %d", status)
	}
	iss.SetJWKSFailure(0, nil)

	iss.SetJWKSBody([]byte("not json"), "text/plain")
	if status, hdr, body := get(t, http.DefaultClient, iss.JWKSURL()); status != 200 ||
		string(body) != "not json" || hdr.Get("Content-Type") != "text/plain" {
		t.Errorf("garbage body: %d %q %q", status, hdr.Get("Content-Type"), body)
	}
	iss.SetJWKSBody([]byte{}, "")
	if status, hdr, body := get(t, http.DefaultClient, iss.JWKSURL()); status != 200 || len(body) != 0 ||
		hdr.Get("Content-Type") != "application/json" {
		t.Errorf("empty body: %d %q %q", status, hdr.Get("Content-Type"), body)
	}
	iss.SetJWKSBody(nil, "")
	if set := fetchKeySet(t, iss); len(set.Keys) != 1 {
		t.Errorf("restored set has %d keys", len(set.Keys))
	}

	if j, d := iss.JWKSFetches(), iss.DiscoveryFetches(); j != 7 || d != 2 {
		t.Errorf("counters: jwks %d discovery %d, want 7 and 2", j, d)
	}
	iss.ResetCounters()
	if iss.JWKSFetches() != 0 || iss.DiscoveryFetches() != 0 {
		t.Error("ResetCounters did not reset")
	}
	if status, _, _ := get(t, http.DefaultClient, iss.URL+"/nowhere"); status != http.StatusNotFound {
		t.Errorf("/nowhere answered %d", status)
	}
	if status, _, _ := get(t, http.DefaultClient, iss.URL+identitytest.TokenPath); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /token answered %d", status)
	}
	resp, err := http.Post(iss.JWKSURL(), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST answered %d", resp.StatusCode)
	}
}

func TestWithoutDiscoveryAndTLS(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithTLS(), identitytest.WithoutDiscovery(),
		identitytest.WithAlgorithms("ES384"))
	if !strings.HasPrefix(iss.URL, "https://") || iss.TLSConfig() == nil {
		t.Fatalf("URL = %q, TLSConfig = %v", iss.URL, iss.TLSConfig())
	}
	if status, _, _ := get(t, iss.Client(), iss.DiscoveryURL()); status != http.StatusNotFound {
		t.Errorf("discovery answered %d", status)
	}
	verify(t, fetchKeySet(t, iss), iss.Mint(t, nil), "ES384")
	if iss.DiscoveryFetches() != 1 || iss.JWKSFetches() != 1 {
		t.Errorf("counters %d %d", iss.DiscoveryFetches(), iss.JWKSFetches())
	}
}

func TestDelayHonoursClientCancellation(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"))
	iss.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, iss.JWKSURL(), nil)
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("delayed request did not time out")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("delay ignored cancellation")
	}
	iss.SetDelay(0)
	fetchKeySet(t, iss)
}

func TestStartRejectsBadOptions(t *testing.T) {
	for name, opt := range map[string]identitytest.Option{
		"alg":         identitytest.WithAlgorithms("HS256"),
		"jwks path":   identitytest.WithJWKSPath("jwks"),
		"issuer path": identitytest.WithIssuerPath("realm"),
	} {
		if iss, err := identitytest.Start(opt); err == nil {
			iss.Close()
			t.Errorf("%s: no error", name)
		}
	}
	iss, err := identitytest.Start()
	if err != nil {
		t.Fatal(err)
	}
	iss.Close()
	iss.Close()
}

func TestConcurrentUse(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256", "EdDSA"))
	var wg sync.WaitGroup
	for n := range 8 {
		wg.Go(func() {
			for range 10 {
				switch n % 4 {
				case 0:
					if _, err := iss.MintToken(map[string]any{"n": n}, identitytest.Alg("EdDSA")); err != nil {
						t.Error(err)
					}
				case 1:
					resp, err := http.Get(iss.JWKSURL())
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
				case 2:
					iss.RemoveKey(iss.RotateKey("ES256"))
					iss.SetDown(n%2 == 0)
					iss.SetDown(false)
				case 3:
					_ = iss.PublicJWKS()
					_ = iss.KeyIDs()
					_ = iss.JWKSFetches()
				}
			}
		})
	}
	wg.Wait()
	if n := iss.JWKSFetches(); n != 20 {
		t.Errorf("JWKSFetches = %d, want 20", n)
	}
}
