package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DPoPProofOptions describes the request a DPoP proof is made for
// (RFC 9449 §4.2).
type DPoPProofOptions struct {
	// Method is the HTTP method of the request (htm), e.g. "POST".
	Method string
	// URI is the absolute http(s) URI of the request; the proof's htu is
	// this URI without query and fragment.
	URI string
	// AccessToken, for a request to a protected resource, binds the proof
	// to the token with ath = BASE64URL(SHA-256(AccessToken)) (RFC 9449
	// §7). Leave it empty for token requests, whose proofs carry no ath.
	AccessToken string
	// Nonce is the server-provided nonce claim; empty means the nonce the
	// key remembers for the server of URI, if any.
	Nonce string
	// IssuedAt is the iat claim; zero means now.
	IssuedAt time.Time
}

// dpopProofClaims is the payload of a DPoP proof.
type dpopProofClaims struct {
	ID       string `json:"jti"`
	Method   string `json:"htm"`
	URI      string `json:"htu"`
	IssuedAt int64  `json:"iat"`
	Nonce    string `json:"nonce,omitempty"`
	ATH      string `json:"ath,omitempty"`
}

// Proof signs a DPoP proof JWT for one request: a compact JWS whose
// protected header has typ "dpop+jwt", the key's asymmetric alg and its
// public jwk, and whose payload has a fresh random jti, htm, htu, iat and,
// when set, nonce and ath. Every request needs a new proof: servers may
// refuse a jti they have seen.
func (k *DPoPKey) Proof(opts DPoPProofOptions) (string, error) {
	if k == nil || k.key == nil {
		return "", notInitialized("DPoPKey", "NewDPoPKey or LoadDPoPKey")
	}
	if opts.Method == "" {
		return "", fmt.Errorf("%w: the DPoP proof needs the HTTP method", ErrMissingParameter)
	}
	htu, err := dpopTargetURI(opts.URI)
	if err != nil {
		return "", err
	}
	claims := dpopProofClaims{
		ID:     randomToken(16),
		Method: opts.Method,
		URI:    htu,
		Nonce:  opts.Nonce,
	}
	if claims.Nonce == "" {
		claims.Nonce = k.Nonce(opts.URI)
	}
	if opts.AccessToken != "" {
		claims.ATH = DPoPAccessTokenHash(opts.AccessToken)
	}
	iat := opts.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	claims.IssuedAt = iat.Unix()
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("identity: DPoP proof payload: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(JWTTypeDPoPProof))
	if err != nil {
		return "", fmt.Errorf("%w: DPoP signer: %v", ErrKeyConversion, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("%w: signing DPoP proof: %v", ErrKeyConversion, err)
	}
	return jws.CompactSerialize()
}

// DPoPAccessTokenHash is the ath claim for accessToken:
// BASE64URL(SHA-256(ASCII(accessToken))) without padding (RFC 9449 §4.2).
func DPoPAccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// dpopTargetURI is the htu of uri: uri without query and fragment. uri
// must be an absolute http or https URI.
func dpopTargetURI(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" || (!strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) {
		return "", fmt.Errorf("identity: DPoP proof needs an absolute http(s) URI, not %q", redactURL(uri))
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.String(), nil
}

// AuthorizeRequest prepares req to present a DPoP-bound access token
// (RFC 9449 §7.1): Authorization "DPoP <accessToken>" and a DPoP header
// with a proof for req's method and URL that carries the token's ath and
// the remembered nonce of req's server. It replaces any earlier
// Authorization and DPoP headers of req.
func (k *DPoPKey) AuthorizeRequest(req *http.Request, accessToken string) error {
	if accessToken == "" {
		return fmt.Errorf("%w: a DPoP request needs an access token", ErrMissingToken)
	}
	proof, err := k.Proof(DPoPProofOptions{Method: req.Method, URI: req.URL.String(), AccessToken: accessToken})
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", AuthSchemeDPoP+" "+accessToken)
	req.Header.Set(HTTPHeaderDPoP, proof)
	return nil
}

// errNoDPoPKey is returned by [DoDPoPRequest] given a nil key.
var errNoDPoPKey = errors.New("identity: no DPoP key")

// DoDPoPRequest sends req to a protected resource with a DPoP-bound access
// token (see [DPoPKey.AuthorizeRequest]) on client (nil: a default
// client) under ctx, following redirects only on the same host so the
// token stays there. A DPoP-Nonce in the response is remembered for the
// server. When the server answers 401 with a DPoP challenge
// error="use_dpop_nonce" and a DPoP-Nonce (RFC 9449 §9), the request is
// sent once more with a new proof carrying that nonce; this needs
// req.GetBody when req has a body (as [http.NewRequest] sets for in-memory
// bodies), otherwise the 401 is returned. req itself is not modified. The
// caller closes the response body.
func DoDPoPRequest(ctx context.Context, client *http.Client, key *DPoPKey, req *http.Request, accessToken string) (*http.Response, error) {
	if key == nil {
		return nil, errNoDPoPKey
	}
	client = sameHostClient(client)
	resp, err := sendDPoP(ctx, client, key, req, accessToken, req.Body)
	if err != nil {
		return nil, err
	}
	if !key.observeResponse(req.URL.String(), resp.StatusCode, resp.Header, nil) || (req.Body != nil && req.GetBody == nil) {
		return resp, nil
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	resp.Body.Close()
	resp, err = sendDPoP(ctx, client, key, req, accessToken, body)
	if err != nil {
		return nil, err
	}
	key.observeResponse(req.URL.String(), resp.StatusCode, resp.Header, nil)
	return resp, nil
}

// sendDPoP sends a copy of req with body, authorized by key.
func sendDPoP(ctx context.Context, client *http.Client, key *DPoPKey, req *http.Request, accessToken string, body io.ReadCloser) (*http.Response, error) {
	r := req.Clone(ctx)
	r.Body = body
	if err := key.AuthorizeRequest(r, accessToken); err != nil {
		return nil, err
	}
	return client.Do(r)
}

// observeResponse remembers the DPoP-Nonce of a response from uri and
// reports whether the response asks to retry with it: status 400 or 401,
// the error use_dpop_nonce in the JSON body (token endpoint, RFC 9449 §8)
// or a DPoP challenge (resource server, RFC 9449 §9), and a nonce.
func (k *DPoPKey) observeResponse(uri string, status int, header http.Header, body []byte) bool {
	nonce := header.Get(HTTPHeaderDPoPNonce)
	if nonce == "" {
		return false
	}
	k.RememberNonce(uri, nonce)
	if status != http.StatusBadRequest && status != http.StatusUnauthorized {
		return false
	}
	if pe := protocolErrorFromBody(status, header, body); pe != nil && pe.Code == ErrorUseDPoPNonce {
		return true
	}
	return dpopChallengeError(header) == ErrorUseDPoPNonce
}

// dpopChallengeError returns the error parameter of a DPoP
// WWW-Authenticate challenge, "" when there is none.
func dpopChallengeError(header http.Header) string {
	for _, v := range header.Values("WWW-Authenticate") {
		scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		if strings.EqualFold(scheme, AuthSchemeDPoP) {
			return challengeParams(v)["error"]
		}
	}
	return ""
}

// setProofHeader adds a token-request proof (no ath) for a POST to
// address to header.
func (k *DPoPKey) setProofHeader(header http.Header, address string) error {
	proof, err := k.Proof(DPoPProofOptions{Method: http.MethodPost, URI: address})
	if err != nil {
		return err
	}
	header.Set(HTTPHeaderDPoP, proof)
	return nil
}
