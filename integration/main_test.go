package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-identity/caddy-identity/internal/testenv"
)

// minNodeMajor is the oldest Node.js major version oidc-provider 8.x supports.
const minNodeMajor = 18

// providerEnv is what TestMain found out before any test ran: the node binary, or why oidc-provider cannot run
// here (then startProvider skips, or fails under CI=true).
var providerEnv struct {
	node        string
	unavailable string
}

// TestMain makes `go test ./...` run the real-provider tests with nothing else typed: when
// integration/node_modules lacks the pinned oidc-provider and npm is available it runs `npm ci` here, once, and
// shows its output if it fails. When the tests cannot run it says so in one line that go test shows even for a
// passing package (they skip, or fail under CI=true); after the run, one line says against what they ran.
func TestMain(m *testing.M) {
	providerEnv.node, providerEnv.unavailable = prepareProvider()
	if providerEnv.unavailable != "" && !testenv.CI() {
		testenv.Notice("integration: real-provider tests SKIPPED: %s", providerEnv.unavailable)
	}
	code := m.Run()
	if line := providerRuns.summary(); line != "" {
		testenv.Notice("integration: %s", line)
	}
	os.Exit(code)
}

// prepareProvider returns the path of node, or why oidc-provider cannot run. It installs the node modules with
// npm ci when they are missing.
func prepareProvider() (node, unavailable string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Sprintf("node is not in PATH; install Node.js >= %d with npm to run them", minNodeMajor)
	}
	out, err := exec.Command(node, "-p", "process.versions.node").Output()
	if err != nil {
		return "", fmt.Sprintf("%s -p process.versions.node: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	if major, err := strconv.Atoi(strings.Split(version, ".")[0]); err != nil || major < minNodeMajor {
		return "", fmt.Sprintf("node %s is too old, oidc-provider 8.x needs Node.js >= %d", version, minNodeMajor)
	}
	if providerInstalled() {
		return node, ""
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", "integration/node_modules is missing and npm is not in PATH; install npm (or run `npm ci --prefix integration`)"
	}
	testenv.Notice("integration: installing the pinned oidc-provider (npm ci in integration/, once)")
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Notice("integration: npm ci failed (%v):\n%s", err, strings.TrimRight(string(out), "\n"))
		return "", "npm ci in integration/ failed (its output is above)"
	}
	if !providerInstalled() {
		return "", "npm ci in integration/ did not install oidc-provider"
	}
	return node, ""
}

// providerInstalled reports whether integration/node_modules holds oidc-provider.
func providerInstalled() bool {
	_, err := os.Stat(filepath.Join("node_modules", "oidc-provider", "package.json"))
	return err == nil
}

// providerRuns tallies the provider starts of this test binary for the line TestMain prints after the run.
var providerRuns = &providerTally{tests: map[string]bool{}, versions: map[string]bool{}}

type providerTally struct {
	mu       sync.Mutex
	starts   int
	tests    map[string]bool
	versions map[string]bool
}

func (r *providerTally) add(test string, info readyInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts++
	r.tests[test] = true
	r.versions[fmt.Sprintf("oidc-provider %s (node %s)", info.Version, info.Node)] = true
}

// summary is e.g. "41 tests ran against oidc-provider 8.8.1 (node v20.20.2): 63 provider starts", or "" when
// no provider was started.
func (r *providerTally) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starts == 0 {
		return ""
	}
	versions := make([]string, 0, len(r.versions))
	for v := range r.versions {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	return fmt.Sprintf("%d tests ran against %s: %d provider starts", len(r.tests), strings.Join(versions, ", "), r.starts)
}
