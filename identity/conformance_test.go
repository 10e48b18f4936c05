package identity_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/caddy-identity/caddy-identity/internal/testenv"
)

// specDir is ../shared/spec relative to the repository root, where the
// identity-model conformance vectors live; they are read, never copied.
// IDENTITY_SPEC_DIR overrides it for a checkout kept elsewhere. Only the
// conformance runner reads it: a clone without it skips the runner, with one
// line saying so (testenv.Notice), and fails under CI=true, where a green run
// must mean every case id ran.
func specDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("IDENTITY_SPEC_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "shared", "spec")
	}
	if _, err := os.Stat(dir); err != nil {
		if testenv.CI() {
			t.Fatalf("CI=true and the conformance spec is not found at %s: %v", dir, err)
		}
		specMissing.Do(func() {
			testenv.Notice("identity: conformance runner (TestConformance*) skipped: no spec at %s; "+
				"put the identity-model conformance spec there or set IDENTITY_SPEC_DIR to run it", dir)
		})
		t.Skipf("conformance spec not found at %s (set IDENTITY_SPEC_DIR): %v", dir, err)
	}
	return dir
}

// specMissing prints the notice of a missing spec once per test binary.
var specMissing sync.Once

// specFixture returns the bytes of a file under test-fixtures/.
func specFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(specDir(t), "test-fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// conformanceCase is one case of a conformance/<capability>.json file.
type conformanceCase struct {
	ID         string            `json:"id"`
	Title      string            `json:"title"`
	Given      string            `json:"given"`
	When       string            `json:"when"`
	Then       string            `json:"then"`
	Fixture    string            `json:"fixture"`
	Execution  string            `json:"execution"`
	NativeTest string            `json:"native_test"`
	Vectors    []json.RawMessage `json:"vectors"`
}

func loadConformance(t testing.TB, file string) []conformanceCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(specDir(t), "conformance", file))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []conformanceCase `json:"tests"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(doc.Tests) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	return doc.Tests
}

// runConformance runs one subtest per case id of file with the function
// registered for it, and fails for any id without one (and any registered
// id the file does not have), so coverage of the specification is proven
// rather than assumed.
func runConformance(t *testing.T, file string, cases map[string]func(t *testing.T, c conformanceCase)) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range loadConformance(t, file) {
		seen[c.ID] = true
		run, ok := cases[c.ID]
		if !ok {
			t.Errorf("%s: case %s (%s) is not covered", file, c.ID, c.Title)
			continue
		}
		t.Run(c.ID, func(t *testing.T) { run(t, c) })
	}
	for id := range cases {
		if !seen[id] {
			t.Errorf("%s: registered case %s does not exist in the specification", file, id)
		}
	}
}
