package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity"
)

// TestE2EDPoPNonceThroughCaddy: Caddy with server nonces (dpop { nonce
// { secret {env.…} } }) in front of an upstream, a DPoP-bound token of
// oidc-provider, and the library's DPoP client: the first request is
// refused with use_dpop_nonce and a DPoP-Nonce, the automatic retry with
// that nonce passes, and the next request carries the remembered nonce
// and passes at once. The key keeps the provider's nonce and Caddy's
// apart (one per origin). A proof algorithm outside proof_algorithms is
// refused.
func TestE2EDPoPNonceThroughCaddy(t *testing.T) {
	t.Setenv("CADDY_IDENTITY_E2E_NONCE_SECRET", "e2e-nonce-secret-0123456789abcdefgh")
	p := startProvider(t, providerOptions{})
	c := startCaddy(t, identityBlockFor(p)+`
		dpop require {
			proof_algorithms ES256
			nonce {
				secret {env.CADDY_IDENTITY_E2E_NONCE_SECRET}
			}
		}`)
	key := newDPoPKey(t, "ES256")
	tok := dpopToken(t, p, key, resourceRS256)
	client, rec := newRecordingClient()

	call := func() caddyResponse {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, c.URL+"/orders", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := identity.DoDPoPRequest(clientsContext(t), client, key, req, tok)
		if err != nil {
			t.Fatal(err)
		}
		return c.readResponse(resp)
	}

	r := call()
	ex := rec.take()
	if r.Status != http.StatusOK || len(ex) != 2 {
		t.Fatalf("status %d after %d exchanges %+v, want 200 after a nonce retry", r.Status, len(ex), ex)
	}
	first, retry := ex[0], ex[1]
	if first.Status != http.StatusUnauthorized || !strings.Contains(first.WWWAuthenticate, `error="use_dpop_nonce"`) ||
		!strings.Contains(first.WWWAuthenticate, `algs="ES256"`) || first.DPoPNonce == "" {
		t.Errorf("first answer %+v, want 401 use_dpop_nonce with algs ES256 and a DPoP-Nonce", first)
	}
	if retry.Status != http.StatusOK || retry.DPoP == first.DPoP {
		t.Errorf("retry %+v, want 200 with a new proof", retry)
	}
	if got := key.Nonce(c.URL); got != first.DPoPNonce {
		t.Errorf("key remembers %q for Caddy, want its DPoP-Nonce %q", got, first.DPoPNonce)
	}
	if up := r.Upstream; up.Get("Authorization") != "" || up.Get("DPoP") != "" || up.Get("X-User-Id") == "" {
		t.Errorf("upstream headers %v: want the identity, without token or proof", up)
	}

	if r := call(); r.Status != http.StatusOK {
		t.Fatalf("second call: status %d (WWW-Authenticate %q)", r.Status, r.WWWAuthenticate)
	}
	if ex := rec.take(); len(ex) != 1 {
		t.Errorf("second call took %d exchanges %+v, want 1 (the nonce remembered)", len(ex), ex)
	}

	rsaKey := newDPoPKey(t, "RS256")
	rsaTok := dpopToken(t, p, rsaKey, resourceRS256)
	rsaKey.RememberNonce(c.URL, key.Nonce(c.URL))
	expectRefused(t, c.send(c.dpopRequest(rsaKey, rsaTok, "/", "")), `error="invalid_dpop_proof"`, "algorithm is not accepted")
}
