package caddyidentity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Values of assertion_audience besides an absolute URL: the aud of the
// client assertions the handler signs with key_file (private_key_jwt, RFC
// 7523). Providers disagree on what they accept: Okta wants the endpoint
// called, Entra ID its token endpoint, Auth0 and draft-ietf-oauth-rfc7523bis
// the issuer identifier; Keycloak and oidc-provider take any of them.
const (
	// assertionAudienceEndpoint is the URL of the endpoint called (the
	// default, RFC 7523 §3).
	assertionAudienceEndpoint = "endpoint"
	// assertionAudienceIssuer is the issuer identifier, a single string:
	// the value that names one authorization server whatever endpoint
	// URLs its metadata lists (the 2025 "audience injection" finding).
	assertionAudienceIssuer = "issuer"
	// assertionAudienceTokenEndpoint is the token endpoint's URL (OpenID
	// Connect Core §9), from the issuer's discovery document when the
	// endpoint called is another one.
	assertionAudienceTokenEndpoint = "token_endpoint"
)

// checkAssertionAudience checks an assertion_audience value: empty, one of
// the names above or an absolute https URL (http only on loopback or with
// insecure_allow_http). It needs key_file (client_key_file in login): the
// other client authentications sign nothing. A placeholder is checked once
// replaced.
func checkAssertionAudience(value, keyFile string, allowHTTP bool) error {
	switch value {
	case "":
		return nil
	case assertionAudienceEndpoint, assertionAudienceIssuer, assertionAudienceTokenEndpoint:
	default:
		if !strings.Contains(value, "{") && !httpsURL(value, allowHTTP) {
			return fmt.Errorf("assertion_audience %q must be %s, %s, %s or an absolute https URL (http only on loopback or with insecure_allow_http)",
				value, assertionAudienceEndpoint, assertionAudienceIssuer, assertionAudienceTokenEndpoint)
		}
	}
	if keyFile == "" {
		return errors.New("assertion_audience applies to key_file or client_key_file (private_key_jwt) only: a client secret signs no assertion")
	}
	return nil
}

// assertionAudience returns the aud that value gives the assertions sent
// to an endpoint of issuer ("" for the endpoint called, the library's
// default); a URL has its placeholders resolved and is checked again.
// token_endpoint is left to the caller, who knows whether the endpoint
// called is the token endpoint.
func assertionAudience(repl *caddy.Replacer, value, issuer string, allowHTTP bool) (string, error) {
	switch value {
	case "", assertionAudienceEndpoint, assertionAudienceTokenEndpoint:
		return "", nil
	case assertionAudienceIssuer:
		if strings.Contains(issuer, identity.TenantPlaceholder) {
			return "", errors.New("assertion_audience issuer: an issuer template names no single issuer")
		}
		return issuer, nil
	}
	aud := repl.ReplaceKnown(value, "")
	if err := checkAssertionAudience(aud, "key_file", allowHTTP); err != nil {
		return "", err
	}
	return aud, nil
}
