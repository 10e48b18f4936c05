package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-identity/caddy-identity/internal/testenv"
)

const (
	// providerStartTimeout bounds the wait for node to listen and serve discovery.
	providerStartTimeout = 30 * time.Second
	// providerStopTimeout bounds the wait after SIGTERM before the process group gets SIGKILL.
	providerStopTimeout = 5 * time.Second

	// Clients registered statically in provider.mjs.
	testClientID         = "test-client" // client_secret_basic (post accepted too); client_credentials, code, refresh, device
	testClientSecret     = "test-secret"
	testPostClientID     = "test-client-post" // client_secret_post; client_credentials
	testPostClientSecret = "test-secret-post"
	testPublicClientID   = "test-public"     // token_endpoint_auth_method none; code + PKCE, device
	testJWTClientID      = "test-client-jwt" // private_key_jwt, present only with providerOptions.ClientJWKS
	testRedirectURI      = "http://127.0.0.1/callback"
	testDefaultAccount   = "alice" // logged in when an authorization request has no login_hint

	// Resource indicators understood by provider.mjs: "opaque" → opaque token, "es256" → ES256 JWT, others → RS256
	// JWT whose aud is the indicator; "short" anywhere → 5 s lifetime.
	resourceRS256  = "https://api.example.test/rs256"
	resourceES256  = "https://api.example.test/es256"
	resourceOpaque = "https://api.example.test/opaque"
	resourceOther  = "https://other.example.test/api"
	resourceShort  = "https://api.example.test/short"
)

// providerOptions configures startProvider. The zero value is usable.
type providerOptions struct {
	// Keys are the private signing keys handed to oidc-provider (kid, alg and use set). The first key of each alg
	// signs, all are published. Empty: one RS256 and one ES256 key are generated.
	Keys []jose.JSONWebKey
	// ClientJWKS, when set, registers client testJWTClientID (private_key_jwt) with these public keys.
	ClientJWKS *jose.JSONWebKeySet
	// AccessTokenTTL is the lifetime of access tokens; 0 means 1 h.
	AccessTokenTTL time.Duration
	// DeviceCodeTTL is the lifetime of device flow codes (whole seconds); 0 means 10 min.
	DeviceCodeTTL time.Duration
	// WebClient, when set, registers client "web-client" (secret "web-secret") for a browser sign-in at Caddy
	// and switches the provider to its interactive login and consent pages, with back-channel logout.
	WebClient *webClientOptions
}

// webClientOptions are the URLs of the web client at Caddy.
type webClientOptions struct {
	RedirectURI           string `json:"redirectURI"`
	PostLogoutRedirectURI string `json:"postLogoutRedirectURI"`
	BackchannelLogoutURI  string `json:"backchannelLogoutURI"`
}

// oidcProvider is a running (or stopped) oidc-provider process owned by one test. Its issuer URL stays the same
// across Stop/Start/Restart: the first start picks a free loopback port, later starts reuse it.
type oidcProvider struct {
	t    testing.TB
	node string
	dir  string
	opts providerOptions

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	port    int
	issuer  string
	version string
	starts  int
	cmd     *exec.Cmd
	exited  chan struct{}
	logs    []string
}

// readyInfo is what provider.mjs writes to its ready file once it listens.
type readyInfo struct {
	Issuer  string `json:"issuer"`
	Port    int    `json:"port"`
	Version string `json:"version"`
	Node    string `json:"node"`
	PID     int    `json:"pid"`
}

// providerUnavailable skips the test, or fails it when CI=true: in CI the integration tests must never be skipped.
func providerUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if testenv.CI() {
		t.Fatalf("CI=true and the real provider cannot run: %s", msg)
	}
	t.Skipf("skipping the oidc-provider integration test: %s", msg)
}

// startProvider starts oidc-provider and registers its shutdown (and the printing of its logs when the test failed)
// with t.Cleanup. It skips the test when TestMain found that the provider cannot run here (no node, or no
// oidc-provider that npm could install), except under CI=true where it fails.
func startProvider(t testing.TB, opts providerOptions) *oidcProvider {
	t.Helper()
	if providerEnv.unavailable != "" {
		providerUnavailable(t, "%s", providerEnv.unavailable)
	}
	node := providerEnv.node
	keys := opts.Keys
	if len(keys) == 0 {
		keys = []jose.JSONWebKey{newSigningKey(t, "RS256", "rs-1"), newSigningKey(t, "ES256", "es-1")}
	}
	p := &oidcProvider{t: t, node: node, dir: t.TempDir(), opts: opts, keys: keys}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.dumpLogs()
		}
	})
	p.Start()
	return p
}

// URL returns the issuer URL, e.g. http://127.0.0.1:40123 (no trailing slash).
func (p *oidcProvider) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issuer
}

// Version returns the oidc-provider version reported by the running process.
func (p *oidcProvider) Version() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// Keys returns a copy of the private signing keys in the order the provider got them.
func (p *oidcProvider) Keys() []jose.JSONWebKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]jose.JSONWebKey(nil), p.keys...)
}

// Running reports whether the provider process is up.
func (p *oidcProvider) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Start starts the provider process (no-op when running) and waits until discovery answers.
func (p *oidcProvider) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return
	}
	p.starts++
	n := p.starts
	readyFile := filepath.Join(p.dir, fmt.Sprintf("ready-%d.json", n))
	cfg := map[string]any{
		"port":      p.port,
		"readyFile": readyFile,
		"jwks":      map[string]any{"keys": p.keys},
	}
	if p.opts.ClientJWKS != nil {
		cfg["clientJWKS"] = p.opts.ClientJWKS
	}
	if p.opts.AccessTokenTTL > 0 {
		cfg["accessTokenTTL"] = int(p.opts.AccessTokenTTL / time.Second)
	}
	if p.opts.DeviceCodeTTL > 0 {
		cfg["deviceCodeTTL"] = int(p.opts.DeviceCodeTTL / time.Second)
	}
	if p.opts.WebClient != nil {
		cfg["webClient"] = p.opts.WebClient
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		p.t.Fatalf("provider config: %v", err)
	}
	cfgPath := filepath.Join(p.dir, fmt.Sprintf("config-%d.json", n))
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		p.t.Fatal(err)
	}
	logPath := filepath.Join(p.dir, fmt.Sprintf("provider-%d.log", n))
	logFile, err := os.Create(logPath)
	if err != nil {
		p.t.Fatal(err)
	}
	p.logs = append(p.logs, logPath)

	cmd := exec.Command(p.node, "provider.mjs", cfgPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), "NODE_ENV=test")
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		p.t.Fatalf("starting node provider.mjs: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited

	info, err := waitReady(readyFile, exited)
	if err != nil {
		p.stopLocked()
		p.t.Fatalf("oidc-provider start #%d: %v\n%s", n, err, readLog(logPath))
	}
	if p.issuer != "" && info.Issuer != p.issuer {
		p.stopLocked()
		p.t.Fatalf("oidc-provider restarted with issuer %s, want %s", info.Issuer, p.issuer)
	}
	p.issuer, p.port, p.version = info.Issuer, info.Port, info.Version
	p.t.Logf("oidc-provider %s (node %s, pid %d) ready at %s, start #%d, %d signing keys", info.Version, info.Node, info.PID,
		info.Issuer, n, len(p.keys))
	providerRuns.add(p.t.Name(), info)
	if err := reportStart(p.t.Name(), info, n); err != nil {
		p.t.Fatalf("writing %s: %v", providerReportEnv, err)
	}
}

// providerReportEnv names the file to which every provider start appends one line (test, oidc-provider and node
// versions, issuer). .ci/run sets it and prints the file, because `go test ./...` hides the logs of passing tests.
const providerReportEnv = "CADDY_IDENTITY_PROVIDER_REPORT"

func reportStart(test string, info readyInfo, n int) error {
	path := os.Getenv(providerReportEnv)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s\toidc-provider %s\tnode %s\t%s\tstart #%d\n", test, info.Version, info.Node, info.Issuer, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// waitReady waits (bounded) for the ready file and then for discovery to answer 200.
func waitReady(readyFile string, exited <-chan struct{}) (readyInfo, error) {
	var info readyInfo
	deadline := time.Now().Add(providerStartTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-exited:
			return info, errors.New("node exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			return info, fmt.Errorf("not ready after %s", providerStartTimeout)
		}
		if info.Issuer == "" {
			if data, err := os.ReadFile(readyFile); err == nil {
				if err := json.Unmarshal(data, &info); err != nil {
					return info, fmt.Errorf("ready file: %w", err)
				}
			}
		}
		if info.Issuer != "" {
			resp, err := client.Get(info.Issuer + "/.well-known/openid-configuration")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return info, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop terminates the provider's process group (SIGTERM, then SIGKILL after a bounded wait). Idempotent.
func (p *oidcProvider) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

func (p *oidcProvider) stopLocked() {
	if p.cmd == nil {
		return
	}
	cmd, exited := p.cmd, p.exited
	p.cmd, p.exited = nil, nil
	signalProcessGroup(cmd, false)
	select {
	case <-exited:
	case <-time.After(providerStopTimeout):
		signalProcessGroup(cmd, true)
		<-exited
	}
	// Make sure nothing of the group survives its leader.
	signalProcessGroup(cmd, true)
}

// Restart stops the provider and starts it again on the same port with the given signing keys (nil: unchanged).
// In-memory state (opaque tokens, grants, dynamically registered clients) is lost; JWTs stay verifiable while their
// keys stay published.
func (p *oidcProvider) Restart(keys []jose.JSONWebKey) {
	p.t.Helper()
	p.Stop()
	if keys != nil {
		p.mu.Lock()
		p.keys = append([]jose.JSONWebKey(nil), keys...)
		p.mu.Unlock()
	}
	p.Start()
}

// RotateKey restarts the provider with a new key for alg prepended (so it signs from now on) and the old keys still
// published. It returns the new key.
func (p *oidcProvider) RotateKey(alg string) jose.JSONWebKey {
	p.t.Helper()
	p.mu.Lock()
	kid := fmt.Sprintf("%s-%d", strings.ToLower(alg[:2]), len(p.keys)+1)
	p.mu.Unlock()
	k := newSigningKey(p.t, alg, kid)
	p.Restart(append([]jose.JSONWebKey{k}, p.Keys()...))
	return k
}

// dumpLogs prints every captured provider log of this test.
func (p *oidcProvider) dumpLogs() {
	p.mu.Lock()
	logs := append([]string(nil), p.logs...)
	p.mu.Unlock()
	for _, l := range logs {
		p.t.Logf("---- %s ----\n%s", filepath.Base(l), readLog(l))
	}
}

func readLog(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	return string(bytes.TrimSpace(data))
}

// newSigningKey generates a private JWK for alg (RS256: RSA 2048, ES256: P-256).
func newSigningKey(t testing.TB, alg, kid string) jose.JSONWebKey {
	t.Helper()
	var key any
	var err error
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		t.Fatalf("newSigningKey: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// TestProviderHarness proves the harness: start, version, stop, restart on the same issuer, no process left behind.
func TestProviderHarness(t *testing.T) {
	p := startProvider(t, providerOptions{})
	if p.Version() == "" {
		t.Fatal("no oidc-provider version reported")
	}
	t.Logf("oidc-provider version %s", p.Version())
	issuer := p.URL()
	if !strings.HasPrefix(issuer, "http://127.0.0.1:") {
		t.Fatalf("issuer %q is not on loopback", issuer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code := getStatus(ctx, t, issuer+"/.well-known/openid-configuration"); code != http.StatusOK {
		t.Fatalf("discovery status %d", code)
	}
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()

	p.Stop()
	if p.Running() {
		t.Fatal("still running after Stop")
	}
	if processAlive(pid) {
		t.Fatalf("node pid %d still alive after Stop", pid)
	}
	if code := getStatus(ctx, t, issuer+"/.well-known/openid-configuration"); code != 0 {
		t.Fatalf("discovery answered %d after Stop", code)
	}
	p.Start()
	if p.URL() != issuer {
		t.Fatalf("issuer changed across restart: %s → %s", issuer, p.URL())
	}
	if code := getStatus(ctx, t, issuer+"/.well-known/openid-configuration"); code != http.StatusOK {
		t.Fatalf("discovery status %d after restart", code)
	}
}

// getStatus returns the status of a GET, or 0 when the request failed.
func getStatus(ctx context.Context, t testing.TB, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
