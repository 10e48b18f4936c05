package caddyidentity

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// The attack suite: every token and request shape a hostile client can send,
// through the real provisioned handler behind a real HTTP server with
// Caddy's default header limit, in front of an upstream that records what
// reaches it. Each case checks the status, the WWW-Authenticate challenge,
// that the upstream was not reached, that the attacker's server was not
// contacted and that the next valid request is still served.

// caddyMaxHeaderBytes is Caddy's default limit on request headers.
const caddyMaxHeaderBytes = 16 << 10

// atkAudience is the audience every test handler requires.
const atkAudience = "api"

// recordingUpstream is the protected application: it answers 200 and
// remembers what reached it.
type recordingUpstream struct {
	mu     sync.Mutex
	hits   int
	header http.Header
	url    string
}

// ServeHTTP records the request and answers 200 "upstream".
func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	u.mu.Lock()
	u.hits++
	u.header = r.Header.Clone()
	u.url = r.URL.String()
	u.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, err := w.Write([]byte("upstream"))
	return err
}

// Hits is the number of requests that reached the upstream.
func (u *recordingUpstream) Hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

// Last returns the header and URL of the last request that reached it.
func (u *recordingUpstream) Last() (http.Header, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.header.Clone(), u.url
}

// identityServer is a provisioned identity handler in a minimal Caddy HTTP
// chain: the request is prepared as Caddy's server does, a handler error is
// turned into its status code as Caddy does without handle_errors.
type identityServer struct {
	*httptest.Server
	H        *Handler
	Upstream *recordingUpstream

	mu       sync.Mutex
	record   bool        // keep every Authorization value (for log scans)
	sent     []string    // every Authorization value received, if record
	rejected http.Header // the request header after the last refusal
}

// Rejected returns the request header as the handler left it after the
// last refusal: what handle_errors routes would see.
func (s *identityServer) Rejected() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected.Clone()
}

// Sent returns every Authorization header value the server received (only
// recorded when the server captures logs).
func (s *identityServer) Sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

// newIdentityServer provisions h and serves it. When logTo is not nil,
// the handler logs there at DEBUG in zap's development (console) format,
// through the logger injection the handler offers to tests.
func newIdentityServer(tb testing.TB, h *Handler, logTo *os.File) *identityServer {
	tb.Helper()
	if logTo != nil {
		enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
		h.logger = zap.New(zapcore.NewCore(enc, zapcore.Lock(logTo), zapcore.DebugLevel))
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		cancel()
		tb.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		cancel()
		tb.Fatalf("validate: %v", err)
	}
	s := &identityServer{H: h, Upstream: &recordingUpstream{}, record: logTo != nil}
	up := s.Upstream
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.record {
			s.mu.Lock()
			s.sent = append(s.sent, r.Header.Values("Authorization")...)
			s.mu.Unlock()
		}
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
		if err := h.ServeHTTP(w, r, up); err != nil {
			s.mu.Lock()
			s.rejected = r.Header.Clone()
			s.mu.Unlock()
			status := http.StatusInternalServerError
			var he caddyhttp.HandlerError
			if errors.As(err, &he) && he.StatusCode != 0 {
				status = he.StatusCode
			}
			w.WriteHeader(status)
		}
	}))
	srv.Config.MaxHeaderBytes = caddyMaxHeaderBytes
	srv.Start()
	tb.Cleanup(func() {
		srv.Close()
		if err := h.Cleanup(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
		cancel()
	})
	s.Server = srv
	return s
}

// attackAlgorithms is the allow-list of the configuration under attack.
var attackAlgorithms = []string{"RS256", "ES256"}

// attackHandler is the configuration under attack: one issuer, audience
// "api", RS256 and ES256 allowed.
func attackHandler(iss *identitytest.Issuer) *Handler {
	return &Handler{Issuers: []IssuerConfig{{
		Issuer:     iss.URL,
		Audiences:  []string{atkAudience},
		Algorithms: slices.Clone(attackAlgorithms),
	}}}
}

// atkResponse is what a client saw.
type atkResponse struct {
	Status    int
	Challenge []string
	Body      string
	Err       error // transport error (the server closed the connection)
}

// send performs req and reads the whole response.
func (s *identityServer) send(req *http.Request) atkResponse {
	resp, err := s.Client().Do(req)
	if err != nil {
		return atkResponse{Err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return atkResponse{Status: resp.StatusCode, Challenge: resp.Header.Values("WWW-Authenticate"), Body: string(body)}
}

// sendRaw writes a raw HTTP/1.1 request on a new connection and reads one
// response: for header spellings Go's client would normalise.
func (s *identityServer) sendRaw(raw string) atkResponse {
	conn, err := net.DialTimeout("tcp", s.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		return atkResponse{Err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Write in the background: the server may answer (431) and close
	// before reading a huge request.
	go func() { _, _ = io.WriteString(conn, raw) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return atkResponse{Err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return atkResponse{Status: resp.StatusCode, Challenge: resp.Header.Values("WWW-Authenticate"), Body: string(body)}
}

// get sends a GET to path with the given Authorization values.
func (s *identityServer) get(path string, authorization ...string) atkResponse {
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	for _, a := range authorization {
		req.Header.Add("Authorization", a)
	}
	return s.send(req)
}

// atkChallenge is a parsed WWW-Authenticate value.
type atkChallenge struct {
	Scheme string
	Params map[string]string
}

// parseAtkChallenge parses one RFC 9110 challenge with quoted-string or token
// parameters.
func parseAtkChallenge(v string) (atkChallenge, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	c := atkChallenge{Scheme: scheme, Params: map[string]string{}}
	rest = strings.TrimSpace(rest)
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return c, fmt.Errorf("parameter without value in %q", v)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			if i >= len(after) {
				return c, fmt.Errorf("unterminated quoted string in %q", v)
			}
			val, rest = b.String(), after[i+1:]
		} else {
			val, rest, _ = strings.Cut(after, ",")
			rest = "," + rest
		}
		if _, dup := c.Params[name]; dup {
			return c, fmt.Errorf("parameter %q twice in %q", name, v)
		}
		c.Params[name] = strings.TrimSpace(val)
		rest = strings.TrimSpace(rest)
		rest = strings.TrimSpace(strings.TrimPrefix(rest, ","))
	}
	return c, nil
}

// atkOutcome is an acceptable answer: a status and, for 400/401/403, the
// RFC 6750 error code of the challenge ("" means a challenge without one).
type atkOutcome struct {
	Status int
	Error  string
}

var (
	atkOK           = atkOutcome{Status: http.StatusOK}
	atkNoToken      = atkOutcome{Status: http.StatusUnauthorized}
	atkInvalidToken = atkOutcome{Status: http.StatusUnauthorized, Error: "invalid_token"}
	atkBadRequest   = atkOutcome{Status: http.StatusBadRequest, Error: "invalid_request"}
	// atkDPoPProof is a DPoP-scheme token without a valid proof: a DPoP
	// challenge (RFC 9449 §7.1).
	atkDPoPProof = atkOutcome{Status: http.StatusUnauthorized, Error: "invalid_dpop_proof"}
	atkTooLarge  = atkOutcome{Status: http.StatusRequestHeaderFieldsTooLarge}
	// atkServerBadRequest is Go's HTTP server refusing a request it
	// cannot parse, before any handler runs: no challenge.
	atkServerBadRequest = atkOutcome{Status: http.StatusBadRequest, Error: "-"}
)

func (o atkOutcome) String() string {
	if o.Error != "" {
		return fmt.Sprintf("%d %s", o.Status, o.Error)
	}
	return fmt.Sprint(o.Status)
}

// matches reports whether r is the outcome o, with a well-formed
// challenge when o calls for one.
func (o atkOutcome) matches(r atkResponse) error {
	if r.Status != o.Status {
		return fmt.Errorf("status %d", r.Status)
	}
	switch {
	case o.Status == http.StatusOK, o.Status == http.StatusRequestHeaderFieldsTooLarge, o.Error == "-":
		return nil
	}
	if len(r.Challenge) != 1 {
		return fmt.Errorf("%d WWW-Authenticate headers: %q", len(r.Challenge), r.Challenge)
	}
	c, err := parseAtkChallenge(r.Challenge[0])
	if err != nil {
		return err
	}
	scheme := "Bearer"
	if o == atkDPoPProof {
		scheme = "DPoP"
	}
	if !strings.EqualFold(c.Scheme, scheme) {
		return fmt.Errorf("challenge scheme %q", c.Scheme)
	}
	if _, ok := c.Params["realm"]; !ok {
		return fmt.Errorf("challenge without realm: %q", r.Challenge[0])
	}
	if got := c.Params["error"]; got != o.Error {
		return fmt.Errorf("challenge error %q in %q", got, r.Challenge[0])
	}
	if o.Error == "" {
		if _, ok := c.Params["error_description"]; ok {
			return fmt.Errorf("error_description without error: %q", r.Challenge[0])
		}
	}
	return nil
}

// atkReason returns the label of the rejection reason (as in metrics, logs
// and {http.auth.identity.error}) that the error_description of the
// challenge in r states, "" when there is none.
func atkReason(r atkResponse) string {
	if len(r.Challenge) == 0 {
		return ""
	}
	c, err := parseAtkChallenge(r.Challenge[0])
	if err != nil || c.Params["error_description"] == "" {
		return ""
	}
	for _, ri := range reasons {
		if ri.description == c.Params["error_description"] {
			return ri.label
		}
	}
	return "unknown description " + c.Params["error_description"]
}

// atkReasonRules give, per attack class (a prefix of the forged token's
// name; the first matching rule applies), the reasons a refusal may state.
// A token refused for another reason was stopped by the wrong check: with
// the right one gone (say the algorithm allow-list), it would pass. Where
// two checks may rightly come first (a signature of the wrong length is
// malformed or does not verify), both are listed.
var atkReasonRules = []struct {
	prefix  string
	reasons []string
}{
	{"alg-none/", []string{"algorithm", "malformed"}},
	{"alg/missing", []string{"malformed"}},
	{"alg/empty", []string{"malformed"}},
	{"alg/null", []string{"malformed"}},
	{"alg/array", []string{"malformed"}},
	{"alg/number", []string{"malformed"}},
	{"alg/", []string{"algorithm"}},
	{"hs-confusion/", []string{"algorithm"}},
	{"kid/number", []string{"malformed"}},
	{"kid/object", []string{"malformed"}},
	{"kid/", []string{"unknown_key"}},
	{"embedded/jku-hs256", []string{"algorithm"}},
	{"embedded/jku+x5u+jwk-all", []string{"unknown_key"}},
	{"embedded/", []string{"unknown_key", "signature"}},
	{"issuer/", []string{"issuer"}},
	{"crit/", []string{"malformed"}},
	{"b64-false/", []string{"malformed"}},
	{"sig/two-parts", []string{"malformed"}},
	{"sig/stripped", []string{"signature", "malformed"}},
	{"sig/", []string{"signature"}},
	{"rsa-sig/", []string{"signature", "malformed"}},
	{"ecdsa-sig/rs256-header-on-ec-kid", []string{"unknown_key", "algorithm"}},
	{"ecdsa-sig/es256-header-on-rsa-kid", []string{"unknown_key", "algorithm"}},
	{"ecdsa-sig/", []string{"signature", "malformed"}},
	{"encoding/truncated-half-sig", []string{"signature", "malformed"}},
	{"encoding/", []string{"malformed"}},
	{"json", []string{"malformed"}},
	{"dup/", []string{"malformed"}},
	{"jwe/", []string{"malformed"}},
	{"nested/", []string{"malformed"}},
	{"type/aud-", []string{"audience"}},
	{"type/iss-", []string{"claims", "issuer"}},
	{"type/", []string{"claims"}},
	{"size/", []string{"too_large"}},
	{"iss/", []string{"issuer"}},
	{"aud/", []string{"audience"}},
	{"time/expired", []string{"expired"}},
	{"time/exp-negative", []string{"expired"}},
	{"time/nbf-future", []string{"not_yet_valid"}},
	{"time/iat-future", []string{"issued_at"}},
	{"time/iat-far-future", []string{"issued_at"}},
	{"time/", []string{"claims", "issued_at", "expired"}},
}

// atkWantReasons returns the reasons a refusal of the forged token name may
// state; it fails the test for a token of no known class.
func atkWantReasons(t *testing.T, name string) []string {
	t.Helper()
	for _, r := range atkReasonRules {
		if strings.HasPrefix(name, r.prefix) {
			return r.reasons
		}
	}
	t.Fatalf("forged token %q belongs to no class of atkReasonRules", name)
	return nil
}

// expectReason checks that the refusal r of forged token name states one
// of the reasons of its class.
func expectReason(t *testing.T, name string, r atkResponse) {
	t.Helper()
	want := atkWantReasons(t, name)
	if got := atkReason(r); !slices.Contains(want, got) {
		t.Errorf("%s: refused for reason %q, want one of %q (%q)", name, got, want, r.Challenge)
	}
}

// expectGenuine checks, when r accepted token, that the independent
// oracle accepts it too: a token the handler let through must be genuinely
// signed by the issuer, for the audience, and current.
func expectGenuine(t *testing.T, f *forger, token string, r atkResponse) {
	t.Helper()
	if r.Status != http.StatusOK {
		return
	}
	if _, err := f.Oracle(t).Check(token); err != nil {
		t.Errorf("accepted a token the independent check refuses: %v", err)
	}
}

// expectRefusal checks r against the acceptable outcomes, then that
// nothing reached the upstream, nothing of the token was echoed and the
// attacker was not contacted.
func expectRefusal(t *testing.T, s *identityServer, f *forger, hitsBefore int, r atkResponse, token string, want ...atkOutcome) {
	t.Helper()
	var errs []string
	ok := false
	for _, o := range want {
		err := o.matches(r)
		if err == nil {
			ok = true
			if o.Status == http.StatusOK {
				hitsBefore++
			}
			break
		}
		errs = append(errs, o.String()+": "+err.Error())
	}
	if !ok {
		if r.Err != nil {
			t.Errorf("transport error %v; want one of %v", r.Err, want)
		} else {
			t.Errorf("got %d %q; want one of %v (%s)", r.Status, r.Challenge, want, strings.Join(errs, "; "))
		}
	}
	if got := s.Upstream.Hits(); got != hitsBefore {
		t.Errorf("upstream reached %d time(s)", got-hitsBefore)
	}
	if token != "" {
		_, _, sig := splitJWS(token)
		for _, leak := range []string{token, sig} {
			if len(leak) < 16 {
				continue
			}
			if strings.Contains(r.Body, leak) || strings.Contains(strings.Join(r.Challenge, " "), leak) {
				t.Errorf("the response echoes the token")
			}
		}
	}
	if f != nil {
		if c := f.Attacker.Contacts(); len(c) > 0 {
			t.Fatalf("the attacker's server was contacted: %v", c)
		}
	}
}

// expectServed checks that a fresh valid token is accepted and that the
// upstream gets the verified identity and not the token.
func expectServed(t *testing.T, s *identityServer, f *forger) {
	t.Helper()
	before := s.Upstream.Hits()
	r := s.get("/after", "Bearer "+f.Valid(t))
	if r.Status != http.StatusOK || r.Body != "upstream" {
		t.Fatalf("next valid request: %d %q %v %v", r.Status, r.Body, r.Challenge, r.Err)
	}
	if s.Upstream.Hits() != before+1 {
		t.Fatalf("next valid request: upstream reached %d times", s.Upstream.Hits()-before)
	}
	hdr, _ := s.Upstream.Last()
	if got := hdr.Values("X-User-Id"); len(got) != 1 || got[0] != "user-1" {
		t.Errorf("upstream X-User-Id = %q, want [user-1]", got)
	}
	if got := hdr.Values("Authorization"); len(got) != 0 {
		t.Errorf("upstream got the token: Authorization = %q", got)
	}
}

// atkRequestCase is one request shape.
type atkRequestCase struct {
	Name string
	// Do sends the request; valid is a fresh valid token.
	Do   func(t *testing.T, s *identityServer, valid string) atkResponse
	Want []atkOutcome
}

// atkRequestCases are the request-level attacks: where and how the token is
// sent rather than what it contains.
func atkRequestCases() []atkRequestCase {
	hdr := func(values ...string) func(*testing.T, *identityServer, string) atkResponse {
		return func(_ *testing.T, s *identityServer, valid string) atkResponse {
			var vs []string
			for _, v := range values {
				vs = append(vs, strings.ReplaceAll(v, "$TOKEN", valid))
			}
			return s.get("/", vs...)
		}
	}
	build := func(mod func(r *http.Request, valid string)) func(*testing.T, *identityServer, string) atkResponse {
		return func(_ *testing.T, s *identityServer, valid string) atkResponse {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/", nil)
			mod(req, valid)
			return s.send(req)
		}
	}
	raw := func(headerLines ...string) func(*testing.T, *identityServer, string) atkResponse {
		return func(_ *testing.T, s *identityServer, valid string) atkResponse {
			var b strings.Builder
			b.WriteString("GET / HTTP/1.1\r\nHost: " + s.Listener.Addr().String() + "\r\nConnection: close\r\n")
			for _, l := range headerLines {
				b.WriteString(strings.ReplaceAll(l, "$TOKEN", valid) + "\r\n")
			}
			b.WriteString("\r\n")
			return s.sendRaw(b.String())
		}
	}
	noTokenOrBad := []atkOutcome{atkNoToken, atkBadRequest, atkInvalidToken}
	return []atkRequestCase{
		{"missing", hdr(), []atkOutcome{atkNoToken}},
		{"empty-authorization", raw("Authorization: "), []atkOutcome{atkNoToken, atkBadRequest}},
		{"scheme-only", hdr("Bearer"), noTokenOrBad},
		{"scheme-and-space", raw("Authorization: Bearer "), noTokenOrBad},
		{"scheme-and-tab", raw("Authorization: Bearer\t"), noTokenOrBad},
		{"duplicated-both-valid", hdr("Bearer $TOKEN", "Bearer $TOKEN"), []atkOutcome{atkBadRequest}},
		{"duplicated-valid-then-garbage", hdr("Bearer $TOKEN", "Bearer garbage"), []atkOutcome{atkBadRequest}},
		{"duplicated-garbage-then-valid", hdr("Bearer garbage", "Bearer $TOKEN"), []atkOutcome{atkBadRequest}},
		{"duplicated-basic-then-valid", hdr("Basic dXNlcjpwYXNz", "Bearer $TOKEN"), []atkOutcome{atkBadRequest}},
		{"duplicated-empty-then-valid", raw("Authorization: ", "Authorization: Bearer $TOKEN"), []atkOutcome{atkBadRequest}},
		{"comma-joined-two-tokens", hdr("Bearer $TOKEN, Bearer $TOKEN"), []atkOutcome{atkBadRequest, atkInvalidToken}},
		{"token-then-garbage-word", hdr("Bearer $TOKEN extra"), []atkOutcome{atkBadRequest, atkInvalidToken}},
		{"scheme-lowercase", hdr("bearer $TOKEN"), []atkOutcome{atkOK}},
		{"scheme-uppercase", hdr("BEARER $TOKEN"), []atkOutcome{atkOK}},
		{"scheme-mixed-case", hdr("bEaReR $TOKEN"), []atkOutcome{atkOK}},
		{"header-name-lowercase", raw("authorization: Bearer $TOKEN"), []atkOutcome{atkOK}},
		{"header-name-uppercase", raw("AUTHORIZATION: Bearer $TOKEN"), []atkOutcome{atkOK}},
		{"header-name-underscore", raw("Authori_zation: Bearer $TOKEN"), []atkOutcome{atkNoToken}},
		{"header-name-space-before-colon", raw("Authorization : Bearer $TOKEN"), []atkOutcome{atkServerBadRequest}},
		{"two-spaces-after-scheme", hdr("Bearer  $TOKEN"), []atkOutcome{atkOK, atkBadRequest, atkInvalidToken}},
		{"scheme-glued-to-token", hdr("Bearer$TOKEN"), []atkOutcome{atkNoToken, atkBadRequest}},
		{"wrong-scheme-basic", hdr("Basic dXNlcjpwYXNz"), []atkOutcome{atkNoToken}},
		{"wrong-scheme-basic-with-token", hdr("Basic $TOKEN"), []atkOutcome{atkNoToken}},
		{"wrong-scheme-token", hdr("Token $TOKEN"), []atkOutcome{atkNoToken}},
		{"wrong-scheme-jwt", hdr("JWT $TOKEN"), []atkOutcome{atkNoToken}},
		{"dpop-scheme-without-proof", hdr("DPoP $TOKEN"), []atkOutcome{atkDPoPProof}},
		{"wrong-scheme-bearerx", hdr("Bearerx $TOKEN"), []atkOutcome{atkNoToken}},
		{"no-scheme", hdr("$TOKEN"), []atkOutcome{atkNoToken}},
		{"obs-text-token", raw("Authorization: Bearer \xff\xfe\xfd"), []atkOutcome{atkInvalidToken, atkBadRequest}},
		{"unconfigured-query", build(func(r *http.Request, v string) { r.URL.RawQuery = "access_token=" + url.QueryEscape(v) }), []atkOutcome{atkNoToken}},
		{"unconfigured-cookie", build(func(r *http.Request, v string) { r.AddCookie(&http.Cookie{Name: "access_token", Value: v}) }), []atkOutcome{atkNoToken}},
		{"unconfigured-header-x-access-token", build(func(r *http.Request, v string) { r.Header.Set("X-Access-Token", v) }), []atkOutcome{atkNoToken}},
		{"unconfigured-header-x-forwarded-access-token", build(func(r *http.Request, v string) { r.Header.Set("X-Forwarded-Access-Token", v) }), []atkOutcome{atkNoToken}},
		{"unconfigured-proxy-authorization", build(func(r *http.Request, v string) { r.Header.Set("Proxy-Authorization", "Bearer "+v) }), []atkOutcome{atkNoToken}},
		{"unconfigured-form-body", func(_ *testing.T, s *identityServer, v string) atkResponse {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader("access_token="+url.QueryEscape(v)))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return s.send(req)
		}, []atkOutcome{atkNoToken}},
		{"valid-header-and-garbage-in-unconfigured-query", build(func(r *http.Request, v string) {
			r.Header.Set("Authorization", "Bearer "+v)
			r.URL.RawQuery = "access_token=garbage"
		}), []atkOutcome{atkOK}},
		{"header-32KiB", hdr("Bearer " + strings.Repeat("A", 32<<10)), []atkOutcome{atkTooLarge}},
		{"header-over-1MiB", raw("Authorization: Bearer " + strings.Repeat("A", 1<<20+1)), []atkOutcome{atkTooLarge}},
		{"many-headers-over-limit", raw(strings.TrimSuffix(strings.Repeat("X-Filler: "+strings.Repeat("f", 1000)+"\r\n", 20), "\r\n"), "Authorization: Bearer $TOKEN"), []atkOutcome{atkTooLarge}},
	}
}

// runAttackSuite runs every request case and every forged token against s.
func runAttackSuite(t *testing.T, s *identityServer, f *forger) {
	expectServed(t, s, f)
	t.Run("request", func(t *testing.T) {
		for _, c := range atkRequestCases() {
			t.Run(c.Name, func(t *testing.T) {
				before := s.Upstream.Hits()
				valid := f.Valid(t)
				r := c.Do(t, s, valid)
				if r.Err != nil && c.Want[0] == atkTooLarge {
					// The server may close the connection before
					// the client has sent the whole request.
					r = atkResponse{Status: http.StatusRequestHeaderFieldsTooLarge}
				}
				expectRefusal(t, s, f, before, r, valid, c.Want...)
				expectServed(t, s, f)
			})
		}
	})
	t.Run("token", func(t *testing.T) {
		for _, tok := range f.AttackTokens(t) {
			t.Run(tok.Name, func(t *testing.T) {
				before := s.Upstream.Hits()
				r := s.get("/", "Bearer "+tok.Token)
				expectGenuine(t, f, tok.Token, r)
				expectRefusal(t, s, f, before, r, tok.Token, atkInvalidToken)
				expectReason(t, tok.Name, r)
				expectServed(t, s, f)
			})
		}
	})
	if c := f.Attacker.Contacts(); len(c) > 0 {
		t.Errorf("the attacker's server was contacted: %v", c)
	}
}

// TestAttackSuite runs every request shape and every forged token through
// the handler with the default token source (Authorization: Bearer).
func TestAttackSuite(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"))
	f := issuerForger(t, iss, atkAudience)
	s := newIdentityServer(t, attackHandler(iss), nil)
	runAttackSuite(t, s, f)
}

// TestAttackSuiteKeysWithoutAlg runs the suite against an issuer whose
// published keys carry no "alg" (as many providers publish them): nothing
// pins a key to an algorithm, so only the configured allow-list refuses a
// PS256 or RS512 token signed by the genuine RSA key, or an HS256 token.
func TestAttackSuiteKeysWithoutAlg(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"), identitytest.WithoutKeyAlgorithms())
	f := issuerForger(t, iss, atkAudience)
	s := newIdentityServer(t, attackHandler(iss), nil)
	runAttackSuite(t, s, f)
}

// TestAttackSuiteAdvertisedAlgorithms: with no algorithms configured, the
// allow-list is what the issuer's discovery document advertises (RS256 and
// ES256 here), and keys without "alg" leave the whole refusal to it. The
// allow-list is the union of every *_signing_alg_values_supported member
// (identity.Provider.AdvertisedAlgorithms), so the test issuer's list of
// the DPoP proof algorithms it accepts from clients is left out.
func TestAttackSuiteAdvertisedAlgorithms(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"), identitytest.WithoutKeyAlgorithms(),
		identitytest.WithMetadataOverride(func(m map[string]any) { delete(m, "dpop_signing_alg_values_supported") }))
	f := issuerForger(t, iss, atkAudience)
	h := attackHandler(iss)
	h.Issuers[0].Algorithms = nil
	s := newIdentityServer(t, h, nil)
	runAttackSuite(t, s, f)
}

// TestAttackOracle checks the oracle of the fuzz targets and the attack
// suite on the attack corpus: it accepts the genuine tokens and refuses
// every forged token whose class it judges (signature, algorithm, key,
// issuer, audience, time), so that its silence on an accepted token means
// something.
func TestAttackOracle(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"), identitytest.WithoutKeyAlgorithms())
	f := issuerForger(t, iss, atkAudience)
	oracle := f.Oracle(t)
	es256, err := iss.MintToken(map[string]any{"sub": "user-1", "aud": atkAudience}, identitytest.Alg("ES256"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"RS256": f.Valid(t), "ES256": es256, "aud-array": f.ValidWithClaims(t, map[string]any{"aud": []string{"x", atkAudience}})} {
		if _, err := oracle.Check(tok); err != nil {
			t.Errorf("genuine %s token refused: %v", name, err)
		}
	}
	judged := []string{"alg-none/", "alg/not-allowed", "hs-confusion/", "embedded/", "issuer/", "sig/", "rsa-sig/", "ecdsa-sig/", "kid/attacker", "iss/", "aud/", "time/expired", "time/exp-", "time/iat-", "time/nbf-future", "size/9KiB-garbage", "encoding/"}
	n := 0
	for _, tok := range f.AttackTokens(t) {
		if !slices.ContainsFunc(judged, func(p string) bool { return strings.HasPrefix(tok.Name, p) }) {
			continue
		}
		n++
		if _, err := oracle.Check(tok.Token); err == nil {
			t.Errorf("%s: the oracle accepts a forged token", tok.Name)
		}
	}
	if n < 100 {
		t.Errorf("only %d forged tokens judged", n)
	}
}

// TestAttackSuiteOptional: with optional, a request without a token passes
// anonymously, but every bad token is still refused.
func TestAttackSuiteOptional(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"))
	f := issuerForger(t, iss, atkAudience)
	h := attackHandler(iss)
	h.Optional = true
	s := newIdentityServer(t, h, nil)
	expectServed(t, s, f)

	before := s.Upstream.Hits()
	if r := s.get("/"); r.Status != http.StatusOK || s.Upstream.Hits() != before+1 {
		t.Fatalf("anonymous request with optional: %d, upstream hits %d", r.Status, s.Upstream.Hits()-before)
	}
	for _, tok := range f.AttackTokens(t) {
		t.Run(tok.Name, func(t *testing.T) {
			before := s.Upstream.Hits()
			r := s.get("/", "Bearer "+tok.Token)
			expectGenuine(t, f, tok.Token, r)
			expectRefusal(t, s, f, before, r, tok.Token, atkInvalidToken)
			expectReason(t, tok.Name, r)
		})
	}
	expectServed(t, s, f)
}

// TestAttackHMACAlgorithmsRefusedInConfig: configuring an HMAC algorithm for an
// issuer with published keys is refused outright.
func TestAttackHMACAlgorithmsRefusedInConfig(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	for _, algs := range [][]string{{"HS256"}, {"RS256", "HS512"}, {"none"}, {"NONE"}, {"RS256", "None"}} {
		h := attackHandler(iss)
		h.Issuers[0].Algorithms = algs
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		_ = h.Cleanup()
		cancel()
		if err == nil {
			t.Errorf("algorithms %v: provisioned without error", algs)
		}
	}
}

// TestAttackResponseHasNoTokenMaterial: the 401 body and challenge carry nothing of
// the token, and the error description is the fixed text of its reason.
func TestAttackResponseHasNoTokenMaterial(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	s := newIdentityServer(t, attackHandler(iss), nil)
	tok := f.ValidWithClaims(t, map[string]any{"aud": "other"})
	r := s.get("/", "Bearer "+tok)
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("status %d", r.Status)
	}
	h, p, sig := splitJWS(tok)
	payload, _ := base64.RawURLEncoding.DecodeString(p)
	for _, leak := range []string{h, p, sig, string(payload), f.RSAKID, "other"} {
		if strings.Contains(r.Body, leak) || strings.Contains(strings.Join(r.Challenge, ""), leak) {
			t.Errorf("response contains %q: %q %q", leak, r.Challenge, r.Body)
		}
	}
}

// TestAttackLogs runs the whole attack suite with the handler's loggers
// captured at DEBUG and scans the output: no token, token segment or
// Authorization value may appear, and rejections are logged below WARN.
func TestAttackLogs(t *testing.T) {
	logFile := atkLogFile(t)
	iss := identitytest.NewIssuer(t, identitytest.WithAlgorithms("RS256", "ES256"))
	f := issuerForger(t, iss, atkAudience)
	s := newIdentityServer(t, attackHandler(iss), logFile)
	runAttackSuite(t, s, f)

	logs := atkReadLog(t, logFile)
	if !strings.Contains(logs, "rejected") {
		t.Fatalf("no rejection was logged: the capture does not work (%d bytes captured)", len(logs))
	}
	scanLogForSecrets(t, logs, s.Sent())
	for _, l := range parseAtkLog(logs) {
		switch l.Level {
		case "ERROR", "DPANIC", "PANIC", "FATAL":
			t.Errorf("%s during the attack suite: %s", l.Level, l.Text)
		case "WARN":
			t.Errorf("WARN during the attack suite (rejections belong at DEBUG/INFO): %s", l.Text)
		}
	}
}

// waitForLog polls read until done(log) and returns the log; it fails the
// test when that has not happened after a deadline generous for a loaded
// machine. what says what is waited for.
func waitForLog(t *testing.T, read func() string, done func(string) bool, what string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := read()
		if done(logs) {
			return logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not logged after 30s:\n%s", what, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// atkLogFile creates a file for captured logs, closed when t ends.
func atkLogFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "caddy-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// atkReadLog returns what has been written to the log file so far.
func atkReadLog(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// atkLogLine is one entry of zap's development (console) format:
// time TAB level TAB [caller TAB] message [TAB fields].
type atkLogLine struct {
	Level string
	Text  string
}

// parseAtkLog returns the entries of a development log; continuation
// lines (stack traces) are skipped.
func parseAtkLog(logs string) []atkLogLine {
	var out []atkLogLine
	for line := range strings.SplitSeq(logs, "\n") {
		fields := strings.SplitN(line, "\t", 3)
		if len(fields) < 3 {
			continue
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z0700", fields[0]); err != nil {
			continue
		}
		out = append(out, atkLogLine{Level: fields[1], Text: line})
	}
	return out
}

// scanLogForSecrets fails when logs contain any sent Authorization value,
// the token in it, or its payload or signature segment. Strings shorter
// than 16 bytes are not searched (they would match ordinary text).
func scanLogForSecrets(t *testing.T, logs string, sent []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, v := range sent {
		candidates := []string{v}
		if _, tok, ok := strings.Cut(v, " "); ok {
			candidates = append(candidates, strings.TrimSpace(tok))
			_, p, sig := splitJWS(strings.TrimSpace(tok))
			candidates = append(candidates, p, sig)
		}
		for _, c := range candidates {
			if len(c) < 16 || seen[c] {
				continue
			}
			seen[c] = true
			if i := strings.Index(logs, c); i >= 0 {
				start := max(0, i-80)
				t.Errorf("the logs contain token material %.40q… near %q", c, logs[start:min(len(logs), i+40)])
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no Authorization values were recorded")
	}
}

// caddyLogGlobal is the global options block of the caddytest tests of this
// package (see caddy_test.go) with Caddy's own logging sent, at DEBUG and
// in JSON, to logFile.
func caddyLogGlobal(logFile string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	skip_install_trust
	http_port %d
	https_port %d
	grace_period 1s
	log {
		output file %s
		format json
		level DEBUG
	}
}
`, ctAdminPort, ctHTTPPort, ctHTTPSPort, logFile)
}

// caddyLogEntry is the part of a JSON log line the scans look at.
type caddyLogEntry struct {
	Level  string `json:"level"`
	Logger string `json:"logger"`
	Msg    string `json:"msg"`
}

// readCaddyLog returns the raw log and its entries.
func readCaddyLog(t *testing.T, path string) (string, []caddyLogEntry) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("Caddy log: %v", err)
	}
	var entries []caddyLogEntry
	for line := range strings.SplitSeq(string(b), "\n") {
		var e caddyLogEntry
		if json.Unmarshal([]byte(line), &e) == nil && e.Level != "" {
			entries = append(entries, e)
		}
	}
	return string(b), entries
}

// caddyAuthorized sends a GET to the caddytest site with the given
// Authorization values and returns the status and challenge.
func caddyAuthorized(t *testing.T, tester *caddytest.Tester, values ...string) (int, []string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ctSite+"/", nil)
	for _, v := range values {
		req.Header.Add("Authorization", v)
	}
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Values("WWW-Authenticate")
}

// TestAttackThroughCaddy runs every forged token through a real Caddy
// (Caddyfile, reverse_proxy to a recording upstream, Caddy's own error
// handling and logging at DEBUG to a file), against an issuer whose keys
// carry "alg" and one whose keys do not (then only the configured
// allow-list refuses a genuine key's PS256 or RS512 signature). Each
// refusal must state the reason of its attack class, and Caddy's log must
// hold no token material of any token sent, the valid ones included, and
// no rejection at WARN or above, from the handler or from Caddy's error
// logger.
func TestAttackThroughCaddy(t *testing.T) {
	for _, keys := range []struct {
		name string
		opts []identitytest.Option
	}{
		{"keys-with-alg", nil},
		{"keys-without-alg", []identitytest.Option{identitytest.WithoutKeyAlgorithms()}},
	} {
		t.Run(keys.name, func(t *testing.T) {
			iss := identitytest.NewIssuer(t, append([]identitytest.Option{identitytest.WithAlgorithms("RS256", "ES256")}, keys.opts...)...)
			attackThroughCaddy(t, iss)
		})
	}
}

// attackThroughCaddy is TestAttackThroughCaddy for one issuer.
func attackThroughCaddy(t *testing.T, iss *identitytest.Issuer) {
	f := issuerForger(t, iss, atkAudience)
	up := newRecorder(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	tester := ctInit(t, caddyLogGlobal(logFile)+fmt.Sprintf(`%s {
	identity {
		issuer %s
		audience %s
		algorithms %s
	}
	reverse_proxy %s
}
`, ctSite, iss.URL, atkAudience, strings.Join(attackAlgorithms, " "), up.addr()), "caddyfile")

	var sent []string
	served := func() {
		t.Helper()
		valid := f.Valid(t)
		sent = append(sent, "Bearer "+valid)
		if st, ch := caddyAuthorized(t, tester, "Bearer "+valid); st != http.StatusOK {
			t.Fatalf("valid token through Caddy: %d %q", st, ch)
		}
		if n, _ := up.take(); n != 1 {
			t.Fatalf("valid token: upstream reached %d times", n)
		}
	}
	served()
	forged := 0
	for _, tok := range f.AttackTokens(t) {
		sent = append(sent, "Bearer "+tok.Token)
		forged++
		st, ch := caddyAuthorized(t, tester, "Bearer "+tok.Token)
		r := atkResponse{Status: st, Challenge: ch}
		expectGenuine(t, f, tok.Token, r)
		if err := atkInvalidToken.matches(r); err != nil {
			t.Errorf("%s: %v (%q)", tok.Name, err, ch)
		} else {
			expectReason(t, tok.Name, r)
		}
		if n, _ := up.take(); n != 0 {
			t.Errorf("%s: upstream reached", tok.Name)
		}
	}
	if st, _ := caddyAuthorized(t, tester); st != http.StatusUnauthorized {
		t.Errorf("no token: %d", st)
	}
	two := []string{"Bearer " + f.Valid(t), "Bearer " + f.Valid(t)}
	sent = append(sent, two...)
	if st, _ := caddyAuthorized(t, tester, two...); st != http.StatusBadRequest {
		t.Errorf("two tokens: %d", st)
	}
	served()
	if c := f.Attacker.Contacts(); len(c) > 0 {
		t.Errorf("the attacker's server was contacted: %v", c)
	}

	raw, entries := readCaddyLog(t, logFile)
	rejections := 0
	for _, e := range entries {
		if e.Logger == "http.handlers.identity" && strings.Contains(e.Msg, "rejected") {
			rejections++
		}
		// Caddy's own start-up warnings (no TLS in this test) are not
		// about requests; the handler's and the error logger's are.
		if e.Logger != "http.handlers.identity" && e.Logger != "http.log.error" {
			continue
		}
		switch e.Level {
		case "warn", "error", "dpanic", "panic", "fatal":
			t.Errorf("%s from %s during the attack run: %s", e.Level, e.Logger, e.Msg)
		}
	}
	if rejections < forged {
		t.Errorf("%d rejections logged for %d forged tokens: is the DEBUG log captured?", rejections, forged)
	}
	scanLogForSecrets(t, raw, sent)
}

// TestAttackTokenSources: with the token accepted in a header, a cookie
// and a query parameter, a token in two places or a repeated cookie or
// parameter is a 400, look-alike names are not the configured place, and an
// accepted token is removed from what the upstream gets while everything
// else is kept.
func TestAttackTokenSources(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	h := attackHandler(iss)
	h.TokenSources = []TokenSource{
		{From: "header", Name: "Authorization", Scheme: "Bearer"},
		{From: "cookie", Name: "at"},
		{From: "query", Name: "access_token"},
	}
	s := newIdentityServer(t, h, nil)
	get := func(query string, cookies []string, auth ...string) atkResponse {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/p?"+query, nil)
		for _, c := range cookies {
			req.Header.Add("Cookie", c)
		}
		for _, a := range auth {
			req.Header.Add("Authorization", a)
		}
		return s.send(req)
	}
	cases := []struct {
		name    string
		query   string
		cookies []string
		auth    []string
		want    []atkOutcome
		// upstreamURL and upstreamCookie are what the upstream must get
		// when the request is accepted.
		upstreamURL, upstreamCookie string
	}{
		{name: "query", query: "a=1&access_token=$T&b=2", want: []atkOutcome{atkOK}, upstreamURL: "/p?a=1&b=2"},
		{name: "cookie", cookies: []string{"other=1; at=$T; last=2"}, want: []atkOutcome{atkOK}, upstreamURL: "/p?", upstreamCookie: "other=1; last=2"},
		{name: "header", query: "x=1", auth: []string{"Bearer $T"}, want: []atkOutcome{atkOK}, upstreamURL: "/p?x=1"},
		{name: "query-twice", query: "access_token=$T&access_token=$T", want: []atkOutcome{atkBadRequest}},
		{name: "query-and-encoded-name", query: "access_token=$T&access%5Ftoken=garbage", want: []atkOutcome{atkBadRequest}},
		{name: "encoded-name-only", query: "access%5Ftoken=$T", want: []atkOutcome{atkNoToken, atkOK}, upstreamURL: "/p?"},
		{name: "cookie-twice", cookies: []string{"at=$T", "at=$T"}, want: []atkOutcome{atkBadRequest}},
		{name: "cookie-twice-one-line", cookies: []string{"at=$T; at=garbage"}, want: []atkOutcome{atkBadRequest}},
		{name: "header-and-query", query: "access_token=$T", auth: []string{"Bearer $T"}, want: []atkOutcome{atkBadRequest}},
		{name: "header-and-cookie", cookies: []string{"at=$T"}, auth: []string{"Bearer $T"}, want: []atkOutcome{atkBadRequest}},
		{name: "cookie-and-query", query: "access_token=$T", cookies: []string{"at=$T"}, want: []atkOutcome{atkBadRequest}},
		{name: "query-empty", query: "access_token=", want: []atkOutcome{atkNoToken, atkBadRequest}},
		{name: "query-garbage", query: "access_token=garbage", want: []atkOutcome{atkInvalidToken}},
		{name: "query-alg-none", query: "access_token=$NONE", want: []atkOutcome{atkInvalidToken}},
		{name: "query-name-upper-case", query: "ACCESS_TOKEN=$T", want: []atkOutcome{atkNoToken}},
		{name: "cookie-name-upper-case", cookies: []string{"AT=$T"}, want: []atkOutcome{atkNoToken}},
		{name: "query-name-prefix", query: "xaccess_token=$T", want: []atkOutcome{atkNoToken}},
	}
	none := forgeB64JSON(t, map[string]any{"alg": "none"}) + "." + forgeB64JSON(t, f.Claims(nil)) + "."
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			valid := f.Valid(t)
			sub := strings.NewReplacer("$T", valid, "$NONE", none)
			var cookies, auth []string
			for _, v := range c.cookies {
				cookies = append(cookies, sub.Replace(v))
			}
			for _, v := range c.auth {
				auth = append(auth, sub.Replace(v))
			}
			before := s.Upstream.Hits()
			r := get(sub.Replace(c.query), cookies, auth...)
			expectRefusal(t, s, f, before, r, valid, c.want...)
			if r.Status == http.StatusOK {
				hdr, u := s.Upstream.Last()
				if strings.Contains(u, valid) || strings.Contains(strings.Join(hdr.Values("Cookie"), ";"), valid) {
					t.Errorf("the upstream got the token: %s %q", u, hdr.Values("Cookie"))
				}
				if u != c.upstreamURL && u != strings.TrimSuffix(c.upstreamURL, "?") {
					t.Errorf("upstream URL %q, want %q", u, c.upstreamURL)
				}
				if got := strings.Join(hdr.Values("Cookie"), "; "); got != c.upstreamCookie {
					t.Errorf("upstream Cookie %q, want %q", got, c.upstreamCookie)
				}
			}
			expectServed(t, s, f)
		})
	}
}

// TestOutageThroughCaddy: with the provider down, every request through a
// real Caddy gets 503, and the outage shows up at WARN/ERROR once per state
// change, not once per request.
func TestOutageThroughCaddy(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDown(true)
	f := issuerForger(t, iss, atkAudience)
	up := newRecorder(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	tester := ctInit(t, caddyLogGlobal(logFile)+fmt.Sprintf(`%s {
	identity {
		issuer %s
		audience %s
	}
	reverse_proxy %s
}
`, ctSite, iss.URL, atkAudience, up.addr()), "caddyfile")
	const requests = 20
	for i := range requests {
		if st, _ := caddyAuthorized(t, tester, "Bearer "+f.Valid(t)); st != http.StatusServiceUnavailable {
			t.Fatalf("request %d: status %d, want 503", i, st)
		}
	}
	// The outage may be reported by the background warm-up: wait for the
	// handler's report. (A line the warm-up writes later can only add to
	// the count checked below.)
	waitForLog(t, func() string { raw, _ := readCaddyLog(t, logFile); return raw }, func(string) bool {
		_, entries := readCaddyLog(t, logFile)
		return slices.ContainsFunc(entries, func(e caddyLogEntry) bool {
			return e.Logger == "http.handlers.identity" && (e.Level == "warn" || e.Level == "error")
		})
	}, "the outage")
	_, entries := readCaddyLog(t, logFile)
	loud := map[string]map[string]int{}
	for _, e := range entries {
		if e.Level == "warn" || e.Level == "error" {
			if loud[e.Logger] == nil {
				loud[e.Logger] = map[string]int{}
			}
			loud[e.Logger][e.Msg]++
		}
	}
	count := func(logger string) int {
		n := 0
		for _, c := range loud[logger] {
			n += c
		}
		return n
	}
	t.Run("handler log", func(t *testing.T) {
		// One ERROR for the outage, whatever the number of requests.
		if n := count("http.handlers.identity"); n != 1 {
			t.Errorf("%d WARN/ERROR lines from the handler for one outage and %d requests: %v", n, requests, loud["http.handlers.identity"])
		}
	})
	t.Run("caddy error log", func(t *testing.T) {
		// Caddy's http.log.error logger logs every 5xx handler error at
		// ERROR: the handler must not turn each 503 into one.
		if n := count("http.log.error"); n > 1 {
			t.Errorf("Caddy's error log has %d ERROR lines for one outage and %d requests (one per request): %v", n, requests, loud["http.log.error"])
		}
	})
}

// TestQueryTokenAccessLogFilter: Caddy's access log records the request
// as it arrived, query string included, so with `token_from query` a
// token would be logged; the log filter that SECURITY.md recommends keeps
// it out.
func TestQueryTokenAccessLogFilter(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	up := newRecorder(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	tester := ctInit(t, ctGlobal+fmt.Sprintf(`%s {
	log {
		output file %s
		format filter {
			wrap json
			request>uri query {
				delete access_token
			}
		}
	}
	identity {
		issuer %s
		audience %s
		token_from query access_token
	}
	reverse_proxy %s
}
`, ctSite, accessLog, iss.URL, atkAudience, up.addr()), "caddyfile")

	var sent []string
	for _, c := range []struct {
		token string
		want  int
	}{
		{f.Valid(t), http.StatusOK},
		{f.ValidWithClaims(t, map[string]any{"aud": "other"}), http.StatusUnauthorized},
		{f.evil(t, f.Header("RS256", f.RSAKID, nil), f.Claims(nil)), http.StatusUnauthorized},
	} {
		sent = append(sent, "Bearer "+c.token)
		resp, err := tester.Client.Get(ctSite + "/q?x=1&access_token=" + c.token)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("status %d, want %d", resp.StatusCode, c.want)
		}
	}
	// The access log is written after the response: wait for the lines.
	var raw string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(accessLog)
		if raw = string(b); strings.Count(raw, "\n") >= 3 {
			break
		}
	}
	if strings.Count(raw, "\n") < 3 || !strings.Contains(raw, "x=1") {
		t.Fatalf("access log not written as expected:\n%s", raw)
	}
	scanLogForSecrets(t, raw, sent)
}
