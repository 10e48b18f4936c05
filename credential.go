package caddyidentity

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-identity/caddy-identity/identity"
)

// credentialStage finds the credential of a request: exactly one token in
// the configured places (header with its scheme, cookie, query parameter),
// or with the DPoP scheme together with its proof, unless an earlier
// identity handler of the route accepted one (stacked.go): then that one;
// else, when optional, none at all. Everything it refuses is about the form of
// the request, not the token: ambiguous (400), missing (401), too large,
// in TLS early data (425), or with an unreadable DPoP proof.
type credentialStage struct {
	sources []tokenSource
	// dpopSource is the source a DPoP-scheme token comes from (the
	// Authorization header), when DPoP is on.
	dpopSource   tokenSource
	dpopRequired bool
	optional     bool
	maxTokenSize int
}

// credential is what the credential stage found, handed to every later
// stage.
type credential struct {
	token string
	// src is where the token came from; nil for a stacked token or none.
	src *tokenSource
	// stacked is the token an earlier identity handler of the route
	// accepted; it is the request's credential whatever the headers hold.
	stacked *stackedToken
	// proof is the DPoP proof of a token of the DPoP scheme.
	proof string
	// anonymous is set for a request without a token that optional lets
	// through.
	anonymous bool
	// offered is set when the request carries a token, or something
	// meant as one (an ambiguous request): the login stage then leaves it
	// to the bearer stages.
	offered bool
}

// dpop reports whether the token came with the DPoP scheme.
func (c *credential) dpop() bool { return c.src != nil && c.src.dpop }

// tokenSource is a compiled TokenSource.
type tokenSource struct {
	kind   sourceKind
	name   string // canonical header name, cookie name or parameter name
	scheme string
	// dpop marks the source a DPoP token came from (the credential
	// stage's dpopSource); dpopAlt the Authorization header source, whose
	// values may also be of the DPoP scheme.
	dpop, dpopAlt bool
}

type sourceKind uint8

const (
	fromHeader sourceKind = iota
	fromCookie
	fromQuery
)

// newCredentialStage compiles the token sources, defaulting to the
// Authorization header with the Bearer scheme.
func newCredentialStage(in []TokenSource, dpop dpopMode, optional bool, maxTokenSize int) (credentialStage, error) {
	cs := credentialStage{dpopRequired: dpop == dpopRequire, optional: optional, maxTokenSize: maxTokenSize}
	if len(in) == 0 {
		in = []TokenSource{{From: "header", Name: "Authorization", Scheme: "Bearer"}}
	}
	for _, s := range in {
		ts := tokenSource{name: s.Name, scheme: s.Scheme}
		switch s.From {
		case "header":
			ts.kind = fromHeader
			ts.name = textproto.CanonicalMIMEHeaderKey(s.Name)
			if ts.scheme == "" && ts.name == "Authorization" {
				ts.scheme = "Bearer"
			}
		case "cookie":
			ts.kind = fromCookie
		case "query":
			ts.kind = fromQuery
		}
		for _, prev := range cs.sources {
			if prev.kind == ts.kind && strings.EqualFold(prev.name, ts.name) {
				return cs, fmt.Errorf("token_from %s %s is listed twice: remove one", s.From, s.Name)
			}
		}
		if ts.kind == fromHeader && ts.name == "Authorization" && dpop != dpopOff {
			cs.dpopSource = tokenSource{kind: fromHeader, name: ts.name, scheme: identity.TokenTypeDPoP, dpop: true}
			if dpop == dpopRequire {
				ts = cs.dpopSource
			} else {
				ts.dpopAlt = true
			}
		}
		cs.sources = append(cs.sources, ts)
	}
	return cs, nil
}

// find returns the request's credential, or why the request is refused
// before any token is looked at. Every check reads the request only: the
// login stage, which runs after it, may still take the request over.
func (cs *credentialStage) find(r *http.Request) (credential, *rejection) {
	if at, ok := caddyhttp.GetVar(r.Context(), stackedVar).(*stackedToken); ok {
		// Whatever the request's headers hold now was put there by the
		// route (an earlier handler's upstream token, a forwarded copy):
		// the credential of this request is the token already accepted.
		c := credential{token: at.token, stacked: at, offered: true}
		if len(c.token) > cs.maxTokenSize {
			return c, &rejection{reason: reasonTooLarge}
		}
		return c, nil
	}
	token, src, rsn := cs.extract(r)
	c := credential{token: token, src: src, offered: src != nil || rsn != reasonNone}
	switch {
	case rsn != reasonNone:
		return c, &rejection{reason: rsn}
	case src == nil:
		if cs.dpopRequired && hasBearer(r.Header) {
			return c, &rejection{reason: reasonDPoPRequired}
		}
		if cs.optional {
			c.anonymous = true
			return c, nil
		}
		return c, &rejection{reason: reasonMissing}
	case inEarlyData(r):
		return c, &rejection{reason: reasonTooEarly}
	case len(token) > cs.maxTokenSize:
		return c, &rejection{reason: reasonTooLarge, dpop: src.dpop}
	case src.dpop:
		proof, err := identity.DPoPProofFromHeader(r.Header)
		if err != nil {
			return c, proofRejection(err, token)
		}
		c.proof = proof
	}
	return c, nil
}

// extract finds the token in the configured places. It returns the
// source it came from (nil when there is none), or reasonInvalidRequest
// when the request is ambiguous: a token in two places, a repeated header,
// cookie or parameter, or a scheme without a token.
func (cs *credentialStage) extract(r *http.Request) (string, *tokenSource, reason) {
	var (
		token string
		found *tokenSource
	)
	for i := range cs.sources {
		s := &cs.sources[i]
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
					s = &cs.dpopSource
				}
			}
			if ok && t == "" {
				return "", nil, reasonInvalidRequest
			}
		case fromCookie:
			if len(r.Header["Cookie"]) == 0 {
				continue
			}
			cookies := r.CookiesNamed(s.name)
			if len(cookies) > 1 {
				return "", nil, reasonInvalidRequest
			}
			if len(cookies) == 1 {
				t = cookies[0].Value
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

// hasBearer reports whether the request carries one Authorization header
// of the Bearer scheme: with DPoP required, such a request is told so
// instead of being answered as without a token.
func hasBearer(hdr http.Header) bool {
	vals := hdr["Authorization"]
	if len(vals) != 1 {
		return false
	}
	_, ok := cutScheme(vals[0], "Bearer")
	return ok
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

// warnLoggedTokenSources warns when tokens come from a place the access
// log of the handler's server records in full: a header other than
// Authorization (Caddy redacts only Authorization, Proxy-Authorization,
// Cookie and Set-Cookie), the query string, or any place with
// log_credentials. The handler cannot see the log's filters, so the
// warning names the filter that keeps the token out (see SECURITY.md).
func (cs *credentialStage) warnLoggedTokenSources(ctx caddy.Context, logger *zap.Logger) {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil {
		return
	}
	for _, s := range cs.sources {
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
		logger.Warn("this server's access log records the tokens of this source in full, unless a log filter removes them",
			zap.String("token_from", s.name), zap.String("log_filter", filter))
	}
}
