package caddyidentity

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-identity/caddy-identity/identity"
)

// DPoPOptions tunes how DPoP proofs are checked (Handler.DPoPOptions).
// Every field left empty keeps its default. Caddyfile: the block of the
// dpop option.
type DPoPOptions struct {
	// ProofAlgorithms are the signature algorithms a proof may use, also
	// advertised in the algs parameter of DPoP challenges (RFC 9449 §7.1).
	// Default: RS256–512, PS256–512, ES256–512 and EdDSA. Asymmetric
	// algorithms only: a proof is verified with the public key it
	// carries, so "none" and HMAC are refused.
	ProofAlgorithms []string `json:"proof_algorithms,omitempty"`
	// ProofMaxAge is how old, by its iat, a proof may be: long enough for
	// a request to arrive, short enough to make a captured proof useless.
	// It is also how long an accepted proof's jti is remembered. Default
	// 60s (identity.DefaultDPoPMaxAge), at most 5m.
	ProofMaxAge caddy.Duration `json:"proof_max_age,omitempty"`
	// ProofLeeway is how far in the future a proof's iat may be, for
	// client clocks running fast. Default 5s
	// (identity.DefaultDPoPClockSkew), at most 1m.
	ProofLeeway caddy.Duration `json:"proof_leeway,omitempty"`
	// Nonce, when set, makes the handler issue DPoP nonces (RFC 9449 §9)
	// and require one in every proof (see DPoPNonceConfig).
	Nonce *DPoPNonceConfig `json:"nonce,omitempty"`
}

// Bounds of DPoPOptions.
const (
	maxProofMaxAge   = 5 * time.Minute
	maxProofLeeway   = time.Minute
	maxNonceLifetime = time.Hour
)

// checkDPoPOptions checks o (nil: none given) against the dpop mode: they
// have no use with DPoP off.
func checkDPoPOptions(o *DPoPOptions, mode string) error {
	if o == nil {
		return nil
	}
	if mode == "off" {
		return errors.New("dpop off takes no options: remove the dpop block, or use `dpop allow` or `dpop require`")
	}
	for _, a := range o.ProofAlgorithms {
		if strings.HasPrefix(strings.ToUpper(a), "HS") {
			return fmt.Errorf("dpop proof_algorithms %s: a proof is verified with the public key it carries, so HMAC is never accepted", a)
		}
	}
	if err := checkAlgorithms(o.ProofAlgorithms); err != nil {
		return fmt.Errorf("dpop proof_algorithms: %w", err)
	}
	if o.ProofMaxAge < 0 || time.Duration(o.ProofMaxAge) > maxProofMaxAge {
		return fmt.Errorf("dpop proof_max_age %v: want a duration up to %v (default %v)", time.Duration(o.ProofMaxAge), maxProofMaxAge, identity.DefaultDPoPMaxAge)
	}
	if o.ProofLeeway < 0 || time.Duration(o.ProofLeeway) > maxProofLeeway {
		return fmt.Errorf("dpop proof_leeway %v: want a duration up to %v (default %v)", time.Duration(o.ProofLeeway), maxProofLeeway, identity.DefaultDPoPClockSkew)
	}
	if o.Nonce != nil {
		return o.Nonce.check()
	}
	return nil
}

// configure sets the stage's proof algorithms and iat window from o (nil:
// the defaults). The nonces need the secret's placeholders: compileNonces.
func (st *dpopStage) configure(o *DPoPOptions) {
	st.algorithms = dpopAlgorithms
	st.maxAge, st.leeway = identity.DefaultDPoPMaxAge, identity.DefaultDPoPClockSkew
	if o == nil {
		return
	}
	if len(o.ProofAlgorithms) > 0 {
		st.algorithms = o.ProofAlgorithms
	}
	if o.ProofMaxAge > 0 {
		st.maxAge = time.Duration(o.ProofMaxAge)
	}
	if o.ProofLeeway > 0 {
		st.leeway = time.Duration(o.ProofLeeway)
	}
}

// parseDPoP parses `dpop [off | allow | require] [{ ... }]`: the mode
// (default allow) and the DPoPOptions of the block.
func parseDPoP(d *caddyfile.Dispenser, h *Handler) error {
	if h.DPoP != "" || h.DPoPOptions != nil {
		return d.Err("dpop given twice")
	}
	args := d.RemainingArgs()
	switch {
	case len(args) > 1:
		return argErr(d, "dpop")
	case len(args) == 1:
		switch args[0] {
		case "off", "allow", "require":
			h.DPoP = args[0]
		default:
			return d.Errf("dpop: want off, allow or require, got %q", args[0])
		}
	}
	nesting := d.Nesting()
	if !d.NextBlock(nesting) {
		if len(args) == 0 {
			return argErr(d, "dpop")
		}
		return nil
	}
	o := new(DPoPOptions)
	seen := map[string]bool{}
	for ok := true; ok; ok = d.NextBlock(nesting) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("%s given twice", opt)
		}
		seen[opt] = true
		switch opt {
		case "proof_algorithms":
			if o.ProofAlgorithms = d.RemainingArgs(); len(o.ProofAlgorithms) == 0 {
				return argErr(d, opt)
			}
		case "proof_max_age", "proof_leeway":
			var s string
			if !d.AllArgs(&s) {
				return argErr(d, opt)
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			if opt == "proof_max_age" {
				o.ProofMaxAge = caddy.Duration(dur)
			} else {
				o.ProofLeeway = caddy.Duration(dur)
			}
		case "nonce":
			n, err := parseDPoPNonce(d)
			if err != nil {
				return err
			}
			o.Nonce = n
		default:
			return unknownOption(d, "dpop block", dpopOptions)
		}
	}
	h.DPoPOptions = o
	if err := checkDPoPOptions(o, h.DPoP); err != nil {
		return d.WrapErr(err)
	}
	return nil
}

// dpopOptions are the options of the dpop block.
var dpopOptions = []string{"proof_algorithms", "proof_max_age", "proof_leeway", "nonce"}
