package identity_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

// nonceSlotStart is the start of a 5-minute slot (slots count from the
// Unix epoch).
var nonceSlotStart = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func mustDPoPNonces(t *testing.T, secret string, lifetime time.Duration) *identity.DPoPNonces {
	t.Helper()
	n, err := identity.NewDPoPNonces([]byte(secret), lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const testNonceSecret = "0123456789abcdef0123456789abcdef"

func TestDPoPNoncesValid(t *testing.T) {
	const life = 5 * time.Minute
	n := mustDPoPNonces(t, testNonceSecret, life)
	issued := n.Nonce(nonceSlotStart.Add(time.Minute))
	tests := []struct {
		name  string
		nonce string
		at    time.Time
		want  bool
	}{
		{"same slot", issued, nonceSlotStart.Add(life - time.Nanosecond), true},
		{"next slot (the issuing slot is the previous one)", issued, nonceSlotStart.Add(2*life - time.Nanosecond), true},
		{"two slots later", issued, nonceSlotStart.Add(2 * life), false},
		{"slot before it was issued, far from the boundary", issued, nonceSlotStart.Add(-life), false},
		{"slot before it was issued, within the clock skew of the boundary", issued, nonceSlotStart.Add(-identity.DefaultDPoPClockSkew + time.Second), true},
		{"slot before it was issued, just outside the clock skew", issued, nonceSlotStart.Add(-identity.DefaultDPoPClockSkew - time.Second), false},
		{"another secret", mustDPoPNonces(t, "another secret, also 32 bytes long", life).Nonce(nonceSlotStart), nonceSlotStart, false},
		{"another lifetime, same secret", mustDPoPNonces(t, testNonceSecret, 10*time.Minute).Nonce(nonceSlotStart), nonceSlotStart, false},
		{"empty", "", nonceSlotStart, false},
		{"a prefix of the nonce", issued[:len(issued)-1], nonceSlotStart, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := n.Valid(tt.nonce, tt.at); got != tt.want {
				t.Errorf("Valid(%q, %v) = %v, want %v", tt.nonce, tt.at, got, tt.want)
			}
		})
	}
}

func TestDPoPNoncesAreSharedByTheSecret(t *testing.T) {
	a := mustDPoPNonces(t, testNonceSecret, 0)
	b := mustDPoPNonces(t, testNonceSecret, 0)
	if a.Lifetime() != identity.DefaultDPoPNonceLifetime {
		t.Errorf("lifetime %v, want the default %v", a.Lifetime(), identity.DefaultDPoPNonceLifetime)
	}
	now := nonceSlotStart.Add(time.Minute)
	na, nb := a.Nonce(now), b.Nonce(now)
	if na != nb || !b.Valid(na, now) {
		t.Errorf("two instances with one secret disagree: %q and %q", na, nb)
	}
	if next := a.Nonce(now.Add(a.Lifetime())); next == na {
		t.Errorf("the nonce did not change with the slot: %q", na)
	}
	// RFC 9449 §8: nonce = 1*NQCHAR (printable ASCII but '"' and '\').
	if len(na) != 22 || strings.ContainsAny(na, "\"\\ =+/") {
		t.Errorf("nonce %q is not 22 base64url characters", na)
	}
}

func TestNewDPoPNoncesRefuses(t *testing.T) {
	tests := []struct {
		name     string
		secret   []byte
		lifetime time.Duration
	}{
		{"no secret", nil, 0},
		{"secret of 31 bytes", bytes.Repeat([]byte{'s'}, identity.MinDPoPNonceSecretBytes-1), 0},
		{"lifetime below the minimum", []byte(testNonceSecret), identity.MinDPoPNonceLifetime - time.Second},
		{"negative lifetime", []byte(testNonceSecret), -time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := identity.NewDPoPNonces(tt.secret, tt.lifetime)
			if err == nil {
				t.Fatalf("accepted, nonce %q", n.Nonce(nonceSlotStart))
			}
			if strings.Contains(err.Error(), string(tt.secret)) && len(tt.secret) > 0 {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestVerifyDPoPProofServerNonces(t *testing.T) {
	const uri = "https://rs.example/api"
	key := mustDPoPKey(t, "ES256")
	nonces := mustDPoPNonces(t, testNonceSecret, 0)
	replay, err := identity.NewDPoPReplayCache(16)
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	now := time.Now()
	proof := func(nonce string) string {
		p, err := key.Proof(identity.DPoPProofOptions{Method: http.MethodGet, URI: uri, Nonce: nonce, IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	opts := identity.DPoPVerifyOptions{Method: http.MethodGet, URI: uri, Nonces: nonces, Replay: replay, Now: now}

	withoutNonce := proof("")
	err = proofErr(identity.VerifyDPoPProof(withoutNonce, opts))
	assertDPoPCheck(t, err, identity.DPoPCheckNonce)
	var pe *identity.DPoPProofError
	if errors.As(err, &pe) && pe.ErrorCode() != identity.ErrorUseDPoPNonce {
		t.Errorf("error code %q, want %q", pe.ErrorCode(), identity.ErrorUseDPoPNonce)
	}
	foreign := mustDPoPNonces(t, "another secret, also 32 bytes long", 0)
	assertDPoPCheck(t, proofErr(identity.VerifyDPoPProof(proof(foreign.Nonce(now)), opts)), identity.DPoPCheckNonce)

	good := proof(nonces.Nonce(now))
	p, err := identity.VerifyDPoPProof(good, opts)
	if err != nil {
		t.Fatalf("proof with the server's nonce refused: %v", err)
	}
	if p.Nonce != nonces.Nonce(now) {
		t.Errorf("proof nonce %q, want %q", p.Nonce, nonces.Nonce(now))
	}
	assertDPoPCheck(t, proofErr(identity.VerifyDPoPProof(good, opts)), identity.DPoPCheckJTI)

	// The nonce is checked before the replay cache: the proof refused for
	// its nonce was not recorded, so without nonces it passes.
	opts.Nonces = nil
	if _, err := identity.VerifyDPoPProof(withoutNonce, opts); err != nil {
		t.Errorf("a proof refused for its nonce had its jti recorded: %v", err)
	}

	opts.Nonces = &identity.DPoPNonces{}
	if _, err := identity.VerifyDPoPProof(good, opts); !errors.Is(err, identity.ErrNotInitialized) {
		t.Errorf("zero DPoPNonces: %v, want ErrNotInitialized", err)
	}
}

// BenchmarkDPoPNoncesValid is the check of a nonce within its slot: no
// HMAC, three constant-time comparisons.
func BenchmarkDPoPNoncesValid(b *testing.B) {
	n, err := identity.NewDPoPNonces([]byte(testNonceSecret), 0)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	nonce := n.Nonce(now)
	b.ReportAllocs()
	for b.Loop() {
		if !n.Valid(nonce, now) {
			b.Fatal("refused")
		}
	}
}
