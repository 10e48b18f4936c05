package caddyidentity

import (
	"io"
	"net/http"
	"slices"
	"strings"
)

// stripStage is the first stage of every request: it removes the identity
// headers a client sent, whatever the outcome, so that an upstream never
// mistakes a client's header for one this handler set.
type stripStage struct {
	// names are the normalized (lower case, '_' → '-') names of every
	// identity header: claim headers, strip_headers and the upstream
	// token's header.
	names []string
	// tokenHeaders are the normalized names of the headers a token or
	// DPoP proof is taken from, which Connection must not name either.
	tokenHeaders []string
}

// newStripStage compiles the names of the headers to strip: those of
// claims (the defaults when empty), strip and upstreamHeader (unless
// empty or Authorization, which the upstream token replaces), and the
// token headers of sources.
func newStripStage(claims []ClaimHeader, strip []string, upstreamHeader string, sources []tokenSource, dpop bool) stripStage {
	var st stripStage
	if len(claims) == 0 {
		claims = defaultClaimHeaders
	}
	for _, c := range claims {
		st.names = addNormalized(st.names, c.Header)
	}
	for _, s := range strip {
		st.names = addNormalized(st.names, s)
	}
	if upstreamHeader != "" && !strings.EqualFold(upstreamHeader, "Authorization") {
		st.names = addNormalized(st.names, upstreamHeader)
	}
	if dpop {
		st.tokenHeaders = addNormalized(st.tokenHeaders, "dpop")
	}
	for i := range sources {
		if s := &sources[i]; s.kind == fromHeader {
			st.tokenHeaders = addNormalized(st.tokenHeaders, s.name)
		}
	}
	return st
}

// addNormalized adds the normalized form of a header name to names once.
func addNormalized(names []string, name string) []string {
	n := normalizeHeaderName(name)
	if slices.Contains(names, n) {
		return names
	}
	return append(names, n)
}

// run deletes every header whose normalized name (lower case, '_' as '-')
// is that of a configured identity header, in the header and in the
// trailer, and takes those names and the token headers' out of
// Connection.
func (st *stripStage) run(r *http.Request) {
	for name := range r.Header {
		if st.isStripName(name) {
			delete(r.Header, name)
		}
	}
	if r.Trailer != nil {
		// Declared trailers (the only ones reverse_proxy passes on) get
		// their values when the body has been read, long after this
		// handler: they are removed then, before a reader sees the end.
		st.stripTrailer(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, st: st}
	}
	if vals := r.Header["Connection"]; len(vals) > 0 {
		st.cleanConnection(r.Header, vals)
	}
}

// stripTrailer deletes the trailers named like an identity header.
func (st *stripStage) stripTrailer(trailer http.Header) {
	for name := range trailer {
		if st.isStripName(name) {
			delete(trailer, name)
		}
	}
}

// trailerStripper strips the request's trailers when its body reaches
// the end, which is when net/http fills them in.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
	st      *stripStage
}

// Read reads the body and, at its end, strips the trailers.
func (b *trailerStripper) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.st.stripTrailer(b.trailer)
	}
	return n, err
}

// isStripName reports whether name is, normalized, an identity header's.
func (st *stripStage) isStripName(name string) bool {
	for _, n := range st.names {
		if headerNameMatches(name, n) {
			return true
		}
	}
	return false
}

// isTokenHeader reports whether name is, normalized, that of a header a
// token or DPoP proof is taken from.
func (st *stripStage) isTokenHeader(name string) bool {
	for _, n := range st.tokenHeaders {
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
func (st *stripStage) cleanConnection(hdr http.Header, vals []string) {
	var kept []string
	changed := false
	for _, v := range vals {
		for opt := range strings.SplitSeq(v, ",") {
			opt = strings.Trim(opt, " \t")
			if opt == "" {
				continue
			}
			if st.isStripName(opt) || st.isTokenHeader(opt) {
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

// normalizeHeaderName lowers ASCII letters and maps '_' to '-', the folding
// that CGI-style backends apply to header names.
func normalizeHeaderName(name string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case c == '_':
			b[i] = '-'
		}
	}
	return string(b)
}
