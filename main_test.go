package caddyidentity

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain fails the run when a provider is still in providerPool after
// every test: a handler provisioned and never cleaned up. Such a provider
// outlives its test issuer and would be shared with a later test whose
// issuer gets the same loopback port (the pool keys providers by URL), so a
// leak is a flake in waiting, not just a leak.
func TestMain(m *testing.M) {
	code := m.Run()
	var left []string
	providerPool.Range(func(key, _ any) bool {
		n, _ := providerPool.References(key)
		left = append(left, fmt.Sprintf("%s (%d references)", strings.ReplaceAll(key.(string), "\x00", " "), n))
		return true
	})
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "providers left in the pool after the tests (a handler was provisioned and not cleaned up):\n  %s\n", strings.Join(left, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
