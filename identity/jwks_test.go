package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// --- helpers shared by the key, discovery and provider tests -------------

// testJWK is a generated key pair published as a public JWK.
type testJWK struct {
	Private crypto.Signer
	Public  jose.JSONWebKey
}

// newECJWK generates a key on curve (P-256 unless given) with kid and alg.
func newECJWK(t testing.TB, kid, alg string, curve ...elliptic.Curve) testJWK {
	t.Helper()
	c := elliptic.P256()
	if len(curve) > 0 {
		c = curve[0]
	}
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testJWK{k, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: alg, Use: "sig"}}
}

// newRSAJWK generates an RSA key of bits with kid and alg.
func newRSAJWK(t testing.TB, bits int, kid, alg string) testJWK {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return testJWK{k, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: alg, Use: "sig"}}
}

// newEdJWK generates an Ed25519 key with kid and alg.
func newEdJWK(t testing.TB, kid, alg string) testJWK {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testJWK{priv, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}}
}

// jwkJSON returns one JWK as a JSON object (map), to be edited by tests.
func jwkJSON(t testing.TB, k jose.JSONWebKey) map[string]any {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// jwksOf marshals entries (jose.JSONWebKey, testJWK or map) as a JWK Set.
func jwksOf(t testing.TB, entries ...any) []byte {
	t.Helper()
	keys := make([]any, 0, len(entries))
	for _, e := range entries {
		switch v := e.(type) {
		case testJWK:
			keys = append(keys, v.Public)
		default:
			keys = append(keys, v)
		}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// thumb returns the RFC 7638 thumbprint of k as the package reports it.
func thumb(t testing.TB, k jose.JSONWebKey) string {
	t.Helper()
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// kids lists the kids of keys.
func kids(keys []identity.Key) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.JWK.KeyID)
	}
	return out
}

// opClock is a fake clock safe for concurrent use.
type opClock struct {
	mu  sync.Mutex
	now time.Time
}

func newOPClock() *opClock { return &opClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *opClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *opClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeOP is a controllable provider: GET /.well-known/openid-configuration
// and GET /jwks (and any other path answering 404), counting requests.
type fakeOP struct {
	srv *httptest.Server
	URL string

	mu         sync.Mutex
	keys       []any
	jwksBody   []byte // served instead of keys when set
	jwksType   string // Content-Type of the JWKS
	jwksStatus int    // non-zero: the JWKS answers this status
	jwksHeader map[string]string
	meta       map[string]any
	metaStatus int
	hang       chan struct{} // non-nil: JWKS requests wait for it to close
	jwksPaths  []string      // paths of the JWKS requests, in order

	jwksHits, discHits atomic.Int64
}

// newFakeOP starts a plain-http loopback provider serving keys.
func newFakeOP(t testing.TB, keys ...any) *fakeOP {
	t.Helper()
	op := &fakeOP{jwksType: "application/json"}
	op.SetKeys(keys...)
	op.srv = httptest.NewServer(http.HandlerFunc(op.serve))
	op.URL = op.srv.URL
	op.meta = map[string]any{
		"issuer":                                op.URL,
		"authorization_endpoint":                op.URL + "/authorize",
		"token_endpoint":                        op.URL + "/token",
		"userinfo_endpoint":                     op.URL + "/userinfo",
		"jwks_uri":                              op.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	}
	t.Cleanup(op.Close)
	return op
}

// Close releases hanging requests and stops the server; idempotent.
func (op *fakeOP) Close() {
	op.setHang(false)
	op.srv.Close()
}

func (op *fakeOP) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		op.discHits.Add(1)
		op.mu.Lock()
		status, body := op.metaStatus, mustJSON(op.meta)
		op.mu.Unlock()
		if status != 0 {
			http.Error(w, "unavailable", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	case "/jwks", "/jwks2":
		op.jwksHits.Add(1)
		op.mu.Lock()
		op.jwksPaths = append(op.jwksPaths, r.URL.Path)
		hang, status, ct, hdr := op.hang, op.jwksStatus, op.jwksType, maps.Clone(op.jwksHeader)
		body := op.jwksBody
		if body == nil {
			body = mustJSON(map[string]any{"keys": op.keys})
		}
		op.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			http.Error(w, "unavailable", status)
			return
		}
		w.Header().Set("Content-Type", ct)
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// JWKSPaths returns the paths of the JWKS requests so far.
func (op *fakeOP) JWKSPaths() []string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return slices.Clone(op.jwksPaths)
}

// SetKeys publishes keys (testJWK, jose.JSONWebKey or maps).
func (op *fakeOP) SetKeys(keys ...any) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.keys = nil
	for _, k := range keys {
		if tk, ok := k.(testJWK); ok {
			k = tk.Public
		}
		op.keys = append(op.keys, k)
	}
}

// SetJWKS serves body with contentType instead of the keys (nil restores).
func (op *fakeOP) SetJWKS(body []byte, contentType string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.jwksBody, op.jwksType = body, contentType
	if contentType == "" {
		op.jwksType = "application/json"
	}
}

// SetDown makes discovery and JWKS answer 503 (or serve again).
func (op *fakeOP) SetDown(down bool) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.jwksStatus, op.metaStatus = 0, 0
	if down {
		op.jwksStatus, op.metaStatus = http.StatusServiceUnavailable, http.StatusServiceUnavailable
	}
}

// SetCacheControl sets the Cache-Control header of the JWKS.
func (op *fakeOP) SetCacheControl(v string) { op.SetJWKSHeader("Cache-Control", v) }

// SetJWKSHeader sets (or with "" removes) a header of JWKS responses.
func (op *fakeOP) SetJWKSHeader(k, v string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.jwksHeader == nil {
		op.jwksHeader = map[string]string{}
	}
	if v == "" {
		delete(op.jwksHeader, k)
		return
	}
	op.jwksHeader[k] = v
}

// SetMeta edits the discovery document.
func (op *fakeOP) SetMeta(edit func(m map[string]any)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	m := maps.Clone(op.meta)
	edit(m)
	op.meta = m
}

// setHang makes JWKS requests block until released (false releases).
func (op *fakeOP) setHang(on bool) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if on && op.hang == nil {
		op.hang = make(chan struct{})
	}
	if !on && op.hang != nil {
		close(op.hang)
		op.hang = nil
	}
}

// hostClient returns a client for an https test server that dials it for
// every host, so fixtures naming https://provider.example.com can be served
// unchanged (the test certificate covers *.example.com).
func hostClient(t testing.TB, srv *httptest.Server) *http.Client {
	t.Helper()
	base := srv.Client().Transport.(*http.Transport)
	tr := base.Clone()
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// --- ParseKeySet ----------------------------------------------------------

func TestParseKeySetKeepsOnlyUsableKeys(t *testing.T) {
	ec := newECJWK(t, "ec", "ES256")
	ec384 := newECJWK(t, "ec384", "ES384", elliptic.P384())
	ed := newEdJWK(t, "ed", "EdDSA")
	rsa2048 := newRSAJWK(t, 2048, "rsa", "RS256")
	rsa1024 := newRSAJWK(t, 1024, "rsa-small", "RS256")
	noAlg := newECJWK(t, "no-alg", "")

	with := func(k testJWK, edit func(m map[string]any)) map[string]any {
		m := jwkJSON(t, k.Public)
		edit(m)
		return m
	}
	private := func(k testJWK) map[string]any {
		jk := k.Public
		jk.Key = k.Private
		return jwkJSON(t, jk)
	}

	cases := []struct {
		name       string
		entry      any
		usable     bool
		reasonPart string
	}{
		{"EC P-256 with ES256", ec, true, ""},
		{"EC P-384 with ES384", ec384, true, ""},
		{"Ed25519 with EdDSA", ed, true, ""},
		{"RSA 2048 with RS256", rsa2048, true, ""},
		{"key without alg", noAlg, true, ""},
		{"use absent", with(ec, func(m map[string]any) { delete(m, "use") }), true, ""},
		{"key_ops with verify", with(ec, func(m map[string]any) { m["key_ops"] = []string{"verify"} }), true, ""},
		{"use enc", with(ec, func(m map[string]any) { m["use"] = "enc" }), false, `"use"`},
		{"use not a string", with(ec, func(m map[string]any) { m["use"] = 1 }), false, `"use"`},
		{"key_ops without verify", with(ec, func(m map[string]any) { m["key_ops"] = []string{"encrypt"} }), false, "key_ops"},
		{"key_ops not an array", with(ec, func(m map[string]any) { m["key_ops"] = "verify" }), false, "key_ops"},
		{"RSA 1024 bits", rsa1024, false, "1024 bits"},
		{"private RSA key", private(rsa2048), false, "private"},
		{"private EC key", private(ec), false, "private"},
		{"private Ed25519 key", private(ed), false, "private"},
		{"symmetric oct key", map[string]any{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "alg": "HS256"}, false, "symmetric"},
		{"X25519 key", map[string]any{"kty": "OKP", "crv": "X25519", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}, false, "unsupported"},
		{"secp256k1 key", with(ec, func(m map[string]any) { m["crv"] = "secp256k1" }), false, "unsupported"},
		{"unknown kty", map[string]any{"kty": "PQC", "kid": "x"}, false, "unsupported key type"},
		{"missing kty", with(ec, func(m map[string]any) { delete(m, "kty") }), false, "kty"},
		{"alg that does not fit the key type", with(ec, func(m map[string]any) { m["alg"] = "RS256" }), false, "does not fit"},
		{"alg that does not fit the curve", with(ec, func(m map[string]any) { m["alg"] = "ES384" }), false, "does not fit"},
		{"alg none", with(ec, func(m map[string]any) { m["alg"] = "none" }), false, "does not fit"},
		{"alg HS256 on a public key", with(rsa2048, func(m map[string]any) { m["alg"] = "HS256" }), false, "does not fit"},
		{"kid not a string", with(ec, func(m map[string]any) { m["kid"] = 7 }), false, "kid"},
		{"entry not an object", "just a string", false, "object"},
		{"broken coordinates", with(ec, func(m map[string]any) { m["x"] = "AAAA" }), false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Always next to a good key: one bad entry never drops the set.
			other := newECJWK(t, "other", "ES256")
			set, err := identity.ParseKeySet(jwksOf(t, c.entry, other))
			if err != nil {
				t.Fatalf("the set was refused as a whole: %v", err)
			}
			if c.usable {
				if set.Len() != 2 || len(set.Skipped()) != 0 {
					t.Fatalf("Len = %d, skipped = %+v; want both keys usable", set.Len(), set.Skipped())
				}
				return
			}
			if set.Len() != 1 || set.Keys()[0].JWK.KeyID != "other" {
				t.Fatalf("usable keys = %v, want only the other key", kids(set.Keys()))
			}
			sk := set.Skipped()
			if len(sk) != 1 || sk[0].Index != 0 {
				t.Fatalf("skipped = %+v, want entry 0", sk)
			}
			if !strings.Contains(sk[0].Reason, c.reasonPart) {
				t.Errorf("reason %q does not mention %q", sk[0].Reason, c.reasonPart)
			}
		})
	}
}

func TestParseKeySetRefusesWholeSet(t *testing.T) {
	ec := newECJWK(t, "ec", "ES256")
	many := make([]any, 0, 5)
	for range 5 {
		many = append(many, ec)
	}
	cases := []struct {
		name    string
		data    []byte
		opts    identity.ParseKeySetOptions
		notJSON bool
	}{
		{"empty keys array", []byte(`{"keys":[]}`), identity.ParseKeySetOptions{}, false},
		{"only unusable keys", jwksOf(t, map[string]any{"kty": "oct", "k": "AAAA"}), identity.ParseKeySetOptions{}, false},
		{"more keys than MaxKeys", jwksOf(t, many...), identity.ParseKeySetOptions{MaxKeys: 4}, false},
		{"RSA below a raised MinRSABits", jwksOf(t, newRSAJWK(t, 2048, "r", "RS256")), identity.ParseKeySetOptions{MinRSABits: 3072}, false},
		{"not JSON", []byte("<html>"), identity.ParseKeySetOptions{}, true},
		{"JSON null", []byte("null"), identity.ParseKeySetOptions{}, true},
		{"an array, not an object", []byte("[]"), identity.ParseKeySetOptions{}, true},
		{"no keys member", []byte(`{"key":[]}`), identity.ParseKeySetOptions{}, true},
		{"keys is an object", []byte(`{"keys":{}}`), identity.ParseKeySetOptions{}, true},
		{"empty input", nil, identity.ParseKeySetOptions{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set, err := identity.ParseKeySetWithOptions(c.data, c.opts)
			if !errors.Is(err, identity.ErrInvalidKeySet) {
				t.Fatalf("err = %v, want ErrInvalidKeySet", err)
			}
			if set != nil {
				t.Error("a set was returned with the error")
			}
			if got := errors.Is(err, identity.ErrNotJSON); got != c.notJSON {
				t.Errorf("errors.Is(err, ErrNotJSON) = %v, want %v", got, c.notJSON)
			}
		})
	}
}

func TestParseKeySetMinRSABitsBelowFloorIsRaised(t *testing.T) {
	_, err := identity.ParseKeySetWithOptions(jwksOf(t, newRSAJWK(t, 1024, "r", "RS256")), identity.ParseKeySetOptions{MinRSABits: 512})
	if !errors.Is(err, identity.ErrInvalidKeySet) {
		t.Fatalf("a 1024-bit key with MinRSABits 512: err = %v, want ErrInvalidKeySet", err)
	}
}

func TestKeySetAccessors(t *testing.T) {
	a := newECJWK(t, "a", "ES256")
	b := newEdJWK(t, "b", "EdDSA")
	c := newECJWK(t, "c", "")
	d := newECJWK(t, "d", "ES256")
	set, err := identity.ParseKeySet(jwksOf(t, a, b, c, d))
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(set.Keys()); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("Keys = %v, want set order", got)
	}
	if got := set.Algorithms(); !slices.Equal(got, []string{"ES256", "EdDSA"}) {
		t.Errorf("Algorithms = %v, want [ES256 EdDSA]", got)
	}
	if !set.HasKey(thumb(t, b.Public)) {
		t.Error("HasKey(thumbprint of b) = false")
	}
	if set.HasKey(thumb(t, newECJWK(t, "x", "ES256").Public)) || set.HasKey("") {
		t.Error("HasKey of an unknown thumbprint = true")
	}
	for _, k := range set.Keys() {
		if k.Thumbprint != thumb(t, k.JWK) {
			t.Errorf("key %s: Thumbprint %q is not the RFC 7638 SHA-256 thumbprint", k.JWK.KeyID, k.Thumbprint)
		}
		if !k.JWK.IsPublic() {
			t.Errorf("key %s is not public", k.JWK.KeyID)
		}
	}
	// Keys returns a copy.
	ks := set.Keys()
	ks[0].JWK.KeyID = "changed"
	if set.Keys()[0].JWK.KeyID != "a" {
		t.Error("Keys exposes the set's own slice")
	}
}

func TestKeySetCandidates(t *testing.T) {
	es1 := newECJWK(t, "dup", "ES256")
	es2 := newECJWK(t, "dup", "ES256")
	esNoAlg := newECJWK(t, "es-noalg", "")
	es384 := newECJWK(t, "es384", "", elliptic.P384())
	ed := newEdJWK(t, "ed", "EdDSA")
	ps := newRSAJWK(t, 2048, "ps", "PS256")

	full, err := identity.ParseKeySet(jwksOf(t, es1, es2, esNoAlg, es384, ed, ps))
	if err != nil {
		t.Fatal(err)
	}
	single, err := identity.ParseKeySet(jwksOf(t, newECJWK(t, "", ""), ps))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		set      *identity.KeySet
		kid, alg string
		want     []string
	}{
		{"kid and alg match", full, "ed", "EdDSA", []string{"ed"}},
		{"duplicate kids all returned in set order", full, "dup", "ES256", []string{"dup", "dup"}},
		{"key alg respected: ES256 key never for RS256", full, "dup", "RS256", nil},
		{"key alg respected: PS256 key never for RS256", full, "ps", "RS256", nil},
		{"key without alg fits by type", full, "es-noalg", "ES256", []string{"es-noalg"}},
		{"key without alg: curve must fit", full, "es-noalg", "ES384", nil},
		{"P-384 key for ES384", full, "es384", "ES384", []string{"es384"}},
		{"unknown kid", full, "nope", "ES256", nil},
		{"alg none never", full, "dup", "none", nil},
		{"HS256 never with a public key", full, "ps", "HS256", nil},
		{"empty alg", full, "ed", "", nil},
		{"no kid, several keys fit", full, "", "ES256", nil},
		{"no kid, exactly one key fits", full, "", "EdDSA", []string{"ed"}},
		{"no kid, one key of the type in a mixed set", single, "", "ES256", []string{""}},
		{"no kid, alg of no key", single, "", "EdDSA", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.set.Candidates(c.kid, c.alg)
			if !slices.Equal(kids(got), c.want) && !(len(got) == 0 && len(c.want) == 0) {
				t.Fatalf("Candidates(%q, %q) = %v, want %v", c.kid, c.alg, kids(got), c.want)
			}
			keys, err := c.set.CandidateKeys(context.Background(), c.kid, c.alg)
			if len(c.want) == 0 {
				if !errors.Is(err, identity.ErrKeyNotFound) || keys != nil {
					t.Errorf("CandidateKeys = %v, %v; want ErrKeyNotFound", kids(keys), err)
				}
			} else if err != nil || len(keys) != len(c.want) {
				t.Errorf("CandidateKeys = %v, %v", kids(keys), err)
			}
		})
	}
	// The duplicates are distinct keys, each tried.
	if d := full.Candidates("dup", "ES256"); d[0].Thumbprint == d[1].Thumbprint {
		t.Error("duplicate kids collapsed to one key")
	}
}

func TestAlgorithmFitsKey(t *testing.T) {
	rsa2048 := newRSAJWK(t, 2048, "", "").Public
	rsa1024 := newRSAJWK(t, 1024, "", "").Public
	p256 := newECJWK(t, "", "").Public
	p384 := newECJWK(t, "", "", elliptic.P384()).Public
	p521 := newECJWK(t, "", "", elliptic.P521()).Public
	ed := newEdJWK(t, "", "").Public
	rsaPriv := newRSAJWK(t, 2048, "", "")
	secret := func(n int) jose.JSONWebKey { return jose.JSONWebKey{Key: make([]byte, n)} }

	cases := []struct {
		alg  string
		key  jose.JSONWebKey
		want bool
	}{
		{"RS256", rsa2048, true}, {"RS384", rsa2048, true}, {"RS512", rsa2048, true},
		{"PS256", rsa2048, true}, {"PS384", rsa2048, true}, {"PS512", rsa2048, true},
		{"RS256", rsa1024, false},
		{"ES256", rsa2048, false},
		{"RS256", jose.JSONWebKey{Key: rsaPriv.Private}, false},
		{"ES256", p256, true}, {"ES384", p256, false}, {"ES512", p256, false},
		{"ES384", p384, true}, {"ES256", p384, false},
		{"ES512", p521, true}, {"ES384", p521, false},
		{"RS256", p256, false},
		{"EdDSA", ed, true}, {"ES256", ed, false}, {"Ed25519", ed, false},
		{"HS256", secret(32), true}, {"HS256", secret(31), false},
		{"HS384", secret(48), true}, {"HS384", secret(47), false},
		{"HS512", secret(64), true}, {"HS512", secret(63), false},
		{"RS256", secret(64), false},
		{"HS256", rsa2048, false}, {"HS256", p256, false},
		{"none", rsa2048, false}, {"", p256, false}, {"ES256", jose.JSONWebKey{}, false},
	}
	for _, c := range cases {
		name := c.alg
		if got := identity.AlgorithmFitsKey(c.alg, c.key); got != c.want {
			t.Errorf("AlgorithmFitsKey(%q, %T) = %v, want %v", name, c.key.Key, got, c.want)
		}
	}
}

func TestFetchKeySet(t *testing.T) {
	ec := newECJWK(t, "ec", "ES256")
	op := newFakeOP(t, ec)
	ctx := context.Background()

	t.Run("application/json", func(t *testing.T) {
		set, hdr, err := identity.FetchKeySet(ctx, nil, op.URL+"/jwks", identity.FetchKeySetOptions{})
		if err != nil || set.Len() != 1 || hdr == nil {
			t.Fatalf("FetchKeySet = %v, %v", set, err)
		}
	})
	t.Run("application/jwk-set+json", func(t *testing.T) {
		op.SetJWKS(jwksOf(t, ec), "application/jwk-set+json; charset=utf-8")
		defer op.SetJWKS(nil, "")
		if _, _, err := identity.FetchKeySet(ctx, nil, op.URL+"/jwks", identity.FetchKeySetOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the Cache-Control header is returned", func(t *testing.T) {
		op.SetCacheControl("max-age=600")
		defer op.SetCacheControl("")
		_, hdr, err := identity.FetchKeySet(ctx, nil, op.URL+"/jwks", identity.FetchKeySetOptions{})
		if err != nil || hdr.Get("Cache-Control") != "max-age=600" {
			t.Fatalf("header = %v, err = %v", hdr, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			name  string
			setup func()
			url   string
			want  error
		}{
			{"404", func() {}, op.URL + "/missing", identity.ErrHTTPStatus},
			{"text/html", func() { op.SetJWKS(jwksOf(t, ec), "text/html") }, op.URL + "/jwks", identity.ErrContentType},
			{"garbage", func() { op.SetJWKS([]byte("{{{"), "application/json") }, op.URL + "/jwks", identity.ErrNotJSON},
			{"empty set", func() { op.SetJWKS([]byte(`{"keys":[]}`), "application/json") }, op.URL + "/jwks", identity.ErrInvalidKeySet},
			{"http outside loopback", func() {}, "http://idp.example.com/jwks", identity.ErrHTTPSRequired},
			{"not absolute", func() {}, "/jwks", identity.ErrEndpointNotAllowed},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.setup()
				defer op.SetJWKS(nil, "")
				_, _, err := identity.FetchKeySet(ctx, nil, c.url, identity.FetchKeySetOptions{})
				if !errors.Is(err, c.want) {
					t.Errorf("err = %v, want %v", err, c.want)
				}
			})
		}
	})
}
