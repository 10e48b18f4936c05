package identity_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// The key-dependent files under testdata/ are the project's own and made by
// TestTestdata:
//
//	IDENTITY_WRITE_TESTDATA=1 go test -count=1 -run '^TestTestdata$' ./identity/
//
// writes a fresh RSA key to testdata/signing-key.jwk.json and signs the
// FuzzValidate seeds that carry its signatures; without the variable the test
// checks that the committed files are what it would write.
const (
	testdataKeyFile  = "testdata/signing-key.jwk.json"
	testdataKeyID    = "test-key-1"
	testdataSeedDir  = "testdata/fuzz/FuzzValidate"
	testdataWriteEnv = "IDENTITY_WRITE_TESTDATA"
)

// keySignedSeeds are the FuzzValidate seeds signed with the testdata key,
// header and payload byte for byte.
var keySignedSeeds = []struct{ name, alg, header, payload string }{
	{"valid_rs256", "RS256", `{"alg":"RS256","kid":"test-key-1","typ":"at+jwt"}`,
		`{"aud":"test-client","exp":1700003600,"iat":1699999940,"iss":"https://issuer.example.com","nbf":1699999940,"scope":"a b","sub":"user-123"}`},
	{"valid_ps256", "PS256", `{"alg":"PS256","kid":"test-key-1","typ":"JWT"}`,
		`{"aud":"test-client","exp":1700003600,"iat":1699999940,"iss":"https://issuer.example.com","nbf":1699999940,"realm_access":{"roles":["r"]},"scp":["x"],"sub":"user-123"}`},
	{"expired", "RS256", `{"alg":"RS256","kid":"test-key-1","typ":"at+jwt"}`,
		`{"aud":"test-client","exp":1699996400,"iat":1699999940,"iss":"https://issuer.example.com","nbf":1699999940,"sub":"user-123"}`},
	{"unknown_kid_jwk", "RS256", `{"alg":"RS256","jku":"https://evil.example/jwks","kid":"other"}`,
		`{"aud":"test-client","exp":1700003600,"iat":1699999940,"iss":"https://issuer.example.com","nbf":1699999940,"sub":"user-123"}`},
}

// derivedSeeds are the seeds that reuse the parts of valid_rs256 (given as
// its three segments): a real signature under "alg":"None", and the token
// reshaped into the five segments of a JWE.
var derivedSeeds = []struct {
	name string
	make func(seg []string) string
}{
	{"alg_none_sig", func(seg []string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"None"}`)) + "." + seg[1] + "." + seg[2]
	}},
	{"jwe", func(seg []string) string { return seg[0] + ".." + seg[1] + "." + seg[2] + ".x" }},
}

func TestTestdata(t *testing.T) {
	if os.Getenv(testdataWriteEnv) == "1" {
		writeTestdata(t)
	}
	key := valFixtureKey(t).priv.(*rsa.PrivateKey)
	if key.N.BitLen() != 2048 {
		t.Fatalf("%s: RSA key of %d bits, want 2048", testdataKeyFile, key.N.BitLen())
	}
	for _, s := range keySignedSeeds {
		seg := strings.Split(readSeed(t, s.name), ".")
		if len(seg) != 3 || seg[0] != b64url(s.header) || seg[1] != b64url(s.payload) {
			t.Errorf("%s: header or payload differ from keySignedSeeds (run %s=1 to rewrite)", s.name, testdataWriteEnv)
			continue
		}
		if err := verifyRSA(&key.PublicKey, s.alg, seg[0]+"."+seg[1], seg[2]); err != nil {
			t.Errorf("%s: not signed with %s: %v (run %s=1 to rewrite)", s.name, testdataKeyFile, err, testdataWriteEnv)
		}
	}
	valid := strings.Split(readSeed(t, "valid_rs256"), ".")
	for _, s := range derivedSeeds {
		if got, want := readSeed(t, s.name), s.make(valid); got != want {
			t.Errorf("%s = %q, want %q derived from valid_rs256", s.name, got, want)
		}
	}
}

// writeTestdata replaces the testdata key and every seed that depends on it.
func writeTestdata(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.MarshalIndent(jose.JSONWebKey{Key: priv, KeyID: testdataKeyID, Algorithm: "RS256", Use: "sig"}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(testdataKeyFile, append(jwk, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range keySignedSeeds {
		writeSeed(t, s.name, valMintRaw(t, s.alg, priv, []byte(s.header), []byte(s.payload)))
	}
	valid := strings.Split(readSeed(t, "valid_rs256"), ".")
	for _, s := range derivedSeeds {
		writeSeed(t, s.name, s.make(valid))
	}
	t.Logf("wrote %s and %d seeds under %s", testdataKeyFile, len(keySignedSeeds)+len(derivedSeeds), testdataSeedDir)
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// verifyRSA checks a JWS signature of alg RS256 or PS256 over input.
func verifyRSA(pub *rsa.PublicKey, alg, input, sig string) error {
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(input))
	switch alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], raw)
	case "PS256":
		return rsa.VerifyPSS(pub, crypto.SHA256, digest[:], raw, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return fmt.Errorf("no RSA algorithm %s", alg)
}

// seedHeader is the first line of a file of Go's fuzzing corpus.
const seedHeader = "go test fuzz v1\n"

func readSeed(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataSeedDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	if _, err := fmt.Sscanf(string(bytes.TrimPrefix(b, []byte(seedHeader))), "string(%q)", &tok); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tok
}

func writeSeed(t *testing.T, name, tok string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(testdataSeedDir, name), fmt.Appendf([]byte(seedHeader), "string(%q)\n", tok), 0o644); err != nil {
		t.Fatal(err)
	}
}
