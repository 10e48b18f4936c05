package caddyidentity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-identity/caddy-identity/identity"
)

// Exit codes of the caddy identity commands.
const (
	// exitOK: the metadata is acceptable, the keys were fetched, the
	// token is accepted or was obtained.
	exitOK = 0
	// exitUsage: bad arguments, or a configuration that does not load.
	exitUsage = 1
	// exitRefused: the token is refused (401, 403 or 400), the metadata
	// breaks the policy, the token endpoint refused the client, or the
	// user denied a device flow or let its code expire.
	exitRefused = 2
	// exitUnavailable: the provider cannot be reached or has no usable
	// keys: the handler would answer 503.
	exitUnavailable = 3
)

// commandTimeout bounds the network work of one command.
const commandTimeout = 30 * time.Second

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "identity",
		Usage: "<discover|check|verify|token> ...",
		Short: "Inspects identity providers, identity handler configs and tokens",
		Long: `
Commands for operating the identity handler (http.handlers.identity):

  discover <issuer>       fetch and check a provider's discovery document
  check --config FILE     fetch discovery and keys for every identity handler
  verify --config FILE    run a token through the handler of a site and path
  token --issuer ...      obtain a token with the client credentials grant
                          or the device flow (--device), or decode one
                          (--decode) without verifying it

Every command takes --json for output meant for scripts. Exit codes:
0 success; 1 bad usage or config; 2 refused (token refused, metadata
breaks the policy, client refused by the token endpoint, device flow
denied or expired); 3 provider unavailable (the handler would answer 503).`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(discoverCommand(), checkCommand(), verifyCommand(), tokenCommand())
		},
	})
}

// cmdFunc is a subcommand's body: it writes to out and returns the exit code.
type cmdFunc func(cmd *cobra.Command, args []string, out io.Writer) (int, error)

// runE adapts f to Caddy's command runner, which exits with f's code: an
// error is a usage or config error (exit 1, logged by Caddy), other codes
// are outcomes f has printed.
func runE(c *cobra.Command, f cmdFunc) func(*cobra.Command, []string) error {
	return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		code, err := f(c, fl.Args(), c.OutOrStdout())
		if err != nil {
			return exitUsage, err
		}
		return code, nil
	})
}

// printJSON writes v as indented JSON.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ---- discover ----------------------------------------------------------

func discoverCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "discover [--json] [--insecure-allow-http] <issuer>",
		Short: "Fetches a provider's discovery document and checks it against the policy",
		Long: `Fetches <issuer>/.well-known/openid-configuration and checks it as the
library does: https (http only on loopback or with --insecure-allow-http),
the issuer member equal to <issuer>, every endpoint on the issuer's host,
required members present. Exit 2 when the document breaks the policy, 3 when
it cannot be fetched.`,
		Args: cobra.ExactArgs(1),
	}
	c.Flags().Bool("json", false, "print JSON")
	c.Flags().Bool("insecure-allow-http", false, "allow http on non-loopback hosts")
	c.RunE = runE(c, runDiscover)
	return c
}

// discoverResult is the output of discover.
type discoverResult struct {
	Issuer   string                      `json:"issuer"`
	OK       bool                        `json:"ok"`
	Error    string                      `json:"error,omitempty"`
	Document *identity.DiscoveryDocument `json:"document,omitempty"`
}

func runDiscover(cmd *cobra.Command, args []string, out io.Writer) (int, error) {
	asJSON, _ := cmd.Flags().GetBool("json")
	allowHTTP, _ := cmd.Flags().GetBool("insecure-allow-http")
	ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout)
	defer cancel()
	res := discoverResult{Issuer: args[0]}
	doc, _, err := identity.FetchDiscovery(ctx, nil, args[0], identity.DiscoveryPolicy{AllowHTTP: allowHTTP})
	code := exitOK
	if err != nil {
		res.Error = err.Error()
		code = exitUnavailable
		if isPolicyError(err) {
			code = exitRefused
		}
	} else {
		res.OK, res.Document = true, doc
	}
	if asJSON {
		return code, printJSON(out, res)
	}
	if err != nil {
		verdict := "REFUSED"
		if code == exitUnavailable {
			verdict = "UNAVAILABLE"
		}
		fmt.Fprintf(out, "issuer:   %s\nresult:   %s\nreason:   %v\n", res.Issuer, verdict, err)
		return code, nil
	}
	fmt.Fprintf(out, "issuer:   %s\nresult:   ok (https or loopback http, issuer matches, endpoints on the issuer's host)\n", doc.Issuer)
	for _, e := range []struct{ name, url string }{
		{"jwks_uri", doc.JWKSURI},
		{"authorization_endpoint", doc.AuthorizationEndpoint},
		{"token_endpoint", doc.TokenEndpoint},
		{"userinfo_endpoint", doc.UserInfoEndpoint},
		{"introspection_endpoint", doc.IntrospectionEndpoint},
		{"revocation_endpoint", doc.RevocationEndpoint},
		{"device_authorization_endpoint", doc.DeviceAuthorizationEndpoint},
		{"end_session_endpoint", doc.EndSessionEndpoint},
	} {
		if e.url != "" {
			fmt.Fprintf(out, "%-30s %s\n", e.name+":", e.url)
		}
	}
	if algs := doc.SigningAlgorithms(); len(algs) > 0 {
		fmt.Fprintf(out, "%-30s %s\n", "signing algorithms:", strings.Join(algs, ", "))
	}
	if len(doc.GrantTypesSupported) > 0 {
		fmt.Fprintf(out, "%-30s %s\n", "grant types:", strings.Join(doc.GrantTypesSupported, ", "))
	}
	return code, nil
}

// isPolicyError reports whether err says a fetched document breaks the
// policy, rather than that it could not be fetched.
func isPolicyError(err error) bool {
	if _, ok := errors.AsType[*identity.MissingMembersError](err); ok {
		return true
	}
	for _, e := range []error{identity.ErrHTTPSRequired, identity.ErrIssuerMismatch, identity.ErrMissingMember,
		identity.ErrEndpointNotAllowed, identity.ErrRedirect} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ---- configuration -----------------------------------------------------

// foundHandler is an identity handler of a loaded configuration with the
// host and path matchers of the routes around it.
type foundHandler struct {
	Index int      `json:"index"`
	Hosts []string `json:"hosts,omitempty"`
	Paths []string `json:"paths,omitempty"`
	raw   json.RawMessage
	// routes are the "match" members of the enclosing routes, outermost
	// first: a request reaches the handler when it matches one set of
	// each.
	routes []json.RawMessage
}

// loadHandlers adapts the config file as caddy run would and returns its
// identity handlers in route order.
func loadHandlers(cmd *cobra.Command) ([]foundHandler, error) {
	file, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	if file == "" {
		return nil, errors.New("--config is required")
	}
	cfg, _, _, err := caddycmd.LoadConfig(file, adapter)
	if err != nil {
		return nil, err
	}
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		return nil, err
	}
	var found []foundHandler
	walkConfig(root, nil, nil, nil, &found)
	if len(found) == 0 {
		return nil, fmt.Errorf("%s: no identity handler", file)
	}
	return found, nil
}

// walkConfig collects the identity handlers under v; hosts and paths are
// the host and path matchers of the enclosing routes (for display), routes
// their match sets.
func walkConfig(v any, hosts, paths []string, routes []json.RawMessage, found *[]foundHandler) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			walkConfig(e, hosts, paths, routes, found)
		}
	case map[string]any:
		if v["handler"] == "identity" {
			raw, _ := json.Marshal(v)
			*found = append(*found, foundHandler{Index: len(*found), Hosts: hosts, Paths: paths, raw: raw, routes: routes})
			return
		}
		if sets, ok := v["match"].([]any); ok {
			var hs, ps []string
			for _, s := range sets {
				m, _ := s.(map[string]any)
				hs = append(hs, stringsOf(m["host"])...)
				ps = append(ps, stringsOf(m["path"])...)
			}
			if len(hs) > 0 {
				hosts = hs
			}
			if len(ps) > 0 {
				paths = ps
			}
			raw, _ := json.Marshal(sets)
			routes = append(slices.Clip(routes), raw)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // "handle" before "routes", deterministic
		for _, k := range keys {
			if k != "match" {
				walkConfig(v[k], hosts, paths, routes, found)
			}
		}
	}
}

func stringsOf(v any) []string {
	arr, _ := v.([]any)
	var out []string
	for _, e := range arr {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// matches reports whether r reaches the handler: whether it matches one
// match set of every enclosing route, with Caddy's own matcher modules
// (host wildcards, path patterns, and any other matcher the routes use).
// With anyHost the host matchers are left out.
func (f foundHandler) matches(ctx caddy.Context, r *http.Request, anyHost bool) (bool, error) {
	for _, raw := range f.routes {
		var route caddyhttp.Route
		if err := json.Unmarshal(raw, &route.MatcherSetsRaw); err != nil {
			return false, err
		}
		if anyHost {
			for _, set := range route.MatcherSetsRaw {
				delete(set, "host")
			}
		}
		if err := route.ProvisionMatchers(ctx); err != nil {
			return false, err
		}
		if ok, err := route.MatcherSets.AnyMatchWithError(r); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

// provisioned is an identity handler provisioned outside a running Caddy,
// with its debug log captured (the reasons of refusals).
type provisioned struct {
	h      *Handler
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
}

// provisionHandler provisions the handler's JSON as Caddy would.
func provisionHandler(raw json.RawMessage) (*provisioned, error) {
	h := new(Handler)
	if err := json.Unmarshal(raw, h); err != nil {
		return nil, err
	}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		_ = h.Cleanup()
		cancel()
		return nil, err
	}
	return &provisioned{h: h, logs: logs, cancel: cancel}, nil
}

func (p *provisioned) close() {
	_ = p.h.Cleanup()
	p.cancel()
}

// configFlags adds the flags of the commands that read a config.
func configFlags(c *cobra.Command) {
	c.Flags().StringP("config", "c", "", "configuration file (Caddyfile or JSON)")
	c.Flags().StringP("adapter", "a", "", "config adapter (default: caddyfile for a file named Caddyfile*)")
	c.Flags().Bool("json", false, "print JSON")
}

// ---- check -------------------------------------------------------------

func checkCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "check --config <file> [--adapter <name>] [--json]",
		Short: "Fetches discovery and keys for every identity handler of a config",
		Long: `For each identity handler of the config, fetches the discovery document and
key set of every issuer exactly as the handler would (same policy, same
key filtering), and prints the usable keys (kid, alg, size), the entries
skipped and why, the cache lifetime and the endpoints used. Exit 3 when an
issuer has no usable keys: the handler would answer 503.`,
		Args: cobra.NoArgs,
	}
	configFlags(c)
	c.RunE = runE(c, runCheck)
	return c
}

// keyView describes a usable key.
type keyView struct {
	KeyID      string `json:"kid"`
	Algorithm  string `json:"alg,omitempty"`
	Type       string `json:"kty"`
	Size       int    `json:"size"`
	Thumbprint string `json:"thumbprint"`
}

// checkIssuer is the result of check for one issuer.
type checkIssuer struct {
	Issuer    string        `json:"issuer"`
	Source    string        `json:"source"`
	OK        bool          `json:"ok"`
	Error     string        `json:"error,omitempty"`
	JWKSURI   string        `json:"jwks_uri,omitempty"`
	Discovery string        `json:"discovery,omitempty"`
	Keys      []keyView     `json:"keys"`
	Skipped   []skippedView `json:"skipped,omitempty"`
	Expires   time.Time     `json:"expires,omitzero"`
	Lifetime  string        `json:"lifetime,omitempty"`
}

// checkHandler is the result of check for one handler.
type checkHandler struct {
	foundHandler
	Issuers []checkIssuer `json:"issuers"`
}

func runCheck(cmd *cobra.Command, _ []string, out io.Writer) (int, error) {
	asJSON, _ := cmd.Flags().GetBool("json")
	found, err := loadHandlers(cmd)
	if err != nil {
		return exitUsage, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout)
	defer cancel()
	code := exitOK
	var results []checkHandler
	for _, f := range found {
		p, err := provisionHandler(f.raw)
		if err != nil {
			return exitUsage, fmt.Errorf("identity handler %d: %w", f.Index, err)
		}
		res := checkHandler{foundHandler: f}
		for _, is := range p.h.Issuers {
			pol := p.h.policy.byIssuer[is.Issuer]
			if pol == nil {
				continue
			}
			ci := checkKeys(ctx, pol)
			if !ci.OK {
				code = exitUnavailable
			}
			res.Issuers = append(res.Issuers, ci)
		}
		p.close()
		results = append(results, res)
	}
	if asJSON {
		return code, printJSON(out, results)
	}
	for _, r := range results {
		fmt.Fprintf(out, "identity handler #%d%s\n", r.Index, describeRoute(r.foundHandler))
		for _, ci := range r.Issuers {
			fmt.Fprintf(out, "  issuer %s (%s)\n", ci.Issuer, ci.Source)
			if ci.Discovery != "" {
				fmt.Fprintf(out, "    discovery: %s\n", ci.Discovery)
			}
			if ci.JWKSURI != "" {
				fmt.Fprintf(out, "    jwks_uri:  %s\n", ci.JWKSURI)
			}
			if !ci.OK {
				fmt.Fprintf(out, "    UNAVAILABLE: %s\n    requests needing its keys would get 503\n", ci.Error)
				continue
			}
			if ci.Lifetime != "" {
				fmt.Fprintf(out, "    cached for %s (until %s)\n", ci.Lifetime, ci.Expires.UTC().Format(time.RFC3339))
			}
			for _, k := range ci.Keys {
				fmt.Fprintf(out, "    key kid=%q alg=%s kty=%s size=%d\n", k.KeyID, orDash(k.Algorithm), k.Type, k.Size)
			}
			for _, s := range ci.Skipped {
				fmt.Fprintf(out, "    skipped #%d kid=%q kty=%s: %s\n", s.Index, s.KeyID, s.KeyType, s.Reason)
			}
		}
	}
	return code, nil
}

// checkKeys fetches an issuer's keys through its key source.
func checkKeys(ctx context.Context, pol *issuerPolicy) checkIssuer {
	ci := checkIssuer{Issuer: pol.issuer, Keys: []keyView{}}
	var ks *identity.KeySet
	switch src := pol.keys.(type) {
	case *identity.KeySet:
		ci.Source, ks = "jwks_file", src
	case *identity.Provider:
		ci.Source = "jwks_url"
		var err error
		ks, err = src.KeySet(ctx)
		st := src.Status()
		if st.Discovery != nil {
			ci.Source, ci.Discovery = "discovery", st.Discovery.URL
		}
		if st.Keys != nil {
			ci.JWKSURI = st.Keys.URL
			if !st.Keys.Expires.IsZero() {
				ci.Expires = st.Keys.Expires
				ci.Lifetime = st.Keys.Expires.Sub(st.Keys.Fetched).Round(time.Second).String()
			}
		}
		if err != nil {
			ci.Error = err.Error()
			return ci
		}
	}
	if ks == nil || ks.Len() == 0 {
		ci.Error = "no usable key"
		return ci
	}
	ci.OK = true
	for _, k := range ks.Keys() {
		ci.Keys = append(ci.Keys, describeKey(k))
	}
	for _, s := range ks.Skipped() {
		ci.Skipped = append(ci.Skipped, skippedView{Index: s.Index, KeyID: s.KeyID, KeyType: s.KeyType, Reason: s.Reason})
	}
	return ci
}

// describeKey returns a key's public description.
func describeKey(k identity.Key) keyView {
	v := keyView{KeyID: k.JWK.KeyID, Algorithm: k.JWK.Algorithm, Thumbprint: k.Thumbprint}
	switch pk := k.JWK.Key.(type) {
	case *rsa.PublicKey:
		v.Type, v.Size = "RSA", pk.N.BitLen()
	case *ecdsa.PublicKey:
		v.Type, v.Size = "EC", pk.Curve.Params().BitSize
	case ed25519.PublicKey:
		v.Type, v.Size = "OKP", 256
	default:
		v.Type = fmt.Sprintf("%T", pk)
	}
	return v
}

func describeRoute(f foundHandler) string {
	var parts []string
	if len(f.Hosts) > 0 {
		parts = append(parts, "host "+strings.Join(f.Hosts, ", "))
	}
	if len(f.Paths) > 0 {
		parts = append(parts, "path "+strings.Join(f.Paths, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- verify ------------------------------------------------------------

func verifyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify --config <file> [--site <host>] [--path </p>] [--method <M>] [--remote-ip <ip[:port]>] [--json] <token | ->",
		Short: "Runs a token through the identity handler of a site and path",
		Long: `Loads the config, picks the first identity handler whose enclosing routes
match <method> https://<site><path> from <remote-ip> (--method default GET,
--path default "/", --remote-ip default 192.0.2.1; without --site, any
host) with Caddy's own matchers (host wildcards, path patterns, regexps,
method, remote_ip and client_ip, and any other matcher of the routes), and
sends it that request with the token ("-" reads it from standard input) in
the first place the handler looks for one. The request carries no
X-Forwarded-For and passes no trusted proxy, so client_ip is the
--remote-ip address. Prints whether it is accepted, with the headers the
upstream would get, or the reason, the status and the WWW-Authenticate
challenge. The token is never printed: only its length and a SHA-256
prefix. Exit 1 for bad usage (an invalid --method or --remote-ip, no
handler for the request), 2 when refused, 3 when the handler would answer
503.`,
		Args: cobra.ExactArgs(1),
	}
	configFlags(c)
	c.Flags().String("site", "", "host of the request (default: any host)")
	c.Flags().String("path", "/", "request path")
	c.Flags().String("method", http.MethodGet, "request method, for method matchers and the handler (case-insensitive, as Caddy's matcher)")
	c.Flags().String("remote-ip", verifyRemoteIP, "client address of the request, ip or ip:port ([ipv6]:port), for remote_ip and client_ip matchers")
	c.RunE = runE(c, runVerify)
	return c
}

// verifyResult is the output of verify.
type verifyResult struct {
	Handler   foundHandler      `json:"handler"`
	Token     string            `json:"token"`
	Accepted  bool              `json:"accepted"`
	Status    int               `json:"status"`
	Reason    string            `json:"reason,omitempty"`
	Detail    string            `json:"detail,omitempty"`
	Challenge []string          `json:"www_authenticate,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
}

// verifyRemoteIP is the default client address of verify's request
// (TEST-NET-1, RFC 5737), and verifyRemotePort the port of an address
// given without one (httptest's).
const (
	verifyRemoteIP   = "192.0.2.1"
	verifyRemotePort = 1234
)

// verifyMethod checks --method: an RFC 9110 token, upper-cased as Caddy's
// method matcher upper-cases its methods. CONNECT is refused: its request
// has an authority, not the path verify matches.
func verifyMethod(m string) (string, error) {
	if m == "" || strings.ContainsFunc(m, func(r rune) bool { return !isTokenChar(r) }) {
		return "", fmt.Errorf("--method %q is not an HTTP method", m)
	}
	m = strings.ToUpper(m)
	if m == http.MethodConnect {
		return "", errors.New("--method CONNECT: verify sends requests for a path, which CONNECT has not")
	}
	return m, nil
}

// isTokenChar reports whether c is a tchar of RFC 9110 §5.6.2.
func isTokenChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)
}

// verifyRemoteAddr parses --remote-ip, the client address of the request.
func verifyRemoteAddr(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--remote-ip %q is not an IP address, IP:port or [IPv6]:port", s)
	}
	return netip.AddrPortFrom(a, verifyRemotePort), nil
}

func runVerify(cmd *cobra.Command, args []string, out io.Writer) (int, error) {
	asJSON, _ := cmd.Flags().GetBool("json")
	site, _ := cmd.Flags().GetString("site")
	path, _ := cmd.Flags().GetString("path")
	methodFlag, _ := cmd.Flags().GetString("method")
	method, err := verifyMethod(methodFlag)
	if err != nil {
		return exitUsage, err
	}
	remoteIP, _ := cmd.Flags().GetString("remote-ip")
	remoteAddr, err := verifyRemoteAddr(remoteIP)
	if err != nil {
		return exitUsage, err
	}
	token := args[0]
	if token == "-" {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), MaxMaxTokenSize+1))
		if err != nil {
			return exitUsage, err
		}
		token = string(b)
	}
	token = strings.TrimSpace(token)
	found, err := loadHandlers(cmd)
	if err != nil {
		return exitUsage, err
	}
	host := site
	if host == "" {
		host = "localhost"
	}
	if !strings.HasPrefix(path, "/") {
		return exitUsage, fmt.Errorf("--path %q does not start with /", path)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout)
	defer cancel()
	// newRequest is the request of the check: <method>
	// https://<site><path> from remoteAddr, prepared as Caddy's server
	// prepares requests for its handlers. There is no server, so no
	// trusted proxy: the client IP is remoteAddr's, as a server without
	// trusted_proxies would set it (PrepareRequest leaves it empty).
	newRequest := func() (*http.Request, *caddy.Replacer, *httptest.ResponseRecorder) {
		w := httptest.NewRecorder()
		repl := caddy.NewReplacer()
		r := httptest.NewRequestWithContext(ctx, method, "https://"+host+path, nil)
		r.RemoteAddr = remoteAddr.String()
		r = caddyhttp.PrepareRequest(r, repl, w, nil)
		caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, remoteAddr.Addr().WithZone("").String())
		return r, repl, w
	}
	mctx, mcancel := caddy.NewContext(caddy.Context{Context: ctx})
	defer mcancel()
	i := -1
	for j, f := range found {
		r, _, _ := newRequest()
		ok, err := f.matches(mctx, r, site == "")
		if err != nil {
			return exitUsage, fmt.Errorf("identity handler %d: matching the request: %w", f.Index, err)
		}
		if ok {
			i = j
			break
		}
	}
	if i < 0 {
		return exitUsage, fmt.Errorf("no identity handler for %s on site %q and path %q from %s", method, site, path, remoteAddr)
	}
	p, err := provisionHandler(found[i].raw)
	if err != nil {
		return exitUsage, err
	}
	defer p.close()

	res := verifyResult{Handler: found[i], Token: describeToken(token)}
	r, repl, w := newRequest()
	placeToken(r, p.h.credential.sources[0], token)
	var upstream http.Header
	err = p.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		upstream = r.Header
		return nil
	}))
	res.Status = w.Code
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		res.Status = he.StatusCode
	}
	res.Challenge = w.Header().Values("WWW-Authenticate")
	code := exitOK
	if upstream != nil {
		res.Accepted, res.Status = true, http.StatusOK
		res.Headers = map[string]string{}
		for _, ch := range p.h.auth.claimHeaders {
			if v := upstream.Get(ch.header); v != "" {
				res.Headers[ch.header] = v
			}
		}
	} else {
		res.Reason, _ = repl.GetString("http.auth.identity.error")
		for _, e := range p.logs.All() {
			if m := e.ContextMap(); m["error"] != nil {
				res.Detail = fmt.Sprint(m["error"])
			}
		}
		code = exitRefused
		if res.Status >= 500 {
			code = exitUnavailable
		}
	}
	if asJSON {
		return code, printJSON(out, res)
	}
	fmt.Fprintf(out, "handler:  #%d%s\ntoken:    %s\n", res.Handler.Index, describeRoute(res.Handler), res.Token)
	if res.Accepted {
		fmt.Fprintln(out, "result:   ACCEPTED")
		names := make([]string, 0, len(res.Headers))
		for n := range res.Headers {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(out, "header:   %s: %s\n", n, res.Headers[n])
		}
		return code, nil
	}
	fmt.Fprintf(out, "result:   REFUSED %d\nreason:   %s\n", res.Status, res.Reason)
	if res.Detail != "" {
		fmt.Fprintf(out, "detail:   %s\n", res.Detail)
	}
	for _, c := range res.Challenge {
		fmt.Fprintf(out, "WWW-Authenticate: %s\n", c)
	}
	return code, nil
}

// placeToken puts the token where the handler's first source looks.
func placeToken(r *http.Request, src tokenSource, token string) {
	switch src.kind {
	case fromCookie:
		r.AddCookie(&http.Cookie{Name: src.name, Value: token})
	case fromQuery:
		q := r.URL.Query()
		q.Set(src.name, token)
		r.URL.RawQuery = q.Encode()
	default:
		v := token
		if src.scheme != "" && !src.dpop {
			v = src.scheme + " " + token
		} else if src.dpop {
			v = "Bearer " + token
		}
		r.Header.Set(src.name, v)
	}
}

// describeToken names a token without revealing it: its length and the
// first bytes of its SHA-256.
func describeToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return fmt.Sprintf("%d bytes, sha256 %s…", len(token), hex.EncodeToString(sum[:6]))
}

// ---- token -------------------------------------------------------------

func tokenCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "token --issuer <url> --client-id <id> [--client-secret <s> | --key-file <pem>] [--device] [--scope <s>] [--resource <uri>] [--decode] [--json] | token --decode <token | ->",
		Short: "Obtains a token (client credentials or device flow), or decodes one",
		Long: `With --issuer and --client-id, finds the token endpoint by discovery and
asks it for a token with the client credentials grant (client_secret_basic
with --client-secret, private_key_jwt with --key-file, a PEM or JWK private key),
then prints the access token alone on a line, for scripts:
  TOKEN=$(caddy identity token --issuer ... --client-id ... --client-secret ...)
With --device, uses the device authorization grant (RFC 8628) instead: the
client may be public (no secret, no key); the verification URL and the code
to enter there are written to standard error, and the command polls the
token endpoint at the interval the provider asks for (slower when told to
slow down) until the user approves, denies, or the code expires.
With --decode, also prints the token's header and claims, UNVERIFIED. With
--decode and a token argument ("-" for standard input), only decodes it.
Exit 2 when the token endpoint refuses the client, the user denies or the
device code expires, 3 when the provider cannot be reached.`,
		Args: cobra.MaximumNArgs(1),
	}
	c.Flags().String("issuer", "", "issuer URL (its discovery document gives the token endpoint)")
	c.Flags().String("client-id", "", "client ID")
	c.Flags().String("client-secret", "", "client secret (client_secret_basic)")
	c.Flags().String("key-file", "", "private key of the client, PEM or JWK (private_key_jwt)")
	c.Flags().String("key-id", "", "kid of the client key (with --key-file)")
	c.Flags().StringSlice("scope", nil, "scope to request (repeatable)")
	c.Flags().StringSlice("resource", nil, "RFC 8707 resource indicator to request (repeatable)")
	c.Flags().String("audience", "", "audience parameter (some providers, e.g. Auth0)")
	c.Flags().Bool("device", false, "device authorization grant: show a code to enter in a browser, then poll for the token")
	c.Flags().Bool("decode", false, "print the token's header and claims, unverified")
	c.Flags().Bool("json", false, "print JSON")
	c.RunE = runE(c, runToken)
	return c
}

// tokenResult is the output of token.
type tokenResult struct {
	AccessToken string        `json:"access_token,omitempty"`
	TokenType   string        `json:"token_type,omitempty"`
	ExpiresIn   int64         `json:"expires_in,omitempty"`
	Scope       string        `json:"scope,omitempty"`
	Error       string        `json:"error,omitempty"`
	Unverified  *decodedToken `json:"unverified,omitempty"`
	// Device is what the user was shown in a device flow.
	Device *deviceView `json:"device,omitempty"`
}

// decodedToken is a token's header and claims, read without verification.
type decodedToken struct {
	Header map[string]any `json:"header"`
	Claims map[string]any `json:"claims"`
}

func runToken(cmd *cobra.Command, args []string, out io.Writer) (int, error) {
	fl := cmd.Flags()
	asJSON, _ := fl.GetBool("json")
	decode, _ := fl.GetBool("decode")
	issuer, _ := fl.GetString("issuer")
	if len(args) == 1 {
		if !decode || issuer != "" {
			return exitUsage, errors.New("a token argument is only for --decode without --issuer")
		}
		token := args[0]
		if token == "-" {
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), MaxMaxTokenSize+1))
			if err != nil {
				return exitUsage, err
			}
			token = string(b)
		}
		d, err := decodeUnverified(strings.TrimSpace(token))
		if err != nil {
			return exitUsage, err
		}
		return exitOK, printDecoded(out, d, asJSON)
	}
	clientID, _ := fl.GetString("client-id")
	scopes, _ := fl.GetStringSlice("scope")
	resources, _ := fl.GetStringSlice("resource")
	audience, _ := fl.GetString("audience")
	device, _ := fl.GetBool("device")
	if issuer == "" || clientID == "" {
		return exitUsage, errors.New("--issuer and --client-id are required")
	}
	if device && audience != "" {
		return exitUsage, errors.New("--audience is a parameter of the client credentials grant, not of --device")
	}
	auth, err := tokenClientAuth(fl, clientID, device)
	if err != nil {
		return exitUsage, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout)
	defer cancel()
	var res tokenResult
	checked := []string{identity.DiscoveryTokenEndpoint}
	if device {
		checked = append(checked, identity.DiscoveryDeviceAuthorizationEndpoint)
	}
	doc, _, err := identity.FetchDiscovery(ctx, nil, issuer, identity.DiscoveryPolicy{CheckedEndpoints: checked})
	if err == nil && doc.TokenEndpoint == "" {
		err = fmt.Errorf("%w: the discovery document has no token_endpoint", identity.ErrMissingMember)
	}
	var tr *identity.TokenResponse
	if err == nil {
		p := identity.ProtocolRequest{Address: doc.TokenEndpoint, ClientAuth: auth}
		if device {
			tr, res.Device, err = deviceToken(cmd, doc, p, scopes, resources, asJSON)
		} else {
			tr, err = identity.RequestClientCredentialsToken(ctx, nil, identity.ClientCredentialsTokenRequest{
				ProtocolRequest: p,
				Scopes:          scopes,
				Resource:        resources,
				Audience:        audience,
			})
		}
	}
	if err != nil {
		res.Error = err.Error()
		code := exitUnavailable
		if _, ok := errors.AsType[*identity.ProtocolError](err); ok || isPolicyError(err) || errors.Is(err, errDeviceCodeExpired) {
			code = exitRefused
		}
		if asJSON {
			return code, printJSON(out, res)
		}
		fmt.Fprintf(out, "error: %v\n", err)
		return code, nil
	}
	code := exitOK
	res.AccessToken, res.TokenType, res.ExpiresIn, res.Scope = tr.AccessToken, tr.TokenType, tr.ExpiresIn, tr.Scope
	if decode {
		if d, err := decodeUnverified(tr.AccessToken); err == nil {
			res.Unverified = d
		}
	}
	if asJSON {
		return code, printJSON(out, res)
	}
	fmt.Fprintln(out, res.AccessToken)
	if res.Unverified != nil {
		return code, printDecoded(cmd.ErrOrStderr(), res.Unverified, false)
	}
	return code, nil
}

// decodeUnverified reads a compact JWS's header and claims without
// checking anything.
func decodeUnverified(token string) (*decodedToken, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS (three dot-separated parts)")
	}
	d := &decodedToken{}
	for i, dst := range []*map[string]any{&d.Header, &d.Claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i+1, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, fmt.Errorf("part %d: %w", i+1, err)
		}
	}
	return d, nil
}

func printDecoded(out io.Writer, d *decodedToken, asJSON bool) error {
	if asJSON {
		return printJSON(out, map[string]any{"unverified": d})
	}
	fmt.Fprintln(out, "UNVERIFIED (signature, issuer, audience and expiry NOT checked)")
	h, _ := json.MarshalIndent(d.Header, "", "  ")
	c, _ := json.MarshalIndent(d.Claims, "", "  ")
	fmt.Fprintf(out, "header: %s\nclaims: %s\n", h, c)
	if exp, ok := d.Claims["exp"].(float64); ok {
		fmt.Fprintf(out, "exp:    %s\n", time.Unix(int64(exp), 0).UTC().Format(time.RFC3339))
	}
	return nil
}
