package caddyidentity

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Identity header spoofing: a client sends its own copies of the headers
// the handler sets (or is told to strip), in every spelling a backend might
// fold together: letter case, '_' for '-' (CGI, PHP, WSGI and Rack map both
// to HTTP_X_USER_ID; oauth2-proxy CVE-2025-64484), duplicates, empty
// values. None may reach the upstream, on any path, and none may be left in
// the request for handle_errors routes after a refusal.

// spoofMarker is in every spoofed value.
const spoofMarker = "spoofed"

// spoofHandler sets X-User-Id, X-User-Email and X-User-Roles from claims
// and strips X-Admin and X_Legacy_User (configured with an underscore).
func spoofHandler(iss *identitytest.Issuer) *Handler {
	h := attackHandler(iss)
	h.ClaimHeaders = []ClaimHeader{
		{Claim: "sub", Header: "X-User-Id"},
		{Claim: "email", Header: "X-User-Email"},
		{Claim: "roles", Header: "X-User-Roles"},
	}
	h.StripHeaders = []string{"X-Admin", "X_Legacy_User"}
	return h
}

// spoofProtected are the normalized names of every protected header.
var spoofProtected = []string{"x-user-id", "x-user-email", "x-user-roles", "x-admin", "x-legacy-user"}

// spoofNorm lowers ASCII letters and maps '_' to '-'.
func spoofNorm(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// spellings returns the variants of a header name a client could send.
func spellings(name string) []string {
	alt := []byte(strings.ToLower(name))
	for i := range alt {
		if i%2 == 0 && alt[i] >= 'a' && alt[i] <= 'z' {
			alt[i] -= 'a' - 'A'
		}
	}
	under := strings.ReplaceAll(name, "-", "_")
	dash := strings.ReplaceAll(name, "_", "-")
	firstOnly := strings.Replace(dash, "-", "_", 1)
	return uniqueStrings([]string{
		name, dash, under,
		strings.ToLower(dash), strings.ToUpper(dash), string(alt),
		strings.ToLower(under), strings.ToUpper(under), firstOnly,
	})
}

func uniqueStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// spoofLines returns raw header lines for one spelling: a value, a
// duplicate, an empty value and a blank value.
func spoofLines(spelling string) []string {
	return []string{
		spelling + ": " + spoofMarker + "-1",
		spelling + ": " + spoofMarker + "-2",
		spelling + ":",
		spelling + ":    ",
	}
}

// allSpoofLines is every spelling of every protected header.
func allSpoofLines() []string {
	var lines []string
	for _, n := range []string{"X-User-Id", "X-User-Email", "X-User-Roles", "X-Admin", "X_Legacy_User"} {
		for _, sp := range spellings(n) {
			lines = append(lines, sp+": "+spoofMarker)
		}
	}
	return lines
}

// rawRequest builds a raw HTTP/1.1 GET with the given header lines.
func rawRequest(s *identityServer, lines ...string) string {
	var b strings.Builder
	b.WriteString("GET /spoof HTTP/1.1\r\nHost: " + s.Listener.Addr().String() + "\r\nConnection: close\r\n")
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// checkUpstreamHeader fails when a protected header reached the upstream
// in another spelling than the configured one or with a value other than
// the verified one (want: canonical name → values; absent means none).
func checkUpstreamHeader(t *testing.T, hdr http.Header, want map[string][]string) {
	t.Helper()
	for k, vs := range hdr {
		for _, v := range vs {
			if strings.Contains(v, spoofMarker) {
				t.Errorf("spoofed %s: %q reached the upstream", k, v)
			}
		}
		n := spoofNorm(k)
		for _, p := range spoofProtected {
			if n != p {
				continue
			}
			w, ok := want[k]
			if !ok {
				t.Errorf("protected header %q = %q reached the upstream", k, vs)
				continue
			}
			if strings.Join(vs, "\x00") != strings.Join(w, "\x00") {
				t.Errorf("%s = %q, want exactly %q", k, vs, w)
			}
		}
	}
	for k, w := range want {
		if got := hdr[k]; strings.Join(got, "\x00") != strings.Join(w, "\x00") {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
}

// checkStripped fails when a refused request still carries a protected
// header (handle_errors routes would see it).
func checkStripped(t *testing.T, hdr http.Header) {
	t.Helper()
	for k, vs := range hdr {
		n := spoofNorm(k)
		for _, p := range spoofProtected {
			if n == p {
				t.Errorf("after the refusal the request still has %s: %q", k, vs)
			}
		}
	}
}

// spoofPath is one way through the handler.
type spoofPath struct {
	name   string
	auth   func(f *forger, t *testing.T) []string // Authorization lines
	status int
	// want is the upstream's identity headers on success.
	want map[string][]string
}

func spoofPaths() []spoofPath {
	valid := map[string][]string{"X-User-Id": {"user-1"}, "X-User-Email": {"u1@example.com"}, "X-User-Roles": {"a, b"}}
	return []spoofPath{
		{"accepted", func(f *forger, t *testing.T) []string {
			return []string{"Authorization: Bearer " + f.ValidWithClaims(t, map[string]any{"email": "u1@example.com", "roles": []string{"a", "b"}})}
		}, http.StatusOK, valid},
		{"accepted-claims-absent", func(f *forger, t *testing.T) []string {
			return []string{"Authorization: Bearer " + f.Valid(t)}
		}, http.StatusOK, map[string][]string{"X-User-Id": {"user-1"}}},
		{"rejected-missing-token", func(*forger, *testing.T) []string { return nil }, http.StatusUnauthorized, nil},
		{"rejected-invalid-token", func(f *forger, t *testing.T) []string {
			return []string{"Authorization: Bearer " + f.ValidWithClaims(t, map[string]any{"aud": "other"})}
		}, http.StatusUnauthorized, nil},
		{"rejected-forged-signature", func(f *forger, t *testing.T) []string {
			return []string{"Authorization: Bearer " + f.evil(t, f.Header("RS256", f.RSAKID, nil), f.Claims(nil))}
		}, http.StatusUnauthorized, nil},
		{"rejected-invalid-request", func(f *forger, t *testing.T) []string {
			v := f.Valid(t)
			return []string{"Authorization: Bearer " + v, "Authorization: Bearer " + v}
		}, http.StatusBadRequest, nil},
	}
}

// TestSpoofHeaders sends every spelling of every protected header, one
// spelling per request and all at once, on each path.
func TestSpoofHeaders(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	s := newIdentityServer(t, spoofHandler(iss), nil)
	runSpoofPaths(t, s, f, spoofPaths())
}

// TestSpoofHeadersOptional: with optional, anonymous requests pass without
// any protected header, and bad tokens are still refused with the request
// stripped.
func TestSpoofHeadersOptional(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	h := spoofHandler(iss)
	h.Optional = true
	s := newIdentityServer(t, h, nil)
	paths := spoofPaths()
	for i := range paths {
		if paths[i].name == "rejected-missing-token" {
			paths[i] = spoofPath{"optional-anonymous", paths[i].auth, http.StatusOK, map[string][]string{}}
		}
	}
	runSpoofPaths(t, s, f, paths)
}

// TestSpoofHeadersForbidden: a valid token lacking a required scope (403).
func TestSpoofHeadersForbidden(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	h := spoofHandler(iss)
	h.RequireScopes = []string{"admin"}
	s := newIdentityServer(t, h, nil)
	runSpoofPaths(t, s, f, []spoofPath{
		{"forbidden-scope", func(f *forger, t *testing.T) []string {
			return []string{"Authorization: Bearer " + f.ValidWithClaims(t, map[string]any{"scope": "read"})}
		}, http.StatusForbidden, nil},
		{"accepted-with-scope", func(f *forger, t *testing.T) []string {
			return []string{"Authorization: Bearer " + f.ValidWithClaims(t, map[string]any{"scope": "read admin"})}
		}, http.StatusOK, map[string][]string{"X-User-Id": {"user-1"}}},
	})
}

func runSpoofPaths(t *testing.T, s *identityServer, f *forger, paths []spoofPath) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			variants := map[string][]string{"all-at-once": allSpoofLines()}
			for _, n := range []string{"X-User-Id", "X-User-Email", "X-User-Roles", "X-Admin", "X_Legacy_User"} {
				for _, sp := range spellings(n) {
					variants[sp] = spoofLines(sp)
				}
			}
			for name, lines := range variants {
				t.Run(name, func(t *testing.T) {
					before := s.Upstream.Hits()
					r := s.sendRaw(rawRequest(s, append(p.auth(f, t), lines...)...))
					if r.Err != nil || r.Status != p.status {
						t.Fatalf("status %d (%v), want %d", r.Status, r.Err, p.status)
					}
					if p.status != http.StatusOK {
						if s.Upstream.Hits() != before {
							t.Fatal("a refused request reached the upstream")
						}
						checkStripped(t, s.Rejected())
						return
					}
					if s.Upstream.Hits() != before+1 {
						t.Fatal("upstream not reached")
					}
					hdr, _ := s.Upstream.Last()
					checkUpstreamHeader(t, hdr, p.want)
				})
			}
		})
	}
}

// TestSpoofHeadersNonCanonicalKeys calls the handler directly with header
// map keys Go's server would never produce (another handler earlier in the
// route, or HTTP/2 and HTTP/3 frames, could): lower-case and odd keys must
// be stripped too.
func TestSpoofHeadersNonCanonicalKeys(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	keys := []string{"x-user-id", "X-USER-ID", "x_user_id", "X_USER_ID", "x-User_id", "x-admin", "X_ADMIN", "x-legacy-user", "X_Legacy_User", "x-user-email", "x-user-roles"}
	for _, optional := range []bool{false, true} {
		h := spoofHandler(iss)
		h.Optional = optional
		s := newIdentityServer(t, h, nil)
		for _, tok := range []string{f.Valid(t), "", "garbage"} {
			r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
			if tok != "" {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			for _, k := range keys {
				r.Header[k] = []string{spoofMarker, spoofMarker + "-dup"}
			}
			r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
			var seen http.Header
			next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
				seen = r.Header.Clone()
				return nil
			})
			err := s.H.ServeHTTP(httptest.NewRecorder(), r, next)
			if seen != nil {
				want := map[string][]string{}
				if tok != "" {
					want["X-User-Id"] = []string{"user-1"}
				}
				checkUpstreamHeader(t, seen, want)
			}
			if err != nil {
				checkStripped(t, r.Header)
			}
			if seen == nil && err == nil {
				t.Errorf("optional=%v token=%.10q: neither served nor refused", optional, tok)
			}
		}
	}
}
