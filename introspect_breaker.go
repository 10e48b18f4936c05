package caddyidentity

import (
	"errors"
	"time"
)

// While an introspection endpoint is in outage (its last exchange failed:
// no connection, the timeout, a 5xx, an answer that could not be used),
// requests do not each wait for it. One request at a time probes it, at
// most once per outageProbeInterval; every other request takes the issuer
// as one that could not answer, at once: a token another issuer in
// introspection_order answers active for is accepted without waiting,
// and a token none answers active for gets 503 as when the endpoint is
// asked and fails. The probe is an ordinary introspection, bounded by
// introspectionTimeout; its success ends the outage at once (setDown).
// The outage itself is the introspector's down flag, the one that logs its
// start and end; answers already cached (locally or in the shared store)
// are served throughout.

// outageProbeInterval is the least time between the end of a failed
// exchange (or of a probe) and the next probe: during
// an outage the endpoint receives at most one request per interval from
// a handler, and a revoked-or-not verdict waits at most that long once
// the endpoint is back.
const outageProbeInterval = time.Second

// errIntrospectionOutage is the error of an issuer not asked because its
// endpoint is in outage and another request probes it or did so less than
// outageProbeInterval ago.
var errIntrospectionOutage = errors.New("identity: introspection: endpoint unavailable at the last exchange; not asked again until the next probe (one per second)")

// admit reports whether a request may ask the endpoint now: always when
// it is not in outage; in outage only as the probe (probe true, and the
// caller must call probed when it stops waiting), else with
// errIntrospectionOutage.
func (in *introspector) admit() (probe bool, err error) {
	if !in.down.Load() {
		return false, nil
	}
	if !in.probing.CompareAndSwap(false, true) {
		return false, errIntrospectionOutage
	}
	// Read after taking the flag: a probe that just ended stored its
	// time before letting go of the flag.
	if in.now().UnixNano() < in.probeAfter.Load() {
		in.probing.Store(false)
		return false, errIntrospectionOutage
	}
	return true, nil
}

// probed ends a probe: the next one may start outageProbeInterval from
// now, if the outage has not ended meanwhile.
func (in *introspector) probed() {
	in.holdProbes()
	in.probing.Store(false)
}

// holdProbes puts the next probe outageProbeInterval from now. Every
// failed exchange calls it (setDown), so that the request right after the
// failure that started an outage does not wait for the endpoint again.
func (in *introspector) holdProbes() {
	in.probeAfter.Store(in.now().Add(outageProbeInterval).UnixNano())
}
