package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Hardening of every outbound call: size caps, key-count caps, redirects
// refused to other hosts, timeouts. The servers below behave like a hostile
// or broken identity provider.

// countingServer is an httptest server that counts its requests.
type countingServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// jsonBody serves body as application/json.
func jsonBody(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

// hangUntilClientGoes blocks until the client gives up or the test ends.
func hangUntilClientGoes(done <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
}

// endlessJSON streams a never-ending JSON document.
func endlessJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"keys":[`))
	chunk := []byte(strings.Repeat(" ", 32<<10))
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// rsaJWKS returns a JWKS with n distinct 2048-bit RSA public keys (the same
// key material under different kids: parsing cost is what matters).
func rsaJWKS(t *testing.T, n int) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{}
	for i := range n {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: fmt.Sprintf("k%d", i), Algorithm: "RS256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHardeningFetchKeySetSizeCap(t *testing.T) {
	good := rsaJWKS(t, 1)
	padded := append([]byte(`{"padding":"`+strings.Repeat("x", 2<<20)+`",`), good[1:]...)
	srv := newCountingServer(t, jsonBody(padded))
	ctx := context.Background()

	if _, _, err := identity.FetchKeySet(ctx, nil, srv.URL, identity.FetchKeySetOptions{}); !errors.Is(err, identity.ErrBodyTooLarge) {
		t.Errorf("2 MiB JWKS with the default cap: err = %v, want ErrBodyTooLarge", err)
	}
	if _, _, err := identity.FetchKeySet(ctx, nil, srv.URL, identity.FetchKeySetOptions{MaxBytes: 4 << 10}); !errors.Is(err, identity.ErrBodyTooLarge) {
		t.Errorf("2 MiB JWKS with a 4 KiB cap: err = %v, want ErrBodyTooLarge", err)
	}
	exact := newCountingServer(t, jsonBody(good))
	if _, _, err := identity.FetchKeySet(ctx, nil, exact.URL, identity.FetchKeySetOptions{MaxBytes: int64(len(good))}); err != nil {
		t.Errorf("JWKS of exactly the cap: %v", err)
	}
	if _, _, err := identity.FetchKeySet(ctx, nil, exact.URL, identity.FetchKeySetOptions{MaxBytes: int64(len(good) - 1)}); !errors.Is(err, identity.ErrBodyTooLarge) {
		t.Errorf("JWKS one byte over the cap: err = %v, want ErrBodyTooLarge", err)
	}
}

func TestHardeningFetchKeySetEndlessBody(t *testing.T) {
	srv := newCountingServer(t, endlessJSON)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := identity.FetchKeySet(ctx, nil, srv.URL, identity.FetchKeySetOptions{})
	if !errors.Is(err, identity.ErrBodyTooLarge) {
		t.Fatalf("endless JWKS: err = %v, want ErrBodyTooLarge", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("endless JWKS refused only after %v", d)
	}
}

func TestHardeningKeyCountCap(t *testing.T) {
	over := rsaJWKS(t, identity.DefaultMaxKeys+1)
	if _, err := identity.ParseKeySet(over); !errors.Is(err, identity.ErrInvalidKeySet) {
		t.Errorf("%d keys: err = %v, want ErrInvalidKeySet", identity.DefaultMaxKeys+1, err)
	}
	atCap := rsaJWKS(t, identity.DefaultMaxKeys)
	if s, err := identity.ParseKeySet(atCap); err != nil || s.Len() != identity.DefaultMaxKeys {
		t.Errorf("%d keys: err = %v", identity.DefaultMaxKeys, err)
	}
	if _, err := identity.ParseKeySetWithOptions(rsaJWKS(t, 3), identity.ParseKeySetOptions{MaxKeys: 2}); !errors.Is(err, identity.ErrInvalidKeySet) {
		t.Errorf("3 keys with MaxKeys 2: err = %v, want ErrInvalidKeySet", err)
	}
	srv := newCountingServer(t, jsonBody(over))
	if _, _, err := identity.FetchKeySet(context.Background(), nil, srv.URL, identity.FetchKeySetOptions{}); !errors.Is(err, identity.ErrInvalidKeySet) {
		t.Errorf("fetched set of %d keys: err = %v, want ErrInvalidKeySet", identity.DefaultMaxKeys+1, err)
	}
	// Unusable entries count against the cap too: a set padded with junk
	// entries must not cost unbounded work.
	junk := `{"keys":[` + strings.TrimSuffix(strings.Repeat(`{"kty":"unknown"},`, 10000), ",") + `]}`
	if _, err := identity.ParseKeySet([]byte(junk)); !errors.Is(err, identity.ErrInvalidKeySet) {
		t.Errorf("10000 junk entries: err = %v, want ErrInvalidKeySet", err)
	}
}

func TestHardeningFetchKeySetRedirects(t *testing.T) {
	good := rsaJWKS(t, 1)
	other := newCountingServer(t, jsonBody(good))
	ctx := context.Background()

	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprintf("cross-host-%d", code), func(t *testing.T) {
			other.hits.Store(0)
			src := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/jwks", code)
			})
			_, _, err := identity.FetchKeySet(ctx, nil, src.URL+"/jwks", identity.FetchKeySetOptions{})
			if !errors.Is(err, identity.ErrRedirect) {
				t.Errorf("err = %v, want ErrRedirect", err)
			}
			if n := other.hits.Load(); n != 0 {
				t.Errorf("the other host was contacted %d times", n)
			}
		})
	}
	t.Run("same-host", func(t *testing.T) {
		var srv *countingServer
		srv = newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, srv.URL+"/new", http.StatusFound)
				return
			}
			jsonBody(good)(w, r)
		})
		if _, _, err := identity.FetchKeySet(ctx, nil, srv.URL+"/old", identity.FetchKeySetOptions{}); err != nil {
			t.Errorf("same-host redirect: %v", err)
		}
	})
	t.Run("loop", func(t *testing.T) {
		srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
		})
		_, _, err := identity.FetchKeySet(ctx, nil, srv.URL+"/a", identity.FetchKeySetOptions{})
		if !errors.Is(err, identity.ErrRedirect) {
			t.Errorf("redirect loop: err = %v, want ErrRedirect", err)
		}
		if n := srv.hits.Load(); n > 10 {
			t.Errorf("followed %d redirects", n)
		}
	})
}

func TestHardeningFetchKeySetTimeouts(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	srv := newCountingServer(t, hangUntilClientGoes(done))

	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, _, err := identity.FetchKeySet(ctx, nil, srv.URL, identity.FetchKeySetOptions{}); err == nil {
			t.Fatal("hanging JWKS server: no error")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("returned after %v, want about 300ms", d)
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		start := time.Now()
		if _, _, err := identity.FetchKeySet(context.Background(), &http.Client{Timeout: 300 * time.Millisecond}, srv.URL, identity.FetchKeySetOptions{}); err == nil {
			t.Fatal("hanging JWKS server: no error")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("returned after %v, want about 300ms", d)
		}
	})
	t.Run("default timeout", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for DefaultHTTPTimeout")
		}
		start := time.Now()
		if _, _, err := identity.FetchKeySet(context.Background(), &http.Client{}, srv.URL, identity.FetchKeySetOptions{}); err == nil {
			t.Fatal("hanging JWKS server: no error")
		}
		if d := time.Since(start); d > identity.DefaultHTTPTimeout+3*time.Second {
			t.Errorf("returned after %v, want at most DefaultHTTPTimeout (%v)", d, identity.DefaultHTTPTimeout)
		}
	})
}

func TestHardeningFetchKeySetRefusals(t *testing.T) {
	good := rsaJWKS(t, 1)
	ctx := context.Background()
	cases := []struct {
		name string
		h    http.HandlerFunc
		want error
	}{
		{"html content type", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write(good)
		}, identity.ErrContentType},
		{"status 500", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, strings.Repeat("e", 1<<20), http.StatusInternalServerError)
		}, identity.ErrHTTPStatus},
		{"empty set", jsonBody([]byte(`{"keys":[]}`)), identity.ErrInvalidKeySet},
		{"garbage", jsonBody([]byte("\x00\xff<html>")), identity.ErrInvalidKeySet},
		{"keys not an array", jsonBody([]byte(`{"keys":{"kty":"RSA"}}`)), identity.ErrInvalidKeySet},
		{"only private keys", jsonBody(privateJWKS(t)), identity.ErrInvalidKeySet},
		{"only symmetric keys", jsonBody([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}`)), identity.ErrInvalidKeySet},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newCountingServer(t, c.h)
			_, _, err := identity.FetchKeySet(ctx, nil, srv.URL, identity.FetchKeySetOptions{})
			if !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
			if err != nil && len(err.Error()) > 2<<10 {
				t.Errorf("error message of %d bytes: the response body leaks into errors", len(err.Error()))
			}
		})
	}
	t.Run("plain http to a non-loopback host", func(t *testing.T) {
		_, _, err := identity.FetchKeySet(ctx, nil, "http://keys.example.com/jwks", identity.FetchKeySetOptions{})
		if !errors.Is(err, identity.ErrHTTPSRequired) {
			t.Errorf("err = %v, want ErrHTTPSRequired", err)
		}
	})
	t.Run("not a URL", func(t *testing.T) {
		for _, u := range []string{"", "file:///etc/passwd", "/jwks", "gopher://127.0.0.1/", "http://"} {
			if _, _, err := identity.FetchKeySet(ctx, nil, u, identity.FetchKeySetOptions{}); err == nil {
				t.Errorf("%q: no error", u)
			}
		}
	})
}

// privateJWKS is a set whose only key carries private material.
func privateJWKS(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "priv", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHardeningTokenEndpoint(t *testing.T) {
	const secret = "s3cr3t-client-secret-value"
	ctx := context.Background()
	req := func(addr string) identity.ClientCredentialsTokenRequest {
		return identity.ClientCredentialsTokenRequest{ProtocolRequest: identity.ProtocolRequest{
			Address:    addr,
			ClientAuth: identity.ClientSecretBasicAuth("client", secret),
		}}
	}
	okBody := []byte(`{"access_token":"at","token_type":"Bearer","expires_in":60}`)

	t.Run("size cap", func(t *testing.T) {
		big := append([]byte(`{"access_token":"at","token_type":"Bearer","pad":"`+strings.Repeat("x", 2<<20)), `"}`...)
		srv := newCountingServer(t, jsonBody(big))
		if _, err := identity.RequestClientCredentialsToken(ctx, nil, req(srv.URL)); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("2 MiB token response: err = %v, want ErrBodyTooLarge", err)
		}
		r := req(srv.URL)
		r.MaxResponseBytes = 1 << 10
		if _, err := identity.RequestClientCredentialsToken(ctx, nil, r); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("2 MiB token response, 1 KiB cap: err = %v, want ErrBodyTooLarge", err)
		}
	})
	t.Run("endless body", func(t *testing.T) {
		srv := newCountingServer(t, endlessJSON)
		start := time.Now()
		if _, err := identity.RequestClientCredentialsToken(ctx, nil, req(srv.URL)); !errors.Is(err, identity.ErrBodyTooLarge) {
			t.Errorf("endless token response: err = %v, want ErrBodyTooLarge", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("refused only after %v", d)
		}
	})
	t.Run("cross-host redirect", func(t *testing.T) {
		var leaked atomic.Bool
		other := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.Header.Get("Authorization"), "Basic") {
				leaked.Store(true)
			}
			jsonBody(okBody)(w, r)
		})
		for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
			src := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/token", code)
			})
			_, err := identity.RequestClientCredentialsToken(ctx, nil, req(src.URL+"/token"))
			if !errors.Is(err, identity.ErrRedirect) {
				t.Errorf("%d to another host: err = %v, want ErrRedirect", code, err)
			}
		}
		if n := other.hits.Load(); n != 0 {
			t.Errorf("the other host was contacted %d times", n)
		}
		if leaked.Load() {
			t.Error("client credentials were sent to the other host")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		done := make(chan struct{})
		defer close(done)
		srv := newCountingServer(t, hangUntilClientGoes(done))
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := identity.RequestClientCredentialsToken(c, nil, req(srv.URL)); err == nil {
			t.Fatal("hanging token endpoint: no error")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("returned after %v", d)
		}
	})
	t.Run("secret not in errors", func(t *testing.T) {
		srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		})
		for _, addr := range []string{srv.URL, srv.URL + "/?client_secret=" + secret} {
			_, err := identity.RequestClientCredentialsToken(ctx, nil, req(addr))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the client secret", err)
			}
		}
	})
	t.Run("plain http refused", func(t *testing.T) {
		_, err := identity.RequestClientCredentialsToken(ctx, nil, req("http://idp.example.com/token"))
		if !errors.Is(err, identity.ErrHTTPSRequired) {
			t.Errorf("err = %v, want ErrHTTPSRequired", err)
		}
	})
}
