package identity_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// A client makes one DPoP key and keeps it for as long as its tokens live.
func ExampleNewDPoPKey() {
	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		fmt.Println(err)
		return
	}
	pub := key.PublicJWK()
	fmt.Println(key.Algorithm(), pub.IsPublic(), len(key.Thumbprint()))

	_, err = identity.NewDPoPKey("HS256")
	fmt.Println(errors.Is(err, identity.ErrUnsupportedAlg))
	// Output:
	// ES256 true 43
	// true
}

// A stored private JWK restores the key, and with it the binding (cnf.jkt)
// of the tokens issued for it.
func ExampleLoadDPoPKey() {
	var private jose.JSONWebKey
	_ = json.Unmarshal([]byte(`{"kty":"EC","crv":"P-256",
		"x":"R1_cAR40t8_oOmoq64DJKyCn_wp_M-31Vxx1KavGTtg",
		"y":"dkMh8R65lFQdtRvkgJ2Ebqp7IcAjS2xhCAUNAHyRaDI",
		"d":"gOyNSPMCSgKYfSJOVyQE3sJrr4AZ2eaY7Gr6IvYVNYM"}`), &private)
	key, err := identity.LoadDPoPKey(private)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(key.Algorithm(), key.Thumbprint())
	// Output: ES256 x4bBYZ9vUTI9MboLfj1FuSMrI-sh5I8nTTPhZCHmDac
}

// A proof for a protected resource carries the hash of the access token;
// query and fragment are not part of htu.
func ExampleDPoPKey_Proof() {
	key, _ := identity.NewDPoPKey("ES256")
	proof, err := key.Proof(identity.DPoPProofOptions{
		Method:      http.MethodGet,
		URI:         "https://resource.example.com/protectedresource?page=2",
		AccessToken: "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
		Method: http.MethodGet,
		URI:    "https://resource.example.com/protectedresource",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Method, p.URI)
	fmt.Println(p.AccessTokenHash)
	// Output:
	// GET https://resource.example.com/protectedresource
	// fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo
}

// A resource server checks the proof against the request and the access
// token's cnf.jkt, and answers a failure with the error code the client
// understands.
func ExampleVerifyDPoPProof() {
	key, _ := identity.NewDPoPKey("ES256")
	const token = "access-token"
	client, _ := http.NewRequest(http.MethodGet, "https://api.example/orders", nil)
	_ = key.AuthorizeRequest(client, token)

	// On the server: the token was validated, its cnf.jkt is key.Thumbprint().
	proof, err := identity.DPoPProofFromHeader(client.Header)
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := identity.DPoPVerifyOptions{
		Method:      http.MethodGet,
		URI:         "https://api.example/orders",
		AccessToken: strings.TrimPrefix(client.Header.Get("Authorization"), "DPoP "),
		BoundJKT:    key.Thumbprint(),
	}
	_, err = identity.VerifyDPoPProof(proof, opts)
	fmt.Println("valid:", err == nil)

	opts.URI = "https://api.example/admin"
	_, err = identity.VerifyDPoPProof(proof, opts)
	var pe *identity.DPoPProofError
	if errors.As(err, &pe) {
		fmt.Println("refused:", pe.Check, pe.ErrorCode())
	}
	// Output:
	// valid: true
	// refused: htu invalid_dpop_proof
}

// A resource server that wants a DPoP nonce gets it on the one automatic
// retry, and the key remembers it for the next request to that server.
// (Token requests carry proofs, with the same retry, when
// ProtocolRequest.DPoP is set.)
func ExampleDoDPoPRequest() {
	key, _ := identity.NewDPoPKey("ES256")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", "server-nonce")
		proof, _ := identity.DPoPProofFromHeader(r.Header)
		if _, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
			Method: r.Method, URI: "http://" + r.Host + r.URL.Path, Nonce: "server-nonce",
			AccessToken: strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP "), BoundJKT: key.Thumbprint(),
		}); err != nil {
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "orders")
	}))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/orders", nil)
	resp, err := identity.DoDPoPRequest(req.Context(), srv.Client(), key, req, "access-token")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), key.Nonce(srv.URL))
	// Output: 200 orders server-nonce
}

// A fleet of resource servers issues DPoP nonces without shared state:
// every server keyed with the same secret sends the same nonce in a slot
// and accepts the others'. A proof without one is refused with
// use_dpop_nonce, and the server sends the current nonce along.
func ExampleDPoPNonces() {
	secret := []byte("a secret of at least 32 bytes, shared by the fleet")
	a, _ := identity.NewDPoPNonces(secret, 5*time.Minute)
	b, _ := identity.NewDPoPNonces(secret, 5*time.Minute)
	now := time.Now()
	fmt.Println("the other server accepts the nonce:", b.Valid(a.Nonce(now), now))
	fmt.Println("still, one lifetime later:", b.Valid(a.Nonce(now), now.Add(5*time.Minute)))
	fmt.Println("two lifetimes later:", b.Valid(a.Nonce(now), now.Add(10*time.Minute)))

	key, _ := identity.NewDPoPKey("ES256")
	proof, _ := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: "https://api.example/orders"})
	_, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
		Method: http.MethodGet, URI: "https://api.example/orders", Nonces: b, Now: now,
	})
	var pe *identity.DPoPProofError
	if errors.As(err, &pe) {
		fmt.Println("refused:", pe.Check, pe.ErrorCode())
	}
	// Output:
	// the other server accepts the nonce: true
	// still, one lifetime later: true
	// two lifetimes later: false
	// refused: nonce use_dpop_nonce
}
