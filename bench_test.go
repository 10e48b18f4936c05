//go:build unix

package caddyidentity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// BenchmarkServeHTTP measures the handler's ServeHTTP as Caddy's server
// calls it: every request gets a fresh replacer and context
// (caddyhttp.PrepareRequest), the next handler does nothing. Sub-benchmarks:
//
//	cache_hit             one RS256 token (about 760 bytes), always in the cache
//	cache_hit_es256       one ES256 token (about 505 bytes), always in the cache:
//	                      a hit hashes the signature, 86 bytes instead of 342
//	cycle_10000           10,000 distinct tokens cycled, all in the default cache
//	cache_disabled        one RS256 token, cache_size 0: full verification per request
//	cache_disabled_es256, cache_disabled_eddsa
//	                      the same with an ES256 and an EdDSA token
//	bad_signature         one RS256 token with a published kid and a wrong
//	                      signature: refused by verification, nothing more
//	                      (logger at INFO, as on a server)
//	no_identity_baseline  the same request set-up calling next directly
//	stock_request_header  Caddy's own headers handler doing the header work
//	                      of an accepted request (see perfStockHeaders)
//	handler_only/*        the same requests, prepared in batches with the
//	                      timer stopped: only ServeHTTP is timed
//	paired/*              the same requests with and without the handler,
//	                      alternating in one loop: handler-ns/req is the
//	                      difference (see perfPaired)
//	paired/stock_request_header
//	                      the same for Caddy's own headers handler doing
//	                      the header work of an accepted request: the
//	                      yardstick, measured in the same run
//
// The cost of the handler on top of the chain is cache_hit minus
// no_identity_baseline (time and allocations), handler_only/cache_hit, or
// paired/cache_hit's handler-ns/req. The first runs in a warm loop; the
// other two see the request colder in the CPU caches, as a server does, and
// paired/* is the least disturbed by the shared machine's changing speed.
// Compare each with the stock_request_header figure of the same method and
// run: what Caddy's own handler costs for the same header work. (There is
// no handler_only baseline: at 10 ns per request the framework would ask
// for so many requests that preparing them would take minutes.) Run with
//
//	go test -run '^$' -bench BenchmarkServeHTTP -benchmem .
func BenchmarkServeHTTP(b *testing.B) {
	// The cycled tokens are EdDSA only so that minting and warming 10,000 of
	// them takes about a second; a cache hit costs the same for any
	// algorithm.
	iss := identitytest.NewIssuer(b, identitytest.WithAlgorithms("RS256", "ES256", "EdDSA"))
	one := iss.Token(b, "user-1", perfClaims(1))
	es, err := iss.MintToken(perfClaims(1), identitytest.Alg("ES256"))
	if err != nil {
		b.Fatal(err)
	}
	ed, err := iss.MintToken(perfClaims(1), identitytest.Alg("EdDSA"))
	if err != nil {
		b.Fatal(err)
	}
	bad := perfBadSignature(one)
	cycle := make([]string, 10000)
	for i := range cycle {
		var err error
		cycle[i], err = iss.MintToken(perfClaims(i), identitytest.Alg("EdDSA"))
		if err != nil {
			b.Fatal(err)
		}
	}

	cached := ccProvision(b, ccHandler(iss, nil, nil), nil)
	cycling := ccProvision(b, ccHandler(iss, nil, nil), nil)
	uncached := ccProvision(b, ccHandler(iss, ccIntPtr(0), nil), nil)
	for _, h := range []*Handler{cached, uncached} {
		if status, label := ccServe(b, h, one); status != http.StatusOK {
			b.Fatalf("warm-up: status %d (%s)", status, label)
		}
	}
	if status, label := ccServe(b, cached, es); status != http.StatusOK {
		b.Fatalf("warm-up: status %d (%s)", status, label)
	}
	// Refusals are logged at DEBUG; a server runs at INFO, where they are
	// not formatted at all.
	quiet := ccHandler(iss, ccIntPtr(0), nil)
	quiet.logger = zap.NewNop()
	ccProvision(b, quiet, nil)
	if status, label := ccServe(b, quiet, bad); status != http.StatusUnauthorized {
		b.Fatalf("warm-up: bad signature: status %d (%s)", status, label)
	}
	for _, tok := range cycle {
		if status, label := ccServe(b, cycling, tok); status != http.StatusOK {
			b.Fatalf("warm-up: status %d (%s)", status, label)
		}
	}

	b.Run("cache_hit", func(b *testing.B) { perfServe(b, cached, []string{one}) })
	b.Run("cache_hit_es256", func(b *testing.B) { perfServe(b, cached, []string{es}) })
	b.Run("cycle_10000", func(b *testing.B) { perfServe(b, cycling, cycle) })
	b.Run("cache_disabled", func(b *testing.B) { perfServe(b, uncached, []string{one}) })
	b.Run("cache_disabled_es256", func(b *testing.B) { perfServe(b, uncached, []string{es}) })
	b.Run("cache_disabled_eddsa", func(b *testing.B) { perfServe(b, uncached, []string{ed}) })
	b.Run("bad_signature", func(b *testing.B) { perfServe(b, perfRefused{quiet}, []string{bad}) })
	b.Run("no_identity_baseline", func(b *testing.B) { perfServe(b, nil, []string{one}) })
	b.Run("stock_request_header", func(b *testing.B) { perfServe(b, perfStockHeaders(b), []string{one}) })
	b.Run("handler_only/cache_hit", func(b *testing.B) { perfServeOnly(b, cached, []string{one}) })
	b.Run("handler_only/cache_hit_es256", func(b *testing.B) { perfServeOnly(b, cached, []string{es}) })
	b.Run("handler_only/cycle_10000", func(b *testing.B) { perfServeOnly(b, cycling, cycle) })
	b.Run("paired/cache_hit", func(b *testing.B) { perfPaired(b, cached, []string{one}) })
	b.Run("paired/cache_hit_es256", func(b *testing.B) { perfPaired(b, cached, []string{es}) })
	b.Run("paired/cycle_10000", func(b *testing.B) { perfPaired(b, cycling, cycle) })
	b.Run("paired/stock_request_header", func(b *testing.B) { perfPaired(b, perfStockHeaders(b), []string{one}) })
}

// perfBadSignature returns tok with one character of its signature changed:
// well-formed, a published kid, a wrong signature.
func perfBadSignature(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 20
	c := "A"
	if tok[i] == 'A' {
		c = "B"
	}
	return tok[:i] + c + tok[i+1:]
}

// perfRefused serves with h and expects a 401 refusal, the error Caddy
// would turn into the response.
type perfRefused struct{ h *Handler }

func (p perfRefused) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	err := p.h.ServeHTTP(w, r, next)
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && he.StatusCode == http.StatusUnauthorized {
		return nil
	}
	return fmt.Errorf("want a 401 refusal, got %v", err)
}

// perfStockHeaders is the yardstick of the paired benchmarks: Caddy's own
// headers handler doing the header work of an accepted request, as
// `request_header` directives would (set X-User-Id and X-User-Email,
// delete Authorization), with nothing to verify. Its handler-ns/req,
// measured in the same run, is what a stock Caddy handler costs here.
func perfStockHeaders(b *testing.B) caddyhttp.MiddlewareHandler {
	h := &headers.Handler{Request: &headers.HeaderOps{
		Set: http.Header{
			"X-User-Id":    []string{"user-000001"},
			"X-User-Email": []string{"user-000001@example.test"},
		},
		Delete: []string{"Authorization"},
	}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	return h
}

// perfPairBatch is the number of requests perfPaired serves between two
// readings of the clock: enough that the readings (about 60 ns each) cost
// almost nothing per request, few enough that the two sides alternate many
// times a second.
const perfPairBatch = 32

// perfPaired measures the handler's cost on top of the chain directly: it
// serves batches of the same requests (set up as perfServe does) with and
// without h in turn, timing each batch, and reports the difference per
// request as handler-ns/req (and the chain alone as chain-ns/req). The
// sides alternate every few microseconds and swap order on every
// iteration, so that the shared machine's changing speed, which makes the
// difference of two separate benchmarks (cache_hit minus
// no_identity_baseline) vary by several hundred nanoseconds from run to
// run, falls on both alike. Garbage collection triggered by either side is
// shared in proportion to the time each side runs; ns/op is the time of one
// batch pair and means little on its own.
func perfPaired(b *testing.B, h caddyhttp.MiddlewareHandler, tokens []string) {
	type side struct {
		req     *http.Request
		serve   func(http.ResponseWriter, *http.Request) error
		elapsed time.Duration
	}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	newSide := func(serve func(http.ResponseWriter, *http.Request) error) *side {
		req := httptest.NewRequest(http.MethodGet, "http://example.test/api/items", nil)
		req.Header.Set("User-Agent", "bench")
		req.Header.Set("Accept", "application/json")
		return &side{req: req, serve: serve}
	}
	with := newSide(func(w http.ResponseWriter, r *http.Request) error { return h.ServeHTTP(w, r, next) })
	without := newSide(next.ServeHTTP)
	auth := make([][]string, len(tokens))
	for i, t := range tokens {
		auth[i] = []string{"Bearer " + t}
	}
	w := &ccWriter{hdr: make(http.Header)}
	i := 0
	run := func(s *side) {
		start := time.Now()
		for range perfPairBatch {
			// The same map operations on both sides: the handler removes
			// the token and sets the identity headers, which the next
			// request must not see.
			delete(s.req.Header, "X-User-Id")
			delete(s.req.Header, "X-User-Email")
			s.req.Header["Authorization"] = auth[i]
			if i++; i == len(auth) {
				i = 0
			}
			r := caddyhttp.PrepareRequest(s.req, caddy.NewReplacer(), w, nil)
			if err := s.serve(w, r); err != nil {
				b.Fatal(err)
			}
		}
		s.elapsed += time.Since(start)
	}
	misses := perfMisses(b, h)
	var misses0 float64
	if misses != nil {
		misses0 = misses()
	}
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			run(with)
			run(without)
		} else {
			run(without)
			run(with)
		}
		n++
	}
	reqs := float64(n * perfPairBatch)
	b.ReportMetric(float64(with.elapsed-without.elapsed)/reqs, "handler-ns/req")
	b.ReportMetric(float64(without.elapsed)/reqs, "chain-ns/req")
	if misses != nil {
		b.ReportMetric((misses()-misses0)/reqs, "misses/op")
	}
}

// perfBatch is the number of requests perfServeOnly prepares with the timer
// stopped: enough that stopping and starting the timer costs nothing per
// request.
const perfBatch = 64

// perfServeOnly is perfServe through h with only ServeHTTP timed: requests (each with
// its own header map, replacer and context, as Caddy's server gives them)
// are prepared in batches while the timer is stopped.
func perfServeOnly(b *testing.B, h *Handler, tokens []string) {
	base := httptest.NewRequest(http.MethodGet, "http://example.test/api/items", nil)
	base.Header.Set("User-Agent", "bench")
	base.Header.Set("Accept", "application/json")
	w := &ccWriter{hdr: make(http.Header)}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	serve := func(w http.ResponseWriter, r *http.Request) error { return h.ServeHTTP(w, r, next) }
	batch := make([]*http.Request, perfBatch)
	prepare := func(first int) {
		for i := range batch {
			r := base.Clone(context.Background())
			r.Header["Authorization"] = []string{"Bearer " + tokens[(first+i)%len(tokens)]}
			batch[i] = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
		}
	}
	_, misses0 := ccHitsMisses(b, h)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ { // not b.Loop: it refuses a stopped timer
		n := i % perfBatch
		if n == 0 {
			b.StopTimer()
			prepare(i)
			b.StartTimer()
		}
		if err := serve(w, batch[n]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_, misses1 := ccHitsMisses(b, h)
	b.ReportMetric((misses1-misses0)/float64(b.N), "misses/op")
}

// perfServe serves requests carrying the tokens in turn through h (nil:
// straight to the next handler) and reports cache misses per request.
func perfServe(b *testing.B, h caddyhttp.MiddlewareHandler, tokens []string) {
	auth := make([][]string, len(tokens))
	for i, t := range tokens {
		auth[i] = []string{"Bearer " + t}
	}
	req := httptest.NewRequest(http.MethodGet, "http://example.test/api/items", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "application/json")
	w := &ccWriter{hdr: make(http.Header)}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	serve := next.ServeHTTP
	if h != nil {
		serve = func(w http.ResponseWriter, r *http.Request) error { return h.ServeHTTP(w, r, next) }
	}
	misses := perfMisses(b, h)
	var misses0 float64
	if misses != nil {
		misses0 = misses()
	}
	b.ReportAllocs()
	cpu0 := perfCPUTime(b)
	i := 0
	for b.Loop() {
		// The handler removes the token and sets the identity headers on
		// the shared header map: restore it for the next request.
		req.Header["Authorization"] = auth[i]
		delete(req.Header, "X-User-Id")
		delete(req.Header, "X-User-Email")
		if i++; i == len(auth) {
			i = 0
		}
		r := caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
		if err := serve(w, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(perfCPUTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if misses != nil {
		b.ReportMetric((misses()-misses0)/float64(b.N), "misses/op")
	}
}

// perfMisses returns a reader of the token cache misses of h so far, nil
// when h is not an identity handler.
func perfMisses(b *testing.B, h caddyhttp.MiddlewareHandler) func() float64 {
	ih, ok := h.(*Handler)
	if !ok {
		return nil
	}
	return func() float64 {
		_, m := ccHitsMisses(b, ih)
		return m
	}
}

// perfCPUTime returns the CPU time (user + system) the process used so far.
// Reported per operation as cpu-ns/op, it is less disturbed than ns/op by
// other processes on a shared machine: time spent waiting for a CPU does
// not count. It includes the garbage collector and the cache's maintenance
// goroutines.
func perfCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
