package identitytest

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// dpopProofAlgorithms are the proof algorithms the issuer accepts.
var dpopProofAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

// errNoDPoP means the request carries no DPoP proof.
var errNoDPoP = errors.New("identitytest: no DPoP proof")

// checkDPoP verifies the DPoP proof of r as far as a test provider needs
// (RFC 9449 §4.3): exactly one DPoP header, typ dpop+jwt, an asymmetric
// alg, a public jwk that verifies the signature, htm and htu of this
// request, iat within a minute, a jti, and ath of accessToken when it is
// set. It returns the RFC 7638 thumbprint of the proof key, or errNoDPoP.
func (i *Issuer) checkDPoP(r *http.Request, accessToken string) (string, error) {
	values := r.Header.Values("DPoP")
	switch len(values) {
	case 0:
		return "", errNoDPoP
	case 1:
	default:
		return "", errors.New("more than one DPoP header")
	}
	jws, err := jose.ParseSigned(values[0], dpopProofAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return "", errors.New("not a compact JWS")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders["typ"].(string); typ != "dpop+jwt" {
		return "", errors.New("typ is not dpop+jwt")
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return "", errors.New("no public jwk header")
	}
	payload, err := jws.Verify(h.JSONWebKey.Key)
	if err != nil {
		return "", errors.New("signature")
	}
	var claims struct {
		ID     string `json:"jti"`
		Method string `json:"htm"`
		URI    string `json:"htu"`
		IAT    int64  `json:"iat"`
		ATH    string `json:"ath"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.ID == "" {
		return "", errors.New("claims")
	}
	if claims.Method != r.Method || claims.URI != i.srv.URL+r.URL.Path {
		return "", errors.New("htm or htu does not match the request")
	}
	if age := time.Since(time.Unix(claims.IAT, 0)); age > time.Minute || age < -time.Minute {
		return "", errors.New("iat outside a minute")
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if claims.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return "", errors.New("ath does not match the access token")
		}
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", errors.New("thumbprint")
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// presentedToken returns the live access token of a protected-resource
// request: "Bearer" for a bearer token, "DPoP" with a valid proof of the
// bound key for a DPoP-bound one (RFC 9449 §7). It returns nil and the
// WWW-Authenticate challenge otherwise.
func (i *Issuer) presentedToken(r *http.Request) (*issued, string) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	t := i.lookup(token)
	switch {
	case t == nil || t.refresh:
		return nil, `Bearer error="invalid_token", error_description="unknown or expired access token"`
	case t.jkt == "" && strings.EqualFold(scheme, "Bearer"):
		return t, ""
	case t.jkt == "" || !strings.EqualFold(scheme, "DPoP"):
		return nil, `DPoP error="invalid_token", error_description="the token must be presented with its own scheme"`
	}
	if jkt, err := i.checkDPoP(r, token); err != nil || jkt != t.jkt {
		return nil, `DPoP error="invalid_dpop_proof", error_description="no valid proof of the bound key"`
	}
	return t, ""
}
