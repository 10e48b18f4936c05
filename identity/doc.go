// Package identity is an object model for the endpoints of OAuth 2.0 and
// OpenID Connect: discovery, JSON Web Key Sets, JWT access-token and ID-token
// validation, and the protocol clients (token, userinfo, introspection,
// revocation, registration, device authorization, PAR), with DPoP (RFC 9449)
// proofs for clients and their verification for resource servers.
//
// It follows the ideas of Duende.IdentityModel and py-identity-model in
// idiomatic Go: every network call takes a [context.Context] and uses the
// caller's [*http.Client], every failure is an error usable with [errors.Is]
// and [errors.As], and every cache is a value that its owner closes. The
// package keeps no mutable state of its own.
//
// Defaults are strict: HTTPS outside loopback, an exact issuer, an audience,
// an algorithm allow-list without "none", keys never chosen by the token, and
// an "exp" claim.
package identity
