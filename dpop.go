package caddyidentity

import (
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity"
)

// placeholderDPoPJKT is set to the proof key's thumbprint (the token's
// cnf.jkt) when a request was authenticated with DPoP, so that routes and
// logs can tell sender-constrained requests apart.
const placeholderDPoPJKT = "http.auth.identity.dpop_jkt"

// replayPool holds the one DPoP replay cache of the process, under
// replayPoolKey: every identity handler of every site, in every loaded
// config, records the proofs it accepts there. A jti is unique for its
// key wherever the proof is sent (RFC 9449 §11.1), so a proof accepted
// by one handler must be refused by all the others, and by the handlers
// of the next config after a reload (which provisions before the old
// config cleans up, so the cache is never empty in between). It lives
// while a loaded config has a handler with DPoP on; each entry lives
// until the proof it records is too old to be accepted by the handler
// that accepted it (its iat plus that handler's proof_max_age).
var replayPool = caddy.NewUsagePool()

const replayPoolKey = "dpop-replay"

// pooledReplayCache makes the replay cache a caddy.Destructor.
type pooledReplayCache struct {
	*identity.DPoPReplayCache
}

// Destruct closes the cache when its last user is cleaned up.
func (p pooledReplayCache) Destruct() error {
	return p.Close()
}

// dpopStage is the DPoP stage (RFC 9449), the binding check of a token
// that came with the DPoP scheme: its proof must be valid and unseen, in
// the process's replay cache and, with a store, the shared one. Its
// replay cache is taken by acquire in Provision and given back by
// cleanup. The scheme's token source is the credential stage's, its
// challenges are the refuser's.
type dpopStage struct {
	// replay is the cache of the proofs already accepted in this process.
	replay *identity.DPoPReplayCache
	// store is the handler's shared store, nil without one; the handler
	// owns it (sign-in shares it).
	store *sharedStore
	now   func() time.Time
	// algorithms are the accepted proof algorithms; maxAge and leeway the
	// iat window (dpop_options.go configure).
	algorithms     []string
	maxAge, leeway time.Duration
	// nonce, when on, issues and checks server nonces (dpop_nonce.go).
	nonce nonceOffer
}

// acquire sets the stage's replay cache to the shared one, created on
// first use; cleanup gives it back.
func (st *dpopStage) acquire() error {
	val, _, err := replayPool.LoadOrNew(replayPoolKey, func() (caddy.Destructor, error) {
		c, err := identity.NewDPoPReplayCache(0)
		if err != nil {
			return nil, err
		}
		return pooledReplayCache{c}, nil
	})
	if err != nil {
		return err
	}
	st.replay = val.(pooledReplayCache).DPoPReplayCache
	return nil
}

// cleanup releases the shared replay cache, once.
func (st *dpopStage) cleanup() error {
	if st.replay == nil {
		return nil
	}
	st.replay = nil
	_, err := replayPool.Delete(replayPoolKey)
	return err
}

// dpopMode is the compiled Handler.DPoP.
type dpopMode uint8

const (
	dpopAllow dpopMode = iota
	dpopRequire
	dpopOff
)

// parseDPoPMode maps the checked configuration value to its mode; empty is
// the default, allow.
func parseDPoPMode(s string) dpopMode {
	switch s {
	case "require":
		return dpopRequire
	case "off":
		return dpopOff
	}
	return dpopAllow
}

// dpopAlgorithms are the proof algorithms accepted and advertised in the
// algs challenge parameter by default (proof_algorithms): the asymmetric
// defaults. The client picks the proof key, so any key type the library
// verifies is fine.
var dpopAlgorithms = identity.DefaultAlgorithms()

// dpopCheckDescriptions are the fixed error_description texts of a failed
// proof check: they tell the client what to fix without echoing anything
// it sent.
var dpopCheckDescriptions = map[identity.DPoPCheck]string{
	identity.DPoPCheckHeader:          "The request must carry exactly one DPoP proof",
	identity.DPoPCheckJWS:             "The DPoP proof is malformed",
	identity.DPoPCheckType:            "The DPoP proof type must be dpop+jwt",
	identity.DPoPCheckAlgorithm:       "The DPoP proof signature algorithm is not accepted",
	identity.DPoPCheckJWK:             "The DPoP proof key is invalid",
	identity.DPoPCheckSignature:       "The DPoP proof signature is invalid",
	identity.DPoPCheckJTI:             "The DPoP proof has no jti, a jti too long, or was already used",
	identity.DPoPCheckMethod:          "The DPoP proof is for another HTTP method",
	identity.DPoPCheckURI:             "The DPoP proof is for another URI",
	identity.DPoPCheckIssuedAt:        "The DPoP proof is too old or issued in the future",
	identity.DPoPCheckAccessTokenHash: "The DPoP proof is for another access token",
	identity.DPoPCheckJKT:             "The DPoP proof key is not the key the access token is bound to",
}

// checkDPoP checks the dpop option and its fit with the token sources.
// A header source with the DPoP scheme would take a DPoP token without its
// proof, so it is refused unless DPoP is off; require accepts tokens only
// in the Authorization header, so any other source would be dead.
func checkDPoP(mode string, sources []TokenSource) error {
	switch mode {
	case "", "allow", "require", "off":
	default:
		return fmt.Errorf("dpop must be off, allow or require, not %q", mode)
	}
	if mode == "off" {
		return nil
	}
	for _, s := range sources {
		if s.From == "header" && strings.EqualFold(s.Scheme, identity.TokenTypeDPoP) {
			return fmt.Errorf("token_from header %s %s: remove the DPoP scheme; `dpop allow` or `dpop require` accepts DPoP tokens and checks their proofs", s.Name, s.Scheme)
		}
		if mode == "require" && (s.From != "header" || textproto.CanonicalMIMEHeaderKey(s.Name) != "Authorization") {
			return fmt.Errorf("token_from %s %s: with `dpop require`, tokens are accepted only in the Authorization header: remove this token_from, or use `dpop allow`", s.From, s.Name)
		}
	}
	return nil
}

// cnfJKT reads the DPoP binding of verified claims whose cnf object is cnf
// (see confirmation; RFC 9449 §6.1): bound when it has a jkt member, jkt
// its value when a non-empty string. A jkt of another type still marks the
// token as bound (so it is never accepted as a bearer token) but matches
// no proof key.
func cnfJKT(cnf map[string]any) (jkt string, bound bool) {
	jktValue, bound := cnf["jkt"]
	jkt, _ = jktValue.(string)
	return jkt, bound
}

// check verifies the binding of a token that came with the DPoP scheme
// (RFC 9449 §7.1), once the authenticate stage found it valid and bound to
// a key (cnf.jkt) and the certificate stage found its certificate, if it
// is bound to one too: the request's one DPoP proof (read by the
// credential stage) must be signed by that key for this method, URI and
// token, and not seen before. The proof is checked on every request,
// whether the token's validation came from the cache or not, and last, so
// that its jti is not spent on a request refused anyway. With server
// nonces the proof must carry a valid one, and a client whose nonce is
// about to expire gets the current one on w. A request without the DPoP
// scheme has nothing to check here (this inlines).
func (st *dpopStage) check(w http.ResponseWriter, r *http.Request, c *credential, e *cacheEntry) *rejection {
	if !c.dpop() {
		return nil
	}
	return st.verifyProof(w, r, c, e)
}

// verifyProof is check for a request with the DPoP scheme.
func (st *dpopStage) verifyProof(w http.ResponseWriter, r *http.Request, c *credential, e *cacheEntry) *rejection {
	method, uri := requestTarget(r)
	replay := st.replay
	if st.store != nil {
		replay = nil // checked below, once every other check passed
	}
	now := st.now()
	p, err := identity.VerifyDPoPProof(c.proof, identity.DPoPVerifyOptions{
		Method:      method,
		URI:         uri,
		AccessToken: c.token,
		BoundJKT:    e.dpopJKT,
		Algorithms:  st.algorithms,
		MaxAge:      st.maxAge,
		ClockSkew:   st.leeway,
		Nonces:      st.nonce.nonces,
		Now:         now,
		Replay:      replay,
	})
	if err == nil && st.store != nil {
		var rsn reason
		if rsn, err = st.admitShared(r.Context(), p, now); rsn != reasonNone {
			return &rejection{reason: rsn, dpop: true, err: err, token: c.token}
		}
	}
	if err != nil {
		return proofRejection(err, c.token)
	}
	st.nonce.renew(w.Header(), p, now)
	return nil
}

// requestTarget returns the method and the absolute URI, without query,
// that the client addressed: what the proof's htm and htu must match.
//
// Method and path are those of the request as it reached Caddy, before any
// rewrite, uri or handle_path changed them. The scheme is https when the
// connection to Caddy is TLS or, only when the connection comes from one
// of the server's trusted_proxies, when a single X-Forwarded-Proto says
// so (a load balancer that terminates TLS); from anyone else it is
// ignored. The host is always the Host header: X-Forwarded-Host is not
// read, since many load balancers (AWS ALB, Cloudflare) pass the client's
// value on unchanged, which would let a client have a proof made for
// another server that accepts the same token checked against that
// server's URI. Load balancers keep Host by default.
func requestTarget(r *http.Request) (method, uri string) {
	method, path := r.Method, r.URL.EscapedPath()
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		method, path = orig.Method, orig.URL.EscapedPath()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if v, ok := forwardedValue(r.Header, "X-Forwarded-Proto"); ok && (v == "http" || v == "https") {
			scheme = v
		}
	}
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	return method, scheme + "://" + r.Host + path
}

// forwardedValue returns the value of a forwarding header sent once with a
// single, non-empty element; a list (one entry per proxy) is ambiguous and
// ignored.
func forwardedValue(hdr http.Header, name string) (string, bool) {
	vals := hdr[name]
	if len(vals) != 1 {
		return "", false
	}
	v := strings.TrimSpace(vals[0])
	if v == "" || strings.Contains(v, ",") {
		return "", false
	}
	return strings.ToLower(v), true
}

// errProofReplayed is the failed jti check of a proof the shared store
// had already recorded.
var errProofReplayed = &identity.DPoPProofError{Check: identity.DPoPCheckJTI, Reason: "jti was already used"}

// admitShared checks a proof's jti against the shared store, where it
// stays until the proof is too old to be accepted anywhere. While the
// store is unreachable, fail_closed refuses the request (reason) and
// fail_open_local uses the local cache; with fail_open_local the local
// cache records every proof too, so that one accepted before an outage
// is not accepted again here during it.
func (st *dpopStage) admitShared(ctx context.Context, p *identity.DPoPProof, now time.Time) (reason, error) {
	ttl := p.IssuedAt.Add(st.maxAge).Sub(now)
	fresh, err := st.store.admitProof(ctx, identity.DPoPReplayKey(p), ttl)
	if err != nil && !st.store.failOpen {
		return reasonStoreUnavailable, err
	}
	if st.store.failOpen {
		local := st.replay.Admit(p, ttl)
		fresh = local && (fresh || err != nil)
	}
	if !fresh {
		return reasonNone, errProofReplayed
	}
	return reasonNone, nil
}
