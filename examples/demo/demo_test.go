package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestDemoOnce runs the demo as `go run ./examples/demo -once` does and
// checks what it printed, so the README's quick start cannot rot.
func TestDemoOnce(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("XDG_DATA_HOME", dir)

	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, options{Listen: addr, Once: true}, &out); err != nil {
		t.Fatalf("demo failed: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"curl -sS -H 'Authorization: Bearer ey",
		"http://" + addr + "/hello",
		`"X-User-Id": [`,
		`"alice"`,
		`"X-User-Email": [`,
		`"X-User-Groups": [`,
		"admins, developers",
		"X-User-Id: alice\n",
		"3. without a token: 401 Unauthorized, WWW-Authenticate: Bearer",
		"Or sign in with a browser: open http://" + addr + "/app",
		`user "alice" with password "wonderland"`,
		"/authorize\n",
		"/oauth2/callback\n",
		"X-User-Email: alice@example.test\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestRunRejectsBadListenAddress(t *testing.T) {
	if err := run(context.Background(), options{Listen: "no-port", Once: true}, new(strings.Builder)); err == nil {
		t.Fatal("no error for a listen address without a port")
	}
}
