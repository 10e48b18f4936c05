// Command demo shows the identity handler end to end on one machine, with
// nothing external: it starts a demo OpenID provider (identitytest), a small
// upstream that echoes the identity headers it receives, and Caddy with the
// identity handler in front of a reverse_proxy to that upstream. It then
// prints a ready curl line with a fresh token and a URL to sign in with a
// browser (as alice, on the demo provider's login page), checks the setup
// itself (a valid token, a spoofed identity header, no token, a browser
// sign-in through the login form) and shows what the responses contain.
//
// Usage:
//
//	go run ./examples/demo              # run until Ctrl-C
//	go run ./examples/demo -once        # self-check, print the results and exit (DEMO_ONCE=1 does the same)
//	go run ./examples/demo -listen 127.0.0.1:9090 -v
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-identity/caddy-identity"
	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

// options are the command-line settings of the demo.
type options struct {
	// Listen is the loopback host:port Caddy serves on.
	Listen string
	// Once performs the self-check, prints it and returns instead of
	// serving until the context is cancelled.
	Once bool
	// Verbose shows Caddy's INFO logs instead of errors only.
	Verbose bool
}

// demoAudience is the audience the demo site accepts and the token carries.
const demoAudience = "demo-api"

// demoUser is the subject of the demo token and the user who signs in
// with a browser, with demoPassword on the demo provider's login page.
const (
	demoUser     = "alice"
	demoPassword = "wonderland"
)

// demoClientID and demoClientSecret are the web client the site signs
// browsers in with.
const (
	demoClientID     = "demo-web"
	demoClientSecret = "demo-secret"
)

func main() {
	o := options{Once: envBool("DEMO_ONCE")}
	flag.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "loopback `host:port` for Caddy")
	flag.BoolVar(&o.Once, "once", o.Once, "self-check, print the results and exit (also DEMO_ONCE=1)")
	flag.BoolVar(&o.Verbose, "v", false, "show Caddy's INFO logs")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// envBool reports whether the environment variable name is set to a true
// value ("1", "true", ...).
func envBool(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
}

// caddyfileTemplate is the configuration the demo runs.
var caddyfileTemplate = template.Must(template.New("Caddyfile").Parse(`{
	admin off
	auto_https off
	persist_config off
	log {
		level {{.LogLevel}}
	}
}

http://:{{.Port}} {
	bind {{.Host}}
	identity {
		issuer {{.Issuer}}
		audience {{.Audience}}
		realm demo
		claim_header sub X-User-Id
		claim_header email X-User-Email
		claim_header name X-User-Name
		claim_header scope X-User-Scopes
		claim_header groups X-User-Groups
		claim_header department X-User-Department
		login {
			client_id {{.ClientID}}
			client_secret {{.ClientSecret}}
			session_key {{.SessionKey}}
			userinfo
		}
	}
	reverse_proxy {{.Upstream}}
}
`))

// run starts the demo and, unless o.Once, serves until ctx is cancelled.
func run(ctx context.Context, o options, out io.Writer) error {
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", o.Listen, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}

	iss, err := identitytest.Start(identitytest.WithAlgorithms("ES256"), identitytest.WithClient(demoClientID, demoClientSecret),
		identitytest.WithLoginPage(map[string]string{demoUser: demoPassword}))
	if err != nil {
		return err
	}
	defer iss.Close()

	upstream, err := startUpstream()
	if err != nil {
		return err
	}
	defer upstream.Close()

	var cf strings.Builder
	level := "ERROR"
	if o.Verbose {
		level = "INFO"
	}
	sessionKey := make([]byte, 32)
	if _, err := rand.Read(sessionKey); err != nil {
		return err
	}
	err = caddyfileTemplate.Execute(&cf, map[string]string{
		"LogLevel": level, "Host": host, "Port": port, "Issuer": iss.URL,
		"Audience": demoAudience, "Upstream": upstream.Addr,
		"ClientID": demoClientID, "ClientSecret": demoClientSecret,
		"SessionKey": base64.StdEncoding.EncodeToString(sessionKey),
	})
	if err != nil {
		return err
	}
	if err := startCaddy(cf.String()); err != nil {
		return err
	}
	defer func() { _ = caddy.Stop() }()

	token, err := iss.MintToken(map[string]any{
		"sub":    demoUser,
		"aud":    demoAudience,
		"email":  "alice@example.com",
		"name":   "Alice Example",
		"scope":  "read:demo write:demo",
		"groups": []string{"admins", "developers"},
	})
	if err != nil {
		return err
	}
	site := "http://" + net.JoinHostPort(host, port)

	fmt.Fprintf(out, "Demo identity provider: %s (discovery: %s)\n", iss.URL, iss.DiscoveryURL())
	fmt.Fprintf(out, "Upstream echoing the identity headers it receives: http://%s\n", upstream.Addr)
	fmt.Fprintf(out, "Caddy with the identity handler: %s, running this Caddyfile:\n\n%s\n", site, indent(cf.String()))
	fmt.Fprintf(out, "Try it (the token is valid for %s):\n\n  curl -sS -H 'Authorization: Bearer %s' %s/hello\n\n",
		identitytest.DefaultLifetime, token, site)
	fmt.Fprintf(out, "Or sign in with a browser: open %s/app and, on the demo provider's login page, sign in as\n"+
		"user %q with password %q; the page shows the headers the upstream received (sign out with a POST\n"+
		"to /oauth2/logout).\n\n", site, demoUser, demoPassword)
	if err := selfCheck(ctx, site, token, out); err != nil {
		return err
	}
	if err := browserCheck(ctx, site, out); err != nil {
		return err
	}
	if o.Once {
		return nil
	}
	fmt.Fprintln(out, "\nRunning; press Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Fprintln(out, "Stopping.")
	return nil
}

// indent prefixes every line of s with two spaces.
func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// startCaddy adapts the Caddyfile and runs it in this process.
func startCaddy(caddyfile string) error {
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		return errors.New("the caddyfile adapter is not registered")
	}
	cfgJSON, warnings, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return fmt.Errorf("adapt Caddyfile: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "Caddyfile warning:", w.String())
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return fmt.Errorf("start Caddy: %w", err)
	}
	return nil
}

// upstreamServer is the echo backend.
type upstreamServer struct {
	// Addr is its loopback host:port.
	Addr string
	srv  *http.Server
}

// Close stops the upstream.
func (u *upstreamServer) Close() { _ = u.srv.Close() }

// echo is what the upstream answers: the request line and the identity
// headers it received.
type echo struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Headers holds every received header named X-User-* in any spelling
	// (including X_User_* variants), with all its values.
	Headers map[string][]string `json:"identity_headers"`
	// Authorization tells whether the bearer token reached the upstream.
	Authorization bool `json:"authorization_forwarded"`
}

// startUpstream starts the echo backend on a free loopback port.
func startUpstream() (*upstreamServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := echo{Method: r.Method, Path: r.URL.Path, Headers: map[string][]string{},
			Authorization: r.Header.Get("Authorization") != ""}
		for name, vals := range r.Header {
			if n := strings.ToLower(strings.ReplaceAll(name, "_", "-")); strings.HasPrefix(n, "x-user-") {
				e.Headers[name] = vals
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &upstreamServer{Addr: ln.Addr().String(), srv: srv}, nil
}

// selfCheck sends three requests through Caddy, prints what came back and
// fails when the identity handler did not behave.
func selfCheck(ctx context.Context, site, token string, out io.Writer) error {
	fmt.Fprintln(out, "What that returns (checked now by the demo itself):")
	fmt.Fprintln(out)

	status, hdr, body, err := call(ctx, site+"/hello", map[string]string{"Authorization": "Bearer " + token})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "1. with the token: %d %s\n%s\n", status, http.StatusText(status), indent(string(body)))
	var e echo
	if status != http.StatusOK {
		return fmt.Errorf("with a valid token Caddy answered %d (WWW-Authenticate: %q)", status, hdr.Get("WWW-Authenticate"))
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("upstream answer: %w", err)
	}
	if got := e.Headers["X-User-Id"]; len(got) != 1 || got[0] != demoUser {
		return fmt.Errorf("upstream saw X-User-Id %q, want %q", got, demoUser)
	}

	status, _, body, err = call(ctx, site+"/hello", map[string]string{
		"Authorization":     "Bearer " + token,
		"X-User-Id":         "mallory",
		"X-User-Department": "mallory",
		"X_User_Email":      "mallory@evil.example",
	})
	if err != nil {
		return err
	}
	e = echo{}
	if status != http.StatusOK || json.Unmarshal(body, &e) != nil {
		return fmt.Errorf("with spoofed headers Caddy answered %d: %s", status, body)
	}
	fmt.Fprintf(out, "2. with the token plus spoofed headers 'X-User-Id: mallory', 'X-User-Department: mallory'\n"+
		"   (the token has no department claim) and 'X_User_Email: mallory@evil.example': %d, upstream saw:\n%s\n",
		status, indent(headerLines(e.Headers)))
	for name, vals := range e.Headers {
		for _, v := range vals {
			if strings.Contains(v, "mallory") {
				return fmt.Errorf("spoofed header %s: %s reached the upstream", name, v)
			}
		}
	}
	if got := e.Headers["X-User-Id"]; len(got) != 1 || got[0] != demoUser {
		return fmt.Errorf("upstream saw X-User-Id %q, want %q", got, demoUser)
	}

	status, hdr, _, err = call(ctx, site+"/hello", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "3. without a token: %d %s, WWW-Authenticate: %s\n", status, http.StatusText(status), hdr.Get("WWW-Authenticate"))
	if status != http.StatusUnauthorized {
		return fmt.Errorf("without a token Caddy answered %d, want 401", status)
	}
	return nil
}

// browserCheck signs in the way a browser does: a navigation to /app
// without a session goes to the provider's login page, the form is sent
// (first with a wrong password, which shows the form again), and the
// provider sends the browser back through the callback, with the cookies
// kept, to the upstream's answer.
func browserCheck(ctx context.Context, site string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	var hops []string
	client := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		hops = append(hops, r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
		return nil
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, site+"/app", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Accept", "text/html")
	status, page, err := browse(client, req)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(string(page), `name="`+identitytest.LoginFieldPassword+`"`) {
		return fmt.Errorf("a navigation to /app did not end on the login page: %d %s", status, page)
	}
	toLogin := hops
	hops = nil
	action, request := formValue(page, "action"), formValue(page, `name="`+identitytest.LoginFieldRequest+`" value`)
	signIn := func(password string) (int, []byte, error) {
		form := url.Values{identitytest.LoginFieldRequest: {request}, identitytest.LoginFieldUsername: {demoUser},
			identitytest.LoginFieldPassword: {password}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(form.Encode()))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return browse(client, req)
	}
	status, page, err = signIn("not-" + demoPassword)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(string(page), identitytest.LoginFailedMessage) {
		return fmt.Errorf("a wrong password got %d: %s", status, page)
	}
	status, body, err := signIn(demoPassword)
	if err != nil {
		return err
	}
	var e echo
	if status != http.StatusOK || json.Unmarshal(body, &e) != nil {
		return fmt.Errorf("browser sign-in ended with %d: %s", status, body)
	}
	fmt.Fprintf(out, "4. a browser opening %s/app is sent to the demo provider's login page:\n%s"+
		"   a wrong password shows the form again (%q); %s's password leads through\n%s"+
		"   back to the page; the upstream saw:\n%s",
		site, indent(strings.Join(toLogin, "\n")), identitytest.LoginFailedMessage, demoUser,
		indent(strings.Join(hops, "\n")), indent(headerLines(e.Headers)))
	if got := e.Headers["X-User-Id"]; len(got) != 1 || got[0] != demoUser {
		return fmt.Errorf("after signing in the upstream saw X-User-Id %q", got)
	}
	return nil
}

// browse sends req with client, following redirects, and returns the
// final status and body.
func browse(client *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("browser sign-in: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// formValue returns the quoted HTML attribute value after prefix="
// in page (the login page's own markup), unescaped.
func formValue(page []byte, prefix string) string {
	_, rest, _ := strings.Cut(string(page), prefix+`="`)
	v, _, _ := strings.Cut(rest, `"`)
	return html.UnescapeString(v)
}

// headerLines formats headers one per line, sorted by name.
func headerLines(h map[string][]string) string {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s: %s\n", n, strings.Join(h[n], " | "))
	}
	return b.String()
}

// call GETs url with the given headers (set verbatim, so non-canonical names
// such as X_User_Email are sent as written).
func call(ctx context.Context, url string, headers map[string]string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range headers {
		req.Header[k] = []string{v}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, body, err
}
