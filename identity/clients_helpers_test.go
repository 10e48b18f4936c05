package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-identity/caddy-identity/identity"
)

// recorded is one request a fake endpoint received.
type recorded struct {
	Method string
	Path   string
	Header http.Header
	Form   url.Values
	Body   []byte
}

// fakeEndpoint is an httptest server recording requests and answering
// with reply.
type fakeEndpoint struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

// newFake starts a fake endpoint; reply sees the parsed form.
func newFake(t testing.TB, reply func(w http.ResponseWriter, r *http.Request, form url.Values)) *fakeEndpoint {
	t.Helper()
	f := &fakeEndpoint{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form, Body: body})
		f.mu.Unlock()
		reply(w, r, form)
	}))
	t.Cleanup(f.Close)
	return f
}

// jsonFake answers every request with status and body as JSON.
func jsonFake(t testing.TB, status int, body string) *fakeEndpoint {
	return newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		writeJSON(w, status, body)
	})
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// last returns the last recorded request.
func (f *fakeEndpoint) last(t testing.TB) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("no request received")
	}
	return f.reqs[len(f.reqs)-1]
}

// count returns the number of requests received.
func (f *fakeEndpoint) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// basicCreds decodes a Basic Authorization header without unescaping.
func basicCreds(t testing.TB, h string) (string, string) {
	t.Helper()
	const p = "Basic "
	if len(h) < len(p) || h[:len(p)] != p {
		t.Fatalf("Authorization = %q, want Basic", h)
	}
	raw, err := base64.StdEncoding.DecodeString(h[len(p):])
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range raw {
		if c == ':' {
			return string(raw[:i]), string(raw[i+1:])
		}
	}
	t.Fatalf("no colon in %q", raw)
	return "", ""
}

// testKeys is a KeySource over fixed JWKs, matched by kid (or all when
// the token has none).
type testKeys struct {
	keys      []jose.JSONWebKey
	refreshed int
}

func (k *testKeys) CandidateKeys(_ context.Context, kid, _ string) ([]identity.Key, error) {
	var out []identity.Key
	for _, j := range k.keys {
		if kid == "" || j.KeyID == kid {
			tp, _ := j.Thumbprint(crypto.SHA256)
			out = append(out, identity.Key{JWK: j, Thumbprint: base64.RawURLEncoding.EncodeToString(tp)})
		}
	}
	if len(out) == 0 {
		return nil, identity.ErrKeyNotFound
	}
	return out, nil
}

func (k *testKeys) HasKey(string) bool { return false }

// testSigner is an ES256 key pair for signed responses.
type testSigner struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newTestSigner(t testing.TB, kid string) *testSigner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{priv: priv, kid: kid}
}

// keys returns a KeySource publishing the public key.
func (s *testSigner) keys() *testKeys {
	return &testKeys{keys: []jose.JSONWebKey{{Key: &s.priv.PublicKey, KeyID: s.kid, Algorithm: "ES256", Use: "sig"}}}
}

// sign signs claims as a compact JWS with typ.
func (s *testSigner) sign(t testing.TB, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", s.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// s256 computes an S256 PKCE challenge independently of the package.
func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// slowFake answers after delay (or when the client gives up).
func slowFake(t testing.TB, delay time.Duration) *fakeEndpoint {
	return newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		writeJSON(w, 200, `{"access_token":"late"}`)
	})
}
