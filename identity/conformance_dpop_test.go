package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// dpopFixture decodes test-fixtures/<name> into v.
func dpopFixture(t testing.TB, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(specFixture(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// dpopKeyFixture loads the private key of dpop/dpop-keypair-<alg>.json and
// returns it with the fixture's thumbprint.
func dpopKeyFixture(t testing.TB, alg string) (*identity.DPoPKey, string) {
	t.Helper()
	var fx struct {
		Private    jose.JSONWebKey `json:"private"`
		Thumbprint string          `json:"thumbprint"`
	}
	dpopFixture(t, "dpop/dpop-keypair-"+strings.ToLower(alg)+".json", &fx)
	key, err := identity.LoadDPoPKey(fx.Private)
	if err != nil {
		t.Fatal(err)
	}
	return key, fx.Thumbprint
}

// decodedProof is a DPoP proof split into its decoded header and payload,
// read without verification to inspect exactly what was sent.
type decodedProof struct {
	Header  map[string]any
	Payload map[string]any
}

func decodeProof(t testing.TB, proof string) decodedProof {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d parts, want a compact JWS", len(parts))
	}
	var d decodedProof
	for i, dst := range []*map[string]any{&d.Header, &d.Payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// dpopProofCase is dpop-proof-*-request.json: the decoded proof expected.
type dpopProofCase struct {
	Header  map[string]any `json:"header"`
	Payload map[string]any `json:"payload"`
}

// checkProofShape asserts the RFC 9449 §4.2 shape of a proof made by key:
// typ, alg, a public-only jwk and the payload claims of want.
func checkProofShape(t *testing.T, key *identity.DPoPKey, proof string, want dpopProofCase) decodedProof {
	t.Helper()
	d := decodeProof(t, proof)
	if d.Header["typ"] != identity.JWTTypeDPoPProof || d.Header["alg"] != key.Algorithm() {
		t.Errorf("header typ/alg = %v/%v", d.Header["typ"], d.Header["alg"])
	}
	if strings.HasPrefix(key.Algorithm(), "HS") {
		t.Errorf("symmetric alg %s", key.Algorithm())
	}
	jwk, ok := d.Header["jwk"].(map[string]any)
	if !ok {
		t.Fatalf("no jwk header: %v", d.Header)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, has := jwk[private]; has {
			t.Errorf("jwk header leaks private member %q", private)
		}
	}
	// The jwk must be the key's own public key: its RFC 7638 thumbprint,
	// computed by go-jose from the header, is the key's thumbprint.
	raw, err := json.Marshal(jwk)
	if err != nil {
		t.Fatal(err)
	}
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(raw); err != nil {
		t.Fatalf("jwk header does not parse: %v", err)
	}
	if tp, err := pub.Thumbprint(crypto.SHA256); err != nil || base64.RawURLEncoding.EncodeToString(tp) != key.Thumbprint() {
		t.Errorf("jwk header thumbprint %x (%v), want the key's %s", tp, err, key.Thumbprint())
	}
	// The fixture's decoded proof was made with the fixture key of its alg:
	// a key of that alg must send exactly the fixture's jwk members.
	wantJWK, ok := want.Header["jwk"].(map[string]any)
	if !ok {
		t.Fatalf("fixture header without jwk: %v", want.Header)
	}
	if want.Header["alg"] == key.Algorithm() {
		for m, v := range wantJWK {
			if jwk[m] != v {
				t.Errorf("jwk %s = %v, want %v", m, jwk[m], v)
			}
		}
		if len(jwk) != len(wantJWK) {
			t.Errorf("jwk members %v, want those of %v", jwk, wantJWK)
		}
	}
	if jti, _ := d.Payload["jti"].(string); jti == "" {
		t.Error("jti empty")
	}
	for _, claim := range []string{"htm", "htu"} {
		if d.Payload[claim] != want.Payload[claim] {
			t.Errorf("%s = %v, want %v", claim, d.Payload[claim], want.Payload[claim])
		}
	}
	iat, _ := d.Payload["iat"].(float64)
	if age := time.Since(time.Unix(int64(iat), 0)); age < -time.Second || age > time.Minute {
		t.Errorf("iat %v is not recent", iat)
	}
	return d
}

// TestConformanceDPoP covers conformance/dpop.json (RFC 9449, RFC 7638).
func TestConformanceDPoP(t *testing.T) {
	ctx := context.Background()
	runConformance(t, "dpop.json", map[string]func(*testing.T, conformanceCase){
		"DPOP-001": func(t *testing.T, c conformanceCase) {
			var want dpopProofCase
			dpopFixture(t, c.Fixture, &want)
			uri := want.Payload["htu"].(string)
			for _, alg := range []string{"ES256", "RS256"} {
				t.Run(alg, func(t *testing.T) {
					key, _ := dpopKeyFixture(t, alg)
					first, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodPost, URI: uri + "?q=1#frag"})
					if err != nil {
						t.Fatal(err)
					}
					second, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodPost, URI: uri})
					if err != nil {
						t.Fatal(err)
					}
					d1 := checkProofShape(t, key, first, want)
					d2 := checkProofShape(t, key, second, want)
					if d1.Payload["jti"] == d2.Payload["jti"] {
						t.Errorf("jti %v repeated", d1.Payload["jti"])
					}
					if _, err := identity.VerifyDPoPProof(first, identity.DPoPVerifyOptions{Method: http.MethodPost, URI: uri}); err != nil {
						t.Errorf("own proof refused: %v", err)
					}
				})
			}
		},
		"DPOP-002": func(t *testing.T, c conformanceCase) {
			var want dpopProofCase
			dpopFixture(t, c.Fixture, &want)
			if _, has := want.Payload["ath"]; has {
				t.Fatal("fixture token-request proof carries ath")
			}
			key, _ := dpopKeyFixture(t, "ES256")
			f := jsonFake(t, 200, `{"access_token":"at","token_type":"DPoP","expires_in":60}`)
			req := ccRequest(f.URL, identity.ClientAuth{ClientID: "c", ClientSecret: "s"})
			req.DPoP = key
			tok, err := identity.RequestClientCredentialsToken(ctx, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			proofs := got.Header.Values(identity.HTTPHeaderDPoP)
			if len(proofs) != 1 {
				t.Fatalf("%d DPoP headers", len(proofs))
			}
			if strings.HasPrefix(got.Header.Get("Authorization"), identity.AuthSchemeDPoP) || strings.Contains(got.Header.Get("Authorization"), proofs[0]) {
				t.Errorf("proof in Authorization: %q", got.Header.Get("Authorization"))
			}
			want.Payload["htu"] = f.URL + "/token"
			d := checkProofShape(t, key, proofs[0], want)
			if _, has := d.Payload["ath"]; has {
				t.Errorf("token-request proof carries ath %v", d.Payload["ath"])
			}
			if !tok.DPoPBound() {
				t.Errorf("token_type %q not read as DPoP", tok.TokenType)
			}
		},
		"DPOP-003": func(t *testing.T, c conformanceCase) {
			var fx struct {
				Pairs []struct {
					Description string `json:"description"`
					AccessToken string `json:"access_token"`
					ATH         string `json:"ath"`
				} `json:"pairs"`
			}
			dpopFixture(t, c.Fixture, &fx)
			if len(fx.Pairs) == 0 {
				t.Fatal("no pairs")
			}
			key, _ := dpopKeyFixture(t, "ES256")
			for _, p := range fx.Pairs {
				if got := identity.DPoPAccessTokenHash(p.AccessToken); got != p.ATH {
					t.Errorf("%s: ath %s, want %s", p.Description, got, p.ATH)
				}
				proof, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: "https://resource.example.com/protectedresource", AccessToken: p.AccessToken})
				if err != nil {
					t.Fatal(err)
				}
				if got := decodeProof(t, proof).Payload["ath"]; got != p.ATH {
					t.Errorf("%s: proof ath %v, want %s", p.Description, got, p.ATH)
				}
			}
			var resource dpopProofCase
			dpopFixture(t, "dpop/dpop-proof-resource-request.json", &resource)
			if got := identity.DPoPAccessTokenHash("example-dpop-bound-access-token-value"); resource.Payload["ath"] != got {
				t.Errorf("resource-request fixture ath %v, computed %s", resource.Payload["ath"], got)
			}
		},
		"DPOP-004": func(t *testing.T, c conformanceCase) {
			var fx struct {
				Status  int               `json:"status"`
				Headers map[string]string `json:"headers"`
				Body    json.RawMessage   `json:"body"`
			}
			dpopFixture(t, c.Fixture, &fx)
			nonce := fx.Headers[identity.HTTPHeaderDPoPNonce]
			// demandNonce answers like the fixture until a proof carries
			// the nonce, and records the nonce of every proof it gets.
			var (
				mu   sync.Mutex
				seen []any
			)
			nonces := func() []any {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(seen)
			}
			demandNonce := func(w http.ResponseWriter, r *http.Request, body string) {
				got := decodeProof(t, r.Header.Get(identity.HTTPHeaderDPoP)).Payload["nonce"]
				mu.Lock()
				seen = append(seen, got)
				mu.Unlock()
				if got != nonce {
					for k, v := range fx.Headers {
						w.Header().Set(k, v)
					}
					writeJSON(w, fx.Status, string(fx.Body))
					return
				}
				writeJSON(w, 200, body)
			}
			key, _ := dpopKeyFixture(t, "ES256")
			t.Run("token", func(t *testing.T) {
				mu.Lock()
				seen = nil
				mu.Unlock()
				f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
					demandNonce(w, r, `{"access_token":"at","token_type":"DPoP"}`)
				})
				req := ccRequest(f.URL, identity.PublicClientAuth("c"))
				req.DPoP = key
				for range 2 {
					if _, err := identity.RequestClientCredentialsToken(ctx, nil, req); err != nil {
						t.Fatal(err)
					}
				}
				if want := []any{nil, nonce, nonce}; !slices.Equal(nonces(), want) {
					t.Errorf("proof nonces %v, want %v (retry once, then cached)", nonces(), want)
				}
				if key.Nonce(f.URL+"/other") != nonce {
					t.Errorf("nonce not remembered for the server")
				}
			})
			t.Run("resource", func(t *testing.T) {
				mu.Lock()
				seen = nil
				mu.Unlock()
				fresh, err := identity.NewDPoPKey("ES256")
				if err != nil {
					t.Fatal(err)
				}
				f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
					demandNonce(w, r, `{"ok":true}`)
				})
				for range 2 {
					req, _ := http.NewRequest(http.MethodPost, f.URL+"/api", strings.NewReader("payload"))
					resp, err := identity.DoDPoPRequest(ctx, nil, fresh, req, "at")
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Fatalf("status %d", resp.StatusCode)
					}
				}
				if want := []any{nil, nonce, nonce}; !slices.Equal(nonces(), want) {
					t.Errorf("proof nonces %v, want %v", nonces(), want)
				}
				if body := f.last(t).Body; string(body) != "payload" {
					t.Errorf("retried body %q", body)
				}
			})
		},
		"DPOP-005": func(t *testing.T, c conformanceCase) {
			var bound struct {
				Payload struct {
					Cnf struct {
						JKT string `json:"jkt"`
					} `json:"cnf"`
				} `json:"payload"`
			}
			dpopFixture(t, c.Fixture, &bound)
			key, _ := dpopKeyFixture(t, "ES256")
			if key.Thumbprint() != bound.Payload.Cnf.JKT {
				t.Errorf("thumbprint %s, cnf.jkt %s", key.Thumbprint(), bound.Payload.Cnf.JKT)
			}
			var pairs struct {
				Pairs []struct {
					Description string          `json:"description"`
					JWK         jose.JSONWebKey `json:"jwk"`
					Thumbprint  string          `json:"thumbprint"`
				} `json:"pairs"`
			}
			dpopFixture(t, "dpop/dpop-thumbprint-pairs.json", &pairs)
			rfc7638 := false
			for _, p := range pairs.Pairs {
				rfc7638 = rfc7638 || p.Thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
				if got := jwkThumbprint(t, p.JWK); got != p.Thumbprint {
					t.Errorf("%s: thumbprint %s, want %s", p.Description, got, p.Thumbprint)
				}
			}
			if !rfc7638 {
				t.Error("the RFC 7638 §3.1 vector is missing from the fixture")
			}
			const at = "example-dpop-bound-access-token-value"
			const uri = "https://resource.example.com/protectedresource"
			opts := identity.DPoPVerifyOptions{Method: http.MethodGet, URI: uri, AccessToken: at, BoundJKT: bound.Payload.Cnf.JKT}
			proof, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, AccessToken: at})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := identity.VerifyDPoPProof(proof, opts); err != nil {
				t.Errorf("proof of the bound key refused: %v", err)
			}
			other, _ := dpopKeyFixture(t, "RS256")
			proof, err = other.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, AccessToken: at})
			if err != nil {
				t.Fatal(err)
			}
			assertDPoPCheck(t, proofErr(identity.VerifyDPoPProof(proof, opts)), identity.DPoPCheckJKT)
		},
		"DPOP-006": func(t *testing.T, _ conformanceCase) {
			key, _ := dpopKeyFixture(t, "ES256")
			const uri = "https://resource.example.com/protectedresource"
			proof, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for _, tc := range []struct {
				name  string
				proof string
				opts  identity.DPoPVerifyOptions
				check identity.DPoPCheck
			}{
				{"wrong htm", proof, identity.DPoPVerifyOptions{Method: http.MethodPost, URI: uri}, identity.DPoPCheckMethod},
				{"wrong htu", proof, identity.DPoPVerifyOptions{Method: http.MethodGet, URI: "https://resource.example.com/other"}, identity.DPoPCheckURI},
				{"HS256", signTestProof(t, []byte(strings.Repeat("k", 32)), "HS256", testProofHeader(key), testProofClaims(http.MethodGet, uri, now)), identity.DPoPVerifyOptions{Method: http.MethodGet, URI: uri}, identity.DPoPCheckAlgorithm},
				{"alg none", unsignedTestProof(testProofHeader(key), testProofClaims(http.MethodGet, uri, now)), identity.DPoPVerifyOptions{Method: http.MethodGet, URI: uri}, identity.DPoPCheckAlgorithm},
				{"no jwk", signTestProof(t, key.PrivateJWK().Key, "ES256", map[string]any{"typ": identity.JWTTypeDPoPProof}, testProofClaims(http.MethodGet, uri, now)), identity.DPoPVerifyOptions{Method: http.MethodGet, URI: uri}, identity.DPoPCheckJWK},
			} {
				t.Run(tc.name, func(t *testing.T) {
					assertDPoPCheck(t, proofErr(identity.VerifyDPoPProof(tc.proof, tc.opts)), tc.check)
				})
			}
		},
		"DPOP-007": func(t *testing.T, _ conformanceCase) {
			es, err := identity.NewDPoPKey("ES256")
			if err != nil {
				t.Fatal(err)
			}
			if k, ok := es.PrivateJWK().Key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() || !isPublicJWK(es.PublicJWK()) {
				t.Errorf("ES256 key %T", es.PrivateJWK().Key)
			}
			rs, err := identity.NewDPoPKey("RS256")
			if err != nil {
				t.Fatal(err)
			}
			if k, ok := rs.PrivateJWK().Key.(*rsa.PrivateKey); !ok || k.N.BitLen() < 2048 || k.Validate() != nil || !isPublicJWK(rs.PublicJWK()) {
				t.Errorf("RS256 key %T", rs.PrivateJWK().Key)
			}
			for _, alg := range []string{"HS256", "none", "ES384", "PS256", ""} {
				if _, err := identity.NewDPoPKey(alg); !errors.Is(err, identity.ErrDPoPUnsupportedAlgorithm) || !errors.Is(err, identity.ErrUnsupportedAlg) {
					t.Errorf("NewDPoPKey(%q) = %v", alg, err)
				}
			}
			for _, alg := range []string{"ES256", "RS256"} {
				key, thumbprint := dpopKeyFixture(t, alg)
				if key.Algorithm() != alg || key.Thumbprint() != thumbprint {
					t.Errorf("fixture %s: alg %s thumbprint %s, want %s", alg, key.Algorithm(), key.Thumbprint(), thumbprint)
				}
			}
		},
		"DPOP-008": func(t *testing.T, c conformanceCase) {
			var bound struct {
				TokenType string `json:"token_type"`
			}
			dpopFixture(t, c.Fixture, &bound)
			const at = "example-dpop-bound-access-token-value"
			as := jsonFake(t, 200, `{"access_token":"`+at+`","token_type":"`+strings.ToLower(bound.TokenType)+`"}`)
			key, _ := dpopKeyFixture(t, "ES256")
			req := ccRequest(as.URL, identity.PublicClientAuth("c"))
			req.DPoP = key
			tok, err := identity.RequestClientCredentialsToken(ctx, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			if !tok.DPoPBound() {
				t.Fatalf("token_type %q not read as DPoP", tok.TokenType)
			}
			rs := jsonFake(t, 200, `{}`)
			r, _ := http.NewRequest(http.MethodGet, rs.URL+"/protectedresource?x=1", nil)
			resp, err := identity.DoDPoPRequest(ctx, nil, key, r, tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got := rs.last(t)
			if a := got.Header.Get("Authorization"); a != "DPoP "+at {
				t.Errorf("Authorization %q, want DPoP scheme", a)
			}
			proof, err := identity.DPoPProofFromHeader(got.Header)
			if err != nil {
				t.Fatal(err)
			}
			p, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{Method: http.MethodGet, URI: rs.URL + "/protectedresource", AccessToken: at, BoundJKT: key.Thumbprint()})
			if err != nil {
				t.Fatal(err)
			}
			if p.AccessTokenHash != identity.DPoPAccessTokenHash(at) {
				t.Errorf("ath %q", p.AccessTokenHash)
			}
		},
	})
}

// jwkThumbprint is the RFC 7638 SHA-256 thumbprint of k, base64url.
func jwkThumbprint(t testing.TB, k jose.JSONWebKey) string {
	t.Helper()
	tp, err := identity.JWKThumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// isPublicJWK reports whether k is a valid public key.
func isPublicJWK(k jose.JSONWebKey) bool { return k.IsPublic() && k.Valid() }
