package caddyidentity

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-identity/caddy-identity/identity"
)

// DPoPNonceConfig turns on server-issued DPoP nonces (RFC 9449 §9): every
// proof must carry a nonce this handler, or any handler sharing the
// secret, issued recently. A proof without one, or with an expired or
// foreign one, gets 401 with `WWW-Authenticate: DPoP
// error="use_dpop_nonce"` and a fresh nonce in the DPoP-Nonce header;
// clients retry once with it. Nonces are stateless: an HMAC of the
// current time slot under a key derived from the secret, so every
// instance of a fleet with the same secret and lifetime issues and
// accepts the same nonces without a shared store, and restarts lose
// nothing.
//
// A nonce is accepted in the slot it was issued in and the next one (for
// one to two lifetimes). A successful response carries a new nonce when
// the client's is from the previous slot, so a busy client never sees
// the challenge again; every refusal in the DPoP scheme carries the
// current one. A nonce bounds how long a proof made in advance stays
// usable; the jti replay check still refuses every proof seen before.
type DPoPNonceConfig struct {
	// Secret keys the nonces: at least 32 bytes, high-entropy (such as
	// the output of `openssl rand -base64 32`), the same on every instance
	// behind one load balancer. Use a placeholder such as
	// {env.DPOP_NONCE_SECRET}: the JSON config is readable on the admin
	// API. Required; never logged.
	Secret string `json:"secret"`
	// Lifetime is the length of a nonce slot. Default 5m
	// (identity.DefaultDPoPNonceLifetime), between 10s and 1h.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`
}

// check refuses a missing secret, one visibly too short, and a lifetime
// out of bounds. A secret with placeholders is measured in Provision.
func (c *DPoPNonceConfig) check() error {
	if c.Secret == "" {
		return errors.New("dpop nonce: secret is required (at least 32 bytes, e.g. {env.DPOP_NONCE_SECRET} set to the output of `openssl rand -base64 32`)")
	}
	if !strings.Contains(c.Secret, "{") && len(c.Secret) < identity.MinDPoPNonceSecretBytes {
		return errNonceSecretShort(len(c.Secret))
	}
	if l := time.Duration(c.Lifetime); l != 0 && (l < identity.MinDPoPNonceLifetime || l > maxNonceLifetime) {
		return fmt.Errorf("dpop nonce lifetime %v: want between %v and %v (default %v)", l, identity.MinDPoPNonceLifetime, maxNonceLifetime, identity.DefaultDPoPNonceLifetime)
	}
	return nil
}

// errNonceSecretShort says the secret is too short, by its length only.
func errNonceSecretShort(n int) error {
	return fmt.Errorf("dpop nonce secret has %d bytes, want at least %d (e.g. the output of `openssl rand -base64 32`)", n, identity.MinDPoPNonceSecretBytes)
}

// compileNonces turns server nonces on, from the nonce block of the dpop
// options, with the secret's placeholders replaced (checkPlaceholders has
// named any that is empty): the DPoP stage checks and renews them, the
// refuser offers them.
func (h *Handler) compileNonces(repl *caddy.Replacer) error {
	o := h.DPoPOptions
	if o == nil || o.Nonce == nil {
		return nil
	}
	secret := repl.ReplaceKnown(o.Nonce.Secret, "")
	if len(secret) < identity.MinDPoPNonceSecretBytes {
		return errNonceSecretShort(len(secret))
	}
	n, err := identity.NewDPoPNonces([]byte(secret), time.Duration(o.Nonce.Lifetime))
	if err != nil {
		return fmt.Errorf("dpop nonce: %w", err)
	}
	h.dpop.nonce = nonceOffer{nonces: n, now: h.dpop.now}
	h.refuser.nonce = h.dpop.nonce
	return nil
}

// nonceOffer puts server nonces on responses; the zero value (nonces off)
// puts none.
type nonceOffer struct {
	nonces *identity.DPoPNonces
	now    func() time.Time
}

// offer sets the current nonce on a response.
func (o nonceOffer) offer(h http.Header) {
	if o.nonces != nil {
		h.Set(identity.HTTPHeaderDPoPNonce, o.nonces.Nonce(o.now()))
	}
}

// renew gives a client whose accepted proof carried another nonce than
// the current one (from the previous slot, which expires at the end of
// this one) the current nonce, on the successful response.
func (o nonceOffer) renew(h http.Header, p *identity.DPoPProof, now time.Time) {
	if o.nonces != nil && p.Nonce != o.nonces.Nonce(now) {
		h.Set(identity.HTTPHeaderDPoPNonce, o.nonces.Nonce(now))
	}
}

// parseDPoPNonce parses the nonce block of the dpop block:
// `nonce { secret <secret>; lifetime <duration> }`.
func parseDPoPNonce(d *caddyfile.Dispenser) (*DPoPNonceConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	c := new(DPoPNonceConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "secret":
			if err := parseOnce(d, &c.Secret); err != nil {
				return nil, err
			}
		case "lifetime":
			var s string
			if c.Lifetime != 0 {
				return nil, d.Err("lifetime given twice")
			}
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur == 0 {
				return nil, d.Errf("lifetime: invalid duration %q", s)
			}
			c.Lifetime = caddy.Duration(dur)
		default:
			return nil, unknownOption(d, "nonce block", []string{"secret", "lifetime"})
		}
	}
	return c, nil
}
