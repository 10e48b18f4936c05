package caddyidentity

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ServeHTTP runs the request through the stages Provision built, in
// order (doc.go has the map). Each stage either passes the request on or
// returns a rejection, which refuse (rejection.go) renders; the login
// stage alone answers requests of its own (sign-in, sessions).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.strip.run(r)
	c, rej := h.credential.find(r)
	if h.login != nil {
		if done, err := h.login.serve(w, r, next, c.offered); done {
			return err
		}
	}
	if rej != nil {
		return h.refuser.refuse(w, r, rej)
	}
	if c.anonymous {
		h.handOn.anonymous(r)
		return next.ServeHTTP(w, r)
	}
	e, rej := h.auth.authenticate(r.Context(), &c)
	if rej == nil {
		rej = h.certs.check(r, &c, e)
	}
	if rej == nil {
		rej = h.dpop.check(w, r, &c, e)
	}
	if rej == nil {
		rej = h.policy.check(&c, e)
	}
	var up upstreamHeader
	if rej == nil {
		up, rej = h.upstream.token(r.Context(), &c, e)
	}
	if rej != nil {
		return h.refuser.refuse(w, r, rej)
	}
	h.handOn.run(r, &c, e, up)
	return next.ServeHTTP(w, r)
}
