package caddyidentity

import (
	"context"
	"errors"
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

// dpopStage is the DPoP stage (RFC 9449): the scheme's token source, the
// proofs already accepted (the process's replay cache and, with a store,
// the shared one) and the DPoP-scheme challenges. Its replay cache is
// taken by acquire in Provision and given back by cleanup.
type dpopStage struct {
	mode dpopMode
	// source is the Authorization header source as matched with the DPoP
	// scheme: extractToken returns it for a DPoP token.
	source tokenSource
	// replay is the cache of the proofs already accepted in this process.
	replay *identity.DPoPReplayCache
	// store is the runtime's shared store, nil without one; the runtime
	// owns it (introspection and sign-in share it).
	store *sharedStore
	// challenges holds the DPoP-scheme WWW-Authenticate value of each
	// rejection reason, for requests that used the DPoP scheme (and for a
	// missing token, offered next to the Bearer one); proofChallenges
	// those of each failed proof check.
	challenges      [numReasons]string
	proofChallenges map[identity.DPoPCheck]string
	// algorithms are the accepted proof algorithms; maxAge and leeway the
	// iat window (dpop_options.go configure).
	algorithms     []string
	maxAge, leeway time.Duration
	// nonces, when set, issue and check server nonces (dpop_nonce.go).
	nonces *identity.DPoPNonces
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

// compileChallenges precomputes the DPoP-scheme challenge of every
// rejection reason that has one and of every failed proof check, with the
// accepted proof algorithms (RFC 9449 §7.1).
func (st *dpopStage) compileChallenges(realm string) {
	dpop := identity.TokenTypeDPoP + ` realm="` + realm + `"`
	algs := `, algs="` + strings.Join(st.algorithms, " ") + `"`
	for i := range reasons {
		if part, ok := challengeError(reason(i)); ok {
			st.challenges[i] = dpop + part + algs
		}
	}
	st.proofChallenges = make(map[identity.DPoPCheck]string, len(dpopCheckDescriptions))
	for check, desc := range dpopCheckDescriptions {
		st.proofChallenges[check] = dpop + `, error="` + identity.ErrorInvalidDPoPProof + `", error_description="` + desc + `"` + algs
	}
}

// policyChallenge is an issuer policy's Bearer challenge (a 403) in the
// DPoP scheme, for a client that used that one.
func (st *dpopStage) policyChallenge(bearer string) string {
	return identity.TokenTypeDPoP + strings.TrimPrefix(bearer, "Bearer") + `, algs="` + strings.Join(st.algorithms, " ") + `"`
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

// cnfJKT reads the DPoP binding of verified claims (RFC 9449 §6.1): bound
// when the cnf object has a jkt member, jkt its value when a non-empty
// string. A jkt of another type still marks the token as bound (so it is
// never accepted as a bearer token) but matches no proof key.
func cnfJKT(c *identity.Claims) (jkt string, bound bool) {
	cnf, ok := c.Raw()["cnf"].(map[string]any)
	if !ok {
		return "", false
	}
	v, bound := cnf["jkt"]
	jkt, _ = v.(string)
	return jkt, bound
}

// hasBearer reports whether the request carries one Authorization header
// of the Bearer scheme.
func hasBearer(hdr http.Header) bool {
	vals := hdr["Authorization"]
	if len(vals) != 1 {
		return false
	}
	_, ok := cutScheme(vals[0], "Bearer")
	return ok
}

// authenticateDPoP authenticates a request whose token came with the DPoP
// scheme (RFC 9449 §7.1): the token must be valid and bound to a key
// (cnf.jkt), and the request must carry exactly one DPoP proof signed by
// that key for this method, URI and token, not seen before. A token that
// is also bound to a client certificate (cnf.x5t#S256) needs that
// certificate as well: both bindings must hold. The token's validation may
// come from the cache; the proof and the certificate are checked on every
// request. Every rejection is in the DPoP scheme. With server nonces the
// proof must carry a valid one, and a client whose nonce is about to
// expire gets the current one on w.
func (rt *runtime) authenticateDPoP(w http.ResponseWriter, r *http.Request, token string) (*cacheEntry, rejection) {
	if len(token) > rt.maxTokenSize {
		return nil, rejection{reason: reasonTooLarge, dpop: true}
	}
	proof, err := identity.DPoPProofFromHeader(r.Header)
	if err != nil {
		return nil, rt.dpop.proofRejection(err, token)
	}
	e, rsn, err := rt.verify(r.Context(), token)
	if rsn != reasonNone {
		return nil, rejection{reason: rsn, dpop: true, err: err, token: token}
	}
	if e.dpopJKT == "" {
		return nil, rejection{reason: reasonDPoPUnbound, dpop: true, token: token}
	}
	if !rt.certs.holds(r, e) {
		// Checked before the proof, whose jti would otherwise be spent on
		// a request that is refused anyway.
		return nil, rejection{reason: reasonCertBinding, dpop: true, token: token}
	}
	method, uri := requestTarget(r)
	replay := rt.dpop.replay
	if rt.dpop.store != nil {
		replay = nil // checked below, once every other check passed
	}
	now := rt.now()
	p, err := identity.VerifyDPoPProof(proof, identity.DPoPVerifyOptions{
		Method:      method,
		URI:         uri,
		AccessToken: token,
		BoundJKT:    e.dpopJKT,
		Algorithms:  rt.dpop.algorithms,
		MaxAge:      rt.dpop.maxAge,
		ClockSkew:   rt.dpop.leeway,
		Nonces:      rt.dpop.nonces,
		Now:         now,
		Replay:      replay,
	})
	if err == nil && rt.dpop.store != nil {
		var rsn reason
		if rsn, err = rt.dpop.admitShared(r.Context(), p, now); rsn != reasonNone {
			return nil, rejection{reason: rsn, dpop: true, err: err, token: token}
		}
	}
	if err != nil {
		return nil, rt.dpop.proofRejection(err, token)
	}
	rt.dpop.renewNonce(w.Header(), p, now)
	return e, rejection{}
}

// passDPoP completes the hand-on of a request accepted with the DPoP
// scheme: the proof goes with the token, and the key's thumbprint is a
// placeholder.
func (rt *runtime) passDPoP(r *http.Request, e *cacheEntry) {
	if !rt.forwardToken {
		// Without the token the upstream has nothing to replay, with it
		// (forward_token) it can verify both.
		delete(r.Header, textproto.CanonicalMIMEHeaderKey(identity.HTTPHeaderDPoP))
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(placeholderDPoPJKT, e.dpopJKT)
	}
}

// proofRejection refuses a request whose DPoP proof failed a check, with
// an invalid_dpop_proof challenge naming the check, or use_dpop_nonce
// when only the server nonce was missing or stale (refuse sends the
// current one). Only the check is logged: the proof's contents, like the
// token, stay out of the logs.
func (st *dpopStage) proofRejection(err error, token string) rejection {
	c := st.challenges[reasonDPoPProof]
	check := identity.DPoPCheck("unknown")
	var pe *identity.DPoPProofError
	if errors.As(err, &pe) {
		check = pe.Check
		if pc, ok := st.proofChallenges[pe.Check]; ok {
			c = pc
		}
	}
	err = fmt.Errorf("%w: check %s", identity.ErrDPoPProof, check)
	if check == identity.DPoPCheckNonce {
		return rejection{reason: reasonDPoPNonce, dpop: true, token: token, err: err}
	}
	return rejection{reason: reasonDPoPProof, dpop: true, challenge: c, token: token, err: err}
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
