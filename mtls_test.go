package caddyidentity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// These tests drive certificate-bound access tokens (RFC 8705 §3) through
// the provisioned handler: a token with cnf.x5t#S256 is accepted only over
// a TLS connection that presented that client certificate, on every
// request, cache hit or not, and on the DPoP path too.

const certBindingChallenge = `Bearer realm="restricted", error="invalid_token", error_description="The access token is bound to a client certificate that was not presented"`

// newClientCert returns a self-signed ECDSA client certificate, as an
// RFC 8705 §2.2 client may use, and its cnf.x5t#S256 thumbprint.
func newClientCert(t *testing.T, cn string) (*x509.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return cert, base64.RawURLEncoding.EncodeToString(sum[:])
}

// tlsWith is the connection state of a TLS connection whose client
// presented the chain certs (none: no client certificate).
func tlsWith(certs ...*x509.Certificate) *tls.ConnectionState {
	return &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: certs}
}

// certRequest is a bearer request with token over the connection cs (nil:
// plain HTTP).
func certRequest(token string, cs *tls.ConnectionState) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/api", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r.TLS = cs
	return r
}

// certBoundToken mints a token for alice whose cnf is the given object
// (no cnf when nil).
func certBoundToken(t *testing.T, iss *identitytest.Issuer, cnf map[string]any) string {
	t.Helper()
	claims := map[string]any{"sub": "alice", "email": "alice@example.com"}
	if cnf != nil {
		claims["cnf"] = cnf
	}
	return iss.Mint(t, claims)
}

func TestCertBinding(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	cert, thumb := newClientCert(t, "bound client")
	other, _ := newClientCert(t, "other client")
	bound := map[string]any{"x5t#S256": thumb}
	sum := sha256.Sum256(cert.Raw)
	padded := base64.URLEncoding.EncodeToString(sum[:]) // RFC 8705 wants no padding
	tests := []struct {
		name      string
		mode      string // cert_binding
		cnf       map[string]any
		tls       *tls.ConnectionState
		status    int
		label     string
		challenge string // the one WWW-Authenticate line of a refusal
	}{
		{"matching certificate", "", bound, tlsWith(cert), 200, "", ""},
		{"check is the default, spelled out", "check", bound, tlsWith(cert), 200, "", ""},
		{"no TLS", "", bound, nil, 401, "cert_binding", certBindingChallenge},
		{"TLS without a client certificate", "", bound, tlsWith(), 401, "cert_binding", certBindingChallenge},
		{"another client certificate", "", bound, tlsWith(other), 401, "cert_binding", certBindingChallenge},
		{"bound certificate only as an intermediate", "", bound, tlsWith(other, cert), 401, "cert_binding", certBindingChallenge},
		{"thumbprint with base64 padding", "", map[string]any{"x5t#S256": padded}, tlsWith(cert), 401, "cert_binding", certBindingChallenge},
		{"x5t#S256 not a string", "", map[string]any{"x5t#S256": 42}, tlsWith(cert), 401, "claims",
			`Bearer realm="restricted", error="invalid_token", error_description="The access token claims are invalid"`},
		{"x5t#S256 an object", "", map[string]any{"x5t#S256": map[string]any{"v": thumb}}, tlsWith(cert), 401, "claims", ""},
		{"x5t#S256 empty", "", map[string]any{"x5t#S256": ""}, tlsWith(cert), 401, "claims", ""},
		{"token without cnf, plain HTTP", "", nil, nil, 200, "", ""},
		{"token without cnf, any client certificate", "", nil, tlsWith(other), 200, "", ""},
		{"cnf without x5t#S256", "", map[string]any{"kid": "k1"}, nil, 200, "", ""},
		{"off: bound token without a certificate", "off", bound, nil, 200, "", ""},
		{"off: bound token with another certificate", "off", bound, tlsWith(other), 200, "", ""},
		{"off: x5t#S256 not a string is ignored", "off", map[string]any{"x5t#S256": 42}, nil, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := basicHandler(iss)
			h.CertBinding = tt.mode
			x := newHX(t, h)
			res := x.do(certRequest(certBoundToken(t, iss, tt.cnf), tt.tls))
			wantStatus(t, res, tt.status)
			if tt.status == 200 {
				if got := res.up.header.Get("X-User-Id"); got != "alice" {
					t.Errorf("X-User-Id = %q, want alice", got)
				}
				if got := res.up.header.Get("X-User-Email"); got != "alice@example.com" {
					t.Errorf("X-User-Email = %q", got)
				}
				if got := res.up.header.Get("Authorization"); got != "" {
					t.Errorf("token forwarded: %q", got)
				}
				return
			}
			if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != tt.label {
				t.Errorf("error label = %q, want %q", got, tt.label)
			}
			if tt.challenge != "" && !slices.Equal(res.challenges, []string{tt.challenge}) {
				t.Errorf("challenges %q, want [%q]", res.challenges, tt.challenge)
			}
		})
	}
}

// TestCertBindingCacheHit checks the binding on every request: the token
// is verified once, and its cached entry still needs the certificate.
func TestCertBindingCacheHit(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	cert, thumb := newClientCert(t, "bound client")
	other, _ := newClientCert(t, "other client")
	token := certBoundToken(t, iss, map[string]any{"x5t#S256": thumb})
	x := newHX(t, basicHandler(iss))
	steps := []struct {
		name   string
		tls    *tls.ConnectionState
		status int
		hit    bool
	}{
		{"verified with its certificate", tlsWith(cert), 200, false},
		{"cached, another certificate", tlsWith(other), 401, true},
		{"cached, no client certificate", tlsWith(), 401, true},
		{"cached, plain HTTP", nil, 401, true},
		{"cached, its certificate again", tlsWith(cert), 200, true},
	}
	for _, s := range steps {
		h0, m0 := ccHitsMisses(t, x.h)
		res := x.do(certRequest(token, s.tls))
		h1, m1 := ccHitsMisses(t, x.h)
		wantStatus(t, res, s.status)
		if s.status != 200 {
			if got := res.repl.ReplaceAll("{http.auth.identity.error}", ""); got != "cert_binding" {
				t.Errorf("%s: error label = %q", s.name, got)
			}
			if !slices.Equal(res.challenges, []string{certBindingChallenge}) {
				t.Errorf("%s: challenges %q", s.name, res.challenges)
			}
		}
		if gotHit := h1-h0 == 1 && m1 == m0; gotHit != s.hit || (!s.hit && m1-m0 != 1) {
			t.Errorf("%s: hits +%v, misses +%v, want hit %v", s.name, h1-h0, m1-m0, s.hit)
		}
	}
}

// TestCertBindingBeforePolicy refuses a certificate-bound token sent
// without its certificate as 401, before the scope rules could say 403.
func TestCertBindingBeforePolicy(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	_, thumb := newClientCert(t, "bound client")
	h := basicHandler(iss)
	h.RequireScopes = []string{"orders:write"}
	x := newHX(t, h)
	res := x.do(certRequest(certBoundToken(t, iss, map[string]any{"x5t#S256": thumb}), nil))
	wantRefusal(t, res, 401, "cert_binding", certBindingChallenge)
}

// TestCertBindingDPoP sends a token bound both to a DPoP key and to a
// client certificate: both bindings must hold, and a request refused for
// the certificate does not spend its proof.
func TestCertBindingDPoP(t *testing.T) {
	env := newDPoPEnv(t)
	cert, thumb := newClientCert(t, "bound client")
	other, _ := newClientCert(t, "other client")
	token := boundToken(t, env.iss, env.key, map[string]any{"cnf": map[string]any{"jkt": env.key.Thumbprint(), "x5t#S256": thumb}})
	x := newHX(t, dpopHandler(env.iss, ""))
	const uri = "https://example.com/api"
	req := func(cs *tls.ConnectionState, proofs ...string) *http.Request {
		r := dpopRequest(http.MethodGet, "/api", token, proofs...)
		r.TLS = cs
		return r
	}
	const dpopCertChallenge = `DPoP realm="restricted", error="invalid_token", error_description="The access token is bound to a client certificate that was not presented", ` + algsParam

	proof := proofFor(t, env.key, http.MethodGet, uri, token)
	for _, cs := range []*tls.ConnectionState{tlsWith(), tlsWith(other)} {
		res := x.do(req(cs, proof))
		wantRefusal(t, res, 401, "cert_binding")
		if !slices.Equal(res.challenges, []string{dpopCertChallenge}) {
			t.Errorf("challenges %q, want [%q]", res.challenges, dpopCertChallenge)
		}
	}
	// The same proof, not spent by the refusals, with the certificate.
	res := x.do(req(tlsWith(cert), proof))
	wantStatus(t, res, 200)
	if got := res.up.header.Get("X-User-Id"); got != "alice" {
		t.Errorf("X-User-Id = %q, want alice", got)
	}
	if got := res.repl.ReplaceAll("{"+placeholderDPoPJKT+"}", ""); got != env.key.Thumbprint() {
		t.Errorf("dpop_jkt = %q", got)
	}

	// The certificate does not make up for a missing proof, nor turn the
	// DPoP-bound token into a bearer token.
	wantRefusal(t, x.do(req(tlsWith(cert))), 401, "dpop_proof")
	wantRefusal(t, x.do(certRequest(token, tlsWith(cert))), 401, "dpop_bound_as_bearer")
}
