package caddyidentity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// writeClientKey writes a fresh P-256 private key as PKCS #8 PEM and
// returns it with the file's path.
func writeClientKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "introspection.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

// serviceToken is a client-credentials access token of iss's default
// client (opaque with WithOpaqueAccessTokens; its sub is the client).
func serviceToken(t testing.TB, iss *identitytest.Issuer) string {
	t.Helper()
	tok, err := identity.RequestClientCredentialsToken(context.Background(), nil, identity.ClientCredentialsTokenRequest{
		ProtocolRequest: identity.ProtocolRequest{
			Address:    iss.URL + identitytest.TokenPath,
			ClientAuth: identity.ClientSecretBasicAuth(identitytest.DefaultClientID, identitytest.DefaultClientSecret),
		},
		Scopes: []string{"read"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// TestIntrospectPrivateKeyJWT runs opaque tokens through a handler that
// authenticates to identitytest's introspection endpoint (from discovery)
// with private_key_jwt, taking plain and signed (RFC 9701) answers.
func TestIntrospectPrivateKeyJWT(t *testing.T) {
	key, path := writeClientKey(t)
	_, otherPath := writeClientKey(t)
	iss := identitytest.NewIssuer(t, identitytest.WithOpaqueAccessTokens(), identitytest.WithClientKey("caddy", &key.PublicKey))
	for _, tc := range []struct {
		name, keyFile, authMethod, accept string
		want                              int
	}{
		{"plain answers", path, "", "", 200},
		{"auth_method named", path, identity.AuthMethodPrivateKeyJWT, "json", 200},
		{"signed answers", path, "", "jwt", 200},
		{"a key the issuer does not know", otherPath, "", "jwt", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := introHandler(iss, "")
			h.Issuers[0].Introspection = &IntrospectionConfig{ClientID: "caddy", KeyFile: tc.keyFile, AuthMethod: tc.authMethod, Accept: tc.accept}
			x := newHX(t, h)
			tok := serviceToken(t, iss)
			res := x.get("/", bearer(tok))
			if tc.want != 200 {
				wantRefusal(t, res, tc.want, "provider_unavailable")
				if x.logs.FilterMessage("introspection endpoint unavailable: opaque tokens cannot be checked").Len() != 1 {
					t.Errorf("refused client authentication not logged once")
				}
				return
			}
			wantStatus(t, res, 200)
			if got := res.up.header.Get("X-User-Id"); got != identitytest.DefaultClientID {
				t.Errorf("X-User-Id = %q", got)
			}
			// An unknown token is inactive: the endpoint authenticated us
			// and answered.
			wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 401, "inactive")
		})
	}
}

// signedEndpoint is an introspection endpoint whose answer (content type
// and body) the test sets.
type signedEndpoint struct {
	srv    *httptest.Server
	answer atomic.Pointer[[2]string]
	calls  atomic.Int32
}

func newSignedEndpoint(t *testing.T) *signedEndpoint {
	ep := &signedEndpoint{}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.calls.Add(1)
		a := ep.answer.Load()
		w.Header().Set("Content-Type", a[0])
		_, _ = w.Write([]byte(a[1]))
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *signedEndpoint) set(contentType, body string) {
	ep.answer.Store(&[2]string{contentType, body})
}

func TestIntrospectSignedAnswers(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256"))
	stranger := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256"))
	now := time.Now()
	const jwtType = "application/token-introspection+jwt"
	sign := func(i *identitytest.Issuer, changes map[string]any, opts ...identitytest.MintOption) string {
		claims := map[string]any{"aud": "caddy", "sub": nil, "exp": nil, "iat": now.Unix(),
			"token_introspection": activeResponse(iss.URL, now, nil)}
		for k, v := range changes {
			claims[k] = v
		}
		return i.Mint(t, claims, append([]identitytest.MintOption{identitytest.Header("typ", "token-introspection+jwt")}, opts...)...)
	}
	good := sign(iss, nil)
	plain, _ := json.Marshal(activeResponse(iss.URL, now, nil))
	tests := []struct {
		name              string
		accept            string
		contentType, body string
		want              int
		label             string
	}{
		{"signed", "jwt", jwtType, good, 200, ""},
		{"signed, inactive", "jwt", jwtType, sign(iss, map[string]any{"token_introspection": map[string]any{"active": false}}), 401, "inactive"},
		{"signed, not taken without accept jwt either when broken", "", jwtType, good[:len(good)-6] + "AAAAAA", 503, "provider_unavailable"},
		{"signed, taken without accept jwt", "", jwtType, good, 200, ""},
		{"plain JSON where jwt is required", "jwt", "application/json", string(plain), 503, "provider_unavailable"},
		{"bad signature", "jwt", jwtType, good[:len(good)-6] + "AAAAAA", 503, "provider_unavailable"},
		{"signed by another issuer", "jwt", jwtType, sign(stranger, map[string]any{"iss": iss.URL}), 503, "provider_unavailable"},
		{"wrong typ", "jwt", jwtType, sign(iss, nil, identitytest.Header("typ", "JWT")), 503, "provider_unavailable"},
		{"at+jwt typ", "jwt", jwtType, sign(iss, nil, identitytest.Header("typ", "at+jwt")), 503, "provider_unavailable"},
		{"wrong aud", "jwt", jwtType, sign(iss, map[string]any{"aud": "someone-else"}), 503, "provider_unavailable"},
		{"wrong iss", "jwt", jwtType, sign(iss, map[string]any{"iss": "https://evil.example.com"}), 503, "provider_unavailable"},
		{"no iat", "jwt", jwtType, sign(iss, map[string]any{"iat": nil}), 503, "provider_unavailable"},
		{"old iat", "jwt", jwtType, sign(iss, map[string]any{"iat": now.Add(-time.Hour).Unix()}), 503, "provider_unavailable"},
		{"alg outside the allow-list", "jwt", jwtType, sign(iss, nil, identitytest.Alg("ES256")), 503, "provider_unavailable"},
		{"HS256 with a guessable secret", "jwt", jwtType, sign(iss, nil, identitytest.HMACSecret([]byte(strings.Repeat("k", 32)))), 503, "provider_unavailable"},
		{"alg none", "jwt", jwtType, sign(iss, nil, identitytest.Alg("none")), 503, "provider_unavailable"},
		{"no token_introspection", "jwt", jwtType, sign(iss, map[string]any{"token_introspection": nil}), 503, "provider_unavailable"},
		{"signed answer of another issuer's token", "jwt", jwtType,
			sign(iss, map[string]any{"token_introspection": activeResponse("https://other.example.com", now, nil)}), 401, "issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newSignedEndpoint(t)
			ep.set(tt.contentType, tt.body)
			h := introHandler(iss, ep.srv.URL)
			h.Issuers[0].Algorithms = []string{"RS256"}
			h.Issuers[0].Introspection.Accept = tt.accept
			x := newHX(t, h)
			res := x.get("/", bearer(opaqueToken(t)))
			if tt.want != 200 {
				wantRefusal(t, res, tt.want, tt.label)
				if tt.want == 503 && x.logs.FilterMessage("introspection answer unusable (provider answer refused): opaque tokens cannot be checked").Len() != 1 {
					t.Errorf("unusable answer not logged once: %v", x.logs.All())
				}
				return
			}
			wantStatus(t, res, 200)
			if got := res.up.header.Get("X-User-Id"); got != "alice" {
				t.Errorf("X-User-Id = %q", got)
			}
		})
	}
}

func TestIntrospectKeyFileUnreadable(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(t.TempDir(), "missing.key"): "no such file",
		garbage: "neither PEM nor a JWK",
	} {
		h := introHandler(iss, "")
		h.Issuers[0].Introspection = &IntrospectionConfig{ClientID: "caddy", KeyFile: path}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		_ = h.Cleanup()
		cancel()
		wantErrorContaining(t, err, "introspection: key_file")
		wantErrorContaining(t, err, want)
	}
}
