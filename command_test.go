package caddyidentity

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// caddyBin is the caddy binary built by TestCommands for its subtests.
var caddyBin string

// TestCommands builds ./cmd/caddy and runs the caddy identity commands
// against identitytest issuers.
func TestCommands(t *testing.T) {
	caddyBin = buildCaddy(t)
	t.Run("discover", testCommandDiscover)
	t.Run("check", testCommandCheck)
	t.Run("verify", testCommandVerify)
	t.Run("verify matchers", testCommandVerifyMatchers)
	t.Run("verify --remote-ip --method", testCommandVerifyRequest)
	t.Run("token", testCommandToken)
	t.Run("token --device", testCommandDevice)
}

// buildCaddy builds ./cmd/caddy, the plugin's Caddy, into the test's
// directory and returns its path (skipped with -short).
func buildCaddy(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the caddy binary")
	}
	bin := filepath.Join(t.TempDir(), "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/caddy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runCaddy runs the built binary and returns its standard output and exit
// code.
func runCaddy(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("caddy %v: %v", args, err)
	}
	t.Logf("caddy %s → %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return stdout.String(), code
}

// writeCaddyfile writes a Caddyfile protecting /api/* with iss.
func writeCaddyfile(t *testing.T, iss *identitytest.Issuer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	cfg := fmt.Sprintf(`example.com {
	handle /api/* {
		identity {
			issuer %s
			audience api
			claim_header sub X-User-Id
		}
		respond "ok"
	}
	respond "public"
}
`, iss.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testCommandDiscover(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	out, code := runCaddy(t, "", "identity", "discover", iss.URL)
	if code != exitOK || !strings.Contains(out, "jwks_uri:") || !strings.Contains(out, iss.JWKSURL()) {
		t.Fatalf("discover: %d %s", code, out)
	}
	out, code = runCaddy(t, "", "identity", "discover", "--json", iss.URL)
	var res discoverResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || !res.OK || res.Document.JWKSURI != iss.JWKSURL() {
		t.Fatalf("discover --json: %d %v %s", code, err, out)
	}

	bad := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
		m["issuer"] = "https://elsewhere.example"
	}))
	if out, code := runCaddy(t, "", "identity", "discover", bad.URL); code != exitRefused || !strings.Contains(out, "issuer mismatch") {
		t.Fatalf("issuer mismatch: %d %s", code, out)
	}
	iss.SetDown(true)
	if out, code := runCaddy(t, "", "identity", "discover", iss.URL); code != exitUnavailable || !strings.Contains(out, "503") {
		t.Fatalf("provider down: %d %s", code, out)
	}
}

func testCommandCheck(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	cfg := writeCaddyfile(t, iss)
	out, code := runCaddy(t, "", "identity", "check", "--config", cfg)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("kid=%q", iss.KeyIDs()[0])) || !strings.Contains(out, "path /api/*") {
		t.Fatalf("check: %d %s", code, out)
	}
	out, code = runCaddy(t, "", "identity", "check", "--json", "--config", cfg)
	var res []checkHandler
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || len(res) != 1 ||
		len(res[0].Issuers) != 1 || !res[0].Issuers[0].OK || len(res[0].Issuers[0].Keys) != len(iss.KeyIDs()) ||
		res[0].Issuers[0].Keys[0].Size == 0 || res[0].Issuers[0].JWKSURI != iss.JWKSURL() {
		t.Fatalf("check --json: %d %v %s", code, err, out)
	}
	iss.SetDown(true)
	if out, code := runCaddy(t, "", "identity", "check", "--config", cfg); code != exitUnavailable || !strings.Contains(out, "UNAVAILABLE") {
		t.Fatalf("provider down: %d %s", code, out)
	}
	if _, code := runCaddy(t, "", "identity", "check", "--config", filepath.Join(t.TempDir(), "missing")); code != exitUsage {
		t.Fatalf("missing config: %d", code)
	}
}

func testCommandVerify(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	cfg := writeCaddyfile(t, iss)
	verify := func(tok string, extra ...string) (verifyResult, string, int) {
		t.Helper()
		args := append([]string{"identity", "verify", "--config", cfg, "--site", "example.com", "--path", "/api/x"}, extra...)
		out, code := runCaddy(t, tok, append(args, "-")...)
		if strings.Contains(out, tok) {
			t.Fatalf("token echoed: %s", out)
		}
		var res verifyResult
		if len(extra) > 0 && extra[0] == "--json" {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("--json: %v %s", err, out)
			}
		}
		return res, out, code
	}

	good := iss.Token(t, "alice", nil)
	if _, out, code := verify(good); code != exitOK || !strings.Contains(out, "ACCEPTED") || !strings.Contains(out, "X-User-Id: alice") {
		t.Fatalf("valid token: %d %s", code, out)
	}
	if res, _, code := verify(good, "--json"); code != exitOK || !res.Accepted || res.Headers["X-User-Id"] != "alice" {
		t.Fatalf("valid token --json: %d %+v", code, res)
	}

	for _, c := range []struct {
		name   string
		token  string
		reason string
		detail string
	}{
		{"wrong audience", iss.Token(t, "alice", map[string]any{"aud": "other"}), "audience", "aud"},
		{"expired", iss.Token(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour), "iat": time.Now().Add(-2 * time.Hour)}), "expired", "exp"},
		{"unknown kid", iss.Mint(t, map[string]any{"sub": "alice"}, identitytest.KeyID("unknown-kid")), "unknown_key", "no matching key"},
	} {
		res, out, code := verify(c.token, "--json")
		if code != exitRefused || res.Accepted || res.Status != 401 || len(res.Challenge) == 0 ||
			!strings.Contains(res.Reason+" "+res.Detail, c.reason) || !strings.Contains(res.Detail, c.detail) {
			t.Errorf("%s: %d %s", c.name, code, out)
		}
	}

	iss.SetDown(true)
	if res, out, code := verify(good, "--json"); code != exitUnavailable || res.Status != 503 || res.Reason != "provider_unavailable" {
		t.Fatalf("provider down: %d %s", code, out)
	}
	if _, code := runCaddy(t, "", "identity", "verify", "--config", cfg, "--site", "other.example", "x"); code != exitUsage {
		t.Fatalf("no handler for the site: %d", code)
	}
}

func testCommandToken(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("svc", "s3cret"))
	out, code := runCaddy(t, "", "identity", "token", "--issuer", iss.URL, "--client-id", "svc", "--client-secret", "s3cret", "--scope", "read")
	tok := strings.TrimSpace(out)
	if code != exitOK || strings.Count(tok, ".") != 2 {
		t.Fatalf("client credentials: %d %s", code, out)
	}
	out, code = runCaddy(t, tok, "identity", "token", "--decode", "-")
	if code != exitOK || !strings.Contains(out, "UNVERIFIED") || !strings.Contains(out, iss.URL) {
		t.Fatalf("decode: %d %s", code, out)
	}
	out, code = runCaddy(t, "", "identity", "token", "--json", "--decode", "--issuer", iss.URL, "--client-id", "svc", "--client-secret", "s3cret")
	var res tokenResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || res.AccessToken == "" ||
		res.Unverified == nil || res.Unverified.Claims["iss"] != iss.URL {
		t.Fatalf("token --json --decode: %d %v %s", code, err, out)
	}
	if out, code := runCaddy(t, "", "identity", "token", "--issuer", iss.URL, "--client-id", "svc", "--client-secret", "wrong"); code != exitRefused || !strings.Contains(out, "invalid_client") {
		t.Fatalf("wrong secret: %d %s", code, out)
	}
	iss.SetDown(true)
	if out, code := runCaddy(t, "", "identity", "token", "--issuer", iss.URL, "--client-id", "svc", "--client-secret", "s3cret"); code != exitUnavailable {
		t.Fatalf("provider down: %d %s", code, out)
	}
}

// runningCaddy is a caddy command that is still running: its standard
// error is read line by line while the test plays the user.
type runningCaddy struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	lines  chan string
}

// startCaddyCommand starts the built binary; the caller reads its
// standard error with nextLine and ends with wait.
func startCaddyCommand(t *testing.T, args ...string) *runningCaddy {
	t.Helper()
	rc := &runningCaddy{cmd: exec.Command(caddyBin, args...), lines: make(chan string, 64)}
	rc.cmd.Stdout = &rc.stdout
	stderr, err := rc.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.cmd.Process.Kill() })
	go func() {
		defer close(rc.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			rc.lines <- sc.Text()
		}
	}()
	t.Logf("started caddy %s", strings.Join(args, " "))
	return rc
}

// nextLine returns the next line of standard error that contains want.
func (rc *runningCaddy) nextLine(t *testing.T, want string) string {
	t.Helper()
	for line := range rc.lines {
		t.Logf("stderr: %s", line)
		if strings.Contains(line, want) {
			return line
		}
	}
	t.Fatalf("standard error ended without %q", want)
	return ""
}

// wait waits for the command and returns its standard output and exit
// code.
func (rc *runningCaddy) wait(t *testing.T) (string, int) {
	t.Helper()
	for line := range rc.lines {
		t.Logf("stderr: %s", line)
	}
	err := rc.cmd.Wait()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %d, stdout:\n%s", code, rc.stdout.String())
	return rc.stdout.String(), code
}

// userCode returns the code a device flow tells the user to enter.
func userCode(t *testing.T, rc *runningCaddy) string {
	t.Helper()
	_, code, _ := strings.Cut(rc.nextLine(t, "enter the code: "), "enter the code: ")
	return code
}

func testCommandDevice(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithClient("cli", ""), identitytest.WithDevicePolling(time.Second, 0))
	device := func(extra ...string) *runningCaddy {
		return startCaddyCommand(t, append([]string{"identity", "token", "--device", "--issuer", iss.URL, "--client-id", "cli"}, extra...)...)
	}

	t.Run("approved, public client", func(t *testing.T) {
		rc := device("--scope", "openid")
		if !iss.ApproveDevice(userCode(t, rc), "alice") {
			t.Fatal("no pending authorization for the code shown")
		}
		out, code := rc.wait(t)
		d, err := decodeUnverified(strings.TrimSpace(out))
		if code != exitOK || err != nil || d.Claims["sub"] != "alice" || d.Claims["client_id"] != "cli" {
			t.Fatalf("exit %d, %v, claims %v", code, err, d)
		}
	})

	t.Run("slow_down", func(t *testing.T) {
		rc := device()
		uc := userCode(t, rc)
		rc.nextLine(t, "polling every 1s")
		iss.SlowDownDevice(uc)
		rc.nextLine(t, "asked to slow down: polling every 6s")
		iss.ApproveDevice(uc, "alice")
		if out, code := rc.wait(t); code != exitOK || strings.Count(out, ".") != 2 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})

	t.Run("denied, --json", func(t *testing.T) {
		rc := device("--json")
		var shown deviceView
		if err := json.Unmarshal([]byte(rc.nextLine(t, "user_code")), &shown); err != nil || shown.VerificationURI == "" || shown.Interval != "1s" {
			t.Fatalf("device instructions: %v %+v", err, shown)
		}
		iss.DenyDevice(shown.UserCode)
		out, code := rc.wait(t)
		var res tokenResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitRefused || !strings.Contains(res.Error, "access_denied") ||
			res.AccessToken != "" || res.Device == nil || res.Device.UserCode != shown.UserCode {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
	})

	t.Run("expired", func(t *testing.T) {
		short := identitytest.NewIssuer(t, identitytest.WithDevicePolling(time.Second, 2*time.Second))
		rc := startCaddyCommand(t, "identity", "token", "--device", "--issuer", short.URL,
			"--client-id", identitytest.DefaultClientID, "--client-secret", identitytest.DefaultClientSecret)
		userCode(t, rc)
		if out, code := rc.wait(t); code != exitRefused || !strings.Contains(out, "expired") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})

	t.Run("usage and provider down", func(t *testing.T) {
		if _, code := runCaddy(t, "", "identity", "token", "--device", "--issuer", iss.URL, "--client-id", "cli", "--audience", "x"); code != exitUsage {
			t.Errorf("--audience with --device: exit %d", code)
		}
		if _, code := runCaddy(t, "", "identity", "token", "--issuer", iss.URL, "--client-id", "cli"); code != exitUsage {
			t.Errorf("client credentials without a secret: exit %d", code)
		}
		iss.SetDown(true)
		defer iss.SetDown(false)
		if out, code := runCaddy(t, "", "identity", "token", "--device", "--issuer", iss.URL, "--client-id", "cli"); code != exitUnavailable {
			t.Errorf("provider down: exit %d: %s", code, out)
		}
	})
}

// testCommandVerifyMatchers checks that verify picks the handler with
// Caddy's own matchers: a wildcard site (one label), a path pattern with
// a wildcard in the middle, a path_regexp named matcher.
func testCommandVerifyMatchers(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`*.example.com {
	handle /api/*/orders {
		identity {
			issuer %[1]s
			audience orders
			claim_header sub X-Orders-User
		}
		respond "orders"
	}
	@admin path_regexp ^/admin/[0-9]+$
	handle @admin {
		identity {
			issuer %[1]s
			audience admin
			claim_header sub X-Admin-User
		}
		respond "admin"
	}
	respond "public"
}
`, iss.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	orders := iss.Token(t, "alice", map[string]any{"aud": "orders"})
	admin := iss.Token(t, "bob", map[string]any{"aud": "admin"})
	for _, c := range []struct {
		site, path, token string
		code              int
		header, user      string
	}{
		{"shop.example.com", "/api/v2/orders", orders, exitOK, "X-Orders-User", "alice"},
		{"SHOP.example.com", "/api/v1/orders", orders, exitOK, "X-Orders-User", "alice"},
		{"shop.example.com", "/admin/42", admin, exitOK, "X-Admin-User", "bob"},
		{"", "/admin/42", admin, exitOK, "X-Admin-User", "bob"},
		{"shop.example.com", "/admin/42", orders, exitRefused, "", ""},
		{"shop.example.com", "/admin/x", admin, exitUsage, "", ""},
		{"shop.example.com", "/api/orders", orders, exitUsage, "", ""},
		{"a.shop.example.com", "/api/v2/orders", orders, exitUsage, "", ""},
		{"example.org", "/admin/42", admin, exitUsage, "", ""},
	} {
		out, code := runCaddy(t, c.token, "identity", "verify", "--json", "--config", cfg, "--site", c.site, "--path", c.path, "-")
		if code != c.code {
			t.Errorf("site %q path %q: exit %d, want %d", c.site, c.path, code, c.code)
			continue
		}
		if c.code == exitOK {
			var res verifyResult
			if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Accepted || res.Headers[c.header] != c.user {
				t.Errorf("site %q path %q: %v %s", c.site, c.path, err, out)
			}
		}
	}
}

// testCommandVerifyRequest: routes guarded by remote_ip, client_ip and
// method matchers are found only when --remote-ip and --method make the
// request theirs; invalid values are usage errors.
func testCommandVerifyRequest(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`example.com {
	@office remote_ip 10.1.0.0/16 2001:db8::/32
	handle @office {
		identity {
			issuer %[1]s
			audience office
			claim_header sub X-Office-User
		}
		respond "office"
	}
	@partner client_ip 203.0.113.0/24
	handle @partner {
		identity {
			issuer %[1]s
			audience partner
			claim_header sub X-Partner-User
		}
		respond "partner"
	}
	@write method POST PUT
	handle @write {
		identity {
			issuer %[1]s
			audience write
			claim_header sub X-Write-User
		}
		respond "write"
	}
	respond "public"
}
`, iss.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	office := iss.Token(t, "alice", map[string]any{"aud": "office"})
	partner := iss.Token(t, "carol", map[string]any{"aud": "partner"})
	write := iss.Token(t, "bob", map[string]any{"aud": "write"})
	for _, c := range []struct {
		name, token  string
		flags        []string
		code         int
		header, user string
	}{
		{"remote_ip without the flag", office, nil, exitUsage, "", ""},
		{"remote_ip", office, []string{"--remote-ip", "10.1.2.3"}, exitOK, "X-Office-User", "alice"},
		{"remote_ip with port", office, []string{"--remote-ip", "10.1.2.3:40000"}, exitOK, "X-Office-User", "alice"},
		{"remote_ip IPv6", office, []string{"--remote-ip", "2001:db8::7"}, exitOK, "X-Office-User", "alice"},
		{"remote_ip IPv6 with port", office, []string{"--remote-ip", "[2001:db8::7]:443"}, exitOK, "X-Office-User", "alice"},
		{"remote_ip outside the range", office, []string{"--remote-ip", "10.2.0.1"}, exitUsage, "", ""},
		{"client_ip", partner, []string{"--remote-ip", "203.0.113.9"}, exitOK, "X-Partner-User", "carol"},
		{"another handler's token", write, []string{"--remote-ip", "10.1.2.3"}, exitRefused, "", ""},
		{"method without the flag", write, nil, exitUsage, "", ""},
		{"method", write, []string{"--method", "POST"}, exitOK, "X-Write-User", "bob"},
		{"method in lower case", write, []string{"--method", "put"}, exitOK, "X-Write-User", "bob"},
		{"method and remote_ip: the first route wins", office, []string{"--method", "POST", "--remote-ip", "10.1.2.3"}, exitOK, "X-Office-User", "alice"},
		{"invalid IP", office, []string{"--remote-ip", "10.1.2"}, exitUsage, "", ""},
		{"host name for an IP", office, []string{"--remote-ip", "office.example.com"}, exitUsage, "", ""},
		{"invalid port", office, []string{"--remote-ip", "10.1.2.3:99999"}, exitUsage, "", ""},
		{"invalid method", write, []string{"--method", "PO ST"}, exitUsage, "", ""},
		{"CONNECT", write, []string{"--method", "CONNECT"}, exitUsage, "", ""},
	} {
		args := append([]string{"identity", "verify", "--json", "--config", cfg, "--site", "example.com", "--path", "/x"}, c.flags...)
		out, code := runCaddy(t, c.token, append(args, "-")...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d", c.name, code, c.code)
			continue
		}
		if c.code == exitOK {
			var res verifyResult
			if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Accepted || res.Headers[c.header] != c.user {
				t.Errorf("%s: %v %s", c.name, err, out)
			}
		}
	}
}
