package identitytest_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// TestDeviceOutcomes checks every answer of a device code poll: the user
// denies, the server asks to slow down, the code expires, a poll comes
// sooner than the enforced interval.
func TestDeviceOutcomes(t *testing.T) {
	const devicePoll = "urn:ietf:params:oauth:grant-type:device_code"
	cases := []struct {
		name     string
		opts     []identitytest.Option
		user     func(iss *identitytest.Issuer, userCode string) bool
		wait     time.Duration
		want     []string // error codes of the polls, "" for a token
		interval float64  // the interval member, 0 when absent
		expires  float64
	}{
		{"approved", nil, func(iss *identitytest.Issuer, c string) bool { return iss.ApproveDevice(c, "alice") }, 0, []string{""}, 0, 600},
		{"denied", nil, func(iss *identitytest.Issuer, c string) bool { return iss.DenyDevice(c) }, 0, []string{"access_denied", "invalid_grant"}, 0, 600},
		{"slowed down once", nil, func(iss *identitytest.Issuer, c string) bool { return iss.SlowDownDevice(c) }, 0,
			[]string{"slow_down", "authorization_pending"}, 0, 600},
		{"expired", []identitytest.Option{identitytest.WithDevicePolling(time.Second, time.Second)}, nil, 1100 * time.Millisecond,
			[]string{"expired_token", "invalid_grant"}, 1, 1},
		{"polled too soon", []identitytest.Option{identitytest.WithDevicePolling(time.Hour, 0)}, nil, 0,
			[]string{"slow_down", "slow_down"}, 3600, 600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iss := identitytest.NewIssuer(t, tc.opts...)
			c := oauthClient{t, iss}
			status, da := c.post(identitytest.DeviceAuthPath, identitytest.DefaultClientID, identitytest.DefaultClientSecret, url.Values{})
			if status != 200 {
				t.Fatalf("device authorization: %d %v", status, da)
			}
			if iv, _ := da["interval"].(float64); iv != tc.interval || da["expires_in"] != tc.expires {
				t.Errorf("interval %v, expires_in %v; want %v, %v", da["interval"], da["expires_in"], tc.interval, tc.expires)
			}
			if tc.user != nil && !tc.user(iss, da["user_code"].(string)) {
				t.Fatal("the authorization is not pending")
			}
			time.Sleep(tc.wait)
			for i, want := range tc.want {
				form := url.Values{"grant_type": {devicePoll}, "device_code": {da["device_code"].(string)}}
				status, body := c.post(identitytest.TokenPath, identitytest.DefaultClientID, identitytest.DefaultClientSecret, form)
				if got, _ := body["error"].(string); got != want || (want == "") != (status == 200) {
					t.Errorf("poll %d: %d %v, want error %q", i+1, status, body, want)
				}
			}
			if tc.want[0] != "slow_down" && (iss.ApproveDevice(da["user_code"].(string), "bob") || iss.DenyDevice(da["user_code"].(string))) {
				t.Error("a decided or expired authorization is still pending")
			}
		})
	}
}
