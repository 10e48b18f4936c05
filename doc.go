// Package caddyidentity is the Caddy v2 HTTP handler "identity": it protects
// any upstream with OAuth 2.0 / OpenID Connect bearer tokens (JWT access
// tokens verified against the issuer's published keys, opaque ones by the
// issuer's RFC 7662 introspection endpoint) and forwards the
// verified identity to the upstream as request headers and placeholders.
//
// Module ID: http.handlers.identity. Caddyfile directive: identity.
//
// # How a request flows
//
// Configuration is the Handler struct in module.go: its JSON tags and doc
// comments are the documentation, its check functions the validation.
// caddyfile.go only parses into it (it calls some of those checks early,
// so that `caddy adapt` points at the offending line). Provision builds,
// once, one stage per concern; each is a type in its own file that owns
// its configuration, its state and its cleanup, and Cleanup has each
// release what it took. ServeHTTP (handler.go) runs them in this order;
// following a request, each stage's file is entered once:
//
//  1. Strip (strip.go, stripStage): the identity headers a client sent are
//     removed, from the header, the trailer and the Connection options,
//     whatever the outcome.
//  2. Credential (credential.go, credentialStage.find): exactly one token
//     from the configured sources (header with its scheme, cookie, query
//     parameter), or the DPoP scheme with its proof header; anything
//     ambiguous is invalid_request. No token: the token an earlier
//     identity handler of the route accepted (stacked.go), else optional
//     lets the request through anonymously, else 401. Then the checks of
//     the request's form: 425 for a token in TLS early data with an unsafe
//     method, the token's size, a readable DPoP proof. The result is a
//     credential value every later stage reads.
//  3. Login (login.go serve, with login_flow.go, logout.go, session.go),
//     only with login configured: its callback, logout, back-channel
//     logout and userinfo paths are answered there; a request that offers
//     no token but has a valid session cookie is let through from the
//     session (login_flow.go pass, which applies the same policy and
//     identity headers); a browser navigation without either is sent to
//     sign in. Everything else goes on below. With session_store redis
//     the session itself is in the shared store and the cookie holds its
//     id (session_store.go).
//  4. Authenticate (authenticate.go, authenticator): a JWT through the
//     token cache (tokencache.go) and the identity.Validator, its claims
//     completed from the userinfo endpoint when configured (userinfo.go),
//     or an opaque token by introspection (introspect.go, with its own
//     cache, whose answer userinfo completes the same way;
//     introspect_jwt.go: private_key_jwt and RFC 9701 signed answers;
//     introspect_order.go: several introspecting issuers, asked in
//     introspection_order; introspect_breaker.go: an endpoint in outage
//     probed once a second, not waited for; store_cache.go: introspection and userinfo
//     answers shared through the store). The result is a cache entry (placeholders.go) that holds
//     everything a cache hit needs: identity headers, placeholders,
//     bindings and the policy's verdict. The token must fit its scheme: a
//     DPoP-bound token is refused as a bearer token, a DPoP-scheme token
//     must be bound. The authenticator also holds the issuers' shared key
//     sources (providers.go providerSet).
//  5. Certificate binding (mtls.go, certBinding.check): a certificate-bound
//     token (cnf.x5t#S256) needs its client certificate.
//  6. DPoP proof (dpop.go, dpopStage.check): for the DPoP scheme, the proof
//     must be valid for this request and the token's key (algorithms and
//     iat window: dpop_options.go; with server nonces a current nonce,
//     renewed on the response when it ages: dpop_nonce.go) and unseen (the
//     process's replay cache, or the shared store: store.go).
//  7. Policy (policy.go, policyStage.check): require_scope / require_claim
//     of the token's issuer, evaluated when the entry is built and cached
//     with it (e.denied); a refusal is a 403.
//  8. Upstream token (upstream_token.go, upstreamStage.token), only with
//     upstream_token: the upstream's own token, obtained before anything
//     of the request is changed.
//  9. Hand-on (handon.go, handOn.run): the identity headers and
//     placeholders are set, the token (and DPoP proof) removed unless
//     forward_token and kept for a later identity handler (stacked.go),
//     the upstream token's header set, the request counted.
//
// Every refusal along the way is a rejection value (rejection.go): the
// stage that decides returns it and the refuser alone renders it:
// challenge(s) in the scheme the client used (it owns the Bearer, DPoP
// and proof-check challenges), status, log line, metrics (metrics.go
// meter), the per-minute summary (summary.go) and the 503 logging rule.
// Sign-in errors of the login endpoints are pages, not challenges:
// login.go fail.
//
// A new concern is a new stage: a type in a file of its own, built in
// Provision, released in Cleanup, and one call in ServeHTTP, in its place
// in the order above.
//
// Outside the request path: providers.go shares one discovery/JWKS
// provider per issuer between handlers and config reloads, admin.go serves
// the issuers' state on the admin API, command.go holds the caddy identity
// subcommands.
package caddyidentity
