package caddyidentity

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// hangFor is how long a hanging endpoint keeps a request: longer than
// any test, so that only the handler's timeout ends the exchange.
const hangFor = time.Hour

// failTimeout replaces introspectionTimeout in the exchanges a test needs
// to fail against a hanging endpoint: long enough for a loaded machine
// to deliver the request (the endpoint counts it), short enough to keep
// the test quick.
const failTimeout = time.Second

// outageModes are the two ways an endpoint fails: it hangs (accepts and
// never answers), or it answers 500. fail puts ep in that state.
var outageModes = []struct {
	name string
	fail func(ep *introEndpoint)
}{
	{"hanging", func(ep *introEndpoint) { ep.setDelay(hangFor) }},
	{"500", func(ep *introEndpoint) { ep.set(500, "down") }},
}

func (ep *introEndpoint) setDelay(d time.Duration) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.delay = d
}

// noLeakAfter checks, once the test's handler and endpoints are cleaned
// up, that no goroutine started after this call is left.
func noLeakAfter(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { checkNoHandlerGoroutines(t, ignore) })
}

// tokens returns n fresh opaque tokens.
func tokens(t *testing.T, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", opaqueToken(t), i)
	}
	return out
}

// TestIntrospectOutage: once an exchange failed, requests do not wait for
// the endpoint: one probe at a time, at most one per outageProbeInterval,
// the others refused with 503 at once; a successful probe ends the outage.
func TestIntrospectOutage(t *testing.T) {
	iss := identitytest.NewIssuer(t)
	for _, mode := range outageModes {
		t.Run(mode.name, func(t *testing.T) {
			ep := newIntroEndpoint(t)
			noLeakAfter(t)
			h := introHandler(iss, ep.srv.URL)
			clk := &ccClock{t: time.Now()}
			h.now = clk.Now
			x := newHX(t, h)
			in := x.h.auth.introspectors[0]
			wantCalls := func(step string, want int) {
				t.Helper()
				if n := ep.callCount(); n != want {
					t.Fatalf("%s: endpoint called %d times, want %d", step, n, want)
				}
			}

			mode.fail(ep)
			in.client.Timeout = failTimeout
			wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 503, "provider_unavailable")
			wantCalls("the failure that starts the outage", 1)

			// With the full timeout back, requests during the outage are
			// not held by the endpoint: without the outage rule each would
			// wait introspectionTimeout for the hanging one.
			in.client.Timeout = introspectionTimeout
			start := time.Now()
			for _, tok := range tokens(t, 4) {
				wantRefusal(t, x.get("/", bearer(tok)), 503, "provider_unavailable")
			}
			d := time.Since(start)
			t.Logf("4 requests during the outage: %v", d)
			if d > introspectionTimeout/2 {
				t.Errorf("4 requests during the outage took %v: they waited for the endpoint", d)
			}
			wantCalls("requests during the outage", 1)

			// One interval later, one request of many probes.
			in.client.Timeout = failTimeout
			clk.Set(clk.Now().Add(outageProbeInterval))
			for i, status := range serveConcurrently(x, tokens(t, 8)) {
				if status != 503 {
					t.Errorf("request %d at the probe: status %d, want 503", i, status)
				}
			}
			wantCalls("8 requests at the probe", 2)
			wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 503, "provider_unavailable")
			wantCalls("right after a failed probe", 2)

			// The endpoint comes back: the next probe ends the outage, and
			// the requests after it are asked again at once.
			ep.setDelay(0)
			ep.set(200, activeResponse(iss.URL, time.Now(), nil))
			wantRefusal(t, x.get("/", bearer(opaqueToken(t))), 503, "provider_unavailable")
			wantCalls("back, before the next probe", 2)
			clk.Set(clk.Now().Add(outageProbeInterval))
			for i, tok := range tokens(t, 3) {
				wantStatus(t, x.get("/", bearer(tok)), 200)
				wantCalls(fmt.Sprintf("request %d after the recovery", i), 3+i)
			}
			if n := x.logs.FilterMessage("introspection endpoint unavailable: opaque tokens cannot be checked").Len(); n != 1 {
				t.Errorf("outage logged %d times, want once", n)
			}
			if n := x.logs.FilterMessage("introspection endpoint available again").Len(); n != 1 {
				t.Errorf("recovery logged %d times, want once", n)
			}
		})
	}
}

// TestIntrospectOutageOrder: with the first issuer of introspection_order
// failing, tokens of the second are accepted without waiting for it, and
// the first is asked at most once per outageProbeInterval.
func TestIntrospectOutageOrder(t *testing.T) {
	a, b := identitytest.NewIssuer(t), identitytest.NewIssuer(t)
	for _, mode := range outageModes {
		t.Run(mode.name, func(t *testing.T) {
			epA, epB := newIntroEndpoint(t), newIntroEndpoint(t)
			noLeakAfter(t)
			owned := tokens(t, 12)
			answers(epB, b.URL, owned...)
			mode.fail(epA)
			h := twoIntrospectors(a, b, epA, epB, a.URL, b.URL)
			clk := &ccClock{t: time.Now()}
			h.now = clk.Now
			x := newHX(t, h)
			inA := x.h.auth.introspectors[0]
			accepted := func(tok string) {
				t.Helper()
				res := x.get("/", bearer(tok))
				wantStatus(t, res, 200)
				if got := res.repl.ReplaceAll("{http.auth.identity.issuer}", ""); got != b.URL {
					t.Errorf("accepted for issuer %q, want %q", got, b.URL)
				}
			}

			inA.client.Timeout = failTimeout
			accepted(owned[0])
			inA.client.Timeout = introspectionTimeout
			start := time.Now()
			for _, tok := range owned[1:6] {
				accepted(tok)
			}
			d := time.Since(start)
			t.Logf("5 tokens of b during a's outage: %v", d)
			if d > introspectionTimeout/2 {
				t.Errorf("5 tokens of b took %v: they waited for a", d)
			}
			if n := epA.callCount(); n != 1 {
				t.Fatalf("a asked %d times within one interval, want 1", n)
			}

			// Each interval, one of b's tokens probes a on the way.
			inA.client.Timeout = failTimeout
			for i := range 3 {
				clk.Set(clk.Now().Add(outageProbeInterval))
				for _, tok := range owned[6+2*i : 8+2*i] {
					accepted(tok)
				}
				if n := epA.callCount(); n != 2+i {
					t.Fatalf("interval %d: a asked %d times in all, want %d", i+1, n, 2+i)
				}
			}
			if n, want := epB.callCount(), len(owned); n != want {
				t.Errorf("b asked %d times for %d tokens", n, want)
			}
		})
	}
}
