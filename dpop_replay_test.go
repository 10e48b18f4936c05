package caddyidentity

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// proofWithJTI signs a proof by key for GET uri bound to token, with the
// given jti (Proof always picks its own).
func proofWithJTI(t *testing.T, key *identity.DPoPKey, uri, token, jti string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(identity.JWTTypeDPoPProof).WithHeader("jwk", key.PublicJWK())
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm()), Key: key.PrivateJWK().Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(map[string]any{
		"jti": jti, "htm": http.MethodGet, "htu": uri, "iat": time.Now().Unix(), "ath": identity.DPoPAccessTokenHash(token),
	})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// currentConfig returns the JSON config the in-process Caddy runs.
func currentConfig(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/config/", ctAdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /config/: %d %v", resp.StatusCode, err)
	}
	return b
}

// TestCaddyDPoPReplayAcrossReloads: a proof accepted once is refused
// after the config is loaded again (the same config, forced, and a
// changed one), and by another site of the same Caddy: the replay cache
// is shared by every handler and outlives reloads.
func TestCaddyDPoPReplayAcrossReloads(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newRecorder(t)
	site := func(realm string) string {
		return fmt.Sprintf(`%s {
	handle /other/* {
		identity {
			issuer %s
			audience api
		}
		reverse_proxy %s
	}
	handle {
		identity {
			issuer %s
			audience api
			realm %s
		}
		reverse_proxy %s
	}
}
`, ctSite, iss.URL, up.addr(), iss.URL, realm, up.addr())
	}
	tester := ctLoad(t, site("one"))
	refs, ok := replayPool.References(replayPoolKey)
	if !ok {
		t.Fatal("no shared replay cache after loading a config with DPoP handlers")
	}
	key := newDPoPKey(t)
	tok := boundToken(t, iss, key, nil)
	send := func(path, proof string) (int, string) {
		t.Helper()
		st, ch, _ := ctDo(t, tester, path, [][2]string{{"Authorization", "DPoP " + tok}, {"DPoP", proof}})
		return st, ch
	}
	refused := func(what string, st int, ch string) {
		t.Helper()
		if st != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_dpop_proof"`) {
			t.Errorf("%s: %d %q, want 401 invalid_dpop_proof", what, st, ch)
		}
	}

	first := proofFor(t, key, http.MethodGet, ctSite+"/a", tok)
	if st, ch := send("/a", first); st != http.StatusOK {
		t.Fatalf("first use: %d %q", st, ch)
	}
	st, ch := send("/a", first)
	refused("replay, same config", st, ch)

	// The same config, forced: every handler is provisioned again.
	if err := caddy.Load(currentConfig(t), true); err != nil {
		t.Fatal(err)
	}
	st, ch = send("/a", first)
	refused("replay after reloading the same config", st, ch)

	// A changed config.
	tester = ctLoad(t, site("two"))
	st, ch = send("/a", first)
	refused("replay after loading a changed config", st, ch)
	if st, ch := send("/b", proofFor(t, key, http.MethodGet, ctSite+"/b", tok)); st != http.StatusOK {
		t.Fatalf("a fresh proof after the reloads: %d %q", st, ch)
	}

	// Another handler takes a proof for its URI, once, whichever handler
	// of this Caddy saw it first.
	second := proofFor(t, key, http.MethodGet, ctSite+"/other/x", tok)
	if st, ch := send("/other/x", second); st != http.StatusOK {
		t.Fatalf("other handler, first use: %d %q", st, ch)
	}
	if err := caddy.Load(currentConfig(t), true); err != nil {
		t.Fatal(err)
	}
	st, ch = send("/other/x", second)
	refused("replay at the other handler after a reload", st, ch)

	// jti length: at the cap accepted, over it refused.
	uri := ctSite + "/c"
	if st, ch := send("/c", proofWithJTI(t, key, uri, tok, strings.Repeat("a", identity.MaxDPoPJTIBytes))); st != http.StatusOK {
		t.Fatalf("jti of %d bytes: %d %q", identity.MaxDPoPJTIBytes, st, ch)
	}
	st, ch = send("/c", proofWithJTI(t, key, uri, tok, strings.Repeat("b", identity.MaxDPoPJTIBytes+1)))
	refused("jti over the cap", st, ch)

	if n, _ := replayPool.References(replayPoolKey); n != refs {
		t.Errorf("replay cache references = %d after the reloads, %d before: the old configs' handlers did not release it", n, refs)
	}
}
