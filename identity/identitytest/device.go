package identitytest

import (
	"net/http"
	"strings"
	"time"
)

// defaultDeviceCodeLifetime is the lifetime of device codes unless
// WithDevicePolling sets one.
const defaultDeviceCodeLifetime = 10 * time.Minute

// deviceSlowDown is what a slow_down adds to the polling interval
// (RFC 8628 §3.5).
const deviceSlowDown = 5 * time.Second

// WithDevicePolling makes the device flow strict about polling, as real
// servers are: the device authorization response carries interval (whole
// seconds, at least 1) and expires_in (lifetime, default 10 minutes when
// 0), and a poll sooner than the interval after the previous one (or after
// the authorization) is answered slow_down, which adds 5 s to the interval
// of that device code (RFC 8628 §3.5). Without it no interval is sent and
// polls are never too fast.
func WithDevicePolling(interval, lifetime time.Duration) Option {
	return func(c *config) {
		c.deviceInterval = max(interval.Truncate(time.Second), time.Second)
		c.deviceLifetime = lifetime
	}
}

// deviceGrant is a pending device authorization; grant is set once the
// user approved it, denied once they refused.
type deviceGrant struct {
	clientID, scope, userCode string
	expiry                    time.Time
	grant                     *grant
	denied                    bool
	// interval is the minimum time between polls (0: not enforced),
	// lastPoll the time of the previous poll or of the authorization;
	// slowDown answers the next poll slow_down (SlowDownDevice).
	interval time.Duration
	lastPoll time.Time
	slowDown bool
}

// serveDeviceAuthorization starts a device flow (RFC 8628 §3.1) for the
// authenticated client; ApproveDevice and DenyDevice play the user.
func (i *Issuer) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	client, _, ok := i.clientAuth(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	lifetime := i.cfg.deviceLifetime
	if lifetime <= 0 {
		lifetime = defaultDeviceCodeLifetime
	}
	code, user := randomValue(), strings.ToUpper(randomValue()[:4]+"-"+randomValue()[:4])
	now := time.Now()
	i.lockOAuth()
	i.oauth.devices[code] = &deviceGrant{
		clientID: client, scope: r.PostForm.Get("scope"), userCode: user, expiry: now.Add(lifetime),
		interval: i.cfg.deviceInterval, lastPoll: now,
	}
	i.oauth.mu.Unlock()
	body := map[string]any{
		"device_code": code, "user_code": user, "expires_in": int64(lifetime / time.Second),
		"verification_uri": i.URL + "/device", "verification_uri_complete": i.URL + "/device?user_code=" + user,
	}
	if i.cfg.deviceInterval > 0 {
		body["interval"] = int64(i.cfg.deviceInterval / time.Second)
	}
	writeJSONBody(w, http.StatusOK, body)
}

// pendingDevice returns the pending, unexpired device authorization with
// userCode; the caller holds i.oauth.mu.
func (i *Issuer) pendingDevice(userCode string) *deviceGrant {
	for _, d := range i.oauth.devices {
		if d.userCode == userCode && d.grant == nil && !d.denied && time.Now().Before(d.expiry) {
			return d
		}
	}
	return nil
}

// ApproveDevice approves the pending device authorization with userCode
// as subject, as the user would at the verification URI. It reports
// whether such an authorization was pending.
func (i *Issuer) ApproveDevice(userCode, subject string) bool {
	i.lockOAuth()
	defer i.oauth.mu.Unlock()
	d := i.pendingDevice(userCode)
	if d != nil {
		d.grant = &grant{clientID: d.clientID, subject: subject, scope: d.scope, authTime: time.Now()}
	}
	return d != nil
}

// DenyDevice refuses the pending device authorization with userCode, as
// the user would at the verification URI: the next poll is answered
// access_denied. It reports whether such an authorization was pending.
func (i *Issuer) DenyDevice(userCode string) bool {
	i.lockOAuth()
	defer i.oauth.mu.Unlock()
	d := i.pendingDevice(userCode)
	if d != nil {
		d.denied = true
	}
	return d != nil
}

// SlowDownDevice answers the next poll of the pending device authorization
// with userCode slow_down, as a loaded server may whatever the interval,
// and adds 5 s to its interval when WithDevicePolling enforces one. It
// reports whether such an authorization was pending.
func (i *Issuer) SlowDownDevice(userCode string) bool {
	i.lockOAuth()
	defer i.oauth.mu.Unlock()
	d := i.pendingDevice(userCode)
	if d != nil {
		d.slowDown = true
	}
	return d != nil
}

// redeemDevice returns the grant of an approved device code of client
// (used up), or the error code: invalid_grant, expired_token,
// access_denied, slow_down or authorization_pending.
func (i *Issuer) redeemDevice(code, client string) (*grant, string) {
	i.lockOAuth()
	defer i.oauth.mu.Unlock()
	d := i.oauth.devices[code]
	if d == nil || d.clientID != client {
		return nil, "invalid_grant"
	}
	now := time.Now()
	tooSoon := d.interval > 0 && now.Sub(d.lastPoll) < d.interval
	d.lastPoll = now
	switch {
	case now.After(d.expiry):
		delete(i.oauth.devices, code)
		return nil, "expired_token"
	case d.denied:
		delete(i.oauth.devices, code)
		return nil, "access_denied"
	case d.slowDown || tooSoon:
		d.slowDown = false
		if d.interval > 0 {
			d.interval += deviceSlowDown
		}
		return nil, "slow_down"
	case d.grant == nil:
		return nil, "authorization_pending"
	}
	delete(i.oauth.devices, code)
	return d.grant, ""
}
