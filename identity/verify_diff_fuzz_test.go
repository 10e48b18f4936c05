package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// diffAlgorithms is the allow-list of both verifiers in FuzzVerifyDiff:
// every algorithm the package verifies.
var diffAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
}

// diffFixture holds the keys of FuzzVerifyDiff: one per key type and curve,
// plus an RSA key too small to be used, and the HMAC secret.
type diffFixture struct {
	signers []crypto.Signer
	keys    []jose.JSONWebKey // public, same order
	secret  []byte
	cert    []byte // a self-signed DER certificate, for x5c seeds
}

func newDiffFixture(tb testing.TB) *diffFixture {
	tb.Helper()
	fx := &diffFixture{secret: []byte("diff-fuzz-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef")}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		tb.Fatal(err)
	}
	fx.signers = append(fx.signers, rsaKey)
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		fx.signers = append(fx.signers, k)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	fx.signers = append(fx.signers, ed, small)
	for _, s := range fx.signers {
		fx.keys = append(fx.keys, jose.JSONWebKey{Key: s.Public(), Use: "sig"})
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "diff"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	if fx.cert, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, rsaKey.Public(), rsaKey); err != nil {
		tb.Fatal(err)
	}
	return fx
}

// signer returns the index of the fixture key that signs alg.
func (fx *diffFixture) signer(alg string) int {
	switch {
	case strings.HasPrefix(alg, "ES"):
		return map[string]int{"ES256": 1, "ES384": 2, "ES512": 3}[alg]
	case alg == "EdDSA":
		return 4
	}
	return 0
}

// mint signs header and payload (JSON) with alg and the fixture key i (the
// secret for HS*), with the standard library, as an issuer would.
func (fx *diffFixture) mint(tb testing.TB, alg string, i int, header map[string]any, payload string) string {
	tb.Helper()
	h := map[string]any{"alg": alg, "kid": "k1", "typ": "JWT"}
	for k, v := range header {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return input + "." + base64.RawURLEncoding.EncodeToString(fx.sign(tb, alg, i, input, rsa.PSSSaltLengthEqualsHash))
}

// sign computes the JWS signature of input; salt is the PSS salt length.
func (fx *diffFixture) sign(tb testing.TB, alg string, i int, input string, salt int) []byte {
	tb.Helper()
	if _, isHMAC := hmacMinSecret(alg); isHMAC {
		m := hmac.New(hmacHash(alg), fx.secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
	h, d := jwsDigest(alg, input)
	var (
		sig []byte
		err error
	)
	switch k := fx.signers[i].(type) {
	case *rsa.PrivateKey:
		if alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, k, h, d.sum(), &rsa.PSSOptions{SaltLength: salt})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, d.sum())
		}
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, k, d.sum()); err == nil {
			size := (k.Curve.Params().BitSize + 7) / 8
			sig = make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	}
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// errFront marks a refusal by the strict parser and the header rules that
// come before any key is used: canonical base64url, JSON without duplicate
// members, typed header members, cty JWT, crit and b64 — rules this package
// applies on top of go-jose's, deliberately.
var errFront = errors.New("refused before verification")

// verifyNew is the JWS part of Validator.Validate for one key: the steps,
// in order, that decide whether a token's signature is accepted.
func (fx *diffFixture) verifyNew(token string, key int) error {
	jws, err := parseCompact(token, DefaultMaxTokenBytes)
	if err != nil {
		return errFront
	}
	h := &jws.header
	if strings.EqualFold(h.alg, "none") {
		return ErrAlgNone
	}
	if !slices.Contains(diffAlgorithms, h.alg) {
		return ErrUnsupportedAlg
	}
	if h.checkCritical() != nil {
		return errFront
	}
	if err := h.checkJOSEMembers(); err != nil {
		return err
	}
	if len(jws.signature) == 0 {
		return ErrSignature
	}
	if _, isHMAC := hmacMinSecret(h.alg); isHMAC {
		return verifySignature(h.alg, fx.secret, jws.signingInput, jws.signature)
	}
	k := Key{JWK: fx.keys[key], Thumbprint: "k"}
	_, err = tryKeys([]Key{k}, nil, h, jws.signingInput, jws.signature)
	return err
}

// verifyJOSE is what the validator did before: go-jose's parser with the
// same allow-list, the same key checks, and go-jose's verification.
func (fx *diffFixture) verifyJOSE(token string, key int) error {
	algs := make([]jose.SignatureAlgorithm, len(diffAlgorithms))
	for i, a := range diffAlgorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	sig, err := jose.ParseSigned(token, algs)
	if err != nil {
		return err
	}
	alg := sig.Signatures[0].Header.Algorithm
	if _, isHMAC := hmacMinSecret(alg); isHMAC {
		_, err = sig.Verify(fx.secret)
		return err
	}
	if err := checkKeyForAlg(alg, &fx.keys[key]); err != nil {
		return err
	}
	_, err = sig.Verify(fx.keys[key].Key)
	return err
}

// pssAnySalt reports whether token is a PS* token whose signature verifies
// under key with some salt length other than the hash length: go-jose
// accepts any salt length, RFC 7518 §3.5 (and this package) only the hash
// length.
func (fx *diffFixture) pssAnySalt(token string, key int) bool {
	jws, err := parseCompact(token, DefaultMaxTokenBytes)
	if err != nil || !strings.HasPrefix(jws.header.alg, "PS") {
		return false
	}
	pub, ok := fx.keys[key].Key.(*rsa.PublicKey)
	if !ok {
		return false
	}
	h, d := jwsDigest(jws.header.alg, jws.signingInput)
	return rsa.VerifyPSS(pub, h, d.sum(), jws.signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
}

// FuzzVerifyDiff checks the package's own signature verification against
// go-jose's on the same tokens, keys and allow-list: whatever this package
// accepts, go-jose accepts; whatever go-jose accepts, this package accepts
// too, unless its strict parser refused the token first (errFront) or the
// token is RSASSA-PSS with a salt length other than the hash length. Seeds:
// a valid token of every algorithm, each verified with every key, and
// mutations of the signature, the header and the encoding.
func FuzzVerifyDiff(f *testing.F) {
	fx := newDiffFixture(f)
	payload := `{"iss":"https://issuer.example","sub":"u1","aud":"api","exp":4102444800,"iat":1700000000}`
	for _, alg := range diffAlgorithms {
		tok := fx.mint(f, alg, fx.signer(alg), nil, payload)
		if errNew, errJOSE := fx.verifyNew(tok, fx.signer(alg)), fx.verifyJOSE(tok, fx.signer(alg)); errNew != nil || errJOSE != nil {
			f.Fatalf("valid %s seed refused: %v, go-jose: %v", alg, errNew, errJOSE)
		}
		for i := range fx.keys {
			f.Add(tok, uint8(i))
		}
		head, sig, _ := cutLast(tok)
		raw, _ := base64.RawURLEncoding.DecodeString(sig)
		raw[len(raw)/2] ^= 1
		f.Add(head+"."+base64.RawURLEncoding.EncodeToString(raw), uint8(fx.signer(alg)))
		f.Add(head+"."+base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), uint8(fx.signer(alg)))
		f.Add(head+".", uint8(fx.signer(alg)))
	}
	i := fx.signer("RS256")
	pub := fx.keys[i]
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	var jwk map[string]any
	if err := json.Unmarshal(pubJSON, &jwk); err != nil {
		f.Fatal(err)
	}
	for _, hdr := range []map[string]any{
		{"jwk": jwk}, {"jwk": map[string]any{"kty": "RSA"}}, {"jwk": "x"}, {"jwk": map[string]any{"kty": "oct", "k": "AAAA"}},
		{"x5c": []string{base64.StdEncoding.EncodeToString(fx.cert)}}, {"x5c": []string{"AAAA"}}, {"x5c": "x"}, {"x5c": []any{nil}},
		{"nonce": "n"}, {"nonce": 1}, {"crit": []string{"b64"}, "b64": false}, {"b64": true}, {"kid": nil},
		{"x5t": "abc"}, {"cty": "JWT"}, {"alg": "none"}, {"alg": "RS256 "}, {"typ": 1},
	} {
		f.Add(fx.mint(f, "RS256", i, hdr, payload), uint8(i))
	}
	// Not JSON objects, duplicate members, a non-canonical signature tail.
	input := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","alg":"RS256"}`)) + ".e30"
	f.Add(input+"."+base64.RawURLEncoding.EncodeToString(fx.sign(f, "RS256", i, input, 0)), uint8(i))
	rs := fx.mint(f, "RS256", i, nil, payload)
	f.Add(rs[:len(rs)-1]+string(rs[len(rs)-1]^1), uint8(i))
	// ECDSA: an ASN.1 signature, R zero, R with its high bit set.
	es := fx.mint(f, "ES256", 1, nil, payload)
	head, sig, _ := cutLast(es)
	raw, _ := base64.RawURLEncoding.DecodeString(sig)
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	if asn1, err := encodeECDSAForTest(r, s); err == nil {
		f.Add(head+"."+base64.RawURLEncoding.EncodeToString(asn1), uint8(1))
	}
	zero := append(make([]byte, 32), raw[32:]...)
	f.Add(head+"."+base64.RawURLEncoding.EncodeToString(zero), uint8(1))
	high := append([]byte{0xff}, raw[1:]...)
	f.Add(head+"."+base64.RawURLEncoding.EncodeToString(high), uint8(1))
	// PSS with the largest salt: go-jose accepts it, RFC 7518 does not.
	ps := fx.mint(f, "PS256", i, nil, payload)
	head, _, _ = cutLast(ps)
	maxSalt := head + "." + base64.RawURLEncoding.EncodeToString(fx.sign(f, "PS256", i, head, rsa.PSSSaltLengthAuto))
	if fx.verifyNew(maxSalt, i) == nil || fx.verifyJOSE(maxSalt, i) != nil {
		f.Fatal("a PSS signature with the largest salt: want refused here and accepted by go-jose")
	}
	f.Add(maxSalt, uint8(i))

	f.Fuzz(func(t *testing.T, token string, key uint8) {
		k := int(key) % len(fx.keys)
		errNew := fx.verifyNew(token, k)
		errJOSE := fx.verifyJOSE(token, k)
		switch {
		case errNew == nil && errJOSE != nil:
			t.Fatalf("accepted here, refused by go-jose (%v)", errJOSE)
		case errNew != nil && errJOSE == nil && !errors.Is(errNew, errFront) && !fx.pssAnySalt(token, k):
			t.Fatalf("refused here (%v), accepted by go-jose", errNew)
		}
	})
}

// cutLast splits a token before its last dot.
func cutLast(tok string) (head, last string, ok bool) {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return tok, "", false
	}
	return tok[:i], tok[i+1:], true
}

// encodeECDSAForTest is the ASN.1 form of an ECDSA signature, which JWS
// does not use.
func encodeECDSAForTest(r, s *big.Int) ([]byte, error) {
	b, ok := ecdsaDER(nil, r.Bytes(), s.Bytes())
	if !ok {
		return nil, errors.New("zero")
	}
	return b, nil
}
