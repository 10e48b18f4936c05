package caddyidentity

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestLoadMixedTraffic is a bounded load test over loopback: valid tokens
// (a pool, so both cache hits and misses), garbage and genuinely signed
// tokens with random kids are sent concurrently for six seconds, longer
// than the key refresh cooldown so that random kids do get to force
// refreshes (one second with -short). Valid
// tokens must all be served, the random kids must not turn into a stream of
// JWKS fetches, the heap must come back down and no goroutine may outlive
// the handler's cleanup.
func TestLoadMixedTraffic(t *testing.T) {
	duration := 6 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	ignore := goleak.IgnoreCurrent()
	t.Run("load", func(t *testing.T) { runLoad(t, duration) })
	// Every server, provider, cache and connection of the subtest has
	// been cleaned up by now.
	goleak.VerifyNone(t, ignore)
}

// loadKind is one class of traffic.
type loadKind int

const (
	loadValid loadKind = iota
	loadGarbage
	loadRandomKID
	numLoadKinds
)

var loadKindNames = [numLoadKinds]string{"valid", "garbage", "random-kid"}

func runLoad(t *testing.T, duration time.Duration) {
	iss := identitytest.NewIssuer(t)
	f := issuerForger(t, iss, atkAudience)
	h := attackHandler(iss)
	h.logger = zap.NewNop()
	s := newIdentityServer(t, h, nil)
	expectServed(t, s, f)

	// Tokens are minted before the clock starts: signing is not what is
	// measured. Valid tokens are a pool reused (cache hits) plus fresh
	// ones (cache misses).
	valid := make([]string, 200)
	for i := range valid {
		valid[i] = f.ValidWithClaims(t, map[string]any{"jti": fmt.Sprint("load-", i)})
	}
	randomKID := make([]string, 200)
	for i := range randomKID {
		randomKID[i] = f.RandomKID(t)
	}
	garbage := func(r *rand.Rand) string {
		seg := func() string {
			b := make([]byte, 16+r.IntN(200))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return base64.RawURLEncoding.EncodeToString(b)
		}
		return seg() + "." + seg() + "." + seg()
	}

	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 32, MaxConnsPerHost: 32},
		Timeout:   10 * time.Second,
	}
	defer client.Transport.(*http.Transport).CloseIdleConnections()

	goruntime.GC()
	var before goruntime.MemStats
	goruntime.ReadMemStats(&before)
	iss.ResetCounters()

	var (
		sent, wrong [numLoadKinds]atomic.Int64
		firstErr    atomic.Pointer[string]
		wg          sync.WaitGroup
		stop        = time.Now().Add(duration)
	)
	workers := 3 * goruntime.GOMAXPROCS(0)
	for w := range workers {
		kind := loadKind(w % int(numLoadKinds))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; time.Now().Before(stop); i++ {
				var tok string
				want := http.StatusUnauthorized
				switch kind {
				case loadValid:
					want = http.StatusOK
					tok = valid[r.IntN(len(valid))]
				case loadGarbage:
					tok = garbage(r)
				case loadRandomKID:
					tok = randomKID[r.IntN(len(randomKID))]
				}
				req, _ := http.NewRequest(http.MethodGet, s.URL+"/load", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				sent[kind].Add(1)
				if err != nil || resp.StatusCode != want {
					wrong[kind].Add(1)
					msg := fmt.Sprintf("%s: %v", loadKindNames[kind], err)
					if err == nil {
						msg = fmt.Sprintf("%s: status %d, want %d", loadKindNames[kind], resp.StatusCode, want)
					}
					firstErr.CompareAndSwap(nil, &msg)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()

	var report []string
	for k := range numLoadKinds {
		report = append(report, fmt.Sprintf("%s %d sent, %d wrong", loadKindNames[k], sent[k].Load(), wrong[k].Load()))
	}
	t.Logf("%v, %d workers: %s; JWKS fetches %d", duration, workers, strings.Join(report, "; "), iss.JWKSFetches())
	for k := range numLoadKinds {
		if sent[k].Load() == 0 {
			t.Errorf("no %s request was sent", loadKindNames[k])
		}
		if wrong[k].Load() != 0 {
			t.Errorf("%d %s requests got the wrong answer; first: %s", wrong[k].Load(), loadKindNames[k], *firstErr.Load())
		}
	}
	// Thousands of random kids: at most one forced refresh per 5 s
	// cooldown (two in six seconds); 5 leaves room for timing without
	// hiding a refetch storm.
	if n := iss.JWKSFetches(); n > 5 {
		t.Errorf("%d JWKS fetches during the load (random kids must not drive fetches)", n)
	}
	if n := s.Upstream.Hits(); int64(n) != sent[loadValid].Load()+1 {
		t.Errorf("upstream reached %d times for %d valid requests", n-1, sent[loadValid].Load())
	}

	client.Transport.(*http.Transport).CloseIdleConnections()
	goruntime.GC()
	var after goruntime.MemStats
	goruntime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap: %d KiB before, %d KiB after (%+d KiB)", before.HeapAlloc>>10, after.HeapAlloc>>10, growth>>10)
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB during the load", growth>>20)
	}

	// Valid tokens are still served after the storm.
	expectServed(t, s, f)
}
