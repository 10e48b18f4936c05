package caddyidentity

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-identity/caddy-identity/identity"
)

// handOn is the last stage of an accepted request: it sets the identity
// headers and placeholders, removes the token (and DPoP proof) unless
// forward_token, keeps it for an identity handler further down the route
// (stacked.go), sets the upstream token's header and counts the request.
type handOn struct {
	forwardToken bool
	meter        *meter
}

// run hands the request accepted with credential c and entry e on, with
// the upstream token's header up (empty without upstream_token).
func (ho *handOn) run(r *http.Request, c *credential, e *cacheEntry, up upstreamHeader) {
	// A token removed from the request, or one whose header an upstream
	// token may take, is kept for the identity handlers further down the
	// route, which check it and nothing the headers hold by then.
	stack := c.src != nil && (!ho.forwardToken || up.name != "")
	var h *handed
	if stack || len(e.headers) > 0 {
		h = new(handed)
	}
	setIdentity(r, e, h.values())
	if stack {
		if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
			h.stacked.token = c.token
			if c.src.dpop {
				h.stacked.dpopJKT = e.dpopJKT
			}
			vars[stackedVar] = &h.stacked
		}
	}
	if !ho.forwardToken && c.src != nil {
		c.src.remove(r)
	}
	if cnt := ho.meter.requestCounters(r).accepted[e.label]; cnt != nil {
		cnt.Inc()
	}
	up.set(r)
	if c.dpop() {
		if !ho.forwardToken {
			// Without the token the upstream has nothing to replay, with
			// it (forward_token) it can verify both.
			delete(r.Header, headerDPoP)
		}
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set(placeholderDPoPJKT, e.dpopJKT)
		}
	}
}

// headerDPoP is the canonical name of the DPoP proof header.
var headerDPoP = textproto.CanonicalMIMEHeaderKey(identity.HTTPHeaderDPoP)

// handed is what an accepted request leaves to the handlers after this
// one, in one allocation: the token kept for a later identity handler
// (stacked.go) and room for the values of the identity headers (the
// default claim headers fit).
type handed struct {
	stacked stackedToken
	vals    [2]string
}

// values returns the room for header values, nil for no handed.
func (h *handed) values() []string {
	if h == nil {
		return nil
	}
	return h.vals[:0]
}

// anonymous counts a request that optional lets through without a token.
func (ho *handOn) anonymous(r *http.Request) {
	ho.meter.requestCounters(r).anonymous.Inc()
}

// setIdentity sets the identity headers and placeholders of an entry. The
// header values get a fresh backing array, later handlers may edit values
// in place: room's when it is large enough (see handed), else a new one.
func setIdentity(r *http.Request, e *cacheEntry, room []string) {
	if n := len(e.headers); n > 0 {
		vals := room[:0]
		if cap(vals) < n {
			vals = make([]string, 0, n)
		}
		for i := range e.headers {
			vals = append(vals, e.headers[i].value)
			r.Header[e.headers[i].name] = vals[i : i+1 : i+1]
		}
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(e.repl)
	}
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
