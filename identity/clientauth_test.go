package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
)

func requestWith(t *testing.T, auth identity.ClientAuth) (recorded, error) {
	t.Helper()
	f := jsonFake(t, 200, `{"access_token":"a","token_type":"Bearer"}`)
	_, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{Address: f.URL + "/token", ClientAuth: auth},
	})
	if err != nil {
		return recorded{}, err
	}
	return f.last(t), nil
}

func TestClientSecretBasicEncodesBeforeBase64(t *testing.T) {
	id, secret := "my client:1", "p@ss w/rd+%é"
	for _, auth := range []identity.ClientAuth{
		identity.ClientSecretBasicAuth(id, secret),
		{ClientID: id, ClientSecret: secret}, // default method
	} {
		got, err := requestWith(t, auth)
		if err != nil {
			t.Fatal(err)
		}
		u, p := basicCreds(t, got.Header.Get("Authorization"))
		if u != url.QueryEscape(id) || p != url.QueryEscape(secret) {
			t.Errorf("basic credentials %q:%q, want form-url-encoded %q:%q", u, p, url.QueryEscape(id), url.QueryEscape(secret))
		}
		if u != "my+client%3A1" {
			t.Errorf("client id encoded as %q", u)
		}
		if got.Form.Has("client_id") || got.Form.Has("client_secret") {
			t.Errorf("credentials in body with basic: %v", got.Form)
		}
	}
}

func TestClientSecretPostAndNone(t *testing.T) {
	got, err := requestWith(t, identity.ClientSecretPostAuth("c1", "s1"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Form.Get("client_id") != "c1" || got.Form.Get("client_secret") != "s1" || got.Header.Get("Authorization") != "" {
		t.Errorf("post: %v %v", got.Form, got.Header)
	}
	got, err = requestWith(t, identity.PublicClientAuth("pub"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Form.Get("client_id") != "pub" || got.Form.Has("client_secret") || got.Header.Get("Authorization") != "" {
		t.Errorf("none: %v %v", got.Form, got.Header)
	}
	got, err = requestWith(t, identity.ClientAuth{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Form.Has("client_id") || got.Header.Get("Authorization") != "" {
		t.Errorf("zero ClientAuth sent credentials: %v", got.Form)
	}
}

// checkAssertion verifies a client assertion and its RFC 7523 claims.
func checkAssertion(t *testing.T, form url.Values, key any, alg jose.SignatureAlgorithm, clientID, aud string) jwt.Claims {
	t.Helper()
	if form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		t.Fatalf("client_assertion_type = %q", form.Get("client_assertion_type"))
	}
	tok, err := jwt.ParseSigned(form.Get("client_assertion"), []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.Claims(key, &c); err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	if c.Issuer != clientID || c.Subject != clientID || len(c.Audience) != 1 || c.Audience[0] != aud || c.ID == "" {
		t.Errorf("claims = %+v", c)
	}
	life := c.Expiry.Time().Sub(c.IssuedAt.Time())
	if life <= 0 || life > 5*time.Minute {
		t.Errorf("assertion lifetime %v", life)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, 0); err != nil {
		t.Errorf("assertion not currently valid: %v", err)
	}
	return c
}

func TestPrivateKeyJWT(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	jwk := jose.JSONWebKey{Key: rsaKey, KeyID: "jwk-1", Algorithm: "PS256"}
	cases := []struct {
		name string
		auth identity.ClientAuth
		pub  any
		alg  jose.SignatureAlgorithm
		kid  string
	}{
		{"rsa", identity.PrivateKeyJWTAuth("svc", rsaKey, "k1"), &rsaKey.PublicKey, jose.RS256, "k1"},
		{"ec-p384", identity.PrivateKeyJWTAuth("svc", ecKey, ""), &ecKey.PublicKey, jose.ES384, ""},
		{"ec-p256", identity.PrivateKeyJWTAuth("svc", p256, ""), &p256.PublicKey, jose.ES256, ""},
		{"ec-p521", identity.PrivateKeyJWTAuth("svc", p521, ""), &p521.PublicKey, jose.ES512, ""},
		{"ed25519", identity.PrivateKeyJWTAuth("svc", edKey, ""), edKey.Public(), jose.EdDSA, ""},
		{"jwk", identity.PrivateKeyJWTAuth("svc", jwk, ""), &rsaKey.PublicKey, jose.PS256, "jwk-1"},
		{"jwk-pointer-implicit-method", identity.ClientAuth{ClientID: "svc", Key: &jwk}, &rsaKey.PublicKey, jose.PS256, "jwk-1"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := jsonFake(t, 200, `{"access_token":"a"}`)
			for range 2 {
				_, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{
					ProtocolRequest: identity.ProtocolRequest{Address: f.URL + "/token", ClientAuth: tc.auth},
				})
				if err != nil {
					t.Fatal(err)
				}
				got := f.last(t)
				c := checkAssertion(t, got.Form, tc.pub, tc.alg, "svc", f.URL+"/token")
				if seen[c.ID] {
					t.Errorf("jti %q reused", c.ID)
				}
				seen[c.ID] = true
				tok, _ := jose.ParseSignedCompact(got.Form.Get("client_assertion"), []jose.SignatureAlgorithm{tc.alg})
				if kid := tok.Signatures[0].Header.KeyID; kid != tc.kid {
					t.Errorf("kid = %q, want %q", kid, tc.kid)
				}
				if got.Header.Get("Authorization") != "" || got.Form.Has("client_secret") {
					t.Error("secret material sent with private_key_jwt")
				}
			}
		})
	}
}

func TestClientSecretJWTAndAudience(t *testing.T) {
	secret := strings.Repeat("s", 32)
	auth := identity.ClientSecretJWTAuth("c", secret)
	auth.Audience = "https://issuer.example"
	auth.AssertionLifetime = 30 * time.Second
	got, err := requestWith(t, auth)
	if err != nil {
		t.Fatal(err)
	}
	c := checkAssertion(t, got.Form, []byte(secret), jose.HS256, "c", "https://issuer.example")
	if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life != 30*time.Second {
		t.Errorf("lifetime %v", life)
	}

	got, err = requestWith(t, identity.ClientAuth{Method: "private_key_jwt", ClientID: "c", Assertion: "pre.built.jwt"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Form.Get("client_assertion") != "pre.built.jwt" {
		t.Errorf("prebuilt assertion not sent: %v", got.Form)
	}
}

func TestClientAuthErrors(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, auth := range map[string]identity.ClientAuth{
		"basic without secret":      {Method: "client_secret_basic", ClientID: "c"},
		"post without secret":       {Method: "client_secret_post", ClientID: "c"},
		"basic without id":          {Method: "client_secret_basic", ClientSecret: "s"},
		"private_key_jwt no key":    {Method: "private_key_jwt", ClientID: "c"},
		"client_secret_jwt short":   identity.ClientSecretJWTAuth("c", "short"),
		"client_secret_jwt empty":   {Method: "client_secret_jwt", ClientID: "c"},
		"public jwk":                identity.PrivateKeyJWTAuth("c", jose.JSONWebKey{Key: &rsaKey.PublicKey}, ""),
		"unknown key type":          identity.PrivateKeyJWTAuth("c", "not a key", ""),
		"unknown method":            {Method: "tls_client_auth", ClientID: "c"},
		"alg does not fit the key":  {Method: "private_key_jwt", ClientID: "c", Key: rsaKey, Algorithm: "ES256"},
		"unsupported alg for a key": {Method: "private_key_jwt", ClientID: "c", Key: rsaKey, Algorithm: "none"},
	} {
		t.Run(name, func(t *testing.T) {
			f := jsonFake(t, 200, `{"access_token":"a"}`)
			_, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{
				ProtocolRequest: identity.ProtocolRequest{Address: f.URL, ClientAuth: auth},
			})
			if err == nil {
				t.Fatal("accepted")
			}
			if f.count() != 0 {
				t.Error("request sent despite the error")
			}
			if strings.Contains(name, "key") && name != "private_key_jwt no key" && !errors.Is(err, identity.ErrKeyConversion) {
				t.Errorf("want ErrKeyConversion, got %v", err)
			}
		})
	}
}
