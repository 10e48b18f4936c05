// Package integration holds the end-to-end tests of caddy-identity against a
// real, OpenID Certified provider: panva's oidc-provider, run with Node.js from
// provider.mjs in this directory, and Caddy with the identity handler loaded
// in-process.
//
// The package has no API; everything lives in its _test.go files. Its
// TestMain runs `npm ci` in this directory when the node modules are
// missing; see README.md for the harness helpers.
package integration
