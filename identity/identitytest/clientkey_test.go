package identitytest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// signAssertion signs an RFC 7523 client assertion with key.
func signAssertion(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClientKeyAuthentication(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss := identitytest.NewIssuer(t, identitytest.WithClientKey("rs", &key.PublicKey))
	c := oauthClient{t, iss}
	exp := time.Now().Add(time.Minute).Unix()
	claims := func(change map[string]any) map[string]any {
		m := map[string]any{"iss": "rs", "sub": "rs", "aud": iss.URL + identitytest.IntrospectionPath, "exp": exp, "jti": rand.Text()}
		for k, v := range change {
			m[k] = v
		}
		return m
	}
	replayed := signAssertion(t, key, claims(nil))
	for _, tc := range []struct {
		name      string
		assertion string
		typ       string
		want      int
	}{
		{"endpoint audience", signAssertion(t, key, claims(nil)), "", 200},
		{"issuer audience", signAssertion(t, key, claims(map[string]any{"aud": []string{"x", iss.URL}})), "", 200},
		{"first use", replayed, "", 200},
		{"replayed", replayed, "", 401},
		{"other key", signAssertion(t, other, claims(nil)), "", 401},
		{"other audience", signAssertion(t, key, claims(map[string]any{"aud": iss.URL + identitytest.TokenPath})), "", 401},
		{"expired", signAssertion(t, key, claims(map[string]any{"exp": time.Now().Add(-time.Second).Unix()})), "", 401},
		{"sub is not the client", signAssertion(t, key, claims(map[string]any{"sub": "x"})), "", 401},
		{"unknown client", signAssertion(t, key, claims(map[string]any{"iss": "client", "sub": "client"})), "", 401},
		{"no jti", signAssertion(t, key, claims(map[string]any{"jti": ""})), "", 401},
		{"wrong assertion type", signAssertion(t, key, claims(nil)), "urn:other", 401},
		{"not a JWT", "abc", "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := tc.typ
			if typ == "" {
				typ = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
			}
			status, body := c.post(identitytest.IntrospectionPath, "", "", url.Values{
				"token": {"x"}, "client_assertion": {tc.assertion}, "client_assertion_type": {typ},
			})
			if status != tc.want {
				t.Fatalf("status %d, body %v", status, body)
			}
		})
	}
	if status, _ := c.post(identitytest.IntrospectionPath, "rs", "", url.Values{"token": {"x"}}); status != 401 {
		t.Errorf("a key client without its assertion: %d", status)
	}
}

func TestSignedIntrospection(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("ES256"), identitytest.WithOpaqueAccessTokens())
	_, issued := oauthClient{t, iss}.post(identitytest.TokenPath, identitytest.DefaultClientID, identitytest.DefaultClientSecret,
		url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	tok, _ := issued["access_token"].(string)
	if tok == "" || strings.Contains(tok, ".") {
		t.Fatalf("access token %q is not opaque", tok)
	}
	for _, accept := range []string{"", "application/json", identitytest.IntrospectionJWTMediaType} {
		req, _ := http.NewRequest(http.MethodPost, iss.URL+identitytest.IntrospectionPath, strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(identitytest.DefaultClientID, identitytest.DefaultClientSecret)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if accept != identitytest.IntrospectionJWTMediaType {
			var plain map[string]any
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" || json.Unmarshal(body, &plain) != nil || plain["active"] != true {
				t.Errorf("Accept %q: %s %s", accept, ct, body)
			}
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != identitytest.IntrospectionJWTMediaType {
			t.Fatalf("Content-Type %q", ct)
		}
		jws, err := jose.ParseSignedCompact(string(body), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		if typ := jws.Signatures[0].Protected.ExtraHeaders["typ"]; typ != "token-introspection+jwt" {
			t.Errorf("typ %v", typ)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(iss.PublicJWKS(), &set); err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify(set.Key(jws.Signatures[0].Protected.KeyID)[0])
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		_ = json.Unmarshal(payload, &claims)
		intro, _ := claims["token_introspection"].(map[string]any)
		if claims["iss"] != iss.URL || claims["aud"] != identitytest.DefaultClientID || claims["iat"] == nil ||
			intro["active"] != true || intro["scope"] != "read" {
			t.Errorf("claims %v", claims)
		}
		if _, ok := claims["sub"]; ok {
			t.Errorf("top-level sub in %v", claims)
		}
	}
}
