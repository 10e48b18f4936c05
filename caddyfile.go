package caddyidentity

import (
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("identity", parseCaddyfile)
	// Like basic_auth: after header, rewrite, uri, try_files and
	// request_body, before forward_auth, request_header, handle, route and
	// reverse_proxy, which can use its placeholders.
	httpcaddyfile.RegisterDirectiveOrder("identity", httpcaddyfile.Before, "basic_auth")
}

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	identity [<matcher>] {
//	    issuer        <url> [{
//	        jwks_url      <url>
//	        jwks_file     <path>
//	        jwks_uri_base <url-prefix...>
//	        alias         <iss...>
//	        tenants       <tid...> | any
//	        audience      <aud...> | any
//	        authorized_party       <client_id...>
//	        authorized_party_claim <claim.path>
//	        algorithms    <alg...>
//	        token_type    <typ...>
//	        require_scope <scope...>
//	        require_claim <claim.path> [<value...>]
//	        insecure_allow_http
//	        introspection {
//	            endpoint      <url>
//	            client_id     <id>
//	            client_secret <secret>
//	            auth_method   client_secret_basic | client_secret_post
//	            cache_ttl     <duration>
//	        }
//	    }]
//	    jwks_url       <url>
//	    jwks_file      <path>
//	    insecure_allow_http
//	    audience       <aud...> | any
//	    authorized_party       <client_id...>
//	    authorized_party_claim <claim.path>
//	    algorithms     <alg...>
//	    token_type     <typ...>
//	    leeway         <duration>
//	    max_age        <duration>
//	    token_from     header <name> [<scheme>] | cookie <name> | query <param>
//	    require_scope  <scope...>
//	    require_claim  <claim.path> [<value...>]
//	    claim_header   <claim.path> <Header-Name>
//	    strip_header   <Header-Name...>
//	    optional
//	    forward_token | strip_token
//	    realm          <name>
//	    cache_size     <units>
//	    max_token_size <size>
//	    refresh_wait   <duration>
//	    dpop           off | allow | require
//	    cert_binding   check | off
//	}
//
// issuer may be repeated; the block form gives an issuer its own keys,
// audience, algorithms and extra rules, other spellings of its identifier
// (alias), and, for an issuer template containing {tenantid}, the accepted
// tenants, and the URL prefixes besides the issuer's own where its
// discovery document may place jwks_uri (jwks_uri_base). The top-level jwks_url, jwks_file
// and insecure_allow_http apply to the only issuer and need exactly one.
// audience, authorized_party, alias, tenants, jwks_uri_base, algorithms, token_type,
// require_scope, require_claim, claim_header, strip_header and token_from
// may be repeated and add up. dpop (default allow) says whether tokens may
// come with the DPoP scheme and a proof, and whether they must;
// cert_binding (default check) whether a token bound to a client
// certificate needs that certificate on the TLS connection. introspection
// (in one issuer block at most) accepts that issuer's opaque access tokens
// by asking its RFC 7662 introspection endpoint.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var (
		topJWKSURL, topJWKSFile string
		topAllowHTTP, seenToken bool
		leewaySeen              bool
	)
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			is, err := parseIssuer(d)
			if err != nil {
				return err
			}
			h.Issuers = append(h.Issuers, is)
		case "jwks_url":
			if err := parseOnce(d, &topJWKSURL); err != nil {
				return err
			}
		case "jwks_file":
			if err := parseOnce(d, &topJWKSFile); err != nil {
				return err
			}
		case "insecure_allow_http":
			if d.NextArg() {
				return d.ArgErr()
			}
			topAllowHTTP = true
		case "audience":
			if err := parseAudience(d, &h.Audiences, &h.AnyAudience); err != nil {
				return err
			}
		case "authorized_party":
			if err := appendArgs(d, &h.AuthorizedParties); err != nil {
				return err
			}
		case "authorized_party_claim":
			if err := parseOnce(d, &h.AuthorizedPartyClaim); err != nil {
				return err
			}
		case "algorithms":
			if err := appendArgs(d, &h.Algorithms); err != nil {
				return err
			}
		case "token_type":
			if err := appendArgs(d, &h.TokenTypes); err != nil {
				return err
			}
		case "leeway":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			if leewaySeen {
				return d.Err("leeway given twice")
			}
			leewaySeen = true
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("leeway: %v", err)
			}
			cd := caddy.Duration(dur)
			h.Leeway = &cd
		case "max_age":
			if h.MaxAge != 0 {
				return d.Err("max_age given twice")
			}
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("max_age: want a positive duration, got %q", s)
			}
			h.MaxAge = caddy.Duration(dur)
		case "refresh_wait":
			if h.RefreshWait != 0 {
				return d.Err("refresh_wait given twice")
			}
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("refresh_wait: want a positive duration, got %q", s)
			}
			h.RefreshWait = caddy.Duration(dur)
		case "token_from":
			ts, err := parseTokenFrom(d)
			if err != nil {
				return err
			}
			h.TokenSources = append(h.TokenSources, ts)
		case "require_scope":
			if err := appendArgs(d, &h.RequireScopes); err != nil {
				return err
			}
		case "require_claim":
			r, err := parseClaimRule(d)
			if err != nil {
				return err
			}
			h.RequireClaims = append(h.RequireClaims, r)
		case "claim_header":
			var ch ClaimHeader
			if !d.AllArgs(&ch.Claim, &ch.Header) {
				return d.ArgErr()
			}
			h.ClaimHeaders = append(h.ClaimHeaders, ch)
		case "strip_header":
			if err := appendArgs(d, &h.StripHeaders); err != nil {
				return err
			}
		case "optional":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Optional = true
		case "forward_token", "strip_token":
			if d.NextArg() {
				return d.ArgErr()
			}
			if seenToken {
				return d.Err("forward_token and strip_token are exclusive and may appear once")
			}
			seenToken = true
			h.ForwardToken = d.Val() == "forward_token"
		case "realm":
			if err := parseOnce(d, &h.Realm); err != nil {
				return err
			}
		case "cache_size":
			if h.CacheSize != nil {
				return d.Err("cache_size given twice")
			}
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return d.Errf("cache_size: want a non-negative integer, got %q", s)
			}
			h.CacheSize = &n
		case "max_token_size":
			if h.MaxTokenSize != 0 {
				return d.Err("max_token_size given twice")
			}
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > MaxMaxTokenSize {
				return d.Errf("max_token_size: want a size between 1 byte and 1MiB, got %q", s)
			}
			h.MaxTokenSize = int(n)
		case "dpop":
			if h.DPoP != "" {
				return d.Err("dpop given twice")
			}
			if !d.AllArgs(&h.DPoP) {
				return d.ArgErr()
			}
			switch h.DPoP {
			case "off", "allow", "require":
			default:
				return d.Errf("dpop: want off, allow or require, got %q", h.DPoP)
			}
		case "cert_binding":
			if h.CertBinding != "" {
				return d.Err("cert_binding given twice")
			}
			if !d.AllArgs(&h.CertBinding) {
				return d.ArgErr()
			}
			switch h.CertBinding {
			case "check", "off":
			default:
				return d.Errf("cert_binding: want check or off, got %q", h.CertBinding)
			}
		default:
			return d.Errf("unrecognized identity option %q", d.Val())
		}
	}

	if topJWKSURL != "" || topJWKSFile != "" || topAllowHTTP {
		if len(h.Issuers) != 1 {
			return d.Err("top-level jwks_url, jwks_file and insecure_allow_http need exactly one issuer; with several, put them in each issuer's block")
		}
		is := &h.Issuers[0]
		if (topJWKSURL != "" || topJWKSFile != "") && (is.JWKSURL != "" || is.JWKSFile != "") {
			return d.Err("keys given both at top level and in the issuer block")
		}
		if topJWKSURL != "" {
			is.JWKSURL = topJWKSURL
		}
		if topJWKSFile != "" {
			is.JWKSFile = topJWKSFile
		}
		is.InsecureAllowHTTP = is.InsecureAllowHTTP || topAllowHTTP
	}
	return nil
}

// parseIssuer parses `issuer <url> [{ ... }]`.
func parseIssuer(d *caddyfile.Dispenser) (IssuerConfig, error) {
	var is IssuerConfig
	if !d.NextArg() {
		return is, d.ArgErr()
	}
	is.Issuer = d.Val()
	if d.NextArg() {
		return is, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "jwks_url":
			if err := parseOnce(d, &is.JWKSURL); err != nil {
				return is, err
			}
		case "jwks_file":
			if err := parseOnce(d, &is.JWKSFile); err != nil {
				return is, err
			}
		case "jwks_uri_base":
			if err := appendArgs(d, &is.JWKSURIBases); err != nil {
				return is, err
			}
		case "insecure_allow_http":
			if d.NextArg() {
				return is, d.ArgErr()
			}
			is.InsecureAllowHTTP = true
		case "audience":
			if err := parseAudience(d, &is.Audiences, &is.AnyAudience); err != nil {
				return is, err
			}
		case "alias":
			if err := appendArgs(d, &is.Aliases); err != nil {
				return is, err
			}
		case "tenants":
			if err := parseTenants(d, &is.Tenants, &is.AnyTenant); err != nil {
				return is, err
			}
		case "authorized_party":
			if err := appendArgs(d, &is.AuthorizedParties); err != nil {
				return is, err
			}
		case "authorized_party_claim":
			if err := parseOnce(d, &is.AuthorizedPartyClaim); err != nil {
				return is, err
			}
		case "algorithms":
			if err := appendArgs(d, &is.Algorithms); err != nil {
				return is, err
			}
		case "token_type":
			if err := appendArgs(d, &is.TokenTypes); err != nil {
				return is, err
			}
		case "require_scope":
			if err := appendArgs(d, &is.RequireScopes); err != nil {
				return is, err
			}
		case "require_claim":
			r, err := parseClaimRule(d)
			if err != nil {
				return is, err
			}
			is.RequireClaims = append(is.RequireClaims, r)
		case "introspection":
			if is.Introspection != nil {
				return is, d.Err("introspection given twice")
			}
			c, err := parseIntrospection(d)
			if err != nil {
				return is, err
			}
			is.Introspection = c
		default:
			return is, d.Errf("unrecognized option %q in issuer block", d.Val())
		}
	}
	return is, nil
}

// parseIntrospection parses `introspection { ... }` in an issuer block.
// Each option may appear once.
func parseIntrospection(d *caddyfile.Dispenser) (*IntrospectionConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	c := new(IntrospectionConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "endpoint":
			if err := parseOnce(d, &c.Endpoint); err != nil {
				return nil, err
			}
		case "client_id":
			if err := parseOnce(d, &c.ClientID); err != nil {
				return nil, err
			}
		case "client_secret":
			if err := parseOnce(d, &c.ClientSecret); err != nil {
				return nil, err
			}
		case "auth_method":
			if err := parseOnce(d, &c.AuthMethod); err != nil {
				return nil, err
			}
			switch c.AuthMethod {
			case "client_secret_basic", "client_secret_post":
			default:
				return nil, d.Errf("auth_method: want client_secret_basic or client_secret_post, got %q", c.AuthMethod)
			}
		case "cache_ttl":
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			if c.CacheTTL != nil {
				return nil, d.Err("cache_ttl given twice")
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur < 0 {
				return nil, d.Errf("cache_ttl: want a non-negative duration, got %q", s)
			}
			ttl := caddy.Duration(dur)
			c.CacheTTL = &ttl
		default:
			return nil, d.Errf("unrecognized option %q in introspection block", d.Val())
		}
	}
	if c.ClientID == "" {
		return nil, d.Err("introspection needs client_id")
	}
	return c, nil
}

// parseAudience parses `audience <aud...>` or `audience any`.
func parseAudience(d *caddyfile.Dispenser, auds *[]string, anyAud *bool) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	if slices.Contains(args, "any") {
		if len(args) > 1 || len(*auds) > 0 {
			return d.Err("`audience any` cannot be combined with audience values")
		}
		*anyAud = true
		return nil
	}
	if *anyAud {
		return d.Err("`audience any` cannot be combined with audience values")
	}
	*auds = append(*auds, args...)
	return nil
}

// parseTenants parses `tenants <tid...>` or `tenants any`, like audience.
func parseTenants(d *caddyfile.Dispenser, tenants *[]string, anyTenant *bool) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	isAny := len(args) == 1 && args[0] == "any"
	if (!isAny && (*anyTenant || slices.Contains(args, "any"))) || (isAny && len(*tenants) > 0) {
		return d.Err("`tenants any` cannot be combined with tenant IDs")
	}
	if isAny {
		*anyTenant = true
		return nil
	}
	*tenants = append(*tenants, args...)
	return nil
}

// parseOnce parses an option with exactly one argument that may appear once.
func parseOnce(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if *dst != "" {
		return d.Errf("%s given twice", name)
	}
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

// parseTokenFrom parses `token_from header <name> [<scheme>] | cookie
// <name> | query <param>`.
func parseTokenFrom(d *caddyfile.Dispenser) (TokenSource, error) {
	args := d.RemainingArgs()
	if len(args) < 2 {
		return TokenSource{}, d.ArgErr()
	}
	ts := TokenSource{From: args[0], Name: args[1]}
	switch ts.From {
	case "header":
		if len(args) > 3 {
			return ts, d.ArgErr()
		}
		if len(args) == 3 {
			ts.Scheme = args[2]
		}
	case "cookie", "query":
		if len(args) != 2 {
			return ts, d.ArgErr()
		}
	default:
		return ts, d.Errf("token_from: want header, cookie or query, got %q", ts.From)
	}
	return ts, nil
}

// parseClaimRule parses `require_claim <claim.path> [<value...>]`.
func parseClaimRule(d *caddyfile.Dispenser) (ClaimRule, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return ClaimRule{}, d.ArgErr()
	}
	return ClaimRule{Claim: args[0], Values: args[1:]}, nil
}

// appendArgs appends the remaining arguments (at least one) to dst.
func appendArgs(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
