package identitytest

import (
	"net/http"
	"slices"
	"strings"
)

// WithOpaqueAccessTokens makes the access tokens the issuer hands out
// opaque random strings instead of JWTs, as many providers do for
// tokens without a resource: a resource server can then check them only
// by introspection (which answers the same claims a JWT would carry).
func WithOpaqueAccessTokens() Option {
	return func(c *config) { c.opaqueTokens = true }
}

// IntrospectionJWTMediaType is the media type of signed introspection
// responses (RFC 9701 §5), which the issuer answers when a client's Accept
// header names it.
const IntrospectionJWTMediaType = "application/token-introspection+jwt"

// writeIntrospection writes the introspection response resp for client:
// plain JSON, or an RFC 9701 JWT when the request accepts one, signed with
// the current key of the first algorithm, typ token-introspection+jwt, iss
// the issuer, aud the client, iat now and resp as token_introspection.
func (i *Issuer) writeIntrospection(w http.ResponseWriter, r *http.Request, client string, resp map[string]any) {
	if !slices.ContainsFunc(r.Header.Values("Accept"), func(v string) bool { return strings.Contains(v, IntrospectionJWTMediaType) }) {
		writeJSONBody(w, http.StatusOK, resp)
		return
	}
	signed, err := i.MintToken(map[string]any{"aud": client, "token_introspection": resp, "sub": nil, "exp": nil},
		Header("typ", "token-introspection+jwt"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", IntrospectionJWTMediaType)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(signed))
}
