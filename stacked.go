package caddyidentity

// Identity handlers stack: a site-wide one with a stricter one for some
// paths. The later one finds no token when the earlier one accepted and
// removed it, so the earlier one leaves it in a request variable
// (handOn.run), and the later one's credential stage takes it from there
// and checks the same token against its own issuers, audiences and rules
// instead of refusing the request as without a token. The DPoP proof that
// the earlier handler verified is not verified again (its jti is spent):
// the token it bound is the one checked here. No upstream token is
// obtained for it (upstreamStage.token).

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
