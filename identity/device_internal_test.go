package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

// TestPollDeviceTokenIntervals checks the waits of the device flow: 5 s by
// default, +5 s after each slow_down, kept after authorization_pending
// (RFC 8628 §3.5), without sleeping.
func TestPollDeviceTokenIntervals(t *testing.T) {
	replies := []string{
		`{"error":"authorization_pending"}`,
		`{"error":"slow_down"}`,
		`{"error":"authorization_pending"}`,
		`{"error":"slow_down"}`,
		`{"access_token":"ok","token_type":"Bearer"}`,
	}
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n < len(replies)-1 {
			w.WriteHeader(http.StatusBadRequest)
		}
		_, _ = io.WriteString(w, replies[n])
		n++
	}))
	defer srv.Close()

	var waits []time.Duration
	var told []string
	wait := func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	req := DeviceTokenRequest{ProtocolRequest: ProtocolRequest{Address: srv.URL}, DeviceCode: "dc",
		OnWait: func(code string, d time.Duration) { told = append(told, fmt.Sprintf("%s %v", code, d)) }}
	tok, err := pollDeviceToken(context.Background(), nil, req, wait)
	if err != nil || tok.AccessToken != "ok" {
		t.Fatalf("got %v, %v", tok, err)
	}
	want := []time.Duration{5 * time.Second, 5 * time.Second, 10 * time.Second, 10 * time.Second, 15 * time.Second}
	if !reflect.DeepEqual(waits, want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	wantTold := []string{" 5s", "authorization_pending 5s", "slow_down 10s", "authorization_pending 10s", "slow_down 15s"}
	if !reflect.DeepEqual(told, wantTold) {
		t.Errorf("OnWait calls = %q, want %q", told, wantTold)
	}
	req.OnWait = nil

	n, waits = 0, nil
	req.Interval = 2 * time.Second
	if _, err := pollDeviceToken(context.Background(), nil, req, wait); err != nil {
		t.Fatal(err)
	}
	if waits[0] != 2*time.Second || waits[len(waits)-1] != 12*time.Second {
		t.Errorf("server interval not honoured: %v", waits)
	}

	stop := errors.New("stop")
	if _, err := pollDeviceToken(context.Background(), nil, req, func(context.Context, time.Duration) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("wait error: got %v", err)
	}
}

func TestSleepContext(t *testing.T) {
	if err := sleepContext(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepContext(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestParseBearerChallenge(t *testing.T) {
	got := parseBearerChallenge(`Bearer realm="api", error="invalid_token", error_description="The \"token\" expired",scope=openid`)
	want := map[string]string{"realm": "api", "error": "invalid_token", "error_description": `The "token" expired`, "scope": "openid"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	if parseBearerChallenge(`Basic realm="x"`) != nil {
		t.Error("Basic challenge parsed")
	}
	if p := parseBearerChallenge(`Bearer`); len(p) != 0 {
		t.Errorf("bare Bearer: %v", p)
	}
	if p := parseBearerChallenge(`Bearer error="unterminated`); p["error"] != "unterminated" {
		t.Errorf("unterminated: %v", p)
	}
}
