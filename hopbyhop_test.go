package caddyidentity

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Hop-by-hop tricks against the identity headers, through a real Caddy
// with reverse_proxy: reverse_proxy deletes every header the Connection
// header names (RFC 9110 §7.6.1) and passes declared request trailers on,
// both after this handler has run. A client must not be able to choose
// which identity headers the upstream loses, nor add its own in trailers.

// trailerRecorder is an upstream that remembers the headers and the
// trailers of the last request, read after its body.
type trailerRecorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	header  http.Header
	trailer http.Header
}

func newTrailerRecorder(t *testing.T) *trailerRecorder {
	rec := &trailerRecorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.header, rec.trailer = r.Header.Clone(), r.Trailer.Clone()
		rec.mu.Unlock()
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// take returns and clears what the upstream saw.
func (rec *trailerRecorder) take() (http.Header, http.Header) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	h, tr := rec.header, rec.trailer
	rec.header, rec.trailer = nil, nil
	return h, tr
}

func (rec *trailerRecorder) addr() string { return strings.TrimPrefix(rec.srv.URL, "http://") }

func TestCaddyConnectionCannotDropIdentityHeaders(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newTrailerRecorder(t)
	tester := ctLoad(t, fmt.Sprintf(`%s {
	route /opt/* {
		identity {
			issuer %[2]s
			audience api
			optional
			claim_header sub X-User-Id
			claim_header groups X-User-Groups
		}
		request_header X-User-Groups guest
		reverse_proxy %[3]s
	}
	route /hdr/* {
		identity {
			issuer %[2]s
			audience api
			token_from header X-Token
			forward_token
			claim_header sub X-User-Id
		}
		reverse_proxy %[3]s
	}
	route {
		identity {
			issuer %[2]s
			audience api
			claim_header sub X-User-Id
			claim_header groups X-User-Groups
			strip_header X-Internal
		}
		reverse_proxy %[3]s
	}
}
`, ctSite, iss.URL, up.addr()))
	tok := iss.Token(t, "alice", map[string]any{"groups": []any{"dev"}})
	key := newDPoPKey(t)
	bound := boundToken(t, iss, key, map[string]any{"groups": []any{"dev"}})

	for _, c := range []struct {
		name, path, connection string
		hdr                    [][2]string
		want                   map[string]string
	}{
		{"bearer", "/", "keep-alive, X-User-Id, X-User-Groups", [][2]string{authz(tok)},
			map[string]string{"X-User-Id": "alice", "X-User-Groups": "dev"}},
		{"bearer, every spelling", "/", "x-user-id,X_USER_GROUPS , x_user_id, X-User-ID", [][2]string{authz(tok)},
			map[string]string{"X-User-Id": "alice", "X-User-Groups": "dev"}},
		{"bearer, split Connection lines", "/", "X-User-Id", [][2]string{authz(tok), {"Connection", "keep-alive"}, {"Connection", "X-User-Groups"}},
			map[string]string{"X-User-Id": "alice", "X-User-Groups": "dev"}},
		{"dpop", "/", "X-User-Id, X-User-Groups, DPoP, Authorization",
			[][2]string{{"Authorization", "DPoP " + bound}, {"DPoP", proofFor(t, key, "GET", ctSite+"/", bound)}},
			map[string]string{"X-User-Id": "alice", "X-User-Groups": "dev"}},
		{"optional, anonymous", "/opt/a", "X-User-Groups", nil,
			map[string]string{"X-User-Groups": "guest"}},
		{"optional, with a token", "/opt/a", "X-User-Id", [][2]string{authz(tok)},
			map[string]string{"X-User-Id": "alice", "X-User-Groups": "guest"}},
		{"forwarded token header", "/hdr/a", "X-Token, X_Token, X-User-Id", [][2]string{{"X-Token", tok}},
			map[string]string{"X-User-Id": "alice", "X-Token": tok}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hdr := append([][2]string{{"Connection", c.connection}}, c.hdr...)
			if st, ch, _ := ctDo(t, tester, c.path, hdr); st != http.StatusOK {
				t.Fatalf("status %d %q", st, ch)
			}
			seen, _ := up.take()
			for k, v := range c.want {
				if got := seen.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
		})
	}

	// Other Connection options still take effect: a header the client
	// names that is no identity header is its own business.
	st, _, _ := ctDo(t, tester, "/", [][2]string{authz(tok), {"Connection", "X-User-Id, X-Other"}, {"X-Other", "x"}})
	if seen, _ := up.take(); st != http.StatusOK || seen.Get("X-Other") != "" || seen.Get("X-User-Id") != "alice" {
		t.Fatalf("status %d, upstream %v: want X-Other dropped and X-User-Id kept", st, seen)
	}
}

func TestCaddyTrailersCannotCarryIdentityHeaders(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newTrailerRecorder(t)
	tester := ctLoad(t, fmt.Sprintf(`%s {
	route /opt/* {
		identity {
			issuer %[2]s
			audience api
			optional
			strip_header X-Internal
		}
		reverse_proxy %[3]s
	}
	route {
		identity {
			issuer %[2]s
			audience api
			claim_header sub X-User-Id
			strip_header X-Internal
		}
		reverse_proxy %[3]s
	}
}
`, ctSite, iss.URL, up.addr()))
	tok := iss.Token(t, "alice", nil)
	for _, path := range []string{"/", "/opt/a"} {
		t.Run(path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ctSite+path, io.NopCloser(strings.NewReader("body")))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1 // chunked, so that trailers can follow
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Trailer = http.Header{"X-User-Id": {"evil"}, "X_internal": {"evil"}, "X-Keep": {"kept"}}
			resp, err := tester.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			seen, trailer := up.take()
			if trailer.Get("X-Keep") != "kept" {
				t.Fatalf("the ordinary trailer did not reach the upstream (trailer %v): the test proves nothing", trailer)
			}
			for k, vs := range trailer {
				for _, v := range vs {
					if v == "evil" {
						t.Errorf("trailer %s: %s reached the upstream", k, v)
					}
				}
			}
			if path == "/" && seen.Get("X-User-Id") != "alice" {
				t.Errorf("upstream X-User-Id %q", seen.Get("X-User-Id"))
			}
		})
	}
}
