package identity

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// replayRetainedBytes fills a replay cache with n proofs of one key whose
// jti is jtiLen bytes long and returns the heap bytes it retains per entry.
func replayRetainedBytes(t *testing.T, n, jtiLen int) float64 {
	t.Helper()
	thumbprint := strings.Repeat("t", 43) // a SHA-256 JWK thumbprint's length
	pad := strings.Repeat("j", jtiLen)
	proofs := make([]DPoPProof, n)
	for i := range proofs {
		id := strconv.Itoa(i)
		proofs[i] = DPoPProof{Thumbprint: thumbprint, ID: pad[len(id):] + id}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := NewDPoPReplayCache(n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range proofs {
		if !c.admit(&proofs[i], time.Minute) {
			t.Fatalf("proof %d refused as a replay", i)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(proofs) // counted in before and after: the difference is the cache's
	if c.c.EstimatedSize() != n {
		t.Fatalf("cache holds %d entries, want %d", c.c.EstimatedSize(), n)
	}
	perEntry := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	runtime.KeepAlive(c)
	_ = c.Close()
	return perEntry
}

// TestDPoPReplayCacheBytesPerEntry: an entry's memory does not depend on
// the jti the client chose. With the jti in the key, each entry kept the
// whole jti (up to nearly the proof size: 600 MiB at the default bound).
func TestDPoPReplayCacheBytesPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("fills caches of 20,000 entries")
	}
	const n = 20_000
	short := replayRetainedBytes(t, n, 22)
	long := replayRetainedBytes(t, n, MaxDPoPJTIBytes)
	t.Logf("retained bytes per entry: %.0f with a 22-byte jti, %.0f with a %d-byte jti", short, long, MaxDPoPJTIBytes)
	if long > short+MaxDPoPJTIBytes/4 {
		t.Errorf("a %d-byte jti costs %.0f bytes per entry against %.0f for a 22-byte one: the jti is retained", MaxDPoPJTIBytes, long, short)
	}
	if long >= MaxDPoPJTIBytes {
		t.Errorf("%.0f bytes per entry: not less than the longest jti (%d bytes)", long, MaxDPoPJTIBytes)
	}
}
