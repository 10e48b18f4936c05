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
// Configuration is the Handler struct in module.go (its JSON tags and doc
// comments are the documentation; caddyfile.go only parses into it).
// Provision compiles it, once, into the handler's runtime state; Cleanup
// releases what Provision took (shared providers, caches, the replay
// cache, the store, introspection and upstream token clients). ServeHTTP (handler.go) then runs these steps in order, each
// of which either passes the request on or returns a rejection:
//
//  1. Strip (handler.go, stripIdentityHeaders): the identity headers a
//     client sent are removed, from the header, the trailer and the
//     Connection options, whatever the outcome.
//  2. Credential (handler.go, extractToken; cutScheme): exactly one token
//     from the configured sources (header with its scheme, cookie, query
//     parameter), or the DPoP scheme (dpop.go); anything ambiguous is
//     invalid_request. No token: the token an earlier identity handler of
//     the route accepted (stacked.go), else optional passes anonymously,
//     else 401. A token in TLS early data with an unsafe method gets 425
//     (inEarlyData).
//  3. Login (login.go serve, with login_flow.go, logout.go, session.go),
//     only with login configured, between credential and authentication:
//     its callback, logout, back-channel logout and userinfo paths are
//     answered there; a request without a token but with a valid session
//     cookie is let through from the session (login_flow.go pass, which
//     applies the same policy and identity headers); a browser navigation
//     without either is sent to sign in. Everything else goes on below.
//  4. Authenticate (introspect.go verify): a JWT by handler.go
//     authenticate, through the token cache (tokencache.go) and the
//     identity.Validator, its claims completed
//     from the userinfo endpoint when configured (userinfo.go enrich), or
//     an opaque token by introspection (introspect.go, with its own
//     cache). The cache entry (placeholders.go newEntry) holds everything
//     a cache hit needs: identity headers, placeholders, bindings and the
//     policy's verdict.
//  5. Bindings: for the Bearer scheme (handler.go authenticateBearer) a
//     DPoP-bound token is refused and a certificate-bound one needs its
//     client certificate (mtls.go, the certBinding stage); for the DPoP
//     scheme (dpop.go authenticateDPoP, with the dpopStage that owns the
//     scheme's source, replay cache and challenges) the token must be
//     key-bound, the certificate present when bound too, and the proof
//     valid (algorithms and iat window: dpop_options.go; with server
//     nonces a current nonce: dpop_nonce.go) and unseen (in-process
//     replay cache, or the shared store: store.go).
//  6. Policy (policy.go authorize): require_scope / require_claim of the
//     token's issuer, evaluated when the entry is built and cached with it
//     (e.denied); ServeHTTP turns a refusal into a 403 (rejection.go
//     denial).
//  7. Hand-on (handler.go pass and setIdentity; dpop.go passDPoP): the
//     identity headers and placeholders are set, the token (and DPoP
//     proof) removed unless forward_token, and kept for a later identity
//     handler (stacked.go). With upstream_token (upstream_token.go) the
//     upstream's own token is obtained first and its header set last.
//
// Every refusal along the way is a rejection value (rejection.go): the
// step that decides returns it and refuse alone renders it, challenge(s)
// in the scheme the client used, status, log line, metrics (metrics.go),
// the per-minute summary (summary.go) and the 503 logging rule. Sign-in
// errors of the login endpoints are pages, not challenges: login.go fail.
//
// Outside the request path: providers.go shares one discovery/JWKS
// provider per issuer between handlers and config reloads, admin.go serves
// the issuers' state on the admin API, command.go holds the caddy identity
// subcommands.
package caddyidentity
