package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Limits applied to every document this package fetches, unless the caller
// configures others.
const (
	// DefaultHTTPTimeout bounds a whole request when the caller passes no
	// *http.Client (or one without a Timeout and a context without a
	// deadline).
	DefaultHTTPTimeout = 10 * time.Second
	// DefaultMaxDocumentBytes caps discovery documents, key sets and
	// endpoint responses. Real documents are a few KiB.
	DefaultMaxDocumentBytes = 1 << 20
	// maxErrorBodyBytes is how much of an unexpected response is kept in
	// errors.
	maxErrorBodyBytes = 4 << 10
	// maxRedirects bounds same-host redirects.
	maxRedirects = 5
)

// httpClient returns c, or a new client with [DefaultHTTPTimeout] when c is
// nil. A client is copied, never modified, so the caller's stays as it was.
func httpClient(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: DefaultHTTPTimeout}
	}
	return c
}

// sameHostClient returns a shallow copy of c that follows redirects only to
// the host of the original request, at most maxRedirects times: a metadata
// or key URL must not be able to send us elsewhere.
func sameHostClient(c *http.Client) *http.Client {
	cp := *httpClient(c)
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
		}
		if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
			return fmt.Errorf("%w: %s redirected to another host", ErrRedirect, via[0].URL.Redacted())
		}
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w: https redirected to %s", ErrRedirect, req.URL.Scheme)
		}
		return nil
	}
	return &cp
}

// withDefaultDeadline gives ctx a DefaultHTTPTimeout deadline when neither
// ctx nor the client bounds the request, so no outbound call can hang.
func withDefaultDeadline(ctx context.Context, c *http.Client) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || (c != nil && c.Timeout > 0) {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultHTTPTimeout)
}

// readCapped reads all of r, failing with ErrBodyTooLarge past limit bytes.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxDocumentBytes
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	return b, nil
}

// isJSONMediaType accepts application/json and any application/*+json
// (jwk-set+json, jwt claims are not JSON and are handled by callers).
func isJSONMediaType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// getJSON fetches rawURL with GET, following only same-host redirects, and
// returns the capped body of a 200 response declared as JSON. The returned
// header lets callers read caching directives.
func getJSON(ctx context.Context, c *http.Client, rawURL string, limit int64) ([]byte, http.Header, error) {
	ctx, cancel := withDefaultDeadline(ctx, c)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := sameHostClient(c).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && errors.Is(ue.Err, ErrRedirect) {
			return nil, nil, ue.Err
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := readCapped(resp.Body, maxErrorBodyBytes)
		return nil, resp.Header, &HTTPStatusError{URL: redactURL(rawURL), StatusCode: resp.StatusCode, Body: body}
	}
	if !isJSONMediaType(resp.Header.Get("Content-Type")) {
		return nil, resp.Header, fmt.Errorf("%w: %q from %s", ErrContentType, resp.Header.Get("Content-Type"), redactURL(rawURL))
	}
	body, err := readCapped(resp.Body, limit)
	if err != nil {
		return nil, resp.Header, err
	}
	return body, resp.Header, nil
}

// redactURL drops user info and query from a URL for errors and logs.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// IsLoopbackHost reports whether host (without port) is localhost, an
// address in 127.0.0.0/8, or ::1: the hosts where plain http is tolerated.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// requireHTTPS fails with ErrHTTPSRequired unless u is https, or http on a
// loopback host, or allowHTTP is set.
func requireHTTPS(u *url.URL, allowHTTP bool) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && (allowHTTP || IsLoopbackHost(u.Hostname())):
		return nil
	}
	return fmt.Errorf("%w: %s", ErrHTTPSRequired, redactURL(u.String()))
}
