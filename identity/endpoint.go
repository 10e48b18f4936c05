package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ProtocolRequest holds what every form-encoded request to an OAuth 2.0
// endpoint (token, introspection, revocation, device authorization, PAR)
// carries: the endpoint, the client's authentication and any additional
// parameters. Request types of this package embed it. Requests follow
// redirects only to the same host, so credentials never leave it.
type ProtocolRequest struct {
	// Address is the endpoint URL, e.g. the token_endpoint from discovery.
	// It must be https unless the host is a loopback address or AllowHTTP
	// is set.
	Address string
	// ClientAuth authenticates the client; see [ClientAuth].
	ClientAuth ClientAuth
	// Parameters are additional form parameters. They never replace a
	// parameter this package sets itself.
	Parameters url.Values
	// Header holds additional request headers.
	Header http.Header
	// MaxResponseBytes caps the response body; 0 means
	// [DefaultMaxDocumentBytes].
	MaxResponseBytes int64
	// AllowHTTP permits a plain http Address on a non-loopback host. Client
	// secrets then travel unencrypted: use only inside trusted networks.
	AllowHTTP bool
	// DPoP, when set, sends a DPoP proof of this key with the request
	// (RFC 9449 §5), so the server binds the tokens it issues to the key.
	// A use_dpop_nonce answer is retried once with the server's nonce.
	DPoP *DPoPKey
}

// endpointCall is one HTTP exchange with an endpoint.
type endpointCall struct {
	method      string
	address     string
	body        []byte
	contentType string
	accept      string
	header      http.Header
	limit       int64
	allowHTTP   bool
	// dpop, when set, sends the request with accessToken bound to this
	// key (see [DoDPoPRequest]) instead of as it is.
	dpop        *DPoPKey
	accessToken string
}

// endpointResult is a response whose body has been read (within the cap).
type endpointResult struct {
	url    string // redacted, for errors
	status int
	header http.Header
	body   []byte
	sentAt time.Time
}

// postForm sends form (plus the client authentication, extra parameters,
// headers and DPoP proof of p) to p.Address and reads the response,
// retrying once with a fresh proof when the server asks for a DPoP nonce.
func (p *ProtocolRequest) postForm(ctx context.Context, client *http.Client, form url.Values) (*endpointResult, error) {
	res, err := p.postFormOnce(ctx, client, form)
	if err != nil || p.DPoP == nil || !p.DPoP.observeResponse(p.Address, res.status, res.header, res.body) {
		return res, err
	}
	return p.postFormOnce(ctx, client, form)
}

// postFormOnce is one attempt of postForm.
func (p *ProtocolRequest) postFormOnce(ctx context.Context, client *http.Client, form url.Values) (*endpointResult, error) {
	if p.Address == "" {
		return nil, fmt.Errorf("%w: the endpoint address (Address) is empty", ErrMissingAddress)
	}
	header := http.Header{}
	for k, v := range p.Header {
		header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	if err := p.ClientAuth.apply(form, header, p.Address); err != nil {
		return nil, err
	}
	if p.DPoP != nil {
		if err := p.DPoP.setProofHeader(header, p.Address); err != nil {
			return nil, err
		}
	}
	for k, vs := range p.Parameters {
		if _, set := form[k]; set {
			continue
		}
		form[k] = append([]string(nil), vs...)
	}
	return doEndpoint(ctx, client, endpointCall{
		method:      http.MethodPost,
		address:     p.Address,
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded",
		accept:      "application/json",
		header:      header,
		limit:       p.MaxResponseBytes,
		allowHTTP:   p.AllowHTTP,
	})
}

// doEndpoint performs call with ctx (bounded by DefaultHTTPTimeout when
// neither ctx nor client has a deadline) on client (nil: a default client),
// following redirects only on the same host, and reads at most call.limit
// bytes of the body.
func doEndpoint(ctx context.Context, client *http.Client, call endpointCall) (*endpointResult, error) {
	if call.address == "" {
		return nil, fmt.Errorf("%w: the endpoint address (Address) is empty", ErrMissingAddress)
	}
	u, err := url.Parse(call.address)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("identity: invalid endpoint address %q", redactURL(call.address))
	}
	if err := requireHTTPS(u, call.allowHTTP); err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultDeadline(ctx, client)
	defer cancel()
	var body io.Reader
	if call.body != nil {
		body = bytes.NewReader(call.body)
	}
	req, err := http.NewRequestWithContext(ctx, call.method, call.address, body)
	if err != nil {
		return nil, err
	}
	for k, v := range call.header {
		req.Header[k] = v
	}
	if call.contentType != "" {
		req.Header.Set("Content-Type", call.contentType)
	}
	if call.accept != "" && req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", call.accept)
	}
	res := &endpointResult{url: redactURL(call.address), sentAt: time.Now()}
	var resp *http.Response
	if call.dpop != nil {
		resp, err = DoDPoPRequest(ctx, client, call.dpop, req, call.accessToken)
	} else {
		resp, err = sameHostClient(client).Do(req)
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && errors.Is(ue.Err, ErrRedirect) {
			return nil, ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	res.status = resp.StatusCode
	res.header = resp.Header
	limit := call.limit
	if limit <= 0 {
		limit = DefaultMaxDocumentBytes
	}
	res.body, err = readCapped(resp.Body, limit)
	if err != nil {
		return nil, fmt.Errorf("%s (HTTP %d): %w", res.url, resp.StatusCode, err)
	}
	return res, nil
}

// errorFor turns a response with an unexpected status into an error: a
// [*ProtocolError] when the body (or a Bearer challenge) carries an OAuth
// error code, else a [*HTTPStatusError].
func (r *endpointResult) errorFor() error {
	if pe := protocolErrorFromBody(r.status, r.header, r.body); pe != nil {
		return pe
	}
	if pe := protocolErrorFromChallenge(r.status, r.header, r.body); pe != nil {
		return pe
	}
	return &HTTPStatusError{URL: r.url, StatusCode: r.status, Body: capErrorBody(r.body)}
}

// mediaType is the lower-cased media type of the response, "" if absent.
func (r *endpointResult) mediaType() string {
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// wireObject is a decoded JSON object whose members are decoded on demand,
// so that unknown members stay available as raw JSON.
type wireObject map[string]json.RawMessage

// decodeWireObject parses body as one JSON object; anything else is
// ErrNotJSON.
func decodeWireObject(body []byte) (wireObject, error) {
	// json.Unmarshal, unlike a Decoder, refuses anything after the value.
	var obj wireObject
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotJSON)
	}
	return obj, nil
}

// present reports whether name is a member with a non-null value.
func (o wireObject) present(name string) bool {
	raw, ok := o[name]
	return ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// memberTypeError reports a member of the wrong JSON type.
func memberTypeError(name, want string) error {
	return fmt.Errorf("%w: member %q is not %s", ErrNotJSON, name, want)
}

// str returns a string member ("" when absent or null).
func (o wireObject) str(name string) (string, error) {
	if !o.present(name) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(o[name], &s); err != nil {
		return "", memberTypeError(name, "a string")
	}
	return s, nil
}

// strList returns a member that is a string or an array of strings.
func (o wireObject) strList(name string) ([]string, error) {
	if !o.present(name) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(o[name], &s); err == nil {
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(o[name], &list); err != nil {
		return nil, memberTypeError(name, "a string or an array of strings")
	}
	return list, nil
}

// boolean returns a boolean member; ok is false when absent or null.
func (o wireObject) boolean(name string) (v, ok bool, err error) {
	if !o.present(name) {
		return false, false, nil
	}
	if err := json.Unmarshal(o[name], &v); err != nil {
		return false, false, memberTypeError(name, "a boolean")
	}
	return v, true, nil
}

// number returns a numeric member (a JSON number, or a string holding one,
// as some servers send expires_in); ok is false when absent or null.
func (o wireObject) number(name string) (v float64, ok bool, err error) {
	if !o.present(name) {
		return 0, false, nil
	}
	raw := bytes.TrimSpace(o[name])
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false, memberTypeError(name, "a number")
		}
		raw = []byte(strings.TrimSpace(s))
	}
	v, err = strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, memberTypeError(name, "a number")
	}
	return v, true, nil
}

// maxWireSeconds bounds durations read from responses (about 31 years), so
// that converting them to a time.Duration cannot overflow.
const maxWireSeconds = 1e9

// seconds returns a non-negative whole number of seconds member.
func (o wireObject) seconds(name string) (int64, error) {
	v, ok, err := o.number(name)
	if err != nil || !ok {
		return 0, err
	}
	if v < 0 || v > maxWireSeconds {
		return 0, memberTypeError(name, "a plausible number of seconds")
	}
	return int64(v), nil
}

// unixTime returns a NumericDate member (RFC 7519 §2) as a time; zero when
// absent.
func (o wireObject) unixTime(name string) (time.Time, error) {
	v, ok, err := o.number(name)
	if err != nil || !ok {
		return time.Time{}, err
	}
	if v < 0 || v > 1e11 {
		return time.Time{}, memberTypeError(name, "a plausible NumericDate")
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// extra returns the raw JSON of member name.
func (o wireObject) extra(name string) (json.RawMessage, bool) {
	raw, ok := o[name]
	if !ok {
		return nil, false
	}
	return append(json.RawMessage(nil), raw...), true
}

// defaultResponseAlgorithms returns the asymmetric algorithms accepted for
// signed endpoint responses when the caller names none.
func defaultResponseAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// signedResponseCheck says how a signed endpoint response (a UserInfo or
// introspection JWT) is verified.
type signedResponseCheck struct {
	keys       KeySource
	algorithms []string // allow-list; empty: advertised asymmetric, else defaults
	issuer     string   // required iss when not ""
	audience   string   // required aud member when not ""
	types      []string // accepted typ header values when not empty
	// issuedAt requires iat, not in the future and, with maxAge, no older
	// than maxAge (leeway included both ways).
	issuedAt bool
	maxAge   time.Duration
}

// allowedAlgorithms resolves the algorithm allow-list for c.
func (c signedResponseCheck) allowedAlgorithms() []jose.SignatureAlgorithm {
	names := c.algorithms
	if len(names) == 0 {
		if adv, ok := c.keys.(AlgorithmAdvertiser); ok {
			for _, a := range adv.AdvertisedAlgorithms() {
				for _, d := range defaultResponseAlgorithms() {
					if a == d {
						names = append(names, a)
					}
				}
			}
		}
	}
	if len(names) == 0 {
		names = defaultResponseAlgorithms()
	}
	out := make([]jose.SignatureAlgorithm, 0, len(names))
	for _, n := range names {
		if strings.EqualFold(n, "none") {
			continue
		}
		out = append(out, jose.SignatureAlgorithm(n))
	}
	return out
}

// verifySignedResponse verifies a compact JWS response with c.keys and
// returns its payload after checking typ, iss, aud, exp, nbf and, when c
// asks, iat (60 s leeway). Errors match ErrMalformed, ErrUnsupportedAlg, ErrKeyNotFound,
// ErrSignature or ErrClaimValidation.
func verifySignedResponse(ctx context.Context, token string, c signedResponseCheck) ([]byte, error) {
	if c.keys == nil {
		return nil, fmt.Errorf("%w: signed response but no KeySource configured", ErrKeyNotFound)
	}
	token = strings.TrimSpace(token)
	if strings.Count(token, ".") == 4 {
		return nil, fmt.Errorf("%w: encrypted (JWE) responses are not supported", ErrMalformed)
	}
	algs := c.allowedAlgorithms()
	jws, err := jose.ParseSignedCompact(token, algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			if strings.EqualFold(string(unexpected.Got), "none") {
				return nil, ErrAlgNone
			}
			return nil, fmt.Errorf("%w: %s", ErrUnsupportedAlg, unexpected.Got)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	hdr := jws.Signatures[0].Header
	if len(c.types) > 0 {
		typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string)
		if !typeAccepted(typ, c.types) {
			return nil, &ClaimError{Claim: "typ", Reason: fmt.Sprintf("unexpected type %q", typ)}
		}
	}
	payload, err := verifyWithCandidates(ctx, jws, hdr.KeyID, hdr.Algorithm, c.keys)
	if err != nil {
		return nil, err
	}
	claims, err := decodeWireObject(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if err := checkResponseClaims(claims, c, time.Now()); err != nil {
		return nil, err
	}
	return payload, nil
}

// verifyWithCandidates tries every candidate key for kid and alg, refreshing
// a refreshable source once when none verifies.
func verifyWithCandidates(ctx context.Context, jws *jose.JSONWebSignature, kid, alg string, keys KeySource) ([]byte, error) {
	try := func() ([]byte, error) {
		cands, err := keys.CandidateKeys(ctx, kid, alg)
		if err != nil {
			return nil, err
		}
		for _, k := range cands {
			key := k.JWK
			if payload, err := jws.Verify(&key); err == nil {
				return payload, nil
			}
		}
		return nil, ErrSignature
	}
	payload, err := try()
	if err == nil {
		return payload, nil
	}
	if r, ok := keys.(RefreshableKeySource); ok && (errors.Is(err, ErrSignature) || errors.Is(err, ErrKeyNotFound)) {
		if rerr := r.Refresh(ctx); rerr == nil {
			return try()
		}
	}
	return nil, err
}

// typeAccepted compares a typ header with accepted values, ignoring case
// and an "application/" prefix (RFC 7515 §4.1.9).
func typeAccepted(typ string, accepted []string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		return strings.TrimPrefix(s, "application/")
	}
	for _, a := range accepted {
		if norm(a) == norm(typ) {
			return true
		}
	}
	return false
}

// checkResponseClaims checks iss, aud, exp, nbf and, when c asks, iat of a
// signed response.
func checkResponseClaims(claims wireObject, c signedResponseCheck, now time.Time) error {
	const leeway = time.Minute
	if c.issuer != "" {
		iss, err := claims.str("iss")
		if err != nil || iss != c.issuer {
			return &ClaimError{Claim: "iss", Reason: "issuer mismatch"}
		}
	}
	if c.audience != "" {
		aud, err := claims.strList("aud")
		found := false
		for _, a := range aud {
			found = found || a == c.audience
		}
		if err != nil || !found {
			return &ClaimError{Claim: "aud", Reason: "audience mismatch"}
		}
	}
	exp, err := claims.unixTime("exp")
	if err != nil {
		return &ClaimError{Claim: "exp", Reason: "malformed"}
	}
	if !exp.IsZero() && now.After(exp.Add(leeway)) {
		return &ClaimError{Claim: "exp", Reason: "expired"}
	}
	nbf, err := claims.unixTime("nbf")
	if err != nil {
		return &ClaimError{Claim: "nbf", Reason: "malformed"}
	}
	if !nbf.IsZero() && now.Add(leeway).Before(nbf) {
		return &ClaimError{Claim: "nbf", Reason: "not yet valid"}
	}
	if !c.issuedAt {
		return nil
	}
	iat, err := claims.unixTime("iat")
	switch {
	case err != nil:
		return &ClaimError{Claim: "iat", Reason: "malformed"}
	case iat.IsZero():
		return &ClaimError{Claim: "iat", Reason: "missing"}
	case now.Add(leeway).Before(iat):
		return &ClaimError{Claim: "iat", Reason: "issued in the future"}
	case c.maxAge > 0 && now.Sub(iat) > c.maxAge+leeway:
		return &ClaimError{Claim: "iat", Reason: "response too old"}
	}
	return nil
}

// scopeParam joins scopes with single spaces (RFC 6749 §3.3), dropping
// empty entries.
func scopeParam(scopes []string) string {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// setFormValue sets form[name] = value when value is not empty.
func setFormValue(form url.Values, name, value string) {
	if value != "" {
		form.Set(name, value)
	}
}

// addFormValues adds every non-empty value of values under name.
func addFormValues(form url.Values, name string, values []string) {
	for _, v := range values {
		if v != "" {
			form.Add(name, v)
		}
	}
}

// tokenCall is the exchange of a request that presents token (an access,
// initial access or registration access token) instead of client
// credentials: userinfo and client registration. Parameters go in the
// query string; the token is sent as "Bearer", or with the DPoP scheme and
// a proof when p.DPoP is set. ClientAuth is refused: these endpoints
// authenticate the token, not the client.
func (p *ProtocolRequest) tokenCall(what, method, token string) (endpointCall, error) {
	if a := &p.ClientAuth; a.Method != "" || a.ClientID != "" || a.ClientSecret != "" || a.Key != nil || a.Assertion != "" {
		return endpointCall{}, fmt.Errorf("identity: the %s takes no client authentication (ProtocolRequest.ClientAuth)", what)
	}
	address := p.Address
	if len(p.Parameters) > 0 && address != "" {
		u, err := url.Parse(address)
		if err != nil {
			return endpointCall{}, fmt.Errorf("identity: invalid endpoint address %q", redactURL(address))
		}
		q := u.Query()
		mergeParameters(q, p.Parameters)
		u.RawQuery = q.Encode()
		address = u.String()
	}
	header := http.Header{}
	for k, v := range p.Header {
		header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	call := endpointCall{method: method, address: address, header: header, limit: p.MaxResponseBytes, allowHTTP: p.AllowHTTP}
	switch {
	case token != "" && p.DPoP != nil:
		call.dpop, call.accessToken = p.DPoP, token
	case token != "":
		header.Set("Authorization", "Bearer "+token)
	}
	return call, nil
}
