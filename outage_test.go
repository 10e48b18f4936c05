package caddyidentity

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-identity/caddy-identity/identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// loudLines returns the WARN and ERROR entries of logs.
func loudLines(logs *observer.ObservedLogs) []observer.LoggedEntry {
	return logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel }).All()
}

// errorText is the "error" field of an entry.
func errorText(e observer.LoggedEntry) string {
	for _, f := range e.Context {
		if f.Key == "error" {
			if err, ok := f.Interface.(error); ok {
				return err.Error()
			}
		}
	}
	return ""
}

// wantOneError checks that logs hold exactly one WARN/ERROR line, an ERROR
// whose message contains msg and none of avoid, with a cause.
func wantOneError(t *testing.T, logs *observer.ObservedLogs, msg string, avoid ...string) observer.LoggedEntry {
	t.Helper()
	loud := loudLines(logs)
	if len(loud) != 1 {
		for _, e := range loud {
			t.Logf("%s %s %s", e.Level, e.Message, errorText(e))
		}
		t.Fatalf("%d WARN/ERROR lines, want exactly one", len(loud))
	}
	e := loud[0]
	if e.Level != zapcore.ErrorLevel || !strings.Contains(e.Message, msg) {
		t.Errorf("%s %q, want ERROR containing %q", e.Level, e.Message, msg)
	}
	for _, a := range avoid {
		if strings.Contains(e.Message, a) {
			t.Errorf("message %q says %q", e.Message, a)
		}
	}
	if errorText(e) == "" {
		t.Errorf("ERROR %q carries no cause", e.Message)
	}
	return e
}

// TestOutageLoggedOnce: a provider that is down is one ERROR line with its
// cause, whatever the number of requests, and says it retries.
func TestOutageLoggedOnce(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDown(true)
	x := newHX(t, basicHandler(iss))
	for range 5 {
		wantStatus(t, x.get("/", bearer(iss.Token(t, "u", nil))), 503)
	}
	wantOneError(t, x.logs, "retrying in the background")
}

// TestWrongIssuerURLLogged: a discovery URL that answers 404 or an HTML
// page is a wrong issuer URL, which retrying will not fix: one ERROR that
// says to check the issuer URL, not that it will retry.
func TestWrongIssuerURLLogged(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>Welcome</body></html>")
	}))
	t.Cleanup(html.Close)
	notFound := identitytest.NewIssuer(t)
	notFound.SetFailure(http.StatusNotFound, []byte(`{"error":"not found"}`))
	for _, tt := range []struct{ name, issuer string }{
		{"404", notFound.URL},
		{"HTML page", html.URL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := newHX(t, &Handler{Issuers: []IssuerConfig{{Issuer: tt.issuer}}, Audiences: []string{"api"}})
			wantStatus(t, x.get("/", bearer(notFound.Token(t, "u", map[string]any{"iss": tt.issuer, "aud": "api"}))), 503)
			wantOneError(t, x.logs, "check the issuer URL", "retry")
		})
	}
}

// TestIssuerTrailingSlashRefused: a discovery document whose issuer differs
// from the configured one by a trailing slash is refused (OpenID Connect
// Discovery §4.3), with one ERROR naming both strings and the one to write,
// instead of a clean start and a 401 "issuer" for every token.
func TestIssuerTrailingSlashRefused(t *testing.T) {
	iss := identitytest.NewIssuer(t, identitytest.WithMetadataOverride(func(m map[string]any) {
		m["issuer"] = m["issuer"].(string) + "/"
	}))
	x := newHX(t, basicHandler(iss))
	wantStatus(t, x.get("/", bearer(iss.Token(t, "u", nil))), 503)
	e := wantOneError(t, x.logs, "names another issuer")
	cause := errorText(e)
	for _, want := range []string{fmt.Sprintf("%q", iss.URL+"/"), fmt.Sprintf("%q", iss.URL), "configure the issuer as " + fmt.Sprintf("%q", iss.URL+"/"), "§4.3"} {
		if !strings.Contains(cause, want) {
			t.Errorf("cause %q lacks %s", cause, want)
		}
	}
}

// TestOutageLoggedAgainAfterReload: a configuration loaded while a shared
// provider is down (a reload) logs the outage too, once, at once; the old
// configuration does not log it again.
func TestOutageLoggedAgainAfterReload(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	iss.SetDown(true)
	x1 := newHX(t, basicHandler(iss))
	wantStatus(t, x1.get("/", bearer(iss.Token(t, "u", nil))), 503)
	wantOneError(t, x1.logs, "identity provider unavailable")
	x2 := newHX(t, basicHandler(iss)) // the reloaded configuration
	wantOneError(t, x2.logs, "identity provider unavailable")
	wantStatus(t, x2.get("/", bearer(iss.Token(t, "u", nil))), 503)
	if n := len(loudLines(x1.logs)) + len(loudLines(x2.logs)); n != 2 {
		t.Errorf("%d WARN/ERROR lines for one outage and two configurations, want 2", n)
	}
}

// TestProviderHealthTransitions: each configuration watching a provider
// gets one ERROR when an outage starts (the discovery document and the key
// set failing count as one outage) and one INFO when it ends.
func TestProviderHealthTransitions(t *testing.T) {
	ph := &providerHealth{watchers: make(map[<-chan struct{}]*healthWatcher)}
	newWatcher := func() (*observer.ObservedLogs, chan struct{}) {
		core, logs := observer.New(zapcore.DebugLevel)
		done := make(chan struct{})
		ph.watch(done, zap.New(core))
		return logs, done
	}
	a, _ := newWatcher()
	b, bDone := newWatcher()
	cause := &identity.HTTPStatusError{URL: "https://idp.example.com/.well-known/openid-configuration", StatusCode: 503}
	ph.stateChanged(false, cause)
	ph.stateChanged(false, errors.New("key set: connection refused"))
	ph.stateChanged(true, nil) // one document back, the other still failing
	for _, logs := range []*observer.ObservedLogs{a, b} {
		wantOneError(t, logs, "identity provider unavailable")
		if n := logs.FilterMessage("identity provider available again").Len(); n != 0 {
			t.Errorf("recovery logged while a document still fails")
		}
	}
	ph.unwatch(bDone)
	c, _ := newWatcher() // loaded during the outage: told at once
	wantOneError(t, c, "identity provider unavailable")
	ph.stateChanged(true, nil)
	for name, logs := range map[string]*observer.ObservedLogs{"a": a, "c": c} {
		if n := logs.FilterMessage("identity provider available again").FilterLevelExact(zapcore.InfoLevel).Len(); n != 1 {
			t.Errorf("%s: recovery logged %d times at INFO, want 1", name, n)
		}
	}
	if n := b.FilterMessage("identity provider available again").Len(); n != 0 {
		t.Errorf("an unloaded configuration logged the recovery")
	}
}
