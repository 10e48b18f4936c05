package caddyidentity

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestHeaderTokenAccessLogFilter: with `token_from header X-Token`,
// Caddy's access log records every token in full (Caddy redacts only
// Authorization, Proxy-Authorization, Cookie and Set-Cookie); the handler
// warns when it is provisioned on a server that logs access, and the log
// filter that SECURITY.md gives keeps the tokens out.
func TestHeaderTokenAccessLogFilter(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	up := newRecorder(t)
	run := func(t *testing.T, filter string) (accessLog, caddyLog string, sent []string) {
		dir := t.TempDir()
		accessPath, caddyPath := filepath.Join(dir, "access.log"), filepath.Join(dir, "caddy.log")
		tester := ctInit(t, caddyLogGlobal(caddyPath)+fmt.Sprintf(`%s {
	log {
		output file %s
		%s
	}
	identity {
		issuer %s
		audience %s
		token_from header X-Token
	}
	reverse_proxy %s
}
`, ctSite, accessPath, filter, iss.URL, atkAudience, up.addr()), "caddyfile")
		for _, c := range []struct {
			token string
			want  int
		}{
			{f.Valid(t), http.StatusOK},
			{f.ValidWithClaims(t, map[string]any{"aud": "other"}), http.StatusUnauthorized},
		} {
			sent = append(sent, "X-Token "+c.token)
			st, _, _ := ctDo(t, tester, "/h?x=1", [][2]string{{"X-Token", c.token}})
			if st != c.want {
				t.Errorf("status %d, want %d", st, c.want)
			}
		}
		// The access log is written after the response: wait for the lines.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			b, _ := os.ReadFile(accessPath)
			if accessLog = string(b); strings.Count(accessLog, "\n") >= 2 {
				break
			}
		}
		if strings.Count(accessLog, "\n") < 2 || !strings.Contains(accessLog, "x=1") {
			t.Fatalf("access log not written as expected:\n%s", accessLog)
		}
		caddyLog, _ = readCaddyLog(t, caddyPath)
		return accessLog, caddyLog, sent
	}
	warned := func(t *testing.T, caddyLog string) {
		t.Helper()
		for line := range strings.SplitSeq(caddyLog, "\n") {
			if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "access log records the tokens") &&
				strings.Contains(line, `request>headers>X-Token delete`) {
				return
			}
		}
		t.Errorf("no provisioning warning naming the X-Token log filter in:\n%s", caddyLog)
	}

	t.Run("without a filter the tokens are logged", func(t *testing.T) {
		accessLog, caddyLog, sent := run(t, "format json")
		for _, s := range sent {
			_, tok, _ := strings.Cut(s, " ")
			if !strings.Contains(accessLog, tok) {
				t.Errorf("token absent from an unfiltered access log: this test cannot tell the filter works")
			}
		}
		warned(t, caddyLog)
	})
	t.Run("the documented filter keeps them out", func(t *testing.T) {
		accessLog, caddyLog, sent := run(t, `format filter {
			wrap json
			request>headers>X-Token delete
		}`)
		scanLogForSecrets(t, accessLog, sent)
		warned(t, caddyLog)
	})
}

// TestNoAccessLogNoWarning: a token header on a server without an access
// log, or the Authorization header on a server with one, gives no warning.
func TestNoAccessLogNoWarning(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	up := newRecorder(t)
	for _, c := range []struct{ name, log, source string }{
		{"X-Token, no access log", "", "token_from header X-Token"},
		{"Authorization, access log", "log", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			caddyPath := filepath.Join(t.TempDir(), "caddy.log")
			ctInit(t, caddyLogGlobal(caddyPath)+fmt.Sprintf(`%s {
	%s
	identity {
		issuer %s
		audience api
		%s
	}
	reverse_proxy %s
}
`, ctSite, c.log, iss.URL, c.source, up.addr()), "caddyfile")
			caddyLog, _ := readCaddyLog(t, caddyPath)
			if !strings.Contains(caddyLog, "http.handlers.identity") && !strings.Contains(caddyLog, "server running") {
				t.Fatalf("the Caddy log shows no loaded config:\n%s", caddyLog)
			}
			if strings.Contains(caddyLog, "access log records the tokens") {
				t.Errorf("warning without a logged token source:\n%s", caddyLog)
			}
		})
	}
}
