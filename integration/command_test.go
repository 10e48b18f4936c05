package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Exit codes of the caddy identity commands, as documented in README.md
// ("Operating") and in caddy help identity.
const (
	exitOK          = 0
	exitUsage       = 1
	exitRefused     = 2
	exitUnavailable = 3
)

// caddyCLI is the caddy binary of this module (./cmd/caddy), built once by
// the test that uses it.
type caddyCLI struct {
	t   *testing.T
	bin string
}

func buildCaddyCLI(t *testing.T) *caddyCLI {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/caddy-identity/caddy-identity/cmd/caddy").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return &caddyCLI{t: t, bin: bin}
}

// run runs caddy with args and returns its standard output and exit code.
func (c *caddyCLI) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := exitCode(t, cmd.Run())
	t.Logf("caddy %s → %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return stdout.String(), code
}

// runJSON runs caddy with --json and decodes its standard output into v.
func (c *caddyCLI) runJSON(t *testing.T, v any, args ...string) int {
	t.Helper()
	out, code := c.run(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("caddy %s --json: output is not JSON: %v", strings.Join(args, " "), err)
	}
	return code
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// deviceCommand is caddy identity token --device while it runs: the test
// reads the instructions on its standard error and plays the user.
type deviceCommand struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	lines  chan string
}

func (c *caddyCLI) startDevice(t *testing.T, args ...string) *deviceCommand {
	t.Helper()
	d := &deviceCommand{cmd: exec.Command(c.bin, append([]string{"identity", "token", "--device"}, args...)...), lines: make(chan string, 64)}
	d.cmd.Stdout = &d.stdout
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	go func() {
		defer close(d.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
	}()
	return d
}

// userCode returns the code the command tells the user to enter.
func (d *deviceCommand) userCode(t *testing.T) string {
	t.Helper()
	const prompt = "enter the code: "
	for line := range d.lines {
		t.Logf("stderr: %s", line)
		if _, code, ok := strings.Cut(line, prompt); ok {
			return code
		}
	}
	t.Fatalf("the command ended without showing a user code")
	return ""
}

// wait returns the command's standard output and exit code.
func (d *deviceCommand) wait(t *testing.T) (string, int) {
	t.Helper()
	for line := range d.lines {
		t.Logf("stderr: %s", line)
	}
	code := exitCode(t, d.cmd.Wait())
	t.Logf("exit %d: %s", code, d.stdout.String())
	return d.stdout.String(), code
}

// denyDevice plays a user who refuses the device flow: opens the verification page with the user code and aborts.
func (p *oidcProvider) denyDevice(t testing.TB, userCode string) {
	t.Helper()
	b := newBrowser(t)
	_, status, page := b.follow(p, p.URL()+"/device?user_code="+url.QueryEscape(userCode), nil)
	m := xsrfPattern.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		t.Fatalf("device verification page: status %d, no xsrf: %s", status, page)
	}
	if _, status, page = b.follow(p, p.URL()+"/device", url.Values{"xsrf": {m[1]}, "user_code": {userCode}, "abort": {"yes"}}); status >= 500 {
		t.Fatalf("device abort: status %d: %s", status, page)
	}
}

// unverifiedClaims reads a JWT's claims without verifying it (the tests
// verify through the commands).
func unverifiedClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	tok, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(tok.UnsafePayloadWithoutVerification(), &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestCommandsAgainstProvider runs the built caddy binary's identity
// commands against oidc-provider: discover, check, token (client
// credentials and the device flow, approved and denied at the provider's
// own pages) and verify with a valid token, a wrong audience, an expired
// token, a key the provider no longer publishes, and the provider down.
func TestCommandsAgainstProvider(t *testing.T) {
	p := startProvider(t, providerOptions{})
	cli := buildCaddyCLI(t)
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	cfg := fmt.Sprintf(`api.example.test {
	route /v1/* {
		identity {
			issuer %s
			audience %s %s
			leeway 0s
			claim_header sub X-User-Id
			claim_header client_id X-Client-Id
			claim_header scope X-Scopes
		}
		respond "ok"
	}
	respond "public"
}
`, p.URL(), resourceRS256, resourceShort)
	if err := os.WriteFile(caddyfile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	verifyArgs := []string{"identity", "verify", "--config", caddyfile, "--site", "api.example.test", "--path", "/v1/orders"}
	type verifyResult struct {
		Accepted  bool              `json:"accepted"`
		Status    int               `json:"status"`
		Reason    string            `json:"reason"`
		Detail    string            `json:"detail"`
		Challenge []string          `json:"www_authenticate"`
		Headers   map[string]string `json:"headers"`
	}
	verify := func(t *testing.T, token string) (verifyResult, int) {
		t.Helper()
		var res verifyResult
		code := cli.runJSON(t, &res, append(verifyArgs, token)...)
		return res, code
	}
	type tokenResult struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
	}
	clientCredentials := func(t *testing.T, resource string) string {
		t.Helper()
		out, code := cli.run(t, "identity", "token", "--issuer", p.URL(), "--client-id", testClientID, "--client-secret", testClientSecret,
			"--resource", resource, "--scope", "api:read")
		if code != exitOK || strings.Count(strings.TrimSpace(out), ".") != 2 {
			t.Fatalf("token for %s: exit %d: %s", resource, code, out)
		}
		return strings.TrimSpace(out)
	}
	// The 5 s token is fetched first; the expiry case waits for what is left of it at the end.
	short := clientCredentials(t, resourceShort)

	t.Run("discover", func(t *testing.T) {
		out, code := cli.run(t, "identity", "discover", p.URL())
		if code != exitOK || !strings.Contains(out, "device_authorization_endpoint:") || !strings.Contains(out, p.URL()+"/jwks") {
			t.Fatalf("exit %d: %s", code, out)
		}
		var res struct {
			OK       bool           `json:"ok"`
			Document map[string]any `json:"document"`
		}
		if code := cli.runJSON(t, &res, "identity", "discover", p.URL()); code != exitOK || !res.OK || res.Document["issuer"] != p.URL() {
			t.Fatalf("--json: exit %d: %+v", code, res)
		}
		if _, code := cli.run(t, "identity", "discover", p.URL()+"/other"); code == exitOK {
			t.Error("a path that is not the issuer was accepted")
		}
	})

	t.Run("check", func(t *testing.T) {
		var res []struct {
			Paths   []string `json:"paths"`
			Issuers []struct {
				Issuer string `json:"issuer"`
				OK     bool   `json:"ok"`
				Source string `json:"source"`
				Keys   []struct {
					KeyID string `json:"kid"`
					Type  string `json:"kty"`
					Size  int    `json:"size"`
				} `json:"keys"`
			} `json:"issuers"`
		}
		if code := cli.runJSON(t, &res, "identity", "check", "--config", caddyfile); code != exitOK || len(res) != 1 || len(res[0].Issuers) != 1 {
			t.Fatalf("exit %d: %+v", code, res)
		}
		is := res[0].Issuers[0]
		var kids []string
		for _, k := range is.Keys {
			kids = append(kids, fmt.Sprintf("%s/%s/%d", k.KeyID, k.Type, k.Size))
		}
		slices.Sort(kids)
		if !is.OK || is.Issuer != p.URL() || is.Source != "discovery" || !slices.Equal(kids, []string{"es-1/EC/256", "rs-1/RSA/2048"}) ||
			!slices.Equal(res[0].Paths, []string{"/v1/*"}) {
			t.Fatalf("issuer %+v, keys %v, paths %v", is, kids, res[0].Paths)
		}
		if out, code := cli.run(t, "identity", "check", "--config", caddyfile); code != exitOK || !strings.Contains(out, `kid="rs-1" alg=RS256 kty=RSA size=2048`) {
			t.Fatalf("exit %d: %s", code, out)
		}
	})

	t.Run("token", func(t *testing.T) {
		var res tokenResult
		code := cli.runJSON(t, &res, "identity", "token", "--issuer", p.URL(), "--client-id", testClientID, "--client-secret", "wrong")
		if code != exitRefused || !strings.Contains(res.Error, "invalid_client") {
			t.Fatalf("wrong secret: exit %d: %+v", code, res)
		}
		code = cli.runJSON(t, &res, "identity", "token", "--issuer", p.URL(), "--client-id", testClientID, "--client-secret", testClientSecret,
			"--resource", resourceRS256, "--scope", "api:read")
		if code != exitOK || !strings.EqualFold(res.TokenType, "bearer") || res.ExpiresIn <= 0 {
			t.Fatalf("exit %d: %+v", code, res)
		}
		if claims := unverifiedClaims(t, res.AccessToken); claims["aud"] != resourceRS256 || claims["client_id"] != testClientID {
			t.Fatalf("claims %v", claims)
		}
	})

	t.Run("verify accepted", func(t *testing.T) {
		tok := clientCredentials(t, resourceRS256)
		res, code := verify(t, tok)
		want := map[string]string{"X-User-Id": testClientID, "X-Client-Id": testClientID, "X-Scopes": "api:read"}
		if code != exitOK || !res.Accepted || res.Status != http.StatusOK || !maps.Equal(res.Headers, want) {
			t.Fatalf("exit %d: %+v", code, res)
		}
		out, code := cli.run(t, append(verifyArgs, tok)...)
		if code != exitOK || !strings.Contains(out, "result:   ACCEPTED") || !strings.Contains(out, "header:   X-User-Id: "+testClientID) || strings.Contains(out, tok) {
			t.Fatalf("exit %d: %s", code, out)
		}
	})

	t.Run("verify wrong audience", func(t *testing.T) {
		res, code := verify(t, clientCredentials(t, resourceOther))
		if code != exitRefused || res.Accepted || res.Status != http.StatusUnauthorized || res.Reason != "audience" ||
			!strings.Contains(res.Detail, "aud") || len(res.Challenge) == 0 || !strings.Contains(res.Challenge[0], `error="invalid_token"`) {
			t.Fatalf("exit %d: %+v", code, res)
		}
	})

	t.Run("device flow approved", func(t *testing.T) {
		d := cli.startDevice(t, "--issuer", p.URL(), "--client-id", testPublicClientID, "--scope", "api:read", "--resource", resourceRS256)
		p.approveDevice(t, d.userCode(t))
		out, code := d.wait(t)
		tok := strings.TrimSpace(out)
		if code != exitOK || strings.Count(tok, ".") != 2 {
			t.Fatalf("exit %d: %s", code, out)
		}
		res, code := verify(t, tok)
		if code != exitOK || !res.Accepted || res.Headers["X-User-Id"] != testDefaultAccount || res.Headers["X-Client-Id"] != testPublicClientID {
			t.Fatalf("verify the device flow's token: exit %d: %+v", code, res)
		}
	})

	t.Run("device flow denied", func(t *testing.T) {
		d := cli.startDevice(t, "--issuer", p.URL(), "--client-id", testClientID, "--client-secret", testClientSecret, "--scope", "openid", "--json")
		var shown struct {
			UserCode        string `json:"user_code"`
			VerificationURI string `json:"verification_uri"`
		}
		for line := range d.lines {
			t.Logf("stderr: %s", line)
			if json.Unmarshal([]byte(line), &shown) == nil && shown.UserCode != "" {
				break
			}
		}
		if shown.VerificationURI != p.URL()+"/device" {
			t.Fatalf("instructions %+v", shown)
		}
		p.denyDevice(t, shown.UserCode)
		out, code := d.wait(t)
		var res tokenResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitRefused || !strings.Contains(res.Error, "access_denied") || res.AccessToken != "" {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
	})

	t.Run("device flow expired", func(t *testing.T) {
		short := startProvider(t, providerOptions{DeviceCodeTTL: 2 * time.Second})
		d := cli.startDevice(t, "--issuer", short.URL(), "--client-id", testPublicClientID, "--scope", "openid")
		d.userCode(t)
		out, code := d.wait(t)
		if code != exitRefused || !strings.Contains(out, "expired") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})

	t.Run("verify expired", func(t *testing.T) {
		exp, _ := unverifiedClaims(t, short)["exp"].(float64)
		wait := time.Until(time.Unix(int64(exp)+1, 0))
		if wait > 30*time.Second {
			t.Fatalf("the short token expires in %s, want about 5 s", wait)
		}
		time.Sleep(wait)
		res, code := verify(t, short)
		if code != exitRefused || res.Accepted || res.Status != http.StatusUnauthorized || res.Reason != "expired" || !strings.Contains(res.Detail, "exp") {
			t.Fatalf("exit %d: %+v", code, res)
		}
	})

	t.Run("verify unknown kid", func(t *testing.T) {
		old := clientCredentials(t, resourceRS256)
		p.Restart([]jose.JSONWebKey{newSigningKey(t, "RS256", "rs-2"), newSigningKey(t, "ES256", "es-2")})
		res, code := verify(t, old)
		if code != exitRefused || res.Accepted || res.Status != http.StatusUnauthorized || res.Reason != "unknown_key" || !strings.Contains(res.Detail, "rs-1") {
			t.Fatalf("token of a withdrawn key: exit %d: %+v", code, res)
		}
		if res, code := verify(t, clientCredentials(t, resourceRS256)); code != exitOK || !res.Accepted {
			t.Fatalf("token of the new key: exit %d: %+v", code, res)
		}
	})

	t.Run("provider down", func(t *testing.T) {
		tok := clientCredentials(t, resourceRS256)
		p.Stop()
		if out, code := cli.run(t, "identity", "discover", p.URL()); code != exitUnavailable || !strings.Contains(out, "UNAVAILABLE") {
			t.Errorf("discover: exit %d: %s", code, out)
		}
		if out, code := cli.run(t, "identity", "check", "--config", caddyfile); code != exitUnavailable || !strings.Contains(out, "UNAVAILABLE") {
			t.Errorf("check: exit %d: %s", code, out)
		}
		if res, code := verify(t, tok); code != exitUnavailable || res.Status != http.StatusServiceUnavailable || res.Reason != "provider_unavailable" {
			t.Errorf("verify: exit %d: %+v", code, res)
		}
		var res tokenResult
		if code := cli.runJSON(t, &res, "identity", "token", "--issuer", p.URL(), "--client-id", testClientID, "--client-secret", testClientSecret); code != exitUnavailable || res.Error == "" {
			t.Errorf("token: exit %d: %+v", code, res)
		}
	})
}
