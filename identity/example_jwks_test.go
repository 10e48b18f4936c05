package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// A JWK Set is parsed key by key: entries that cannot verify signatures are
// skipped with a reason instead of making the whole set unusable.
func ExampleParseKeySet() {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	data, _ := json.Marshal(map[string]any{"keys": []any{
		jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
		jose.JSONWebKey{Key: edPub, KeyID: "ed-1", Use: "sig"},
		map[string]any{"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
		map[string]any{"kty": "OKP", "crv": "X25519", "kid": "ecdh", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
	}})

	set, err := identity.ParseKeySet(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("usable:", set.Len())
	for _, s := range set.Skipped() {
		fmt.Printf("skipped #%d %s: %s\n", s.Index, s.KeyID, s.Reason)
	}
	fmt.Println(len(set.Candidates("ec-1", "ES256")), len(set.Candidates("ec-1", "RS256")))
	// A token without kid matches the single key fitting its algorithm.
	fmt.Println(set.Candidates("", "EdDSA")[0].JWK.KeyID)
	// Output:
	// usable: 2
	// skipped #2 shared: symmetric key in a public key set
	// skipped #3 ecdh: unsupported key parameters (curve or size)
	// 1 0
	// ed-1
}

// A RemoteKeySet caches a provider's keys: an unknown kid (after a key
// rotation) forces one rate-limited refresh whose result the caller uses.
func ExampleNewRemoteKeySet() {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var (
		mu        sync.Mutex
		published = []jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
		fetches   atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: published})
	}))
	defer srv.Close()

	// A tiny cooldown for the example; the default is 5 s.
	keys, err := identity.NewRemoteKeySet(srv.URL, identity.RemoteKeySetOptions{
		HTTPClient:      srv.Client(),
		RefreshCooldown: time.Nanosecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer keys.Close()
	ctx := context.Background()

	found, _ := keys.CandidateKeys(ctx, "k1", "ES256")
	fmt.Println(found[0].JWK.KeyID, fetches.Load())

	// The provider rotates to k2.
	mu.Lock()
	published = append(published, jose.JSONWebKey{Key: &k2.PublicKey, KeyID: "k2", Algorithm: "ES256", Use: "sig"})
	mu.Unlock()
	found, _ = keys.CandidateKeys(ctx, "k2", "ES256")
	fmt.Println(found[0].JWK.KeyID, fetches.Load())

	_, err = keys.CandidateKeys(ctx, "k1", "EdDSA")
	fmt.Println(errors.Is(err, identity.ErrKeyNotFound))
	// Output:
	// k1 1
	// k2 2
	// true
}
