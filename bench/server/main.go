// Command server is the helper of bench/run.sh. It has four subcommands:
//
//	server serve -dir DIR [-tokens 10000] [-flood 50000]
//	    Runs, on loopback, an upstream HTTP server that answers 200 with a
//	    tiny body and a demo OpenID provider (identitytest.Start, RS256,
//	    ES256 and EdDSA keys) serving discovery and the JWKS. Writes into
//	    DIR: token-one.txt (one RS256 token), token-one-es256.txt and
//	    token-one-eddsa.txt (the same claims signed with ES256 and EdDSA),
//	    tokens-many.txt (-tokens distinct
//	    RS256 tokens), tokens-flood.txt (-flood distinct EdDSA tokens, cheap to
//	    mint, for the memory step), token-bad.txt (a token with a tampered
//	    signature), token-expired.txt (a token that expired an hour ago) and,
//	    last, env.sh with UPSTREAM and ISSUER. Valid tokens expire in 24 h.
//	    Runs until SIGINT or SIGTERM.
//	server send -url URL -file FILE [-conns 8] [-want 200]
//	    Sends one GET per token of FILE (Authorization: Bearer) and fails
//	    unless every answer has status -want.
//	server ports -n N
//	    Prints N free loopback TCP ports, one per line.
//	server report -file results.tsv
//	    Prints the markdown table of a run: medians per configuration and
//	    ratios to the first configuration, each ratio computed within its
//	    round and then the median taken over the rounds.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddy-identity/caddy-identity/identity/identitytest"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	case "ports":
		err = ports(os.Args[2:])
	case "report":
		err = report(os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: server serve|send|ports|report [flags]")
	os.Exit(2)
}

// serve runs the upstream and the issuer and writes the token files.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory (required)")
	nTokens := fs.Int("tokens", 10000, "number of distinct RS256 tokens for tokens-many.txt")
	nFlood := fs.Int("flood", 0, "number of distinct EdDSA tokens for tokens-flood.txt (0: none)")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("serve: -dir is required")
	}

	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	body := []byte("ok\n")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "3")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(upstream) }()
	defer srv.Close()

	iss, err := identitytest.Start(identitytest.WithAlgorithms("RS256", "ES256", "EdDSA"),
		identitytest.WithCacheControl("max-age=3600"))
	if err != nil {
		return err
	}
	defer iss.Close()

	exp := time.Now().Add(24 * time.Hour)
	one, err := mint(iss, "RS256", 0, exp)
	if err != nil {
		return err
	}
	oneES, err := mint(iss, "ES256", 0, exp)
	if err != nil {
		return err
	}
	oneEd, err := mint(iss, "EdDSA", 0, exp)
	if err != nil {
		return err
	}
	expired, err := iss.MintToken(claims(0, time.Now().Add(-time.Hour)), identitytest.Alg("RS256"))
	if err != nil {
		return err
	}
	// Flip one character in the middle of the signature: still valid base64url,
	// wrong signature.
	sig := strings.LastIndexByte(one, '.') + 20
	flip := "A"
	if one[sig] == 'A' {
		flip = "B"
	}
	bad := one[:sig] + flip + one[sig+1:]
	many, err := mintAll(iss, "RS256", *nTokens, exp)
	if err != nil {
		return err
	}
	flood, err := mintAll(iss, "EdDSA", *nFlood, exp)
	if err != nil {
		return err
	}
	files := map[string][]string{
		"token-one.txt":       {one},
		"token-one-es256.txt": {oneES},
		"token-one-eddsa.txt": {oneEd},
		"token-bad.txt":       {bad},
		"token-expired.txt":   {expired},
		"tokens-many.txt":     many,
		"tokens-flood.txt":    flood,
	}
	for name, toks := range files {
		if err := writeLines(filepath.Join(*dir, name), toks); err != nil {
			return err
		}
	}
	env := fmt.Sprintf("UPSTREAM=%s\nISSUER=%s\n", upstream.Addr().String(), iss.URL)
	if err := writeAtomic(filepath.Join(*dir, "env.sh"), []byte(env)); err != nil {
		return err
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	return nil
}

// claims returns the claims of benchmark token n: a realistic access token of
// about 800 bytes once signed with RS256.
func claims(n int, exp time.Time) map[string]any {
	return map[string]any{
		"sub":       fmt.Sprintf("user-%06d", n),
		"jti":       fmt.Sprintf("bench-%06d-%d", n, exp.Unix()),
		"exp":       exp,
		"scope":     "openid profile email api:read api:write",
		"client_id": "bench-client",
		"email":     fmt.Sprintf("user-%06d@example.test", n),
		"name":      fmt.Sprintf("Bench User %d", n),
		"roles":     []string{"reader", "writer"},
	}
}

func mint(iss *identitytest.Issuer, alg string, n int, exp time.Time) (string, error) {
	return iss.MintToken(claims(n, exp), identitytest.Alg(alg))
}

// mintAll mints n distinct tokens on all CPUs.
func mintAll(iss *identitytest.Issuer, alg string, n int, exp time.Time) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, runtime.NumCPU())
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				tok, err := mint(iss, alg, i+1, exp)
				if err != nil {
					errs <- err
					return
				}
				out[i] = tok
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

func writeLines(path string, lines []string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return writeAtomic(path, []byte(b.String()))
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// send sends every token of a file once and checks the statuses.
func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	url := fs.String("url", "", "target URL (required)")
	file := fs.String("file", "", "token file (required)")
	conns := fs.Int("conns", 8, "concurrent connections")
	want := fs.Int("want", http.StatusOK, "expected status of every answer")
	_ = fs.Parse(args)
	if *url == "" || *file == "" {
		return errors.New("send: -url and -file are required")
	}
	toks, err := readLines(*file)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *conns, DisableCompression: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var next, wrong atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(toks) || ctx.Err() != nil {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				req.Header.Set("Authorization", "Bearer "+toks[i])
				resp, err := client.Do(req)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != *want {
					if wrong.Add(1) == 1 {
						once.Do(func() { firstErr = fmt.Errorf("token %d: status %d, want %d", i, resp.StatusCode, *want) })
					}
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("send %s: %d of %d answers wrong: %w", *file, wrong.Load(), len(toks), firstErr)
	}
	return nil
}

// ports prints free loopback ports.
func ports(args []string) error {
	fs := flag.NewFlagSet("ports", flag.ExitOnError)
	n := fs.Int("n", 1, "how many ports")
	_ = fs.Parse(args)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range *n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// sample is one measured wrk run.
type sample struct {
	round  int
	config string
	rps    float64
	p50    float64 // µs
	p99    float64 // µs
	cpu    float64 // server CPU µs per request
	non2xx int
}

// report prints the markdown table of a results file. Each line of the file is
// tab-separated: round, config, requests/s, p50 µs, p99 µs, server CPU µs per
// request, non-2xx answers. The first configuration seen is the reference.
func report(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	file := fs.String("file", "", "results file (required)")
	_ = fs.Parse(args)
	if *file == "" {
		return errors.New("report: -file is required")
	}
	lines, err := readLines(*file)
	if err != nil {
		return err
	}
	var samples []sample
	var configs []string
	for n, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 7 {
			return fmt.Errorf("report: line %d: %d fields, want 7", n+1, len(f))
		}
		s := sample{config: f[1]}
		var errs []error
		var e error
		s.round, e = strconv.Atoi(f[0])
		errs = append(errs, e)
		for i, p := range []*float64{&s.rps, &s.p50, &s.p99, &s.cpu} {
			*p, e = strconv.ParseFloat(f[2+i], 64)
			errs = append(errs, e)
		}
		s.non2xx, e = strconv.Atoi(f[6])
		errs = append(errs, e)
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("report: line %d: %w", n+1, err)
		}
		if !slices.Contains(configs, s.config) {
			configs = append(configs, s.config)
		}
		samples = append(samples, s)
	}
	if len(configs) == 0 {
		return errors.New("report: no samples")
	}
	ref := configs[0]
	byRound := map[int]sample{}
	for _, s := range samples {
		if s.config == ref {
			byRound[s.round] = s
		}
	}
	fmt.Fprintln(w, "| Config | req/s | ratio req/s | p50 | p99 | ratio p99 | server CPU/req | non-2xx | rounds |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range configs {
		var rps, p50, p99, cpu, rr, rp99 []float64
		non2xx := 0
		for _, s := range samples {
			if s.config != c {
				continue
			}
			rps = append(rps, s.rps)
			p50 = append(p50, s.p50)
			p99 = append(p99, s.p99)
			cpu = append(cpu, s.cpu)
			non2xx += s.non2xx
			if r, ok := byRound[s.round]; ok && r.rps > 0 && r.p99 > 0 {
				rr = append(rr, s.rps/r.rps)
				rp99 = append(rp99, s.p99/r.p99)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %.3f | %s | %s | %.2f | %.1f µs | %d | %d |\n",
			c, thousands(median(rps)), median(rr), duration(median(p50)), duration(median(p99)),
			median(rp99), median(cpu), non2xx, len(rps))
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func duration(us float64) string {
	if us >= 1000 {
		return strconv.FormatFloat(us/1000, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(us, 'f', 0, 64) + " µs"
}
