package caddyidentity

import (
	"encoding/base64"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Placeholder names. {http.auth.user.id} and {http.auth.user.*} are the
// names Caddy's own authentication handler uses, so access logs (user_id),
// request_header, header_up and templates work unchanged.
const (
	placeholderPrefix     = "http.auth."
	placeholderUserID     = "user.id"
	placeholderUserPrefix = "user."
	placeholderIssuer     = "identity.issuer"
)

// cacheEntry is everything the handler needs to answer a request with an
// already verified token, computed once when the token was verified: no
// parsing, JSON or rule evaluation happens on a cache hit.
//
// It does not keep the decoded claims, which would be most of its memory
// (a map and some thirty heap objects per token, for the collector to scan
// on every cycle): the claim headers, the policy's verdict and the subject
// are computed up front, and the claims are decoded again from the signing
// input only when a placeholder asks for one (see claims).
type cacheEntry struct {
	// The fields a hit reads come first, so that they share as few cache
	// lines as can be: between two requests the rest of the work of a
	// server evicts them.

	// signingInput is the verified token's header.payload (see tokenCache).
	signingInput string
	// expires is exp plus the leeway: the entry is dead from then on.
	expires time.Time
	// versions is the issuer's key source when it can tell that its key
	// set changed, and keyVersion the version of the set in which the
	// token's key was last seen (see keyPublished).
	versions   identity.KeySetVersioner
	keyVersion atomic.Uint64
	// denied is reasonNone, or the 403 reason with its challenge, for this
	// handler's policy.
	denied reason
	// dpopBound is set, unless DPoP is off, when the token carries
	// cnf.jkt: such a token is accepted only with the DPoP scheme and a
	// proof by that key, so the Bearer path checks this one flag.
	dpopBound bool
	// label is the index of the issuer among the handler's issuer labels
	// (see meter.issuerLabels), which its counters are indexed by.
	label int32
	// certThumbprint is cnf.x5t#S256, unless cert_binding is off: the
	// request must come over a TLS connection with that client
	// certificate (see certBinding.holds). Every hit reads it (for unbound
	// tokens, the common case, it is empty).
	certThumbprint string
	headers        []headerValue
	repl           caddy.ReplacerFunc
	// cacheHits is the token cache hit counter of the token's issuer.
	cacheHits prometheus.Counter

	// keys is the issuer's key source, asked when the version moved.
	keys       identity.KeySource
	thumbprint string
	// decoded holds the claims once a placeholder has needed them.
	decoded   atomic.Pointer[identity.Claims]
	issuer    string
	subject   any
	challenge string
	weight    uint32
	// dpopJKT is cnf.jkt when it is a non-empty string.
	dpopJKT string
	// exchanged is the token's exchanged token for the upstream
	// (upstream_token exchange), once there is one.
	exchanged atomic.Pointer[exchanged]
}

// headerValue is a claim header ready to set.
type headerValue struct {
	name  string // canonical
	value string
}

// maxStackHeaders is how many claim headers claimsEntry collects without
// a heap allocation before copying them into the entry; more still work.
const maxStackHeaders = 8

// newEntry computes the cache entry of the verified token t, whose
// compact form is token. The error is a malformed certificate binding,
// which makes the token unacceptable.
func (a *authenticator) newEntry(t *identity.Token, token string) (*cacheEntry, error) {
	e, err := a.claimsEntry(t.Issuer, t.Claims)
	if err != nil {
		return nil, err
	}
	if !t.Claims.Expiry.IsZero() {
		e.expires = t.Claims.Expiry.Add(a.leeway)
	}
	if a.maxAge > 0 && !t.Claims.IssuedAt.IsZero() {
		if limit := t.Claims.IssuedAt.Add(a.maxAge); e.expires.IsZero() || limit.Before(e.expires) {
			e.expires = limit
		}
	}
	if a.cache == nil {
		// The entry serves this one request (cache_size 0): what only a
		// cache hit reads, the signing input, the weight and the key
		// check, is not computed.
		return e, nil
	}
	e.signingInput, _, _ = splitToken(token) // tokenCache.put keeps a copy instead
	e.thumbprint = t.KeyThumbprint
	e.weight = weightOf(len(token))
	if pol := a.policy.byIssuer[t.Issuer]; pol != nil {
		e.keys = pol.keys
		e.versions, _ = pol.keys.(identity.KeySetVersioner)
	}
	e.keyPublished(a.now())
	return e, nil
}

// claimsEntry computes the part of an entry that depends only on the
// accepted claims and their issuer, whatever vouched for them (a verified
// signature or an introspection response): the bindings, the policy's
// verdict, the claim headers and the placeholders. The error is a
// malformed certificate binding, which makes the token unacceptable.
func (a *authenticator) claimsEntry(issuer string, c *identity.Claims) (*cacheEntry, error) {
	var cnf map[string]any
	if !a.certs.off || a.dpopOn {
		cnf = confirmation(c)
	}
	certThumbprint, err := a.certs.thumbprint(cnf)
	if err != nil {
		return nil, err
	}
	label := issuerIndex(a.counters.issuerLabels, issuer)
	e := &cacheEntry{
		issuer:         issuer,
		subject:        c.Subject,
		certThumbprint: certThumbprint,
		label:          int32(label),
		cacheHits:      a.counters.cacheHits[label],
	}
	if pol := a.policy.byIssuer[issuer]; pol != nil {
		e.denied, e.challenge = pol.authorize(c)
	}
	// The headers are collected on the stack and copied once, so that the
	// entry's slice is one allocation of its exact size.
	var buf [maxStackHeaders]headerValue
	hs := buf[:0]
	for _, ch := range a.claimHeaders {
		v, ok := c.String(ch.path)
		if !ok || v == "" {
			continue
		}
		hs = append(hs, headerValue{name: ch.header, value: sanitizeHeaderValue(v)})
	}
	if len(hs) > 0 {
		e.headers = slices.Clone(hs)
	}
	e.repl = e.replace
	if a.dpopOn {
		e.dpopJKT, e.dpopBound = cnfJKT(cnf)
	}
	return e, nil
}

// confirmation returns the cnf object of verified claims (RFC 7800), which
// both bindings read; nil when the token has none or it is no object.
func confirmation(c *identity.Claims) map[string]any {
	v, _ := c.Get(identity.ClaimConfirmation)
	cnf, _ := v.(map[string]any)
	return cnf
}

// detach copies the strings the entry took from the token's claims: they
// share the memory of the decoded payload, which a cached entry need not
// keep (see cacheEntry).
func (e *cacheEntry) detach() {
	if s, ok := e.subject.(string); ok {
		e.subject = strings.Clone(s)
	}
	for i := range e.headers {
		e.headers[i].value = strings.Clone(e.headers[i].value)
	}
	e.dpopJKT = strings.Clone(e.dpopJKT)
	e.certThumbprint = strings.Clone(e.certThumbprint)
}

// keyPublished reports whether the key that verified the entry's token is
// still published by its issuer at now, so that a token whose key was
// withdrawn from the JWKS is verified again (and refused). HasKey is asked
// only when the key set changed since the key was last seen in it: on most
// hits this is two atomic loads, and no clock reading (now is the one the
// cache read for the token's expiry). The version is read before HasKey,
// so a set replaced in between is checked again on the next hit.
func (e *cacheEntry) keyPublished(now time.Time) bool {
	var v uint64
	if e.versions != nil {
		v = e.versions.KeySetVersion(now)
		if v != 0 && v == e.keyVersion.Load() {
			return true
		}
	}
	if e.thumbprint == "" {
		return true // HMAC: the secret is part of the configuration
	}
	if e.keys == nil || !e.keys.HasKey(e.thumbprint) {
		return false
	}
	if e.versions != nil {
		e.keyVersion.Store(v)
	}
	return true
}

// replace resolves the identity placeholders lazily from the verified
// claims: {http.auth.user.id} is the subject, {http.auth.user.<claim.path>}
// any claim (arrays joined with ", ", objects as JSON) and
// {http.auth.identity.issuer} the issuer.
func (e *cacheEntry) replace(key string) (any, bool) {
	rest, ok := strings.CutPrefix(key, placeholderPrefix)
	if !ok {
		return nil, false
	}
	switch {
	case rest == placeholderUserID:
		return e.subject, true
	case rest == placeholderIssuer:
		return e.issuer, true
	case strings.HasPrefix(rest, placeholderUserPrefix):
		c := e.claims()
		if c == nil {
			return nil, false
		}
		return c.String(rest[len(placeholderUserPrefix):])
	}
	return nil, false
}

// claims returns the token's claims, decoded from the signing input the
// first time they are needed (by concurrent requests, perhaps more than
// once; all get equal claims). The payload was verified with the token, so
// decoding cannot fail but on a broken entry: then nil.
func (e *cacheEntry) claims() *identity.Claims {
	if c := e.decoded.Load(); c != nil {
		return c
	}
	_, payload, ok := strings.Cut(e.signingInput, ".")
	if !ok {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil
	}
	c, err := identity.ParseClaims(raw)
	if err != nil {
		return nil
	}
	e.decoded.Store(c)
	return c
}

// sanitizeHeaderValue replaces control characters (other than tab), which
// are invalid in a header value and could split headers, with spaces.
func sanitizeHeaderValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	b := []byte(v)
	for i, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}
