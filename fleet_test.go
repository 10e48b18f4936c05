package caddyidentity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// This file runs a fleet: two real Caddy processes (the plugin's
// ./cmd/caddy, built by the test) on free loopback ports, admin off,
// sharing one redis-server started by the test, behind a "load balancer"
// that is the test client's dialer: every request goes to the front
// address, which the dialer connects to the instance the test chose, so
// both instances see the same Host (the same DPoP htu, the same cookies).

// fleetStoreTimeout is the instances' store timeout.
const fleetStoreTimeout = 250 * time.Millisecond

// caddyProcess is one running Caddy.
type caddyProcess struct {
	name string
	addr string
	cmd  *exec.Cmd
	log  *lockedBuffer
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCaddyProcess runs bin with a JSON config whose one server listens
// on a free loopback port and runs handler, then a response naming the
// user; the process is killed at the end of the test, and its log shown
// if the test failed.
func startCaddyProcess(t *testing.T, bin, name string, handler map[string]any) *caddyProcess {
	t.Helper()
	p := &caddyProcess{name: name, addr: freeAddr(t), log: &lockedBuffer{}}
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"fleet": map[string]any{
			"listen":          []string{p.addr},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{"handle": []any{
				handler,
				map[string]any{"handler": "static_response", "body": "user={http.auth.user.id}"},
			}}},
		}}}},
	}
	dir := t.TempDir()
	raw, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "run", "--config", path)
	p.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("log of caddy %s:\n%s", p.name, p.log.String())
		}
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
			return p
		}
		if i == 400 || p.cmd.ProcessState != nil {
			t.Fatalf("caddy %s does not listen on %s: %v\n%s", name, p.addr, err, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fleetClient is a browser (cookie jar, redirects followed) behind the
// load balancer: requests to front go to the chosen instance.
type fleetClient struct {
	t       *testing.T
	front   string // http://host:port every request is addressed to
	backend atomic.Pointer[caddyProcess]
	http    *http.Client
}

func newFleetClient(t *testing.T) *fleetClient {
	t.Helper()
	f := &fleetClient{t: t, front: freeAddr(t)}
	jar, _ := cookiejar.New(nil)
	var d net.Dialer
	f.http = &http.Client{
		Jar:     jar,
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			// A new connection per request, so that each goes to the
			// instance chosen at that moment.
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == f.front {
					addr = f.backend.Load().addr
				}
				return d.DialContext(ctx, network, addr)
			},
		},
	}
	return f
}

// at sends the next requests to p.
func (f *fleetClient) at(p *caddyProcess) *fleetClient {
	f.backend.Store(p)
	return f
}

// do sends a request to the front and returns status, headers and body;
// an error (the client's 5 s timeout included) fails the test.
func (f *fleetClient) do(method, path string, hdr map[string]string, body io.Reader) (int, http.Header, string) {
	f.t.Helper()
	r, err := http.NewRequest(method, "http://"+f.front+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	res, err := f.http.Do(r)
	if err != nil {
		f.t.Fatalf("%s %s at %s: %v", method, path, f.backend.Load().name, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// xhr is a script's request with the browser's cookies.
func (f *fleetClient) xhr(path string) (int, string) {
	f.t.Helper()
	status, _, body := f.do(http.MethodGet, path, map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "application/json"}, nil)
	return status, body
}

// loginFormRequest finds the pending request's handle in the login page.
var loginFormRequest = regexp.MustCompile(`name="` + identitytest.LoginFieldRequest + `" value="([^"]+)"`)

// signIn navigates to / at the current instance, signs in on the
// provider's login page and checks that the instance serves alice.
func (f *fleetClient) signIn(iss *identitytest.Issuer) {
	f.t.Helper()
	status, _, page := f.do(http.MethodGet, "/", map[string]string{
		"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": "text/html",
	}, nil)
	m := loginFormRequest.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		f.t.Fatalf("navigation without session: %d, no login page:\n%s", status, page)
	}
	form := url.Values{
		identitytest.LoginFieldRequest:  {m[1]},
		identitytest.LoginFieldUsername: {"alice"},
		identitytest.LoginFieldPassword: {"wonderland"},
	}
	r, _ := http.NewRequest(http.MethodPost, iss.URL+identitytest.AuthorizePath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := f.http.Do(r)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != "user=alice" {
		f.t.Fatalf("after the login form at %s: %d %q", f.backend.Load().name, res.StatusCode, b)
	}
}

// TestFleetTwoCaddyProcesses: two Caddy processes sharing one Redis. A
// server-side session created at one is served by the other; a DPoP proof
// accepted at one is refused at the other; a back-channel logout at one
// ends the session at the other within the documented staleness; a slow
// Redis bounds requests by the store timeout; a stopped Redis gives the
// configured policy (fail_closed: 503 for what needs the store, bearer
// tokens unaffected), and the fleet recovers when it is back, without a
// restart.
func TestFleetTwoCaddyProcesses(t *testing.T) {
	srv := startRedis(t)
	bin := buildCaddy(t)
	iss := identitytest.NewIssuer(t, identitytest.WithLoginPage(map[string]string{"alice": "wonderland"}))
	handler := map[string]any{
		"handler":   "identity",
		"issuers":   []any{map[string]any{"issuer": iss.URL}},
		"audiences": []string{identitytest.DefaultAudience},
		"login": map[string]any{
			"client_id":     identitytest.DefaultClientID,
			"client_secret": identitytest.DefaultClientSecret,
			"session_keys":  []string{testKey1},
			"session_store": sessionStoreRedis,
		},
		"store": map[string]any{"redis": map[string]any{
			"address": srv.addr,
			"timeout": fleetStoreTimeout.String(),
			"failure": "fail_closed",
		}},
	}
	a := startCaddyProcess(t, bin, "A", handler)
	b := startCaddyProcess(t, bin, "B", handler)
	browser := newFleetClient(t)

	// A session created at A is served by B.
	browser.at(a).signIn(iss)
	if status, body := browser.at(b).xhr("/"); status != http.StatusOK || body != "user=alice" {
		t.Fatalf("the session of A at B: %d %q", status, body)
	}

	// A DPoP proof accepted at A is refused at B.
	key, err := identity.NewDPoPKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	token := iss.Token(t, "bob", map[string]any{"cnf": map[string]any{"jkt": key.Thumbprint()}})
	api := newFleetClient(t)
	api.front = browser.front
	dpopGet := func(p *caddyProcess, proof string) (int, http.Header) {
		status, hdr, _ := api.at(p).do(http.MethodGet, "/api", map[string]string{"Authorization": "DPoP " + token, "DPoP": proof}, nil)
		return status, hdr
	}
	proofOf := func() string {
		p, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: "http://" + api.front + "/api", AccessToken: token})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	proof := proofOf()
	if status, _ := dpopGet(a, proof); status != http.StatusOK {
		t.Fatalf("DPoP proof at A: %d", status)
	}
	if status, hdr := dpopGet(b, proof); status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Errorf("the proof replayed at B: %d %q, want 401 invalid_dpop_proof", status, hdr.Get("WWW-Authenticate"))
	}

	// A back-channel logout at A ends the session at B.
	logout := iss.Mint(t, map[string]any{
		"aud": identitytest.DefaultClientID, "sub": "alice", "jti": identity.GenerateState(),
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
	}, identitytest.Header("typ", "logout+jwt"))
	provider := newFleetClient(t)
	provider.front = browser.front
	status, _, body := provider.at(a).do(http.MethodPost, "/oauth2/backchannel_logout",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		strings.NewReader(url.Values{"logout_token": {logout}}.Encode()))
	if status != http.StatusOK {
		t.Fatalf("back-channel logout at A: %d %s", status, body)
	}
	loggedOut := time.Now()
	for i := 0; ; i++ {
		if status, _ := browser.at(b).xhr("/"); status == http.StatusUnauthorized {
			break
		}
		if i == 1000 {
			t.Fatal("B still serves the session 10 s after the back-channel logout at A")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("back-channel logout at A reached B after at most %v (first poll that saw it; polls every 10 ms)", time.Since(loggedOut))

	// A new sign-in, at B this time (sessions are dated to the second:
	// one in the same second as the logout would count as ended).
	time.Sleep(time.Until(loggedOut.Truncate(time.Second).Add(time.Second)))
	browser.at(b).signIn(iss)
	if status, body := browser.at(a).xhr("/"); status != http.StatusOK || body != "user=alice" {
		t.Fatalf("the session of B at A: %d %q", status, body)
	}

	// Redis slow: it does not answer for 3 s; requests that need it get
	// 503 within the client's 5 s (the store timeout is 250ms), bearer
	// requests 200.
	sleeping := make(chan error, 1)
	go func() { sleeping <- srv.client().Do(context.Background(), "DEBUG", "SLEEP", "3").Err() }()
	waitRedisBusy(t, srv)
	start := time.Now()
	if status, _ := dpopGet(a, proofOf()); status != http.StatusServiceUnavailable {
		t.Errorf("DPoP request with Redis asleep: %d, want 503", status)
	}
	if status, _ := browser.at(b).xhr("/"); status != http.StatusServiceUnavailable {
		t.Errorf("session request with Redis asleep: %d, want 503", status)
	}
	plain := iss.Token(t, "carol", nil)
	if status, _, _ := api.at(b).do(http.MethodGet, "/api", map[string]string{"Authorization": "Bearer " + plain}, nil); status != http.StatusOK {
		t.Errorf("bearer request with Redis asleep: %d, want 200", status)
	}
	t.Logf("three requests with Redis asleep took %v (store timeout %v)", time.Since(start).Round(time.Millisecond), fleetStoreTimeout)
	if err := <-sleeping; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	if status, body := browser.at(a).xhr("/"); status != http.StatusOK || body != "user=alice" {
		t.Errorf("session once Redis answers again: %d %q", status, body)
	}

	// Redis stopped: fail_closed refuses what needs the store; bearer
	// tokens pass; each instance logs the outage once.
	outages := map[*caddyProcess]int{}
	for _, p := range []*caddyProcess{a, b} {
		outages[p] = strings.Count(p.log.String(), "shared store unreachable")
	}
	srv.stop()
	if status, _ := dpopGet(a, proofOf()); status != http.StatusServiceUnavailable {
		t.Errorf("DPoP request with Redis down: %d, want 503", status)
	}
	if status, _ := browser.at(b).xhr("/"); status != http.StatusServiceUnavailable {
		t.Errorf("session request with Redis down: %d, want 503", status)
	}
	if status, _, _ := api.at(a).do(http.MethodGet, "/api", map[string]string{"Authorization": "Bearer " + plain}, nil); status != http.StatusOK {
		t.Errorf("bearer request with Redis down: %d, want 200", status)
	}
	for _, p := range []*caddyProcess{a, b} {
		if n := strings.Count(p.log.String(), "shared store unreachable") - outages[p]; n != 1 {
			t.Errorf("caddy %s logged the outage %d times, want once", p.name, n)
		}
	}

	// Redis back (empty: it keeps nothing on disk): both instances use it
	// again without a restart, and a new sign-in at one is served by the
	// other.
	srv.start()
	for _, p := range []*caddyProcess{a, b} {
		for i := 0; ; i++ {
			status, _ := dpopGet(p, proofOf())
			if status == http.StatusOK {
				break
			}
			if status != http.StatusServiceUnavailable || i == 200 {
				t.Fatalf("DPoP request at %s after Redis came back: %d", p.name, status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	browser.at(a).signIn(iss)
	if status, body := browser.at(b).xhr("/"); status != http.StatusOK || body != "user=alice" {
		t.Fatalf("a session after recovery at B: %d %q", status, body)
	}
	for _, p := range []*caddyProcess{a, b} {
		if !strings.Contains(p.log.String(), "shared store reachable again") {
			t.Errorf("caddy %s did not log the recovery", p.name)
		}
	}
}

// waitRedisBusy waits until the server stops answering (inside DEBUG
// SLEEP).
func waitRedisBusy(t *testing.T, srv *redisServer) {
	t.Helper()
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", srv.addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = fmt.Fprint(c, "PING\r\n")
		_, err = c.Read(make([]byte, 16))
		c.Close()
		if err != nil {
			return
		}
		if i == 100 {
			t.Fatal("redis-server still answers: DEBUG SLEEP did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
