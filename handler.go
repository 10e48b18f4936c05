package caddyidentity

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-identity/caddy-identity/identity"
)

// ServeHTTP authenticates the request. Identity headers sent by the client
// are removed first, whatever the outcome.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rt := h.rt
	rt.stripIdentityHeaders(r)

	token, src, rsn := rt.extractToken(r)
	if rt.login != nil {
		if done, err := rt.login.serve(w, r, next, src != nil || rsn != reasonNone); done {
			return err
		}
	}
	if rsn != reasonNone {
		return rt.reject(w, r, rsn, nil, "")
	}
	if src == nil {
		if at, ok := caddyhttp.GetVar(r.Context(), stackedVar).(*stackedToken); ok {
			return rt.serveStacked(w, r, next, at)
		}
		if rt.dpop == dpopRequire && hasBearer(r.Header) {
			return rt.reject(w, r, reasonDPoPRequired, nil, "")
		}
		if rt.optional {
			rt.requestCounters(r).anonymous.Inc()
			return next.ServeHTTP(w, r)
		}
		return rt.reject(w, r, reasonMissing, nil, "")
	}
	if inEarlyData(r) {
		return rt.reject(w, r, reasonTooEarly, nil, "")
	}
	if src.dpop {
		return rt.serveDPoP(w, r, next, token)
	}
	if len(token) > rt.maxTokenSize {
		return rt.reject(w, r, reasonTooLarge, nil, "")
	}

	e, rsn, err := rt.verify(r.Context(), token)
	if rsn != reasonNone {
		return rt.reject(w, r, rsn, err, token)
	}
	if e.dpopBound {
		return rt.reject(w, r, reasonDPoPBoundAsBearer, nil, token)
	}
	if e.certThumbprint != "" && !certPresented(r, e.certThumbprint) {
		return rt.reject(w, r, reasonCertBinding, nil, token)
	}
	if e.denied != reasonNone {
		w.Header().Set("WWW-Authenticate", e.challenge)
		return rt.fail(w, r, e.denied, e.issuer, token)
	}
	up, rsn, err := rt.upstreamToken(r.Context(), e, token)
	if rsn != reasonNone {
		return rt.refuseUpstream(w, r, rsn, err, token)
	}
	rt.pass(r, e, src, token)
	up.set(r)
	return next.ServeHTTP(w, r)
}

// inEarlyData reports whether r carries a token in TLS 1.3 early data
// (0-RTT, which Caddy accepts over HTTP/3) with a method that is not safe
// (RFC 9110 §9.2.1). Early data can be replayed by anyone on the path,
// token and all, without reading it; a replayed GET does no harm, a
// replayed POST, PUT, PATCH or DELETE may (a replayed PUT can undo a
// later one). Such a request gets 425 Too Early (RFC 8470 §5.2): the
// client sends it again once the handshake is complete.
func inEarlyData(r *http.Request) bool {
	if r.TLS == nil || r.TLS.HandshakeComplete {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// pass sets the identity headers and placeholders of an accepted request
// and removes the token unless it is to be forwarded, keeping it for an
// identity handler further down the route (see serveStacked). src is nil
// for a token such a handler accepted already.
func (rt *runtime) pass(r *http.Request, e *cacheEntry, src *tokenSource, token string) {
	rt.setIdentity(r, e)
	if !rt.forwardToken && src != nil {
		src.remove(r)
		if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
			at := &stackedToken{token: token}
			if src.dpop {
				at.dpopJKT = e.dpopJKT
			}
			vars[stackedVar] = at
		}
	}
	if c := rt.requestCounters(r).accepted[e.issuer]; c != nil {
		c.Inc()
	}
}

// setIdentity sets the identity headers and placeholders of an entry.
func (rt *runtime) setIdentity(r *http.Request, e *cacheEntry) {
	if n := len(e.headers); n > 0 {
		vals := make([]string, n) // one fresh backing array: later handlers may edit values in place
		for i := range e.headers {
			vals[i] = e.headers[i].value
			r.Header[e.headers[i].name] = vals[i : i+1 : i+1]
		}
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(e.repl)
	}
}

// authenticate returns the cache entry of a verified token, verifying it on
// a cache miss, or the rejection reason and the validator's error.
func (rt *runtime) authenticate(ctx context.Context, token string) (*cacheEntry, reason, error) {
	if rt.cache != nil {
		if e, ok := rt.cache.get(token); ok {
			rt.counters.cacheHits.Inc()
			return e, reasonNone, nil
		}
		rt.counters.cacheMisses.Inc()
	}
	t, err := rt.validator.Validate(ctx, token)
	if err != nil {
		return nil, classify(err), err
	}
	until, merged, rsn, err := rt.enrich(ctx, t, token)
	if rsn != reasonNone {
		return nil, rsn, err
	}
	e, err := rt.newEntry(t, token)
	if err != nil {
		return nil, classify(err), err
	}
	if merged {
		e.decoded.Store(t.Claims) // the placeholders see the merged claims
	}
	if !until.IsZero() && until.Before(e.expires) {
		e.expires = until
	}
	if rt.cache != nil && !e.expires.IsZero() {
		rt.cache.put(token, e)
	}
	return e, reasonNone, nil
}

// stripIdentityHeaders deletes every header whose normalized name (lower
// case, '_' as '-') is that of a configured identity header, in the
// header and in the trailer, and takes those names and the token header's
// out of Connection.
func (rt *runtime) stripIdentityHeaders(r *http.Request) {
	for name := range r.Header {
		if rt.isStripName(name) {
			delete(r.Header, name)
		}
	}
	if r.Trailer != nil {
		// Declared trailers (the only ones reverse_proxy passes on) get
		// their values when the body has been read, long after this
		// handler: they are removed then, before a reader sees the end.
		rt.stripTrailer(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, rt: rt}
	}
	if vals := r.Header["Connection"]; len(vals) > 0 {
		rt.cleanConnection(r.Header, vals)
	}
}

// stripTrailer deletes the trailers named like an identity header.
func (rt *runtime) stripTrailer(trailer http.Header) {
	for name := range trailer {
		if rt.isStripName(name) {
			delete(trailer, name)
		}
	}
}

// trailerStripper strips the request's trailers when its body reaches
// the end, which is when net/http fills them in.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
	rt      *runtime
}

// Read reads the body and, at its end, strips the trailers.
func (b *trailerStripper) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.rt.stripTrailer(b.trailer)
	}
	return n, err
}

// isStripName reports whether name is, normalized, an identity header's.
func (rt *runtime) isStripName(name string) bool {
	for _, n := range rt.stripNames {
		if headerNameMatches(name, n) {
			return true
		}
	}
	return false
}

// cleanConnection removes from the Connection header the options that name
// an identity header or a header the token came in: reverse_proxy deletes
// the headers Connection names (RFC 9110 §7.6.1) after this handler set
// them, so the client would choose which identity headers the upstream
// does not get. Other options (keep-alive, close, ...) stay.
func (rt *runtime) cleanConnection(hdr http.Header, vals []string) {
	var kept []string
	changed := false
	for _, v := range vals {
		for opt := range strings.SplitSeq(v, ",") {
			opt = strings.Trim(opt, " \t")
			if opt == "" {
				continue
			}
			if rt.isStripName(opt) || rt.isTokenHeader(opt) {
				changed = true
				continue
			}
			kept = append(kept, opt)
		}
	}
	switch {
	case !changed:
	case len(kept) == 0:
		delete(hdr, "Connection")
	default:
		hdr["Connection"] = []string{strings.Join(kept, ", ")}
	}
}

// isTokenHeader reports whether name is, normalized, that of a header a
// token or DPoP proof is taken from.
func (rt *runtime) isTokenHeader(name string) bool {
	if rt.dpop != dpopOff && headerNameMatches(name, "dpop") {
		return true
	}
	for i := range rt.sources {
		if s := &rt.sources[i]; s.kind == fromHeader && headerNameMatches(name, normalizeHeaderName(s.name)) {
			return true
		}
	}
	return false
}

// headerNameMatches reports whether name normalizes to norm, which is
// already normalized.
func headerNameMatches(name, norm string) bool {
	if len(name) != len(norm) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != norm[i] {
			return false
		}
	}
	return true
}

// extractToken finds the token in the configured places. It returns the
// source it came from (nil when there is none), or reasonInvalidRequest
// when the request is ambiguous: a token in two places, a repeated header,
// cookie or parameter, or a scheme without a token.
func (rt *runtime) extractToken(r *http.Request) (string, *tokenSource, reason) {
	var (
		token string
		found *tokenSource
	)
	for i := range rt.sources {
		s := &rt.sources[i]
		var (
			t  string
			ok bool
		)
		switch s.kind {
		case fromHeader:
			vals := r.Header[s.name]
			if len(vals) == 0 {
				continue
			}
			if len(vals) > 1 {
				return "", nil, reasonInvalidRequest
			}
			t, ok = cutScheme(vals[0], s.scheme)
			if !ok && s.dpopAlt {
				if t, ok = cutScheme(vals[0], identity.TokenTypeDPoP); ok {
					s = &rt.dpopSource
				}
			}
			if ok && t == "" {
				return "", nil, reasonInvalidRequest
			}
		case fromCookie:
			if len(r.Header["Cookie"]) == 0 {
				continue
			}
			cs := r.CookiesNamed(s.name)
			if len(cs) > 1 {
				return "", nil, reasonInvalidRequest
			}
			if len(cs) == 1 {
				t = cs[0].Value
				ok = t != ""
			}
		case fromQuery:
			if r.URL.RawQuery == "" {
				continue
			}
			vals := r.URL.Query()[s.name]
			if len(vals) > 1 {
				return "", nil, reasonInvalidRequest
			}
			if len(vals) == 1 {
				t = vals[0]
				ok = t != ""
			}
		}
		if !ok {
			continue
		}
		if found != nil {
			return "", nil, reasonInvalidRequest
		}
		token, found = t, s
	}
	return token, found, reasonNone
}

// warnLoggedTokenSources warns when tokens come from a place the access
// log of the handler's server records in full: a header other than
// Authorization (Caddy redacts only Authorization, Proxy-Authorization,
// Cookie and Set-Cookie), the query string, or any place with
// log_credentials. The handler cannot see the log's filters, so the
// warning names the filter that keeps the token out (see SECURITY.md).
func (rt *runtime) warnLoggedTokenSources(ctx caddy.Context) {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil {
		return
	}
	for _, s := range rt.sources {
		var filter string
		switch {
		case s.kind == fromQuery:
			filter = "format filter { request>uri query { delete " + s.name + " } }"
		case s.kind == fromHeader && (srv.Logs.ShouldLogCredentials || (s.name != "Authorization" && s.name != "Proxy-Authorization")):
			filter = "format filter { request>headers>" + s.name + " delete }"
		case s.kind == fromCookie && srv.Logs.ShouldLogCredentials:
			filter = "format filter { request>headers>Cookie cookie { delete " + s.name + " } }"
		default:
			continue
		}
		rt.logger.Warn("this server's access log records the tokens of this source in full, unless a log filter removes them",
			zap.String("token_from", s.name), zap.String("log_filter", filter))
	}
}

// cutScheme returns the token after the scheme in a header value. ok is
// false when the value is not of this scheme (another scheme, or empty).
// With no scheme configured the whole trimmed value is the token.
func cutScheme(v, scheme string) (token string, ok bool) {
	if scheme == "" {
		v = strings.Trim(v, " \t")
		return v, v != ""
	}
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", true
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", false // e.g. "Bearerfoo": not this scheme
	}
	return strings.Trim(rest, " \t"), true
}

// remove deletes the token from the request so that the upstream never
// sees it: the header, the one cookie, or the one query parameter.
func (s *tokenSource) remove(r *http.Request) {
	switch s.kind {
	case fromHeader:
		delete(r.Header, s.name)
	case fromCookie:
		removeCookie(r.Header, s.name)
	case fromQuery:
		r.URL.RawQuery = removeQueryParam(r.URL.RawQuery, s.name)
		r.RequestURI = r.URL.RequestURI()
	}
}

// removeCookie rewrites the Cookie header without the cookie called name.
func removeCookie(hdr http.Header, name string) {
	removeCookies(hdr, func(n string) bool { return n == name })
}

// removeCookies rewrites the Cookie header without the cookies whose name
// drop reports.
func removeCookies(hdr http.Header, drop func(name string) bool) {
	var kept []string
	for _, line := range hdr["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			n, _, _ := strings.Cut(p, "=")
			if drop(strings.TrimSpace(n)) {
				continue
			}
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		delete(hdr, "Cookie")
		return
	}
	hdr["Cookie"] = []string{strings.Join(kept, "; ")}
}

// removeQueryParam returns the raw query without the parameter called name,
// keeping the other parameters and their order untouched.
func removeQueryParam(raw, name string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}

// reject answers a request that carries no acceptable token: it sets the
// challenge and returns the handler error.
func (rt *runtime) reject(w http.ResponseWriter, r *http.Request, rsn reason, err error, token string) error {
	if c := rt.challenges[rsn]; c != "" {
		w.Header().Set("WWW-Authenticate", c)
	}
	if rsn == reasonDPoPBoundAsBearer {
		// A DPoP-bound token sent as a bearer token: point the client to
		// the scheme it must use, on a field line of its own (RFC 9110
		// §11.6.1) after the Bearer one. A request without a token gets
		// the plain Bearer challenge of RFC 6750 §3 only, which is what
		// bearer clients and tests expect; DPoP clients learn that DPoP
		// is accepted from their authorization server's metadata.
		w.Header().Add("WWW-Authenticate", rt.dpopChallenges[reasonMissing])
	}
	return rt.rejectWith(w, r, rsn, err, token)
}

// rejectWith logs and fails a rejection whose challenges are already set.
func (rt *runtime) rejectWith(w http.ResponseWriter, r *http.Request, rsn reason, err error, token string) error {
	if ce := rt.logger.Check(zapcore.DebugLevel, "request rejected"); ce != nil {
		fields := []zap.Field{zap.String("reason", reasons[rsn].label), zap.String("host", r.Host), zap.String("uri", logURI(r))}
		if token != "" {
			fields = append(fields, zap.String("token_sha256_prefix", tokenHashPrefix(token)))
		}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		ce.Write(fields...)
	}
	return rt.fail(w, r, rsn, "", "")
}

// fail records a rejection (metric, placeholder) and returns the error
// Caddy turns into the response, so that handle_errors can customise it.
//
// The one exception is a 5xx (the provider is unavailable) on a server
// without handle_errors routes: Caddy would log that error at ERROR for
// every request, while the outage is already logged once per state change,
// so the handler answers it itself. With handle_errors routes the error is
// returned as usual (and Caddy logs it at DEBUG).
func (rt *runtime) fail(w http.ResponseWriter, r *http.Request, rsn reason, issuer, token string) error {
	idx := rt.issuerIndex(issuer)
	rt.requestCounters(r).rejected[idx][rsn].Inc()
	rt.summary.add(idx, rsn)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.identity.error", reasons[rsn].label)
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.String(accessLogField, reasons[rsn].label))
	}
	if token != "" {
		if ce := rt.logger.Check(zapcore.DebugLevel, "request forbidden"); ce != nil {
			ce.Write(zap.String("reason", reasons[rsn].label), zap.String("issuer", issuer),
				zap.String("host", r.Host), zap.String("uri", logURI(r)),
				zap.String("token_sha256_prefix", tokenHashPrefix(token)))
		}
	}
	if status := reasons[rsn].status; status >= 500 && !hasErrorRoutes(r) {
		w.WriteHeader(status)
		return nil
	}
	return caddyhttp.Error(reasons[rsn].status, reasons[rsn].err)
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
	reasonDPoPBoundAsBearer
	reasonDPoPUnbound
	reasonDPoPRequired
	reasonCertBinding
	reasonInactive
	reasonUpstreamToken
	reasonExchangeRefused
	reasonUserInfo
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
	reasonDPoPProof:         {"dpop_proof", http.StatusUnauthorized, identity.ErrorInvalidDPoPProof, "The DPoP proof is invalid", errors.New("identity: invalid DPoP proof")},
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

// classify maps a validation error to a rejection reason.
func classify(err error) reason {
	var ce *identity.ClaimError
	switch {
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
	case errors.As(err, &ce):
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
// rejection reason that has one (RFC 6750 §3), in the Bearer scheme and,
// unless DPoP is off, in the DPoP scheme with the accepted proof
// algorithms (RFC 9449 §7.1). With DPoP required, Bearer is never
// offered.
func (rt *runtime) compileChallenges() {
	bearer := `Bearer realm="` + rt.realm + `"`
	dpop := identity.TokenTypeDPoP + ` realm="` + rt.realm + `"`
	algs := `, algs="` + strings.Join(dpopAlgorithms, " ") + `"`
	for i := range reasons {
		ri := &reasons[i]
		switch {
		case reason(i) == reasonMissing || reason(i) == reasonDPoPRequired:
			rt.challenges[i] = bearer
			rt.dpopChallenges[i] = dpop + algs
		case ri.code == "invalid_token" || ri.code == "invalid_request" || ri.code == identity.ErrorInvalidDPoPProof:
			errPart := `, error="` + ri.code + `", error_description="` + ri.description + `"`
			rt.challenges[i] = bearer + errPart
			rt.dpopChallenges[i] = dpop + errPart + algs
		}
	}
	rt.proofChallenges = make(map[identity.DPoPCheck]string, len(dpopCheckDescriptions))
	for check, desc := range dpopCheckDescriptions {
		rt.proofChallenges[check] = dpop + `, error="` + identity.ErrorInvalidDPoPProof + `", error_description="` + desc + `"` + algs
	}
	if rt.dpop == dpopRequire {
		rt.challenges = rt.dpopChallenges
	}
}
