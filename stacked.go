package caddyidentity

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// stackedVar is the request variable where an identity handler that
// removed the token it accepted leaves it for the next identity handler of
// the route.
const stackedVar = "identity.accepted_token"

// stackedToken is a token an identity handler accepted and removed from
// the request. dpopJKT is set when it came with the DPoP scheme and a
// proof of that key, which that handler verified (and spent) for this
// request.
type stackedToken struct {
	token   string
	dpopJKT string
}

// String hides the token from {http.vars.*} placeholders and logs.
func (*stackedToken) String() string { return "(token accepted by an identity handler)" }

// serveStacked authenticates a request whose token an earlier identity
// handler of the route accepted and removed: identity handlers stack, a
// site-wide one with a stricter one for some paths, and the later one
// checks the same token against its own issuers, audiences and rules
// instead of refusing the request as without a token. The DPoP proof that
// the earlier handler verified is not verified again (its jti is spent):
// the token it bound is the one checked here.
func (rt *runtime) serveStacked(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, at *stackedToken) error {
	e, rej := rt.authenticateStacked(r, at)
	if rej.reason == reasonNone && e.denied != reasonNone {
		rej = denial(e, at.token, false)
	}
	if rej.reason != reasonNone {
		return rt.refuse(w, r, rej)
	}
	rt.pass(r, e, nil, at.token)
	return next.ServeHTTP(w, r)
}

// authenticateStacked verifies the token an earlier identity handler
// accepted, and its bindings as far as this handler can still check them.
func (rt *runtime) authenticateStacked(r *http.Request, at *stackedToken) (*cacheEntry, rejection) {
	token := at.token
	if len(token) > rt.maxTokenSize {
		return nil, rejection{reason: reasonTooLarge}
	}
	e, rsn, err := rt.verify(r.Context(), token)
	if rsn != reasonNone {
		return nil, rejection{reason: rsn, err: err, token: token}
	}
	if at.dpopJKT == "" {
		if e.dpopBound {
			return nil, rejection{reason: reasonDPoPBoundAsBearer, token: token}
		}
		if rt.dpop.mode == dpopRequire {
			return nil, rejection{reason: reasonDPoPRequired, token: token}
		}
	}
	if !rt.certs.holds(r, e) {
		return nil, rejection{reason: reasonCertBinding, token: token}
	}
	return e, rejection{}
}
