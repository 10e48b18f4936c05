package caddyidentity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"hash"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// This file builds attack tokens: every token a hostile client could send to
// trick a JWT validator. Nothing here talks to the handler; attack_test.go,
// fuzz_test.go and load_test.go feed these tokens through it.

// forgeB64 is base64url without padding, the JOSE encoding.
func forgeB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// forgeB64JSON marshals v and base64url-encodes it; v may be a map, a string of
// raw JSON (json.RawMessage) or any other value.
func forgeB64JSON(tb testing.TB, v any) string {
	tb.Helper()
	if raw, ok := v.(json.RawMessage); ok {
		return forgeB64(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("forge: marshal: %v", err)
	}
	return forgeB64(b)
}

// forgeSignRSA returns an RSASSA-PKCS1-v1_5 signature of input with h.
func forgeSignRSA(tb testing.TB, key *rsa.PrivateKey, h crypto.Hash, input string) []byte {
	tb.Helper()
	d := h.New()
	d.Write([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, d.Sum(nil))
	if err != nil {
		tb.Fatalf("forge: rsa sign: %v", err)
	}
	return sig
}

// forgeSignPSS returns an RSASSA-PSS signature (PS256) of input.
func forgeSignPSS(tb testing.TB, key *rsa.PrivateKey, input string) []byte {
	tb.Helper()
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		tb.Fatalf("forge: pss sign: %v", err)
	}
	return sig
}

// forgeSignES256 returns a JWS ES256 signature (r||s, 32 bytes each) of input.
func forgeSignES256(tb testing.TB, key *ecdsa.PrivateKey, input string) []byte {
	tb.Helper()
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		tb.Fatalf("forge: ecdsa sign: %v", err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// forgeSignES256DER returns an ASN.1 DER ECDSA signature: valid, but not the
// encoding JWS requires.
func forgeSignES256DER(tb testing.TB, key *ecdsa.PrivateKey, input string) []byte {
	tb.Helper()
	d := sha256.Sum256([]byte(input))
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		tb.Fatalf("forge: ecdsa sign: %v", err)
	}
	return sig
}

// forgeSignHMAC returns an HMAC of input keyed with secret.
func forgeSignHMAC(h func() hash.Hash, secret []byte, input string) []byte {
	m := hmac.New(h, secret)
	m.Write([]byte(input))
	return m.Sum(nil)
}

// attackerServer is a server the attacker controls: embedded jku/x5u
// headers and attacker issuers point at it. A safe validator never contacts
// it; Hits counts every request it received.
type attackerServer struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

// newAttackerServer serves the attacker's JWKS and certificate on every path
// and records each request. It is closed when tb ends.
func newAttackerServer(tb testing.TB, jwks, certPEM []byte) *attackerServer {
	tb.Helper()
	a := &attackerServer{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, ".pem"):
			w.Header().Set("Content-Type", "application/pem-certificate-chain")
			_, _ = w.Write(certPEM)
		case strings.HasSuffix(r.URL.Path, "openid-configuration"):
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer":                                "http://" + r.Host,
				"jwks_uri":                              "http://" + r.Host + "/jwks.json",
				"id_token_signing_alg_values_supported": []string{"RS256", "HS256", "none"},
			})
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(jwks)
		}
	}))
	tb.Cleanup(a.Close)
	return a
}

// Contacts returns the requests the attacker server has received.
func (a *attackerServer) Contacts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}

// forger mints tokens for one genuine issuer. It signs with the issuer's
// real keys (to isolate the one property under attack) or with keys of its
// own.
type forger struct {
	Issuer   string
	Audience string
	RSAKID   string
	RSAKey   *rsa.PrivateKey   // the issuer's genuine RS256 key
	ECKID    string            // "" when the issuer has no ES256 key
	ECKey    *ecdsa.PrivateKey // the issuer's genuine ES256 key, or nil
	JWKS     []byte            // the issuer's published JWKS, verbatim
	Now      func() time.Time

	EvilKID  string
	EvilRSA  *rsa.PrivateKey // the attacker's key
	EvilJWK  jose.JSONWebKey // its public JWK
	EvilCert []byte          // DER self-signed certificate of EvilRSA
	Attacker *attackerServer
}

// newForger prepares attacker keys and an attacker server for issuer.
// ecKey may be nil when the issuer has no ES256 key.
func newForger(tb testing.TB, issuer, audience, rsaKID string, rsaKey *rsa.PrivateKey, ecKID string, ecKey *ecdsa.PrivateKey, jwks []byte) *forger {
	tb.Helper()
	evil, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	f := &forger{
		Issuer: issuer, Audience: audience, RSAKID: rsaKID, RSAKey: rsaKey, ECKID: ecKID, ECKey: ecKey, JWKS: jwks,
		Now: time.Now, EvilKID: "attacker-key", EvilRSA: evil,
	}
	f.EvilJWK = jose.JSONWebKey{Key: &evil.PublicKey, KeyID: f.EvilKID, Algorithm: "RS256", Use: "sig"}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "attacker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	f.EvilCert, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &evil.PublicKey, evil)
	if err != nil {
		tb.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{f.EvilJWK}})
	if err != nil {
		tb.Fatal(err)
	}
	f.Attacker = newAttackerServer(tb, set, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.EvilCert}))
	return f
}

// issuerForger returns a forger for a test issuer, using its current RS256
// key and, when it signs ES256 too, its current ES256 key.
func issuerForger(tb testing.TB, iss *identitytest.Issuer, audience string) *forger {
	tb.Helper()
	rsKID := iss.CurrentKeyID("RS256")
	rsKey, ok := iss.PrivateKey(rsKID).(*rsa.PrivateKey)
	if !ok {
		tb.Fatalf("forge: issuer key %q is not RSA", rsKID)
	}
	var ecKID string
	var ecKey *ecdsa.PrivateKey
	if slices.Contains(iss.Algorithms(), "ES256") {
		ecKID = iss.CurrentKeyID("ES256")
		if ecKey, ok = iss.PrivateKey(ecKID).(*ecdsa.PrivateKey); !ok {
			tb.Fatalf("forge: issuer key %q is not ECDSA", ecKID)
		}
	}
	return newForger(tb, iss.URL, audience, rsKID, rsKey, ecKID, ecKey, iss.PublicJWKS())
}

// Claims returns the claims of a valid token with over applied: a nil value
// deletes the member, anything else sets it.
func (f *forger) Claims(over map[string]any) map[string]any {
	now := f.Now()
	c := map[string]any{
		"iss": f.Issuer,
		"sub": "user-1",
		"aud": f.Audience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Header returns a JOSE header {alg, kid} with over applied like Claims.
func (f *forger) Header(alg, kid string, over map[string]any) map[string]any {
	h := map[string]any{"alg": alg}
	if kid != "" {
		h["kid"] = kid
	}
	for k, v := range over {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	return h
}

// RS256 signs header and claims (maps or json.RawMessage) with the genuine
// RSA key.
func (f *forger) RS256(tb testing.TB, header, claims any) string {
	tb.Helper()
	in := forgeB64JSON(tb, header) + "." + forgeB64JSON(tb, claims)
	return in + "." + forgeB64(forgeSignRSA(tb, f.RSAKey, crypto.SHA256, in))
}

// Valid is a genuine RS256 token that the handler must accept.
func (f *forger) Valid(tb testing.TB) string {
	tb.Helper()
	return f.RS256(tb, f.Header("RS256", f.RSAKID, nil), f.Claims(nil))
}

// Oracle is the independent check of a token the handler accepted:
// go-jose verifies it with one of the issuer's published keys for the
// algorithms of attackHandler, and encoding/json reads iss, aud, exp, iat
// and nbf that fit the current time with the handler's default leeway.
func (f *forger) Oracle(tb testing.TB) identitytest.TokenCheck {
	tb.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(f.JWKS, &set); err != nil {
		tb.Fatalf("forge: the issuer's JWKS: %v", err)
	}
	return identitytest.TokenCheck{
		Algorithms: attackAlgorithms,
		Keys:       set,
		Issuer:     f.Issuer,
		Audience:   f.Audience,
		Now:        f.Now(),
		Leeway:     DefaultLeeway,
	}
}

// WithSig returns header and claims encoded with the given raw signature.
func (f *forger) WithSig(tb testing.TB, header, claims any, sig []byte) string {
	tb.Helper()
	return forgeB64JSON(tb, header) + "." + forgeB64JSON(tb, claims) + "." + forgeB64(sig)
}

// ValidWithClaims is a genuinely signed RS256 token with claims over.
func (f *forger) ValidWithClaims(tb testing.TB, over map[string]any) string {
	tb.Helper()
	return f.RS256(tb, f.Header("RS256", f.RSAKID, nil), f.Claims(over))
}

// forgedToken is one attack: a token the handler must refuse with 401
// invalid_token.
type forgedToken struct {
	Name  string
	Token string
}

// AttackTokens returns every forged token, grouped by attack class in the
// names. Each must be refused with 401 invalid_token, never reach the
// upstream and never make the validator contact the attacker server.
func (f *forger) AttackTokens(tb testing.TB) []forgedToken {
	tb.Helper()
	var out []forgedToken
	add := func(name, tok string) { out = append(out, forgedToken{Name: name, Token: tok}) }
	now := f.Now()
	valid := f.Valid(tb)
	vh, vp, vs := splitJWS(valid)
	claims := f.Claims(nil)
	rs := func(h any) string { return f.RS256(tb, h, claims) }
	hdr := func(over map[string]any) map[string]any { return f.Header("RS256", f.RSAKID, over) }

	// alg none, in several letter cases, with and without a signature.
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		for _, kid := range []string{"", f.RSAKID} {
			h := f.Header(alg, kid, nil)
			in := forgeB64JSON(tb, h) + "." + forgeB64JSON(tb, claims)
			suffix := "/nokid"
			if kid != "" {
				suffix = "/kid"
			}
			add("alg-none/"+alg+suffix+"/empty-sig", in+".")
			add("alg-none/"+alg+suffix+"/no-sig-part", in)
			add("alg-none/"+alg+suffix+"/garbage-sig", in+"."+forgeB64([]byte("signature")))
			add("alg-none/"+alg+suffix+"/rsa-sig", in+"."+forgeB64(forgeSignRSA(tb, f.RSAKey, crypto.SHA256, in)))
		}
	}
	// alg missing, empty, of the wrong type, wrong case, outside the
	// allow-list: all signed by the genuine key.
	add("alg/missing", rs(hdr(map[string]any{"alg": nil})))
	add("alg/empty", rs(hdr(map[string]any{"alg": ""})))
	add("alg/null", rs(json.RawMessage(`{"alg":null,"kid":`+forgeJSONString(f.RSAKID)+`}`)))
	add("alg/array", rs(hdr(map[string]any{"alg": []string{"RS256"}})))
	add("alg/number", rs(hdr(map[string]any{"alg": 256})))
	add("alg/lowercase-rs256", rs(hdr(map[string]any{"alg": "rs256"})))
	add("alg/trailing-space", rs(hdr(map[string]any{"alg": "RS256 "})))
	{
		h := f.Header("PS256", f.RSAKID, nil)
		in := forgeB64JSON(tb, h) + "." + forgeB64JSON(tb, claims)
		add("alg/not-allowed-PS256-by-genuine-key", in+"."+forgeB64(forgeSignPSS(tb, f.RSAKey, in)))
		h = f.Header("RS512", f.RSAKID, nil)
		in = forgeB64JSON(tb, h) + "." + forgeB64JSON(tb, claims)
		add("alg/not-allowed-RS512-by-genuine-key", in+"."+forgeB64(forgeSignRSA(tb, f.RSAKey, crypto.SHA512, in)))
	}

	// HS256/HS512 keyed with the RSA public key in every serialization the
	// issuer's key is known by (RS→HS key confusion).
	pub := &f.RSAKey.PublicKey
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	jwkJSON, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: f.RSAKID, Algorithm: "RS256", Use: "sig"})
	if err != nil {
		tb.Fatal(err)
	}
	secrets := []struct {
		name   string
		secret []byte
	}{
		{"pem-pkix", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})},
		{"pem-pkix-no-newline", []byte(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}))))},
		{"pem-pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})},
		{"der-pkix", pkix},
		{"der-pkcs1", pkcs1},
		{"jwk-json", jwkJSON},
		{"modulus", pub.N.Bytes()},
	}
	if len(f.JWKS) > 0 {
		secrets = append(secrets, struct {
			name   string
			secret []byte
		}{"jwks-json", f.JWKS})
	}
	for _, s := range secrets {
		for _, v := range []struct {
			alg string
			h   func() hash.Hash
		}{{"HS256", sha256.New}, {"HS512", sha512.New}} {
			for _, kid := range []string{f.RSAKID, ""} {
				h := f.Header(v.alg, kid, nil)
				in := forgeB64JSON(tb, h) + "." + forgeB64JSON(tb, claims)
				name := "hs-confusion/" + v.alg + "/" + s.name
				if kid == "" {
					name += "/nokid"
				}
				add(name, in+"."+forgeB64(forgeSignHMAC(v.h, s.secret, in)))
			}
		}
	}

	// kid values: unknown, path traversal, SQL, huge, control characters,
	// wrong types; all signed by the genuine key.
	add("kid/unknown", rs(hdr(map[string]any{"kid": "no-such-key"})))
	add("kid/path-traversal", rs(hdr(map[string]any{"kid": "../../etc/passwd"})))
	add("kid/path-traversal-dev-null", rs(hdr(map[string]any{"kid": "../../../../../../dev/null"})))
	add("kid/sql", rs(hdr(map[string]any{"kid": "' OR 1=1--"})))
	add("kid/sql-union", rs(hdr(map[string]any{"kid": "x' UNION SELECT 'secret"})))
	add("kid/nul-byte", rs(hdr(map[string]any{"kid": f.RSAKID + "\x00"})))
	add("kid/url", rs(hdr(map[string]any{"kid": f.Attacker.URL + "/jwks.json"})))
	add("kid/long-4KiB", rs(hdr(map[string]any{"kid": strings.Repeat("k", 4<<10)})))
	add("kid/number", rs(hdr(map[string]any{"kid": 1})))
	add("kid/object", rs(hdr(map[string]any{"kid": map[string]any{"$ne": ""}})))
	add("kid/attacker-key-unknown-kid", f.evil(tb, f.Header("RS256", "no-such-key", nil), claims))

	// Key sources named by the token itself: embedded jwk, jku, x5u, x5c.
	// The attacker signs with its own key; the server must not trust or
	// fetch any of them.
	evilJWK := map[string]any{}
	if b, err := json.Marshal(f.EvilJWK); err == nil {
		_ = json.Unmarshal(b, &evilJWK)
	}
	for _, kid := range []string{f.EvilKID, f.RSAKID, ""} {
		suffix := "/attacker-kid"
		switch kid {
		case f.RSAKID:
			suffix = "/genuine-kid"
		case "":
			suffix = "/nokid"
		}
		add("embedded/jwk"+suffix, f.evil(tb, f.Header("RS256", kid, map[string]any{"jwk": evilJWK}), claims))
		add("embedded/jku"+suffix, f.evil(tb, f.Header("RS256", kid, map[string]any{"jku": f.Attacker.URL + "/jwks.json"}), claims))
		add("embedded/x5u"+suffix, f.evil(tb, f.Header("RS256", kid, map[string]any{"x5u": f.Attacker.URL + "/cert.pem"}), claims))
		add("embedded/x5c"+suffix, f.evil(tb, f.Header("RS256", kid, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(f.EvilCert)}}), claims))
	}
	add("embedded/jku+x5u+jwk-all", f.evil(tb, f.Header("RS256", f.EvilKID, map[string]any{
		"jwk": evilJWK, "jku": f.Attacker.URL + "/jwks.json", "x5u": f.Attacker.URL + "/cert.pem",
	}), claims))
	add("embedded/jku-hs256-attacker-secret", func() string {
		h := f.Header("HS256", f.EvilKID, map[string]any{"jku": f.Attacker.URL + "/jwks.json"})
		in := forgeB64JSON(tb, h) + "." + forgeB64JSON(tb, claims)
		return in + "." + forgeB64(forgeSignHMAC(sha256.New, []byte("attacker"), in))
	}())
	// The attacker as issuer: discovery must never be driven by a token.
	add("issuer/attacker-server", f.evil(tb, f.Header("RS256", f.EvilKID, nil), f.Claims(map[string]any{"iss": f.Attacker.URL})))
	add("issuer/attacker-server-with-jku", f.evil(tb, f.Header("RS256", f.EvilKID, map[string]any{"jku": f.Attacker.URL + "/jwks.json"}), f.Claims(map[string]any{"iss": f.Attacker.URL})))

	// crit and b64.
	add("crit/unknown", rs(hdr(map[string]any{"crit": []string{"x-unknown"}, "x-unknown": true})))
	add("crit/unknown-absent-member", rs(hdr(map[string]any{"crit": []string{"x-unknown"}})))
	add("crit/not-array", rs(hdr(map[string]any{"crit": "x-unknown", "x-unknown": true})))
	add("crit/registered-name", rs(hdr(map[string]any{"crit": []string{"alg"}})))
	{
		h := hdr(map[string]any{"b64": false, "crit": []string{"b64"}})
		hb := forgeB64JSON(tb, h)
		payload, _ := json.Marshal(claims)
		sigRaw := forgeSignRSA(tb, f.RSAKey, crypto.SHA256, hb+"."+string(payload))
		add("b64-false/crit/raw-payload", hb+"."+string(payload)+"."+forgeB64(sigRaw))
		add("b64-false/crit/encoded-payload", hb+"."+forgeB64(payload)+"."+forgeB64(sigRaw))
		add("b64-false/crit/detached", hb+".."+forgeB64(sigRaw))
		h2 := hdr(map[string]any{"b64": false})
		hb2 := forgeB64JSON(tb, h2)
		add("b64-false/no-crit", hb2+"."+string(payload)+"."+forgeB64(forgeSignRSA(tb, f.RSAKey, crypto.SHA256, hb2+"."+string(payload))))
	}

	// Signatures: missing, by another key, tampered, malformed.
	add("sig/stripped", vh+"."+vp+".")
	add("sig/two-parts", vh+"."+vp)
	add("sig/other-key-same-kid", f.evil(tb, f.Header("RS256", f.RSAKID, nil), claims))
	add("sig/other-key-no-kid", f.evil(tb, f.Header("RS256", "", nil), claims))
	add("sig/bit-flipped", vh+"."+vp+"."+forgeFlipLastBit(tb, vs))
	add("sig/payload-swapped", vh+"."+forgeB64JSON(tb, f.Claims(map[string]any{"sub": "admin"}))+"."+vs)
	add("sig/header-swapped", forgeB64JSON(tb, hdr(map[string]any{"typ": "JWT"}))+"."+vp+"."+vs)
	nlen := (f.RSAKey.N.BitLen() + 7) / 8
	genuine := forgeDecode(tb, vs)
	add("rsa-sig/all-zero", f.WithSig(tb, hdr(nil), claims, make([]byte, nlen)))
	add("rsa-sig/all-ff", f.WithSig(tb, hdr(nil), claims, forgeRepeat(0xff, nlen)))
	add("rsa-sig/one-byte", f.WithSig(tb, hdr(nil), claims, []byte{1}))
	add("rsa-sig/short-by-one", f.WithSig(tb, hdr(nil), claims, genuine[1:]))
	add("rsa-sig/leading-zero-added", vh+"."+vp+"."+forgeB64(append([]byte{0}, genuine...)))
	add("rsa-sig/trailing-byte-added", vh+"."+vp+"."+forgeB64(append(append([]byte{}, genuine...), 0)))
	add("rsa-sig/equals-modulus", f.WithSig(tb, hdr(nil), claims, f.RSAKey.N.Bytes()))
	add("rsa-sig/huge", f.WithSig(tb, hdr(nil), claims, forgeRepeat(0x7f, 4*nlen)))

	if f.ECKey != nil {
		ech := f.Header("ES256", f.ECKID, nil)
		ecIn := forgeB64JSON(tb, ech) + "." + forgeB64JSON(tb, claims)
		order := f.ECKey.Curve.Params().N
		nBytes := order.FillBytes(make([]byte, 32))
		ec := func(name string, sig []byte) {
			out = append(out, forgedToken{Name: name, Token: ecIn + "." + forgeB64(sig)})
		}
		ec("ecdsa-sig/r=s=0", make([]byte, 64))
		ec("ecdsa-sig/all-ff", forgeRepeat(0xff, 64))
		ec("ecdsa-sig/r=s=n", append(append([]byte{}, nBytes...), nBytes...))
		ec("ecdsa-sig/r=s=1", append(append(make([]byte, 31), 1), append(make([]byte, 31), 1)...))
		good := forgeSignES256(tb, f.ECKey, ecIn)
		ec("ecdsa-sig/63-bytes", good[:63])
		ec("ecdsa-sig/65-bytes", append(append([]byte{}, good...), 0))
		ec("ecdsa-sig/128-bytes", append(append([]byte{}, good...), good...))
		ec("ecdsa-sig/der-encoded", forgeSignES256DER(tb, f.ECKey, ecIn))
		ec("ecdsa-sig/empty", nil)
		// r=s=0 with no kid as well: key selection by alg alone.
		noKid := forgeB64JSON(tb, f.Header("ES256", "", nil)) + "." + forgeB64JSON(tb, claims)
		out = append(out, forgedToken{Name: "ecdsa-sig/r=s=0/nokid", Token: noKid + "." + forgeB64(make([]byte, 64))})
		// An ES256 signature presented as RS256 and vice versa.
		rsIn := forgeB64JSON(tb, f.Header("RS256", f.ECKID, nil)) + "." + forgeB64JSON(tb, claims)
		out = append(out, forgedToken{Name: "ecdsa-sig/rs256-header-on-ec-kid", Token: rsIn + "." + forgeB64(forgeSignES256(tb, f.ECKey, rsIn))})
		esIn := forgeB64JSON(tb, f.Header("ES256", f.RSAKID, nil)) + "." + forgeB64JSON(tb, claims)
		out = append(out, forgedToken{Name: "ecdsa-sig/es256-header-on-rsa-kid", Token: esIn + "." + forgeB64(forgeSignES256(tb, f.ECKey, esIn))})
	}

	// Encoding: truncated, garbage base64, padding, wrong alphabet.
	add("encoding/truncated-1", valid[:len(valid)-1])
	add("encoding/truncated-half-sig", vh+"."+vp+"."+vs[:len(vs)/2])
	add("encoding/truncated-in-payload", vh+"."+vp[:len(vp)/2])
	add("encoding/header-only", vh)
	add("encoding/header-dot", vh+".")
	add("encoding/dots-only", "..")
	add("encoding/single-dot", ".")
	add("encoding/garbage", "!!!!.####.$$$$")
	add("encoding/garbage-base64-chars", "ab$c.de%f.gh&i")
	add("encoding/padded", forgePad(vh)+"."+forgePad(vp)+"."+forgePad(vs))
	add("encoding/std-alphabet", forgeStdAlphabet(vh)+"."+forgeStdAlphabet(vp)+"."+forgeStdAlphabet(vs)+"+/")
	add("encoding/non-ascii", vh+"."+vp+"."+vs+"é")
	add("encoding/extra-dot-end", valid+".")
	add("encoding/four-parts", valid+"."+vs)
	add("encoding/many-dots-4000", strings.Repeat(".", 4000))
	add("encoding/many-dots-in-sig", vh+"."+vp+"."+strings.Repeat(".", 2000))
	add("encoding/random-bytes-b64", forgeB64(forgeRandom(tb, 300)))

	// Header or payload not a JSON object.
	add("json/header-not-json", forgeB64([]byte("hello"))+"."+vp+"."+vs)
	add("json/header-array", forgeB64([]byte(`["RS256"]`))+"."+vp+"."+vs)
	add("json/header-string", forgeB64([]byte(`"RS256"`))+"."+vp+"."+vs)
	add("json/header-trailing-garbage", rs(json.RawMessage(`{"alg":"RS256","kid":`+forgeJSONString(f.RSAKID)+`}x`)))
	add("json/header-two-objects", rs(json.RawMessage(`{"alg":"RS256","kid":`+forgeJSONString(f.RSAKID)+`}{"alg":"none"}`)))
	add("json/header-empty", forgeB64([]byte{})+"."+vp+"."+vs)
	add("json/header-bom", rs(json.RawMessage("\xef\xbb\xbf"+`{"alg":"RS256","kid":`+forgeJSONString(f.RSAKID)+`}`)))
	add("json/payload-not-json", f.RS256(tb, hdr(nil), json.RawMessage("hello")))
	add("json/payload-array", f.RS256(tb, hdr(nil), json.RawMessage(`["admin"]`)))
	add("json/payload-null", f.RS256(tb, hdr(nil), json.RawMessage(`null`)))
	add("json/payload-empty", f.RS256(tb, hdr(nil), json.RawMessage(``)))
	{
		p, _ := json.Marshal(claims)
		add("json/payload-trailing-object", f.RS256(tb, hdr(nil), json.RawMessage(string(p)+`{"sub":"admin"}`)))
		add("json/payload-invalid-utf8", f.RS256(tb, hdr(nil), json.RawMessage(strings.Replace(string(p), `"user-1"`, "\"user-\xff\"", 1))))
	}

	// Duplicate member names: parsers disagree on which one wins.
	add("dup/header-alg-none-first", rs(json.RawMessage(`{"alg":"none","kid":`+forgeJSONString(f.RSAKID)+`,"alg":"RS256"}`)))
	add("dup/header-alg-none-last", rs(json.RawMessage(`{"alg":"RS256","kid":`+forgeJSONString(f.RSAKID)+`,"alg":"none"}`)))
	add("dup/header-kid", rs(json.RawMessage(`{"alg":"RS256","kid":"../../etc/passwd","kid":`+forgeJSONString(f.RSAKID)+`}`)))
	add("dup/payload-sub", f.RS256(tb, hdr(nil), forgeDupClaims(claims, "sub", "admin")))
	add("dup/payload-iss", f.RS256(tb, hdr(nil), forgeDupClaims(claims, "iss", "https://evil.example")))
	add("dup/payload-aud", f.RS256(tb, hdr(nil), forgeDupClaims(claims, "aud", "other")))
	add("dup/payload-exp", f.RS256(tb, hdr(nil), forgeDupClaims(claims, "exp", now.Add(-24*time.Hour).Unix())))
	{
		p, _ := json.Marshal(claims)
		nested := strings.TrimSuffix(string(p), "}") + `,"realm_access":{"roles":["user"],"roles":["admin"]}}`
		add("dup/payload-nested", f.RS256(tb, hdr(nil), json.RawMessage(nested)))
		deep := strings.TrimSuffix(string(p), "}") + `,"x":` + strings.Repeat("[", 2500) + strings.Repeat("]", 2500) + "}"
		add("json/payload-deep-nesting", f.RS256(tb, hdr(nil), json.RawMessage(deep)))
		add("json/header-deep-nesting", rs(json.RawMessage(`{"alg":"RS256","kid":`+forgeJSONString(f.RSAKID)+`,"x":`+strings.Repeat("[", 2000)+strings.Repeat("]", 2000)+`}`)))
	}

	// Claims of the wrong type.
	add("type/exp-string", f.ValidWithClaims(tb, map[string]any{"exp": "9999999999"}))
	add("type/exp-bool", f.ValidWithClaims(tb, map[string]any{"exp": true}))
	add("type/exp-null", f.RS256(tb, hdr(nil), forgeRawClaim(claims, "exp", "null")))
	add("type/exp-object", f.ValidWithClaims(tb, map[string]any{"exp": map[string]any{"$gt": 0}}))
	add("type/nbf-string", f.ValidWithClaims(tb, map[string]any{"nbf": "0"}))
	add("type/iat-string", f.ValidWithClaims(tb, map[string]any{"iat": "0"}))
	add("type/aud-number", f.ValidWithClaims(tb, map[string]any{"aud": 123}))
	add("type/aud-array-of-numbers", f.ValidWithClaims(tb, map[string]any{"aud": []int{1, 2}}))
	add("type/aud-object", f.ValidWithClaims(tb, map[string]any{"aud": map[string]any{"api": true}}))
	add("type/aud-array-mixed", f.ValidWithClaims(tb, map[string]any{"aud": []any{f.Audience, 1}}))
	add("type/iss-number", f.ValidWithClaims(tb, map[string]any{"iss": 1}))
	add("type/iss-array", f.ValidWithClaims(tb, map[string]any{"iss": []string{f.Issuer}}))
	add("type/sub-object", f.ValidWithClaims(tb, map[string]any{"sub": map[string]any{"id": "admin"}}))

	// Other serializations: JWE, nested JWT, JSON serialization.
	{
		jweHdr := forgeB64JSON(tb, map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM", "kid": f.RSAKID})
		add("jwe/5-parts", jweHdr+"."+forgeB64(forgeRandom(tb, 256))+"."+forgeB64(forgeRandom(tb, 12))+"."+forgeB64(forgeRandom(tb, 64))+"."+forgeB64(forgeRandom(tb, 16)))
		dirHdr := forgeB64JSON(tb, map[string]any{"alg": "dir", "enc": "A128GCM", "kid": f.RSAKID})
		add("jwe/dir-empty-key", dirHdr+".."+forgeB64(forgeRandom(tb, 12))+"."+forgeB64(forgeRandom(tb, 64))+"."+forgeB64(forgeRandom(tb, 16)))
		add("jwe/5-parts-of-jws", vh+"."+vp+"."+vs+"."+vp+"."+vs)
		add("nested/cty-jwt", f.RS256(tb, hdr(map[string]any{"cty": "JWT"}), json.RawMessage(valid)))
		add("nested/cty-jwt-inner-none", f.RS256(tb, hdr(map[string]any{"cty": "JWT"}),
			json.RawMessage(forgeB64JSON(tb, map[string]any{"alg": "none"})+"."+forgeB64JSON(tb, f.Claims(map[string]any{"sub": "admin"}))+".")))
		add("json-serialization", `{"payload":"`+vp+`","protected":"`+vh+`","signature":"`+vs+`"}`)
	}

	// Size: refused before parsing.
	add("size/9KiB-genuinely-signed", f.ValidWithClaims(tb, map[string]any{"pad": strings.Repeat("a", 9<<10)}))
	add("size/9KiB-garbage", strings.Repeat("A", 9<<10))
	add("size/12KiB-many-dots", strings.Repeat("a.", 6<<10))

	// Issuer and audience.
	add("iss/trailing-slash", f.ValidWithClaims(tb, map[string]any{"iss": f.Issuer + "/"}))
	add("iss/upper-case", f.ValidWithClaims(tb, map[string]any{"iss": strings.ToUpper(f.Issuer)}))
	add("iss/upper-case-scheme", f.ValidWithClaims(tb, map[string]any{"iss": forgeUpperScheme(f.Issuer)}))
	add("iss/trailing-space", f.ValidWithClaims(tb, map[string]any{"iss": f.Issuer + " "}))
	add("iss/fragment", f.ValidWithClaims(tb, map[string]any{"iss": f.Issuer + "#"}))
	add("iss/dot-segment", f.ValidWithClaims(tb, map[string]any{"iss": f.Issuer + "/."}))
	add("iss/other", f.ValidWithClaims(tb, map[string]any{"iss": "https://evil.example"}))
	add("iss/empty", f.ValidWithClaims(tb, map[string]any{"iss": ""}))
	add("iss/missing", f.ValidWithClaims(tb, map[string]any{"iss": nil}))
	add("aud/other", f.ValidWithClaims(tb, map[string]any{"aud": "other"}))
	add("aud/others-array", f.ValidWithClaims(tb, map[string]any{"aud": []string{"other", "another"}}))
	add("aud/upper-case", f.ValidWithClaims(tb, map[string]any{"aud": strings.ToUpper(f.Audience)}))
	add("aud/prefix", f.ValidWithClaims(tb, map[string]any{"aud": f.Audience + "x"}))
	add("aud/empty", f.ValidWithClaims(tb, map[string]any{"aud": ""}))
	add("aud/empty-array", f.ValidWithClaims(tb, map[string]any{"aud": []string{}}))
	add("aud/missing", f.ValidWithClaims(tb, map[string]any{"aud": nil}))

	// Time: expired, not yet valid, issued in the future, missing.
	add("time/expired-10min", f.ValidWithClaims(tb, map[string]any{"exp": now.Add(-10 * time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix()}))
	add("time/expired-epoch", f.ValidWithClaims(tb, map[string]any{"exp": 1}))
	add("time/exp-negative", f.ValidWithClaims(tb, map[string]any{"exp": -1}))
	add("time/exp-missing", f.ValidWithClaims(tb, map[string]any{"exp": nil}))
	add("time/nbf-future", f.ValidWithClaims(tb, map[string]any{"nbf": now.Add(time.Hour).Unix()}))
	add("time/iat-future", f.ValidWithClaims(tb, map[string]any{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}))
	add("time/iat-far-future", f.ValidWithClaims(tb, map[string]any{"iat": now.AddDate(100, 0, 0).Unix(), "exp": now.AddDate(101, 0, 0).Unix()}))
	add("time/iat-missing", f.ValidWithClaims(tb, map[string]any{"iat": nil}))
	return out
}

// evil signs header and claims with the attacker's RSA key.
func (f *forger) evil(tb testing.TB, header, claims any) string {
	tb.Helper()
	in := forgeB64JSON(tb, header) + "." + forgeB64JSON(tb, claims)
	return in + "." + forgeB64(forgeSignRSA(tb, f.EvilRSA, crypto.SHA256, in))
}

// RandomKID is a genuinely signed token whose kid the issuer never
// published (the random-kid flood of the load test).
func (f *forger) RandomKID(tb testing.TB) string {
	tb.Helper()
	return f.RS256(tb, f.Header("RS256", forgeB64(forgeRandom(tb, 12)), nil), f.Claims(nil))
}

// splitJWS splits a compact JWS into its three segments.
func splitJWS(tok string) (h, p, s string) {
	h, rest, _ := strings.Cut(tok, ".")
	p, s, _ = strings.Cut(rest, ".")
	return h, p, s
}

// forgeJSONString quotes s as a JSON string.
func forgeJSONString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// forgeDupClaims returns the JSON of claims with name repeated: first the
// genuine value, then value. Go's encoding/json keeps the last one.
func forgeDupClaims(claims map[string]any, name string, value any) json.RawMessage {
	b, _ := json.Marshal(claims)
	v, _ := json.Marshal(value)
	s := strings.TrimSuffix(string(b), "}") + `,"` + name + `":` + string(v) + "}"
	return json.RawMessage(s)
}

// forgeRawClaim returns the JSON of claims with name set to raw JSON.
func forgeRawClaim(claims map[string]any, name, raw string) json.RawMessage {
	c := make(map[string]any, len(claims))
	for k, v := range claims {
		c[k] = v
	}
	c[name] = json.RawMessage(raw)
	b, _ := json.Marshal(c)
	return json.RawMessage(b)
}

// forgeDecode decodes a base64url segment.
func forgeDecode(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		tb.Fatalf("forge: decode %q: %v", s, err)
	}
	return b
}

// forgeFlipLastBit flips the low bit of the last signature byte.
func forgeFlipLastBit(tb testing.TB, sig string) string {
	b := forgeDecode(tb, sig)
	b[len(b)-1] ^= 1
	return forgeB64(b)
}

// forgeRepeat returns n copies of c.
func forgeRepeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// forgeRandom returns n random bytes.
func forgeRandom(tb testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

// forgePad adds the '=' padding RFC 7515 forbids.
func forgePad(s string) string {
	if m := len(s) % 4; m != 0 {
		return s + strings.Repeat("=", 4-m)
	}
	return s + "===="
}

// forgeStdAlphabet rewrites base64url characters to the standard alphabet.
func forgeStdAlphabet(s string) string {
	return strings.NewReplacer("-", "+", "_", "/").Replace(s)
}

// forgeUpperScheme upper-cases the scheme of a URL ("HTTP://host").
func forgeUpperScheme(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	return strings.ToUpper(scheme) + "://" + rest
}
