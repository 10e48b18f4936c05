package caddyidentity

// Identity handlers stack: a site-wide one with a stricter one for some
// paths. The later one finds no token when the earlier one accepted and
// removed it, or finds the earlier one's upstream token in its place, so
// the earlier one leaves the token it accepted in a request variable
// (handOn.run), and the later one's credential stage takes it from there,
// before looking at any header, and checks the same token against its own
// issuers, audiences and rules: one request, one caller, never the proxy's
// own service token. The DPoP proof that the earlier handler verified is
// not verified again (its jti is spent): the token it bound is the one
// checked here. The later handler's upstream_token, if any, is obtained
// for it and replaces the earlier one's.

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
