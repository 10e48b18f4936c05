package identitytest

// WithOpaqueAccessTokens makes the access tokens the issuer hands out
// opaque random strings instead of JWTs, as many providers do for
// tokens without a resource: a resource server can then check them only
// by introspection (which answers the same claims a JWT would carry).
func WithOpaqueAccessTokens() Option {
	return func(c *config) { c.opaqueTokens = true }
}
