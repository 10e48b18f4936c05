package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// outageBound is the generous upper bound of a refusal while the provider
// is down: it proves that a request does not hang, not how fast it is
// (one exchange is bounded by the handler's 5 s introspection timeout).
const outageBound = 10 * time.Second

// caddyLogEntries returns the entries of c's JSON log whose msg is msg.
func caddyLogEntries(t *testing.T, c *caddyServer, msg string) []map[string]any {
	t.Helper()
	f, err := os.Open(c.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rejectionErrors returns the error field of each "request rejected" entry
// of c's log for a provider_unavailable refusal, in order.
func rejectionErrors(t *testing.T, c *caddyServer) []string {
	t.Helper()
	var out []string
	for _, e := range caddyLogEntries(t, c, "request rejected") {
		if e["reason"] == "provider_unavailable" {
			s, _ := e["error"].(string)
			out = append(out, s)
		}
	}
	return out
}

// timedStatus sends token through Caddy, fails unless the status is want
// within outageBound, and returns how long it took.
func (c *caddyServer) timedStatus(token string, want int) time.Duration {
	c.t.Helper()
	start := time.Now()
	c.expectStatus(token, want)
	took := time.Since(start)
	if took > outageBound {
		c.t.Errorf("status %d after %s: over %s", want, took, outageBound)
	}
	return took
}

// TestE2EIntrospectionProviderStoppedThroughCaddy stops oidc-provider while
// Caddy introspects its opaque tokens (cache_ttl 3s). Meanwhile a token
// introspected before keeps passing until its cache lifetime, then gets
// 503; tokens not yet cached get 503 at once: the first after the failed
// exchange, the others from the outage breaker without asking; the
// outage is logged once. Once the provider is back, without restarting
// Caddy, a new token is introspected and accepted, and the recovery is
// logged once.
func TestE2EIntrospectionProviderStoppedThroughCaddy(t *testing.T) {
	const cacheTTL = 3 * time.Second
	p := startProvider(t, providerOptions{})
	c := startIntrospectingCaddy(t, p, fmt.Sprintf("cache_ttl %s", cacheTTL), fmt.Sprintf(`audience %s
		claim_header client_id X-Client-Id`, resourceOpaque))
	cached := p.accessToken(t, resourceOpaque)
	var unseen []string
	for range 5 {
		unseen = append(unseen, p.accessToken(t, resourceOpaque))
	}
	c.expectStatus(cached, http.StatusOK)
	cachedBy := time.Now()

	p.Stop()
	c.expectStatus(cached, http.StatusOK)
	for i, tok := range unseen {
		took := c.timedStatus(tok, http.StatusServiceUnavailable)
		t.Logf("uncached token %d with the provider stopped: 503 in %s", i+1, took.Round(time.Microsecond))
	}
	c.timedStatus(unseen[0], http.StatusServiceUnavailable)
	errs := rejectionErrors(t, c)
	if len(errs) != len(unseen)+1 {
		t.Fatalf("%d provider_unavailable rejections logged, want %d: %q", len(errs), len(unseen)+1, errs)
	}
	if breaker := "not asked again until the next probe"; strings.Contains(errs[0], breaker) || !strings.Contains(strings.Join(errs[1:], "\n"), breaker) {
		t.Errorf("want the first refusal from the failed exchange and later ones from the breaker: %q", errs)
	}
	if n := len(caddyLogEntries(t, c, "introspection endpoint unavailable: opaque tokens cannot be checked")); n != 1 {
		t.Errorf("the outage logged %d times, want once", n)
	}

	// Until its cache lifetime the cached token passes; after it, it is
	// asked about like any other and refused.
	c.expectStatus(cached, http.StatusOK)
	time.Sleep(time.Until(cachedBy.Add(cacheTTL + 100*time.Millisecond)))
	c.timedStatus(cached, http.StatusServiceUnavailable)

	p.Start()
	fresh := p.accessToken(t, resourceOpaque)
	took := c.eventuallyStatus(fresh, http.StatusOK)
	t.Logf("a new token accepted %s after the provider came back", took.Round(time.Millisecond))
	if n := len(caddyLogEntries(t, c, "introspection endpoint available again")); n != 1 {
		t.Errorf("the recovery logged %d times, want once", n)
	}
	if n := len(caddyLogEntries(t, c, "introspection endpoint unavailable: opaque tokens cannot be checked")); n != 1 {
		t.Errorf("the outage logged %d times in all, want once", n)
	}
}

// pause stops the provider's processes without closing its socket (a hung
// provider: connections are accepted by the kernel, never answered) until
// the test ends or resume; the test is skipped where that cannot be done.
func (p *oidcProvider) pause() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || !pauseProcessGroup(p.cmd, true) {
		p.t.Skip("cannot pause the provider's processes here")
	}
	cmd := p.cmd
	p.t.Cleanup(func() { pauseProcessGroup(cmd, false) })
}

// resume continues the provider's processes after pause.
func (p *oidcProvider) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		pauseProcessGroup(p.cmd, false)
	}
}

// TestE2EIntrospectionProviderHungThroughCaddy pauses oidc-provider (its
// port still accepts connections, nothing answers): the first uncached
// token waits for the handler's introspection timeout and gets 503, the
// next ones get 503 from the outage breaker without waiting, a cached
// token passes, and once the provider continues a new token is accepted
// without restarting Caddy.
func TestE2EIntrospectionProviderHungThroughCaddy(t *testing.T) {
	p := startProvider(t, providerOptions{})
	c := startIntrospectingCaddy(t, p, "", fmt.Sprintf(`audience %s
		claim_header client_id X-Client-Id`, resourceOpaque))
	cached := p.accessToken(t, resourceOpaque)
	var unseen []string
	for range 4 {
		unseen = append(unseen, p.accessToken(t, resourceOpaque))
	}
	c.expectStatus(cached, http.StatusOK)

	p.pause()
	for i, tok := range unseen {
		took := c.timedStatus(tok, http.StatusServiceUnavailable)
		t.Logf("uncached token %d with the provider hung: 503 in %s", i+1, took.Round(time.Microsecond))
	}
	c.expectStatus(cached, http.StatusOK)
	errs := rejectionErrors(t, c)
	if len(errs) != len(unseen) {
		t.Fatalf("%d provider_unavailable rejections logged, want %d: %q", len(errs), len(unseen), errs)
	}
	if breaker := "not asked again until the next probe"; strings.Contains(errs[0], breaker) || !strings.Contains(strings.Join(errs[1:], "\n"), breaker) {
		t.Errorf("want the first refusal from the timed-out exchange and later ones from the breaker: %q", errs)
	}
	if n := len(caddyLogEntries(t, c, "introspection endpoint unavailable: opaque tokens cannot be checked")); n != 1 {
		t.Errorf("the outage logged %d times, want once", n)
	}

	p.resume()
	took := c.eventuallyStatus(unseen[0], http.StatusOK)
	t.Logf("an uncached token accepted %s after the provider continued", took.Round(time.Millisecond))
	if n := len(caddyLogEntries(t, c, "introspection endpoint available again")); n != 1 {
		t.Errorf("the recovery logged %d times, want once", n)
	}
}
