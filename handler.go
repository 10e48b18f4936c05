package caddyidentity

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity"
)

// ServeHTTP authenticates the request. Identity headers sent by the client
// are removed first, whatever the outcome. Every refusal is a rejection
// value, answered by refuse (rejection.go).
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
		return rt.refuse(w, r, rejection{reason: rsn})
	}
	if src == nil {
		if at, ok := caddyhttp.GetVar(r.Context(), stackedVar).(*stackedToken); ok {
			return rt.serveStacked(w, r, next, at)
		}
		if rt.dpop.mode == dpopRequire && hasBearer(r.Header) {
			return rt.refuse(w, r, rejection{reason: reasonDPoPRequired})
		}
		if rt.optional {
			rt.requestCounters(r).anonymous.Inc()
			return next.ServeHTTP(w, r)
		}
		return rt.refuse(w, r, rejection{reason: reasonMissing})
	}
	if inEarlyData(r) {
		return rt.refuse(w, r, rejection{reason: reasonTooEarly})
	}

	var (
		e   *cacheEntry
		rej rejection
	)
	if src.dpop {
		e, rej = rt.authenticateDPoP(r, token)
	} else {
		e, rej = rt.authenticateBearer(r, token)
	}
	if rej.reason == reasonNone && e.denied != reasonNone {
		rej = denial(e, token, src.dpop)
	}
	if rej.reason != reasonNone {
		return rt.refuse(w, r, rej)
	}
	up, rej := rt.upstreamToken(r.Context(), e, token)
	if rej.reason != reasonNone {
		return rt.refuse(w, r, rej)
	}
	rt.pass(r, e, src, token)
	up.set(r)
	if src.dpop {
		rt.passDPoP(r, e)
	}
	return next.ServeHTTP(w, r)
}

// authenticateBearer verifies a token that came with the Bearer scheme (or
// from a cookie or query parameter) and checks its bindings: a DPoP-bound
// token cannot be used this way, a certificate-bound one needs its
// certificate.
func (rt *runtime) authenticateBearer(r *http.Request, token string) (*cacheEntry, rejection) {
	if len(token) > rt.maxTokenSize {
		return nil, rejection{reason: reasonTooLarge}
	}
	e, rsn, err := rt.verify(r.Context(), token)
	if rsn != reasonNone {
		return nil, rejection{reason: rsn, err: err, token: token}
	}
	if e.dpopBound {
		return nil, rejection{reason: reasonDPoPBoundAsBearer, token: token}
	}
	if !rt.certs.holds(r, e) {
		return nil, rejection{reason: reasonCertBinding, token: token}
	}
	return e, rejection{}
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
	if rt.cache == nil {
		return rt.validate(ctx, token)
	}
	if e, ok := rt.cache.get(token); ok {
		e.cacheHits.Inc()
		return e, reasonNone, nil
	}
	e, rsn, err := rt.validate(ctx, token)
	rt.countMiss(e)
	return e, rsn, err
}

// validate verifies a token the cache does not hold and caches its entry.
func (rt *runtime) validate(ctx context.Context, token string) (*cacheEntry, reason, error) {
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
	if rt.dpop.mode != dpopOff && headerNameMatches(name, "dpop") {
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
					s = &rt.dpop.source
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
