package caddyidentity

import (
	"errors"
	"slices"
	"strconv"
	"strings"

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
//	            client_secret <secret> | key_file <path>
//	            auth_method   client_secret_basic | client_secret_post | private_key_jwt
//	            assertion_audience endpoint | issuer | token_endpoint | <url>
//	            accept        json | jwt
//	            cache_ttl     <duration>
//	        }
//	        userinfo [{
//	            endpoint  <url>
//	            on_error  refuse | continue
//	            cache_ttl <duration>
//	        }]
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
//	    dpop           [off | allow | require] [{
//	        proof_algorithms <alg...>
//	        proof_max_age    <duration>
//	        proof_leeway     <duration>
//	        nonce {
//	            secret   <secret>
//	            lifetime <duration>
//	        }
//	    }]
//	    cert_binding   check | off
//	    introspection_order <issuer...>
//	    upstream_token client_credentials | exchange {
//	        issuer             <url>
//	        token_endpoint     <url>
//	        client_id          <id>
//	        client_secret      <secret>
//	        key_file           <path>
//	        assertion_audience endpoint | issuer | token_endpoint | <url>
//	        scopes             <scope...>
//	        resource           <uri...>
//	        audience           <aud...>
//	        header             <Header-Name>
//	        subject_token_type <type-uri>
//	        actor              client_credentials
//	    }
//	    login {
//	        issuer        <url>
//	        client_id     <id>
//	        client_secret <secret> | client_key_file <path>
//	        assertion_audience endpoint | issuer | token_endpoint | <url>
//	        scopes        <scope...>
//	        session_key   <base64>
//	        redirect_uri  <url>
//	        callback_path <path>
//	        logout_path   <path>
//	        backchannel_logout_path <path>
//	        userinfo_path <path>
//	        post_logout_redirect_uri <url>
//	        session_lifetime <duration>
//	        idle_timeout  <duration> | off
//	        forward_access_token
//	        userinfo
//	        session_store cookie | redis
//	    }
//	    store redis {
//	        address   <host:port>
//	        username  <name>
//	        password  <secret>
//	        db        <n>
//	        tls
//	        key_prefix <prefix>
//	        timeout   <duration>
//	        failure   fail_closed | fail_open_local
//	        caches    introspection userinfo
//	        cache_secret <secret>
//	    }
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
// come with the DPoP scheme and a proof, and whether they must; its block
// sets the accepted proof algorithms, the proof iat window and server
// nonces;
// cert_binding (default check) whether a token bound to a client
// certificate needs that certificate on the TLS connection. introspection
// accepts an issuer's opaque access tokens by asking its RFC 7662
// introspection endpoint (accept jwt: only RFC 9701 signed answers); with
// several issuers that have it, introspection_order names them all in the
// order they are asked. userinfo completes an issuer's tokens with the
// claims of its userinfo endpoint. upstream_token gives the upstream a
// token of its own audience: the handler's client-credentials token, or
// the caller's token exchanged (RFC 8693). login signs browser
// users in with OpenID Connect; session_key and scopes may be repeated
// and add up (the first key seals, all open). store keeps the DPoP
// proofs already accepted and the sessions ended by back-channel logout
// in Redis, shared by every instance behind a load balancer.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return argErr(d, "identity")
	}
	var (
		topJWKSURL, topJWKSFile string
		topAllowHTTP, seenToken bool
		leewaySeen              bool
		issuerTokens            []caddyfile.Token
		topAllowHTTPToken       caddyfile.Token
	)
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "issuer":
			issuerTokens = append(issuerTokens, d.Token())
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
				return argErr(d, opt)
			}
			topAllowHTTP = true
			topAllowHTTPToken = d.Token()
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
				return argErr(d, opt)
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
				return argErr(d, opt)
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
			if err := appendScopes(d, &h.RequireScopes); err != nil {
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
				return argErr(d, opt)
			}
			if err := checkClaimHeader(ch); err != nil {
				return d.WrapErr(err)
			}
			h.ClaimHeaders = append(h.ClaimHeaders, ch)
		case "strip_header":
			if err := appendArgs(d, &h.StripHeaders); err != nil {
				return err
			}
			for _, name := range h.StripHeaders {
				if err := checkHeaderName(opt, name); err != nil {
					return d.WrapErr(err)
				}
			}
		case "optional":
			if d.NextArg() {
				return argErr(d, opt)
			}
			h.Optional = true
		case "forward_token", "strip_token":
			if d.NextArg() {
				return argErr(d, opt)
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
				return argErr(d, opt)
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
				return argErr(d, opt)
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > MaxMaxTokenSize {
				return d.Errf("max_token_size: want a size between 1 byte and 1MiB, got %q", s)
			}
			h.MaxTokenSize = int(n)
		case "dpop":
			if err := parseDPoP(d, h); err != nil {
				return err
			}
		case "cert_binding":
			if h.CertBinding != "" {
				return d.Err("cert_binding given twice")
			}
			if !d.AllArgs(&h.CertBinding) {
				return argErr(d, opt)
			}
			switch h.CertBinding {
			case "check", "off":
			default:
				return d.Errf("cert_binding: want check or off, got %q", h.CertBinding)
			}
		case "introspection_order":
			if h.IntrospectionOrder != nil {
				return d.Err("introspection_order given twice")
			}
			if h.IntrospectionOrder = d.RemainingArgs(); len(h.IntrospectionOrder) == 0 {
				return argErr(d, opt)
			}
		case "upstream_token":
			if h.UpstreamToken != nil {
				return d.Err("upstream_token given twice")
			}
			u, err := parseUpstreamToken(d)
			if err != nil {
				return err
			}
			h.UpstreamToken = u
		case "login":
			if h.Login != nil {
				return d.Err("login given twice")
			}
			l, err := parseLogin(d)
			if err != nil {
				return err
			}
			h.Login = l
		case "store":
			if h.Store != nil {
				return d.Err("store given twice")
			}
			st, err := parseStore(d)
			if err != nil {
				return err
			}
			h.Store = st
		default:
			return unknownOption(d, "identity block", topOptions)
		}
	}

	if topJWKSURL != "" || topJWKSFile != "" || topAllowHTTP {
		if len(h.Issuers) != 1 {
			return errAt(topAllowHTTPToken, d, errors.New("top-level jwks_url, jwks_file and insecure_allow_http need exactly one issuer; with several, put them in each issuer's block"))
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
	for i := range h.Issuers {
		if err := checkIssuerURL(&h.Issuers[i]); err != nil {
			return errAt(issuerTokens[i], d, err)
		}
	}
	return nil
}

// errAt adds the file and line of tok (of d's file when tok is the zero
// token) to err, like Dispenser.WrapErr does for the current token.
func errAt(tok caddyfile.Token, d *caddyfile.Dispenser, err error) error {
	if tok.File == "" && tok.Line == 0 {
		return d.WrapErr(err)
	}
	at := caddyfile.NewDispenser([]caddyfile.Token{tok})
	at.Next()
	return at.WrapErr(err)
}

// parseIssuer parses `issuer <url> [{ ... }]`.
func parseIssuer(d *caddyfile.Dispenser) (IssuerConfig, error) {
	var is IssuerConfig
	if !d.NextArg() || d.Val() == "" {
		return is, d.Errf("issuer needs a URL (one written {$VAR} is missing when that environment variable is not set); usage: %s", usages["issuer"])
	}
	is.Issuer = d.Val()
	if d.NextArg() {
		return is, argErr(d, "issuer")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
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
				return is, argErr(d, opt)
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
			if err := appendScopes(d, &is.RequireScopes); err != nil {
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
		case "userinfo":
			if is.UserInfo != nil {
				return is, d.Err("userinfo given twice")
			}
			c, err := parseUserInfo(d)
			if err != nil {
				return is, err
			}
			is.UserInfo = c
		default:
			return is, unknownOption(d, "issuer block", issuerOptions)
		}
	}
	return is, nil
}

// parseIntrospection parses `introspection { ... }` in an issuer block.
// Each option may appear once.
func parseIntrospection(d *caddyfile.Dispenser) (*IntrospectionConfig, error) {
	if d.NextArg() {
		return nil, argErr(d, "introspection")
	}
	c := new(IntrospectionConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
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
		case "key_file":
			if err := parseOnce(d, &c.KeyFile); err != nil {
				return nil, err
			}
		case "assertion_audience":
			if err := parseOnce(d, &c.AssertionAudience); err != nil {
				return nil, err
			}
		case "auth_method":
			if err := parseOnce(d, &c.AuthMethod); err != nil {
				return nil, err
			}
			switch c.AuthMethod {
			case "client_secret_basic", "client_secret_post", "private_key_jwt":
			default:
				return nil, d.Errf("auth_method: want client_secret_basic, client_secret_post or private_key_jwt, got %q", c.AuthMethod)
			}
		case "accept":
			if err := parseOnce(d, &c.Accept); err != nil {
				return nil, err
			}
			if c.Accept != introspectionAcceptJSON && c.Accept != introspectionAcceptJWT {
				return nil, d.Errf("accept: want json or jwt, got %q", c.Accept)
			}
		case "cache_ttl":
			var s string
			if !d.AllArgs(&s) {
				return nil, argErr(d, opt)
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
			return nil, unknownOption(d, "introspection block", introspectionOptions)
		}
	}
	if c.ClientID == "" {
		return nil, d.Err("introspection needs client_id")
	}
	if c.ClientSecret != "" && c.KeyFile != "" {
		return nil, d.Err("introspection: client_secret and key_file are exclusive")
	}
	return c, nil
}

// parseLogin parses `login { ... }`.
func parseLogin(d *caddyfile.Dispenser) (*LoginConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	l := new(LoginConfig)
	once := map[string]*string{
		"issuer":                   &l.Issuer,
		"client_id":                &l.ClientID,
		"client_secret":            &l.ClientSecret,
		"client_key_file":          &l.ClientKeyFile,
		"assertion_audience":       &l.AssertionAudience,
		"redirect_uri":             &l.RedirectURI,
		"callback_path":            &l.CallbackPath,
		"logout_path":              &l.LogoutPath,
		"backchannel_logout_path":  &l.BackchannelLogoutPath,
		"userinfo_path":            &l.UserinfoPath,
		"post_logout_redirect_uri": &l.PostLogoutRedirectURI,
		"session_store":            &l.SessionStore,
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if dst, ok := once[opt]; ok {
			if err := parseOnce(d, dst); err != nil {
				return nil, err
			}
			continue
		}
		switch opt {
		case "scopes":
			if err := appendArgs(d, &l.Scopes); err != nil {
				return nil, err
			}
		case "session_key":
			if err := appendArgs(d, &l.SessionKeys); err != nil {
				return nil, err
			}
		case "session_lifetime", "idle_timeout":
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			dst := &l.SessionLifetime
			if opt == "idle_timeout" {
				dst = &l.IdleTimeout
			}
			if *dst != 0 {
				return nil, d.Errf("%s given twice", opt)
			}
			if opt == "idle_timeout" && s == "off" {
				*dst = -1
				continue
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return nil, d.Errf("%s: want a positive duration, got %q", opt, s)
			}
			*dst = caddy.Duration(dur)
		case "forward_access_token", "userinfo":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if opt == "userinfo" {
				l.Userinfo = true
			} else {
				l.ForwardAccessToken = true
			}
		default:
			return nil, d.Errf("unrecognized option %q in login block", opt)
		}
	}
	if l.ClientID == "" {
		return nil, d.Err("login needs client_id")
	}
	if len(l.SessionKeys) == 0 {
		return nil, d.Err("login needs session_key")
	}
	if l.ClientSecret != "" && l.ClientKeyFile != "" {
		return nil, d.Err("login: client_secret and client_key_file are exclusive")
	}
	return l, nil
}

// parseAudience parses `audience <aud...>` or `audience any`.
func parseAudience(d *caddyfile.Dispenser, auds *[]string, anyAud *bool) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return argErr(d, opt)
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
	if err := checkAudiences(args); err != nil {
		return d.WrapErr(err)
	}
	*auds = append(*auds, args...)
	return nil
}

// parseTenants parses `tenants <tid...>` or `tenants any`, like audience.
func parseTenants(d *caddyfile.Dispenser, tenants *[]string, anyTenant *bool) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return argErr(d, opt)
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
	opt := d.Val()
	if *dst != "" {
		return d.Errf("%s given twice", opt)
	}
	if !d.AllArgs(dst) {
		return argErr(d, opt)
	}
	return nil
}

// parseTokenFrom parses `token_from header <name> [<scheme>] | cookie
// <name> | query <param>`.
func parseTokenFrom(d *caddyfile.Dispenser) (TokenSource, error) {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 1 && !slices.Contains([]string{"header", "cookie", "query"}, args[0]) {
		return TokenSource{}, d.Errf("token_from %s: say where the token is: `token_from cookie %s`, `token_from query %s` or `token_from header %s`; usage: %s",
			args[0], args[0], args[0], args[0], usages[opt])
	}
	if len(args) < 2 {
		return TokenSource{}, argErr(d, opt)
	}
	ts := TokenSource{From: args[0], Name: args[1]}
	switch ts.From {
	case "header":
		if len(args) > 3 {
			return ts, argErr(d, opt)
		}
		if len(args) == 3 {
			ts.Scheme = args[2]
		}
	case "cookie", "query":
		if len(args) != 2 {
			return ts, argErr(d, opt)
		}
	default:
		return ts, d.Errf("token_from: want header, cookie or query, got %q; usage: %s", ts.From, usages[opt])
	}
	if err := checkTokenSource(ts); err != nil {
		return ts, d.WrapErr(err)
	}
	return ts, nil
}

// parseClaimRule parses `require_claim <claim.path> [<value...>]`.
func parseClaimRule(d *caddyfile.Dispenser) (ClaimRule, error) {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return ClaimRule{}, argErr(d, opt)
	}
	if err := checkClaimPath(opt, args[0]); err != nil {
		return ClaimRule{}, d.WrapErr(err)
	}
	return ClaimRule{Claim: args[0], Values: args[1:]}, nil
}

// appendScopes parses `require_scope <scope...>`.
func appendScopes(d *caddyfile.Dispenser, dst *[]string) error {
	if err := appendArgs(d, dst); err != nil {
		return err
	}
	if err := checkScopes(*dst); err != nil {
		return d.WrapErr(err)
	}
	return nil
}

// appendArgs appends the remaining arguments (at least one) to dst.
func appendArgs(d *caddyfile.Dispenser, dst *[]string) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return argErr(d, opt)
	}
	*dst = append(*dst, args...)
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// parseUpstreamToken parses `upstream_token <grant> { ... }`. Single-value
// options may appear once; scopes, resource and audience add up.
func parseUpstreamToken(d *caddyfile.Dispenser) (*UpstreamToken, error) {
	u := new(UpstreamToken)
	if !d.AllArgs(&u.Grant) {
		return nil, argErr(d, "upstream_token")
	}
	switch u.Grant {
	case upstreamGrantClientCredentials, upstreamGrantExchange:
	default:
		return nil, d.Errf("upstream_token: want client_credentials or exchange, got %q", u.Grant)
	}
	once := map[string]*string{
		"issuer": &u.Issuer, "token_endpoint": &u.TokenEndpoint, "client_id": &u.ClientID,
		"client_secret": &u.ClientSecret, "key_file": &u.KeyFile, "assertion_audience": &u.AssertionAudience, "header": &u.Header,
		"subject_token_type": &u.SubjectTokenType, "actor": &u.Actor,
	}
	many := map[string]*[]string{"scopes": &u.Scopes, "resource": &u.Resource, "audience": &u.Audience}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if dst, ok := once[d.Val()]; ok {
			if err := parseOnce(d, dst); err != nil {
				return nil, err
			}
		} else if dst, ok := many[d.Val()]; ok {
			if err := appendArgs(d, dst); err != nil {
				return nil, err
			}
		} else {
			return nil, unknownOption(d, "upstream_token block", upstreamTokenOptions)
		}
	}
	if u.ClientID == "" {
		return nil, d.Err("upstream_token needs client_id")
	}
	return u, nil
}

// parseUserInfo parses `userinfo [{ ... }]` in an issuer block. Each
// option may appear once.
func parseUserInfo(d *caddyfile.Dispenser) (*UserInfoConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	c := new(UserInfoConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "endpoint":
			if err := parseOnce(d, &c.Endpoint); err != nil {
				return nil, err
			}
		case "on_error":
			if err := parseOnce(d, &c.OnError); err != nil {
				return nil, err
			}
			if c.OnError != "refuse" && c.OnError != "continue" {
				return nil, d.Errf("on_error: want refuse or continue, got %q", c.OnError)
			}
		case "cache_ttl":
			var s string
			if c.CacheTTL != nil {
				return nil, d.Err("cache_ttl given twice")
			}
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return nil, d.Errf("cache_ttl: want a positive duration, got %q", s)
			}
			ttl := caddy.Duration(dur)
			c.CacheTTL = &ttl
		default:
			return nil, unknownOption(d, "userinfo block", userInfoOptions)
		}
	}
	return c, nil
}

// usages are the syntax lines of the options, quoted by argument errors.
var usages = map[string]string{
	"identity":               "identity [<matcher>] { issuer <url> ... }",
	"issuer":                 "issuer <url> [{ ... }]",
	"jwks_url":               "jwks_url <url>",
	"jwks_file":              "jwks_file <path>",
	"jwks_uri_base":          "jwks_uri_base <url-prefix...>",
	"alias":                  "alias <iss...>",
	"tenants":                "tenants <tid...> | any",
	"insecure_allow_http":    "insecure_allow_http",
	"audience":               "audience <aud...> | any",
	"authorized_party":       "authorized_party <client_id...>",
	"authorized_party_claim": "authorized_party_claim <claim.path>",
	"algorithms":             "algorithms <alg...>",
	"token_type":             "token_type <typ...>",
	"leeway":                 "leeway <duration>",
	"max_age":                "max_age <duration>",
	"token_from":             "token_from header <name> [<scheme>] | cookie <name> | query <param>",
	"require_scope":          "require_scope <scope...>",
	"require_claim":          "require_claim <claim.path> [<value...>]",
	"claim_header":           "claim_header <claim.path> <Header-Name>, e.g. claim_header email X-User-Email",
	"strip_header":           "strip_header <Header-Name...>",
	"optional":               "optional",
	"forward_token":          "forward_token",
	"strip_token":            "strip_token",
	"realm":                  "realm <name>",
	"cache_size":             "cache_size <units>",
	"max_token_size":         "max_token_size <size>",
	"dpop":                   "dpop off | allow | require [{ proof_algorithms <alg...>  proof_max_age <duration>  proof_leeway <duration>  nonce { secret <secret>  lifetime <duration> } }]",
	"cert_binding":           "cert_binding check | off",
	"introspection":          "introspection { endpoint <url>  client_id <id>  client_secret <secret> ... }",
	"endpoint":               "endpoint <url>",
	"client_id":              "client_id <id>",
	"client_secret":          "client_secret <secret>",
	"cache_secret":           "cache_secret <secret of at least 32 bytes>",
	"auth_method":            "auth_method client_secret_basic | client_secret_post | private_key_jwt",
	"accept":                 "accept json | jwt",
	"key_file":               "key_file <path>",
	"assertion_audience":     "assertion_audience endpoint | issuer | token_endpoint | <url>",
	"introspection_order":    "introspection_order <issuer...>",
	"cache_ttl":              "cache_ttl <duration>",
	"upstream_token":         "upstream_token client_credentials | exchange { client_id <id>  client_secret <secret> ... }",
	"on_error":               "on_error refuse | continue",
}

// The options of each block, for "did you mean" suggestions.
var (
	topOptions = []string{"issuer", "jwks_url", "jwks_file", "insecure_allow_http", "audience",
		"authorized_party", "authorized_party_claim", "algorithms", "token_type", "leeway", "max_age",
		"token_from", "require_scope", "require_claim", "claim_header", "strip_header", "optional",
		"forward_token", "strip_token", "realm", "cache_size", "max_token_size", "dpop", "cert_binding", "introspection_order", "upstream_token"}
	issuerOptions = []string{"jwks_url", "jwks_file", "jwks_uri_base", "insecure_allow_http", "audience",
		"alias", "tenants", "authorized_party", "authorized_party_claim", "algorithms", "token_type",
		"require_scope", "require_claim", "introspection", "userinfo"}
	introspectionOptions = []string{"endpoint", "client_id", "client_secret", "key_file", "assertion_audience", "auth_method", "accept", "cache_ttl"}
	upstreamTokenOptions = []string{"issuer", "token_endpoint", "client_id", "client_secret", "key_file",
		"assertion_audience", "scopes", "resource", "audience", "header", "subject_token_type", "actor"}
	userInfoOptions = []string{"endpoint", "on_error", "cache_ttl"}
)

// argErr is Dispenser.ArgErr with the option's syntax line.
func argErr(d *caddyfile.Dispenser, opt string) error {
	if u, ok := usages[opt]; ok {
		return d.Errf("wrong argument count for %s; usage: %s", opt, u)
	}
	return d.ArgErr()
}

// unknownOption reports the current token as an unknown option of block,
// suggesting the nearest known option and naming the block where an
// option of another block belongs.
func unknownOption(d *caddyfile.Dispenser, block string, known []string) error {
	opt := d.Val()
	if best := suggest(opt, known); best != "" {
		return d.Errf("unrecognized option %q in the %s; did you mean %q?", opt, block, best)
	}
	if block != "identity block" && slices.Contains(topOptions, opt) {
		return d.Errf("unrecognized option %q in the %s: it goes directly in the identity block", opt, block)
	}
	if block == "identity block" && slices.Contains(issuerOptions, opt) {
		return d.Errf("unrecognized option %q in the identity block: it goes in an issuer block, `issuer <url> { %s ... }`", opt, opt)
	}
	return d.Errf("unrecognized option %q in the %s (options: %s)", opt, block, strings.Join(known, ", "))
}

// suggest returns the known option nearest to opt, if it is near enough to
// be a misspelling (at most a third of its letters edited, and at most 3).
func suggest(opt string, known []string) string {
	best, bestDist := "", min(3, max(1, len(opt)/3))+1
	for _, k := range known {
		if dist := editDistance(strings.ToLower(opt), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
