package caddyidentity

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// Fuzz targets. Seed corpora live in testdata/fuzz/<Name>/; the forged
// attack tokens and a valid token are added at run time. Run one with e.g.
//
//	go test -run '^$' -fuzz '^FuzzHandlerToken$' -fuzztime 30s .

// fuzzAllowedStatus are the only answers the handler may give a token.
var fuzzAllowedStatus = map[int]bool{
	http.StatusOK:                 true,
	http.StatusBadRequest:         true,
	http.StatusUnauthorized:       true,
	http.StatusForbidden:          true,
	http.StatusServiceUnavailable: true,
}

// FuzzHandlerToken sends arbitrary Authorization values through the
// provisioned handler: it must never panic, answer only 200, 400, 401,
// 403 or 503, a refusal must never reach the upstream, and an accepted
// token must pass the independent check of forger.Oracle (go-jose verifies
// it with the issuer's published key, iss, aud, exp, iat). Seeds include
// tokens the issuer's genuine keys sign with algorithms outside the
// allow-list (its keys carry no alg, so only the allow-list refuses them)
// and tokens with a bad signature.
func FuzzHandlerToken(f *testing.F) {
	iss := identitytest.NewIssuer(f, identitytest.WithAlgorithms("RS256", "ES256"), identitytest.WithoutKeyAlgorithms())
	fg := issuerForger(f, iss, atkAudience)
	h := attackHandler(iss)
	h.logger = zap.NewNop() // keep the fuzzer's output readable
	s := newIdentityServer(f, h, nil)

	f.Add(fg.Valid(f), false)
	f.Add("Bearer "+fg.Valid(f), true)
	f.Add(fg.RandomKID(f), false)
	for _, tok := range fg.AttackTokens(f) {
		if len(tok.Token) <= 16<<10 {
			f.Add(tok.Token, false)
		}
	}

	f.Fuzz(func(t *testing.T, value string, raw bool) {
		if !raw {
			value = "Bearer " + value
		}
		r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
		r.Header["Authorization"] = []string{value}
		if fuzzServe(t, s, r) == http.StatusOK {
			if _, err := fg.Oracle(t).Check(fuzzToken(value)); err != nil {
				t.Fatalf("accepted %q, which the independent check refuses: %v", value, err)
			}
		}
	})
}

// fuzzToken returns the token of an Authorization value as RFC 6750 §2.1
// and RFC 9449 §7.1 define it: what follows the scheme and white space.
func fuzzToken(value string) string {
	i := strings.IndexAny(value, " \t")
	if i < 0 {
		return ""
	}
	return strings.Trim(value[i:], " \t")
}

// FuzzHandlerDPoP sends arbitrary DPoP-scheme tokens and DPoP proofs
// through the provisioned handler (default dpop allow): it must never
// panic, answer only the statuses of FuzzHandlerToken, never reach the
// upstream on a refusal, and an accepted request must reach it with one
// X-User-Id and without the token or the proof. An accepted token must
// pass forger.Oracle, and its proof identitytest.ProofCheck: go-jose
// verifies it with its jwk, whose thumbprint is the token's cnf.jkt, and
// htm, htu, iat and ath fit the request.
func FuzzHandlerDPoP(f *testing.F) {
	iss := identitytest.NewIssuer(f, identitytest.WithAlgorithms("RS256", "ES256"))
	fg := issuerForger(f, iss, atkAudience)
	h := attackHandler(iss)
	h.logger = zap.NewNop()
	s := newIdentityServer(f, h, nil)

	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		f.Fatal(err)
	}
	bound, err := iss.MintToken(map[string]any{"sub": "alice", "aud": atkAudience, "cnf": map[string]any{"jkt": key.Thumbprint()}})
	if err != nil {
		f.Fatal(err)
	}
	proof := func(uri, token string) string {
		p, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, AccessToken: token})
		if err != nil {
			f.Fatal(err)
		}
		return p
	}
	proofAt := func(uri, token string, iat time.Time) string {
		p, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, AccessToken: token, IssuedAt: iat})
		if err != nil {
			f.Fatal(err)
		}
		return p
	}
	other, err := identity.NewDPoPKey("ES256")
	if err != nil {
		f.Fatal(err)
	}
	otherProof, err := other.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: "http://example.com/", AccessToken: bound})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bound, proof("http://example.com/", bound))
	f.Add(bound, proof("http://example.com/", bound)+"x")
	f.Add(bound, proofAt("http://example.com/", bound, time.Now().Add(-identity.DefaultDPoPMaxAge-time.Minute)))
	f.Add(bound, proofAt("http://example.com/", bound, time.Now().Add(identity.DefaultDPoPClockSkew+time.Minute)))
	f.Add(bound, otherProof)
	f.Add(fg.Valid(f), proof("http://example.com/", fg.Valid(f)))
	f.Add(bound, proof("http://other.example/", bound))
	f.Add(bound, proof("http://example.com/", "another token"))
	f.Add(bound, "")
	f.Add("", proof("http://example.com/", ""))
	f.Add("not.a.jwt", "not.a.proof")

	f.Fuzz(func(t *testing.T, token, dpopProof string) {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
		r.Header["Authorization"] = []string{"DPoP " + token}
		if dpopProof != "" {
			r.Header["Dpop"] = []string{dpopProof}
		}
		if fuzzServe(t, s, r) != http.StatusOK {
			return
		}
		if r.Header.Get("Authorization") != "" || r.Header.Get("DPoP") != "" {
			t.Errorf("accepted with Authorization %q, DPoP %q left for the upstream", r.Header.Get("Authorization"), r.Header.Get("DPoP"))
		}
		token = strings.Trim(token, " \t")
		claims, err := fg.Oracle(t).Check(token)
		if err != nil {
			t.Fatalf("accepted a token the independent check refuses: %v", err)
		}
		cnf, _ := claims["cnf"].(map[string]any)
		jkt, _ := cnf["jkt"].(string)
		check := identitytest.ProofCheck{
			Method: http.MethodGet, URI: "http://example.com/", AccessToken: token, JKT: jkt,
			Algorithms: dpopAlgorithms, Now: time.Now(),
			MaxAge: identity.DefaultDPoPMaxAge, ClockSkew: identity.DefaultDPoPClockSkew,
		}
		if err := check.Check(dpopProof); err != nil {
			t.Fatalf("accepted a DPoP proof the independent check refuses: %v", err)
		}
	})
}

// fuzzServe sends r through the handler of s as Caddy's server does and
// returns the status. It fails the test when the handler answers anything
// but the statuses of fuzzAllowedStatus, returns a non-handler error,
// reaches the upstream and still refuses, or lets a request through
// without exactly one X-User-Id.
func fuzzServe(t *testing.T, s *identityServer, r *http.Request) int {
	t.Helper()
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	reached := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached = true
		if len(r.Header.Values("X-User-Id")) != 1 {
			t.Errorf("accepted without exactly one X-User-Id: %q", r.Header.Values("X-User-Id"))
		}
		w.WriteHeader(http.StatusOK)
		return nil
	})
	status := http.StatusOK
	if err := s.H.ServeHTTP(w, r, next); err != nil {
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) {
			t.Fatalf("non-handler error %T: %v", err, err)
		}
		status = he.StatusCode
		if reached {
			t.Fatalf("refused with %d after reaching the upstream", status)
		}
	} else if !reached {
		status = w.Code
	}
	if !fuzzAllowedStatus[status] {
		t.Fatalf("status %d for Authorization %q", status, r.Header.Get("Authorization"))
	}
	return status
}

// FuzzCaddyfile feeds arbitrary Caddyfile text to UnmarshalCaddyfile: it
// must never panic, and a configuration it accepts must survive a JSON
// round trip unchanged (what `caddy adapt` produces is what is loaded) and
// the configuration checks without panicking.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"identity {\n\tissuer https://idp.example.com\n\taudience api\n}",
		"identity {\n\tissuer https://idp.example.com {\n\t\taudience api web\n\t\talgorithms RS256 ES256\n\t\trequire_scope read\n\t\trequire_claim realm_access.roles admin\n\t}\n\tissuer https://other.example.com {\n\t\tjwks_url https://other.example.com/keys\n\t\taudience any\n\t}\n}",
		"identity /api/* {\n\tissuer https://idp.example.com\n\tjwks_file /etc/keys.json\n\taudience api\n\tleeway 30s\n\ttoken_from header X-Token\n\ttoken_from cookie at\n\ttoken_from query access_token\n\tclaim_header email X-User-Email\n\tstrip_header X-Admin X-Legacy\n\toptional\n\tforward_token\n\trealm api\n\tcache_size 100\n\tmax_token_size 16KiB\n}",
		"identity {\n\tissuer {env.ISSUER}\n\taudience {env.AUD}\n\ttoken_type at+jwt\n\tinsecure_allow_http\n\tstrip_token\n}",
		"identity",
		"identity {\n}",
		"identity {\n\tissuer\n}",
		"identity {\n\tleeway -1s\n\tcache_size -5\n\tmax_token_size 1EB\n}",
		"identity {\n\tissuer https://a {\n\t\tissuer https://b\n\t}\n}",
		"identity {\n\ttoken_from header\n\ttoken_from bogus x\n\tclaim_header only-one\n}",
		"identity {\n\tissuer https://login.microsoftonline.com/{tenantid}/v2.0 {\n\t\tjwks_url https://login.microsoftonline.com/common/discovery/v2.0/keys\n\t\ttenants t1 t2\n\t\tauthorized_party c1\n\t\tauthorized_party_claim appid\n\t}\n\tissuer https://accounts.google.com {\n\t\talias accounts.google.com\n\t\tjwks_uri_base https://www.googleapis.com/oauth2/\n\t}\n\taudience api\n\tdpop require\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		b, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("accepted configuration does not marshal: %v", err)
		}
		var back Handler
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("accepted configuration does not unmarshal: %v\n%s", err, b)
		}
		b2, err := json.Marshal(&back)
		if err != nil {
			t.Fatal(err)
		}
		var m1, m2 any
		_ = json.Unmarshal(b, &m1)
		_ = json.Unmarshal(b2, &m2)
		if !reflect.DeepEqual(m1, m2) {
			t.Fatalf("JSON round trip changed the configuration:\n%s\n%s", b, b2)
		}
		_ = back.checkConfig()
	})
}
