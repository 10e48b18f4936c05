package caddyidentity

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
