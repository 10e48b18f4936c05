package caddyidentity

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-identity/caddy-identity/identity"
)

// rejection is a refused request as the code that refused it describes
// it: a value every stage returns, so that every stage decides and only
// refuse answers. Stages return nil when they let the request on: an
// accepted request carries no rejection from stage to stage, only a
// refused one pays for making it.
type rejection struct {
	reason reason
	// dpop is set when the client used the DPoP scheme: the challenge is
	// in that scheme (RFC 9449 §7.1).
	dpop bool
	// challenge, when set, replaces the reason's precomputed challenge:
	// an issuer policy's 403 (in the Bearer scheme: refuse puts it in the
	// DPoP scheme when dpop is set), a refused token exchange.
	challenge string
	// check is the DPoP proof check that failed, whose challenge replaces
	// the reason's (see proofRejection).
	check identity.DPoPCheck
	// policy is set when the issuer's policy refused a verified token:
	// the refusal is counted under issuer and logged as forbidden.
	policy bool
	issuer string
	// token is the refused token, logged only by its hash prefix.
	token string
	// err is what went wrong, for the log only.
	err error
}

// refuser renders rejections: it owns the challenges of every reason in
// both schemes, the logger of the rejection lines, the request metrics
// and the per-minute summary, which its cleanup stops.
type refuser struct {
	logger *zap.Logger
	meter  *meter
	// challenges holds the WWW-Authenticate value of each rejection reason
	// that has one, for requests that did not use the DPoP scheme;
	// dpopChallenges in the DPoP scheme, for requests that did (and for a
	// missing token, offered next to the Bearer one); proofChallenges
	// those of each failed DPoP proof check.
	challenges      [numReasons]string
	dpopChallenges  [numReasons]string
	proofChallenges map[identity.DPoPCheck]string
	// algs is the algs parameter of the DPoP challenges, the accepted
	// proof algorithms.
	algs string
	// dpopRequired is set with dpop require, where every challenge is in
	// the DPoP scheme.
	dpopRequired bool
	// nonce, when on, gives every response with a DPoP challenge the
	// current server nonce (dpop_nonce.go).
	nonce   nonceOffer
	summary *rejectionSummary
}

// newRefuser compiles the challenges of a handler with realm, DPoP mode
// dpop and the accepted proof algorithms algs. Provision adds the summary
// once the issuer labels of m are known, and the nonces once their
// secret is read.
func newRefuser(logger *zap.Logger, m *meter, realm string, dpop dpopMode, algs []string) refuser {
	rf := refuser{logger: logger, meter: m, dpopRequired: dpop == dpopRequire}
	rf.compileChallenges(realm, dpop, algs)
	return rf
}

// cleanup stops the summary.
func (rf *refuser) cleanup() {
	if rf.summary != nil {
		rf.summary.stop()
		rf.summary = nil
	}
}

// refuse renders a rejection, the only place that does: the
// WWW-Authenticate challenge(s), the log line, the metrics and summary,
// the {http.auth.identity.error} placeholder and access log field, and
// the status, as the error Caddy turns into the response so that
// handle_errors can customise it.
//
// The one exception is a 5xx (the provider is unavailable) on a server
// without handle_errors routes: Caddy would log that error at ERROR for
// every request, while the outage is already logged once per state change,
// so the handler answers it itself. With handle_errors routes the error is
// returned as usual (and Caddy logs it at DEBUG).
func (rf *refuser) refuse(w http.ResponseWriter, r *http.Request, rej *rejection) error {
	rsn := rej.reason
	c := rej.challenge
	if c == "" && rej.check != "" {
		c = rf.proofChallenges[rej.check]
	}
	switch {
	case c == "" && rej.dpop:
		c = rf.dpopChallenges[rsn]
	case c == "":
		c = rf.challenges[rsn]
	case rej.dpop && rej.policy:
		c = identity.TokenTypeDPoP + strings.TrimPrefix(c, "Bearer") + rf.algs
	}
	if c != "" {
		w.Header()[headerWWWAuthenticate] = []string{c}
	}
	if rej.dpop || rsn == reasonDPoPBoundAsBearer || rf.dpopRequired {
		// A DPoP challenge: with server nonces, the nonce to use next.
		rf.nonce.offer(w.Header())
	}
	if rsn == reasonDPoPBoundAsBearer {
		// A DPoP-bound token sent as a bearer token: point the client to
		// the scheme it must use, on a field line of its own (RFC 9110
		// §11.6.1) after the Bearer one. A request without a token gets
		// the plain Bearer challenge of RFC 6750 §3 only, which is what
		// bearer clients and tests expect; DPoP clients learn that DPoP
		// is accepted from their authorization server's metadata.
		w.Header()[headerWWWAuthenticate] = append(w.Header()[headerWWWAuthenticate], rf.dpopChallenges[reasonMissing])
	}
	issuer := ""
	if rej.policy {
		issuer = rej.issuer
	}
	rf.logRejection(r, rej)
	idx := rf.meter.issuerIndex(issuer)
	rf.meter.requestCounters(r).rejected[idx][rsn].Inc()
	rf.summary.add(idx, rsn)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.identity.error", labelValues[rsn])
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.String(accessLogField, reasons[rsn].label))
	}
	if status := reasons[rsn].status; status >= 500 && !hasErrorRoutes(r) {
		w.WriteHeader(status)
		return nil
	}
	return caddyhttp.Error(reasons[rsn].status, reasons[rsn].err)
}

// logRejection writes the DEBUG line of a rejection: "request rejected"
// with the error for a token or request that failed a check, "request
// forbidden" with the issuer for a token its issuer's policy refused
// (none when no token was refused: a browser session). The token appears
// only as its hash prefix.
func (rf *refuser) logRejection(r *http.Request, rej *rejection) {
	if rej.policy {
		if rej.token == "" {
			return
		}
		if ce := rf.logger.Check(zapcore.DebugLevel, "request forbidden"); ce != nil {
			ce.Write(zap.String("reason", reasons[rej.reason].label), zap.String("issuer", rej.issuer),
				zap.String("host", r.Host), zap.String("uri", logURI(r)),
				zap.String("token_sha256_prefix", tokenHashPrefix(rej.token)))
		}
		return
	}
	if ce := rf.logger.Check(zapcore.DebugLevel, "request rejected"); ce != nil {
		fields := []zap.Field{zap.String("reason", reasons[rej.reason].label), zap.String("host", r.Host), zap.String("uri", logURI(r))}
		if rej.token != "" {
			fields = append(fields, zap.String("token_sha256_prefix", tokenHashPrefix(rej.token)))
		}
		if rej.err != nil {
			fields = append(fields, zap.Error(rej.err))
		}
		ce.Write(fields...)
	}
}

// proofRejection refuses a request whose DPoP proof failed a check, with
// an invalid_dpop_proof challenge naming the check (the reason's own
// when the check has no description), or use_dpop_nonce when only the
// server nonce was missing or stale (refuse sends the current one). Only
// the check is logged: the proof's contents, like the token, stay out of
// the logs.
func proofRejection(err error, token string) *rejection {
	check := identity.DPoPCheck("unknown")
	rej := &rejection{reason: reasonDPoPProof, dpop: true, token: token}
	var pe *identity.DPoPProofError
	if errors.As(err, &pe) {
		check = pe.Check
		rej.check = pe.Check
	}
	if check == identity.DPoPCheckNonce {
		rej.reason, rej.check = reasonDPoPNonce, ""
	}
	rej.err = fmt.Errorf("%w: check %s", identity.ErrDPoPProof, check)
	return rej
}

// denial is the rejection of a token that e's issuer policy refused
// (e.denied), with the policy's challenge; refuse puts it in the DPoP
// scheme when the client used that one.
func denial(e *cacheEntry, token string, dpop bool) *rejection {
	return &rejection{reason: e.denied, challenge: e.challenge, dpop: dpop, policy: true, issuer: e.issuer, token: token}
}

// hasErrorRoutes reports whether the request's server has handle_errors
// routes that may want to customise an error response.
func hasErrorRoutes(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return !ok || srv == nil || (srv.Errors != nil && len(srv.Errors.Routes) > 0)
}

// tokenHashPrefix identifies a token in logs without revealing it: the
// first 8 hex digits of its SHA-256.
func tokenHashPrefix(token string) string {
	sum := hashToken(token)
	return hex.EncodeToString(sum[:4])
}

// reason is why a request was refused.
type reason uint8

// Rejection reasons; reasonNone means accepted.
const (
	reasonNone reason = iota
	reasonMissing
	reasonInvalidRequest
	reasonTooLarge
	reasonMalformed
	reasonAlgorithm
	reasonUnknownKey
	reasonSignature
	reasonIssuer
	reasonAudience
	reasonExpired
	reasonNotYetValid
	reasonIssuedAt
	reasonType
	reasonClaims
	reasonInvalid
	reasonInsufficientScope
	reasonClaimMismatch
	reasonProviderUnavailable
	reasonDPoPProof
	reasonDPoPNonce
	reasonDPoPBoundAsBearer
	reasonDPoPUnbound
	reasonDPoPRequired
	reasonCertBinding
	reasonInactive
	reasonUpstreamToken
	reasonExchangeRefused
	reasonUserInfo
	reasonUserInfoBound
	reasonTooEarly
	reasonStoreUnavailable
	numReasons
)

// reasonInfo describes a rejection reason: its label (metrics, logs and the
// {http.auth.identity.error} placeholder), HTTP status, RFC 6750 error code
// and safe description, and the error handed to Caddy.
type reasonInfo struct {
	label       string
	status      int
	code        string
	description string
	err         error
}

// reasons is indexed by reason.
var reasons = [numReasons]reasonInfo{
	reasonNone:              {label: "none"},
	reasonMissing:           {"missing", http.StatusUnauthorized, "", "", errors.New("identity: no bearer token")},
	reasonInvalidRequest:    {"invalid_request", http.StatusBadRequest, "invalid_request", "The request must carry exactly one access token", errors.New("identity: ambiguous or empty token")},
	reasonTooLarge:          {"too_large", http.StatusUnauthorized, "invalid_token", "The access token is too large", errors.New("identity: token too large")},
	reasonMalformed:         {"malformed", http.StatusUnauthorized, "invalid_token", "The access token is malformed", errors.New("identity: malformed token")},
	reasonAlgorithm:         {"algorithm", http.StatusUnauthorized, "invalid_token", "The access token signature algorithm is not accepted", errors.New("identity: algorithm not accepted")},
	reasonUnknownKey:        {"unknown_key", http.StatusUnauthorized, "invalid_token", "The access token was signed by an unknown key", errors.New("identity: unknown signing key")},
	reasonSignature:         {"signature", http.StatusUnauthorized, "invalid_token", "The access token signature is invalid", errors.New("identity: invalid signature")},
	reasonIssuer:            {"issuer", http.StatusUnauthorized, "invalid_token", "The access token issuer is not accepted", errors.New("identity: issuer not accepted")},
	reasonAudience:          {"audience", http.StatusUnauthorized, "invalid_token", "The access token audience is not accepted", errors.New("identity: audience not accepted")},
	reasonExpired:           {"expired", http.StatusUnauthorized, "invalid_token", "The access token expired", errors.New("identity: token expired")},
	reasonNotYetValid:       {"not_yet_valid", http.StatusUnauthorized, "invalid_token", "The access token is not valid yet", errors.New("identity: token not valid yet")},
	reasonIssuedAt:          {"issued_at", http.StatusUnauthorized, "invalid_token", "The access token issue time is invalid", errors.New("identity: invalid issue time")},
	reasonType:              {"type", http.StatusUnauthorized, "invalid_token", "The access token type is not accepted", errors.New("identity: token type not accepted")},
	reasonClaims:            {"claims", http.StatusUnauthorized, "invalid_token", "The access token claims are invalid", errors.New("identity: invalid claims")},
	reasonInvalid:           {"invalid", http.StatusUnauthorized, "invalid_token", "The access token is invalid", errors.New("identity: invalid token")},
	reasonInsufficientScope: {"insufficient_scope", http.StatusForbidden, "insufficient_scope", "The access token lacks a required scope", errors.New("identity: insufficient scope")},
	reasonClaimMismatch:     {"forbidden_claims", http.StatusForbidden, "insufficient_scope", "The access token does not satisfy the access policy", errors.New("identity: claim requirements not met")},
	reasonProviderUnavailable: {"provider_unavailable", http.StatusServiceUnavailable, "", "",
		errors.New("identity: identity provider unavailable, no keys to verify tokens")},
	// The description of a failed proof names the check (see
	// dpopCheckDescriptions); this one is the fallback.
	reasonDPoPProof: {"dpop_proof", http.StatusUnauthorized, identity.ErrorInvalidDPoPProof, "The DPoP proof is invalid", errors.New("identity: invalid DPoP proof")},
	// A proof without the server's current (or previous) nonce: the
	// client retries with the DPoP-Nonce sent along (RFC 9449 §9).
	reasonDPoPNonce:         {"dpop_nonce", http.StatusUnauthorized, identity.ErrorUseDPoPNonce, "The DPoP proof must carry the nonce of the DPoP-Nonce header", errors.New("identity: DPoP proof without a valid server nonce")},
	reasonDPoPBoundAsBearer: {"dpop_bound_as_bearer", http.StatusUnauthorized, "invalid_token", "The access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof", errors.New("identity: DPoP-bound token used as a bearer token")},
	reasonDPoPUnbound:       {"dpop_unbound", http.StatusUnauthorized, "invalid_token", "The access token is not bound to a DPoP key", errors.New("identity: DPoP scheme with a token that has no cnf.jkt")},
	// RFC 6750 §3.1: a request using an unsupported authentication method
	// gets no error code, just the challenge of the accepted scheme.
	reasonDPoPRequired: {"dpop_required", http.StatusUnauthorized, "", "", errors.New("identity: bearer token where DPoP is required")},
	reasonCertBinding:  {"cert_binding", http.StatusUnauthorized, "invalid_token", "The access token is bound to a client certificate that was not presented", errors.New("identity: certificate-bound token without its client certificate")},
	// An opaque token its issuer's introspection endpoint calls inactive
	// (revoked, expired, unknown: RFC 7662 §2.2 does not say which).
	reasonInactive: {"inactive", http.StatusUnauthorized, "invalid_token", "The access token is not active", errors.New("identity: introspection: token not active")},
	// No token for the upstream (upstream_token): the provider cannot
	// issue one, which is no fault of the client.
	reasonUpstreamToken: {"upstream_token", http.StatusServiceUnavailable, "", "", errors.New("identity: upstream token unavailable")},
	// The userinfo endpoint could not complete the claims (on_error refuse).
	reasonUserInfo: {"userinfo", http.StatusServiceUnavailable, "", "", errors.New("identity: userinfo unavailable")},
	// A sender-constrained token whose claims userinfo would complete
	// (on_error refuse): the handler cannot present its binding to the
	// endpoint. The endpoint is not unavailable, and the client did
	// nothing wrong, so no challenge.
	reasonUserInfoBound: {"userinfo_not_for_bound_tokens", http.StatusServiceUnavailable, "", "", errors.New("identity: userinfo not asked for a sender-constrained token")},
	// The issuer refused to exchange the caller's token for the upstream.
	reasonExchangeRefused: {"exchange_refused", http.StatusForbidden, "insufficient_scope", "The access token cannot be exchanged for the upstream", errors.New("identity: token exchange refused")},
	// A token in TLS early data with an unsafe method (see inEarlyData):
	// not an authentication failure, so no challenge.
	reasonTooEarly: {"too_early", http.StatusTooEarly, "", "", errors.New("identity: credentials in TLS early data with an unsafe method")},
	// A request that needs the shared store (a DPoP proof's jti) while it
	// is unreachable, with failure fail_closed: not the client's fault, so
	// no challenge.
	reasonStoreUnavailable: {"store_unavailable", http.StatusServiceUnavailable, "", "", errors.New("identity: shared store unreachable")},
}

// headerWWWAuthenticate is the canonical form of WWW-Authenticate, which
// Header.Set would compute (and allocate) on every refusal.
const headerWWWAuthenticate = "Www-Authenticate"

// labelValues are the reasons' labels as placeholder values, converted to
// interfaces once rather than on every refusal.
var labelValues = func() (v [numReasons]any) {
	for i := range reasons {
		v[i] = reasons[i].label
	}
	return v
}()

// classify maps a validation error to a rejection reason.
func classify(err error) reason {
	switch ce, isClaim := errors.AsType[*identity.ClaimError](err); {
	case errors.Is(err, identity.ErrProviderUnavailable):
		return reasonProviderUnavailable
	case errors.Is(err, identity.ErrTokenTooLarge):
		return reasonTooLarge
	case errors.Is(err, identity.ErrAlgNone), errors.Is(err, identity.ErrUnsupportedAlg):
		return reasonAlgorithm
	case errors.Is(err, identity.ErrKeyNotFound):
		return reasonUnknownKey
	case errors.Is(err, identity.ErrSignature), errors.Is(err, identity.ErrKeyConversion):
		return reasonSignature
	case errors.Is(err, identity.ErrUnknownIssuer):
		return reasonIssuer
	case isClaim:
		if ce.Claim == identity.ClaimTenantID {
			// The tenant of an issuer template: part of which issuers are
			// accepted, whatever is wrong with it.
			return reasonIssuer
		}
		if ce.Reason == "missing" || ce.Reason == "malformed" {
			if ce.Claim == "aud" {
				return reasonAudience
			}
			return reasonClaims
		}
		switch ce.Claim {
		case "exp":
			return reasonExpired
		case "nbf":
			return reasonNotYetValid
		case "iat":
			return reasonIssuedAt
		case "iss":
			return reasonIssuer
		case "aud":
			return reasonAudience
		case "typ":
			return reasonType
		}
		return reasonClaims
	case errors.Is(err, identity.ErrClaimValidation):
		return reasonClaims
	case errors.Is(err, identity.ErrMalformed), errors.Is(err, identity.ErrUnsupportedHeader):
		return reasonMalformed
	}
	return reasonInvalid
}

// compileChallenges precomputes the WWW-Authenticate value of every
// rejection reason that has one (RFC 6750 §3) in the Bearer scheme, and
// in the DPoP scheme with the accepted proof algorithms (RFC 9449 §7.1),
// as well as that of every failed proof check. With DPoP required,
// Bearer is never offered.
func (rf *refuser) compileChallenges(realm string, mode dpopMode, algorithms []string) {
	bearer := `Bearer realm="` + realm + `"`
	dpop := identity.TokenTypeDPoP + ` realm="` + realm + `"`
	algs := `, algs="` + strings.Join(algorithms, " ") + `"`
	rf.algs = algs
	for i := range reasons {
		if part, ok := challengeError(reason(i)); ok {
			rf.challenges[i] = bearer + part
			rf.dpopChallenges[i] = dpop + part + algs
		}
	}
	rf.proofChallenges = make(map[identity.DPoPCheck]string, len(dpopCheckDescriptions))
	for check, desc := range dpopCheckDescriptions {
		rf.proofChallenges[check] = dpop + `, error="` + identity.ErrorInvalidDPoPProof + `", error_description="` + desc + `"` + algs
	}
	if mode == dpopRequire {
		rf.challenges = rf.dpopChallenges
	}
}

// challengeError returns the error part of the challenge of a rejection
// reason (empty for a missing token or an unsupported scheme), and false
// when the reason has no challenge.
func challengeError(rsn reason) (string, bool) {
	ri := &reasons[rsn]
	switch {
	case rsn == reasonMissing || rsn == reasonDPoPRequired:
		return "", true
	case ri.code == "invalid_token" || ri.code == "invalid_request" || ri.code == identity.ErrorInvalidDPoPProof || ri.code == identity.ErrorUseDPoPNonce:
		return `, error="` + ri.code + `", error_description="` + ri.description + `"`, true
	}
	return "", false
}
