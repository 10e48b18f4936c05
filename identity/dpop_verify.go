package identity

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Defaults of [DPoPVerifyOptions].
const (
	// DefaultDPoPMaxAge is how old (by iat) a proof may be: long enough for
	// a request to arrive, short enough to make a stolen proof useless.
	DefaultDPoPMaxAge = 60 * time.Second
	// DefaultDPoPClockSkew is how far in the future iat may be, for client
	// clocks running a little fast.
	DefaultDPoPClockSkew = 5 * time.Second
	// DefaultMaxDPoPProofBytes caps a proof before any decoding; an RS256
	// proof with a 4096-bit key is under 2 KiB.
	DefaultMaxDPoPProofBytes = 8 << 10
)

// ErrDPoPProof: a DPoP proof (RFC 9449 §4.3) is missing, malformed or does
// not fit the request. Every error of [VerifyDPoPProof] and
// [DPoPProofFromHeader] matches it; use [errors.As] with [*DPoPProofError]
// to learn which check failed.
var ErrDPoPProof = errors.New("identity: invalid DPoP proof")

// DPoPCheck names the check of a DPoP proof that failed.
type DPoPCheck string

// The checks of [VerifyDPoPProof] and [DPoPProofFromHeader], in the order
// they run.
const (
	// DPoPCheckHeader: not exactly one DPoP request header.
	DPoPCheckHeader DPoPCheck = "header"
	// DPoPCheckJWS: not a single well-formed compact JWS within the size cap.
	DPoPCheckJWS DPoPCheck = "jws"
	// DPoPCheckType: the typ header is not "dpop+jwt".
	DPoPCheckType DPoPCheck = "typ"
	// DPoPCheckAlgorithm: alg is none, symmetric, or not allowed.
	DPoPCheckAlgorithm DPoPCheck = "alg"
	// DPoPCheckJWK: the jwk header is missing, private, symmetric, too weak
	// or does not fit alg.
	DPoPCheckJWK DPoPCheck = "jwk"
	// DPoPCheckSignature: the signature does not verify with the jwk.
	DPoPCheckSignature DPoPCheck = "signature"
	// DPoPCheckJTI: jti is missing, longer than [MaxDPoPJTIBytes], or was
	// seen before (replay).
	DPoPCheckJTI DPoPCheck = "jti"
	// DPoPCheckMethod: htm differs from the request method.
	DPoPCheckMethod DPoPCheck = "htm"
	// DPoPCheckURI: htu differs from the request URI.
	DPoPCheckURI DPoPCheck = "htu"
	// DPoPCheckIssuedAt: iat is missing or outside the accepted window.
	DPoPCheckIssuedAt DPoPCheck = "iat"
	// DPoPCheckNonce: the nonce is missing or not the expected one; the
	// server answers use_dpop_nonce with a fresh DPoP-Nonce.
	DPoPCheckNonce DPoPCheck = "nonce"
	// DPoPCheckAccessTokenHash: ath is missing or not the hash of the
	// presented access token.
	DPoPCheckAccessTokenHash DPoPCheck = "ath"
	// DPoPCheckJKT: the proof key is not the key the access token is bound
	// to (its cnf.jkt), or the token is not bound at all.
	DPoPCheckJKT DPoPCheck = "jkt"
)

// DPoPProofError says which check refused a DPoP proof. It matches
// [ErrDPoPProof] with [errors.Is], and the underlying cause (such as
// [ErrMalformed], [ErrAlgNone] or [ErrSignature]) through Unwrap.
type DPoPProofError struct {
	// Check is the failing check.
	Check DPoPCheck
	// Reason is short and safe to show to the client.
	Reason string
	// Err is the underlying cause, nil when there is none.
	Err error
}

// Error describes the failed check.
func (e *DPoPProofError) Error() string {
	return fmt.Sprintf("identity: invalid DPoP proof: %s: %s", e.Check, e.Reason)
}

// Is reports whether target is [ErrDPoPProof].
func (e *DPoPProofError) Is(target error) bool { return target == ErrDPoPProof }

// Unwrap returns the underlying cause.
func (e *DPoPProofError) Unwrap() error { return e.Err }

// ErrorCode is the OAuth error a resource or authorization server answers
// with (RFC 9449 §7.1, §8, §9): use_dpop_nonce for a nonce failure, so
// the client retries with the DPoP-Nonce sent along, else
// invalid_dpop_proof.
func (e *DPoPProofError) ErrorCode() string {
	if e.Check == DPoPCheckNonce {
		return ErrorUseDPoPNonce
	}
	return ErrorInvalidDPoPProof
}

// dpopError builds a DPoPProofError.
func dpopError(check DPoPCheck, cause error, format string, args ...any) error {
	return &DPoPProofError{Check: check, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// DPoPVerifyOptions is what a server expects of a DPoP proof.
type DPoPVerifyOptions struct {
	// Method is the HTTP method of the request (required).
	Method string
	// URI is the absolute URI of the request as the client addressed it
	// (required): behind a proxy, the external scheme and host. Query and
	// fragment are ignored; scheme, host, default port and percent-encoding
	// are normalized (RFC 9449 §4.3, RFC 3986 §6.2.2–6.2.3).
	URI string
	// AccessToken, for a request to a protected resource, is the token of
	// the "Authorization: DPoP" header: the proof's ath must be its hash,
	// and BoundJKT must be set.
	AccessToken string
	// BoundJKT is the cnf.jkt of the validated access token (e.g.
	// Claims.String("cnf.jkt"), or from introspection): the proof key's
	// thumbprint must equal it. With AccessToken set and BoundJKT empty
	// the token is not bound, and the proof fails [DPoPCheckJKT].
	BoundJKT string
	// Nonce, when set, is the nonce the server issued: the proof must carry
	// it ([DPoPCheckNonce] otherwise).
	Nonce string
	// Nonces, when set, issued the nonces the server accepts: the proof
	// must carry one that is valid at Now ([DPoPCheckNonce] otherwise; the
	// server answers with a fresh one, [DPoPNonces.Nonce]). Checked before
	// Replay, so a proof refused for its nonce does not spend its jti.
	Nonces *DPoPNonces
	// Algorithms is the allow-list of proof algorithms; empty means
	// [DefaultAlgorithms]. Symmetric algorithms and "none" are refused even
	// when listed: a proof must be verifiable with its public jwk.
	Algorithms []string
	// MaxAge is how old, by iat, a proof may be; 0 means
	// [DefaultDPoPMaxAge].
	MaxAge time.Duration
	// ClockSkew is how far in the future iat may be; 0 means
	// [DefaultDPoPClockSkew].
	ClockSkew time.Duration
	// Now is the time to check iat against; zero means time.Now().
	Now time.Time
	// MaxProofBytes caps the proof; 0 means [DefaultMaxDPoPProofBytes].
	MaxProofBytes int
	// Replay, when set, refuses a jti already seen with the same key
	// within the acceptance window (RFC 9449 §11.1).
	Replay *DPoPReplayCache
}

// DPoPProof is a verified DPoP proof.
type DPoPProof struct {
	// ID is the jti claim.
	ID string
	// Method and URI are the htm and htu claims.
	Method, URI string
	// IssuedAt is the iat claim.
	IssuedAt time.Time
	// Nonce is the nonce claim, "" when absent.
	Nonce string
	// AccessTokenHash is the ath claim, "" when absent.
	AccessTokenHash string
	// Algorithm is the alg header.
	Algorithm string
	// JWK is the public key of the jwk header, which verified the proof.
	JWK jose.JSONWebKey
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of JWK: the jkt a
	// token issued for this proof is bound to.
	Thumbprint string
}

// DPoPProofFromHeader returns the one DPoP header of a request; none, or
// more than one (RFC 9449 §4.3 step 1), fails [DPoPCheckHeader].
func DPoPProofFromHeader(h http.Header) (string, error) {
	values := h.Values(HTTPHeaderDPoP)
	if len(values) != 1 {
		return "", dpopError(DPoPCheckHeader, nil, "%d DPoP headers, want exactly one", len(values))
	}
	return strings.TrimSpace(values[0]), nil
}

// VerifyDPoPProof checks a DPoP proof against the request it came with
// (RFC 9449 §4.3, and §7.1 for protected resources): a single compact JWS
// with typ dpop+jwt, an allowed asymmetric alg, a public jwk header that
// fits alg and verifies the signature, a jti, htm and htu matching the
// request, iat within the window, and when asked the nonce, ath and the
// binding of the access token to the proof key. A failure is a
// [*DPoPProofError] naming the check. The proof is verified with the key
// it carries: what makes it trustworthy is the comparison with the
// token's cnf.jkt (or, at a token endpoint, binding the issued token to
// [DPoPProof.Thumbprint]).
func VerifyDPoPProof(proof string, opts DPoPVerifyOptions) (*DPoPProof, error) {
	if opts.Replay != nil && opts.Replay.c == nil {
		return nil, notInitialized("DPoPReplayCache", "NewDPoPReplayCache")
	}
	if opts.Nonces != nil && opts.Nonces.key == nil {
		return nil, notInitialized("DPoPNonces", "NewDPoPNonces")
	}
	maxBytes := opts.MaxProofBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxDPoPProofBytes
	}
	jws, err := parseCompact(proof, maxBytes)
	if err != nil {
		return nil, dpopError(DPoPCheckJWS, err, "not a compact JWS")
	}
	hdr := jws.header
	if !typeAccepted(hdr.typ, []string{JWTTypeDPoPProof}) {
		return nil, dpopError(DPoPCheckType, nil, "typ %q is not %s", truncate(hdr.typ, 32), JWTTypeDPoPProof)
	}
	if err := hdr.checkCritical(); err != nil {
		return nil, dpopError(DPoPCheckJWS, err, "unsupported critical header")
	}
	if err := checkDPoPAlgorithm(hdr.alg, opts.Algorithms); err != nil {
		return nil, err
	}
	if err := checkDPoPHeaderJWK(proof); err != nil {
		return nil, err
	}
	sig, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(hdr.alg)})
	if err != nil {
		return nil, dpopError(DPoPCheckJWS, fmt.Errorf("%w: %v", ErrMalformed, err), "not a compact JWS")
	}
	jwk := sig.Signatures[0].Header.JSONWebKey
	if jwk == nil {
		return nil, dpopError(DPoPCheckJWK, nil, "no jwk header")
	}
	if err := checkKeyForAlg(hdr.alg, jwk); err != nil {
		return nil, dpopError(DPoPCheckJWK, err, "jwk does not fit %s", hdr.alg)
	}
	if _, err := sig.Verify(jwk); err != nil {
		return nil, dpopError(DPoPCheckSignature, ErrSignature, "signature does not verify with the jwk")
	}
	claims, err := jws.claims(nil)
	if err != nil {
		return nil, dpopError(DPoPCheckJWS, err, "payload is not a JSON object")
	}
	tp, err := JWKThumbprint(*jwk)
	if err != nil {
		return nil, dpopError(DPoPCheckJWK, err, "no thumbprint for the jwk")
	}
	p := &DPoPProof{Algorithm: hdr.alg, JWK: *jwk, Thumbprint: tp}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := p.readClaims(claims.raw, opts, now); err != nil {
		return nil, err
	}
	if maxAge, _ := opts.iatWindow(); opts.Replay != nil && !opts.Replay.admit(p, p.IssuedAt.Add(maxAge).Sub(now)) {
		return nil, dpopError(DPoPCheckJTI, nil, "jti was already used")
	}
	return p, nil
}

// iatWindow is how old and how far in the future iat may be.
func (o DPoPVerifyOptions) iatWindow() (maxAge, skew time.Duration) {
	maxAge, skew = o.MaxAge, o.ClockSkew
	if maxAge <= 0 {
		maxAge = DefaultDPoPMaxAge
	}
	if skew <= 0 {
		skew = DefaultDPoPClockSkew
	}
	return maxAge, skew
}

// checkDPoPAlgorithm refuses none, symmetric algorithms and algorithms
// outside allowed (default: DefaultAlgorithms).
func checkDPoPAlgorithm(alg string, allowed []string) error {
	switch {
	case strings.EqualFold(alg, "none"):
		return dpopError(DPoPCheckAlgorithm, ErrAlgNone, "unsigned proof")
	case !isAsymmetric(alg):
		return dpopError(DPoPCheckAlgorithm, ErrUnsupportedAlg, "%q is not an asymmetric algorithm", truncate(alg, 16))
	}
	if len(allowed) == 0 {
		allowed = DefaultAlgorithms()
	}
	if !slices.Contains(allowed, alg) {
		return dpopError(DPoPCheckAlgorithm, ErrUnsupportedAlg, "%s is not allowed", alg)
	}
	return nil
}

// checkDPoPHeaderJWK reads the jwk member of the protected header before
// go-jose does, to say precisely why a key is refused: it must be a JSON
// object without private or symmetric key members (RFC 9449 §4.2).
func checkDPoPHeaderJWK(proof string) error {
	seg, _, _ := strings.Cut(proof, ".")
	raw, err := decodeSegment(seg)
	if err != nil {
		return dpopError(DPoPCheckJWS, ErrMalformed, "header is not base64url")
	}
	m, err := parseJSONObject(raw)
	if err != nil {
		return dpopError(DPoPCheckJWS, ErrMalformed, "header is not a JSON object")
	}
	v, ok := m[HeaderJSONWebKey]
	if !ok {
		return dpopError(DPoPCheckJWK, nil, "no jwk header")
	}
	key, ok := v.(map[string]any)
	if !ok {
		return dpopError(DPoPCheckJWK, nil, "jwk is not an object")
	}
	for _, private := range [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		if _, has := key[private]; has {
			return dpopError(DPoPCheckJWK, nil, "jwk holds private or symmetric key material")
		}
	}
	return nil
}

// readClaims reads and checks the payload claims of a proof into p.
func (p *DPoPProof) readClaims(claims map[string]any, opts DPoPVerifyOptions, now time.Time) error {
	var ok bool
	if p.ID, ok = claims[ClaimJWTID].(string); !ok || p.ID == "" {
		return dpopError(DPoPCheckJTI, nil, "jti missing")
	}
	if len(p.ID) > MaxDPoPJTIBytes {
		return dpopError(DPoPCheckJTI, nil, "jti longer than %d bytes", MaxDPoPJTIBytes)
	}
	if p.Method, ok = claims[ClaimHTTPMethod].(string); !ok || opts.Method == "" || p.Method != opts.Method {
		return dpopError(DPoPCheckMethod, nil, "htm does not match the request method")
	}
	p.URI, _ = claims[ClaimHTTPURI].(string)
	got, okGot := normalizeHTU(p.URI)
	want, okWant := normalizeHTU(opts.URI)
	if !okGot || !okWant || got != want {
		return dpopError(DPoPCheckURI, nil, "htu does not match the request URI")
	}
	if err := p.checkIssuedAt(claims, opts, now); err != nil {
		return err
	}
	if v, present := claims[ClaimNonce]; present {
		if p.Nonce, ok = v.(string); !ok {
			return dpopError(DPoPCheckNonce, nil, "nonce is not a string")
		}
	}
	if opts.Nonce != "" && subtle.ConstantTimeCompare([]byte(p.Nonce), []byte(opts.Nonce)) != 1 {
		return dpopError(DPoPCheckNonce, nil, "nonce missing or stale")
	}
	if opts.Nonces != nil && !opts.Nonces.Valid(p.Nonce, now) {
		return dpopError(DPoPCheckNonce, nil, "nonce missing, expired or not issued here")
	}
	if v, present := claims[ClaimDPoPAccessTokenHash]; present {
		if p.AccessTokenHash, ok = v.(string); !ok {
			return dpopError(DPoPCheckAccessTokenHash, nil, "ath is not a string")
		}
	}
	if opts.AccessToken == "" {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(p.AccessTokenHash), []byte(DPoPAccessTokenHash(opts.AccessToken))) != 1 {
		return dpopError(DPoPCheckAccessTokenHash, nil, "ath does not match the access token")
	}
	if opts.BoundJKT == "" {
		return dpopError(DPoPCheckJKT, nil, "access token is not bound to a DPoP key")
	}
	if subtle.ConstantTimeCompare([]byte(p.Thumbprint), []byte(opts.BoundJKT)) != 1 {
		return dpopError(DPoPCheckJKT, nil, "proof key is not the key the access token is bound to")
	}
	return nil
}

// checkIssuedAt reads iat and checks it lies within [now-MaxAge,
// now+ClockSkew].
func (p *DPoPProof) checkIssuedAt(claims map[string]any, opts DPoPVerifyOptions, now time.Time) error {
	n, ok := claims[ClaimIssuedAt].(interface{ Float64() (float64, error) })
	if !ok {
		return dpopError(DPoPCheckIssuedAt, nil, "iat missing or not a number")
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return dpopError(DPoPCheckIssuedAt, nil, "iat is not a plausible NumericDate")
	}
	sec, frac := math.Modf(f)
	p.IssuedAt = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	maxAge, skew := opts.iatWindow()
	switch {
	case p.IssuedAt.Before(now.Add(-maxAge)):
		return dpopError(DPoPCheckIssuedAt, nil, "proof is too old")
	case p.IssuedAt.After(now.Add(skew)):
		return dpopError(DPoPCheckIssuedAt, nil, "proof is issued in the future")
	}
	return nil
}

// normalizeHTU is the comparable form of an htu or request URI (RFC 9449
// §4.3): lower-case scheme and host, no default port, no query or
// fragment, normalized percent-encoding and no dot segments, "/" for an
// empty path. ok is false for anything but an absolute http(s) URI
// without user information.
func normalizeHTU(raw string) (norm string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	path := removeDotSegments(normalizePercentEncoding(u.EscapedPath()))
	if path == "" {
		path = "/"
	}
	return scheme + "://" + hostWithPort(strings.ToLower(u.Hostname()), u.Port(), scheme) + path, true
}

// hostWithPort joins host and port, leaving out the default port of
// scheme (RFC 3986 §6.2.3).
func hostWithPort(host, port, scheme string) string {
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// normalizePercentEncoding upper-cases percent-encoded octets and decodes
// those of unreserved characters (RFC 3986 §6.2.2.1–6.2.2.2).
func normalizePercentEncoding(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+2 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			b.WriteByte(s[i])
			continue
		}
		c := byte(hi<<4 | lo)
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
		i += 2
	}
	return b.String()
}

// unhex is the value of a hex digit, -1 for anything else.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// isUnreserved reports whether c is an unreserved URI character (RFC 3986
// §2.3).
func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments resolves "." and ".." segments of an absolute path
// (RFC 3986 §5.2.4); ".." never climbs above the root.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
			continue
		}
		if last {
			out = append(out, "")
		}
	}
	return strings.Join(out, "/")
}
