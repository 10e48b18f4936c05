package caddyidentity

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// collectors are the handler's Prometheus metrics. They are created once per
// process, so that counters survive config reloads, and registered into the
// registry of every config that uses the handler.
type collectors struct {
	accepted         *prometheus.CounterVec
	anonymous        *prometheus.CounterVec
	rejected         *prometheus.CounterVec
	cacheHits        *prometheus.CounterVec
	cacheMisses      *prometheus.CounterVec
	keyFetches       *prometheus.CounterVec
	keyFetchFailures *prometheus.CounterVec

	// Browser sign-in (login block).
	loginsStarted    prometheus.Counter
	loginsCompleted  prometheus.Counter
	loginFailures    *prometheus.CounterVec
	sessionsAccepted prometheus.Counter
	refreshes        *prometheus.CounterVec
	logouts          *prometheus.CounterVec
}

// resolvedCounters are a handler's token cache counters, indexed like its
// issuer labels (see meter.issuerLabels): a hit counts for the issuer of
// the cached token (each cache entry holds its counter), a miss for the
// issuer of the token once verified, or for the unattributed label when it
// was refused before its issuer was known.
type resolvedCounters struct {
	issuerLabels []string
	cacheHits    []prometheus.Counter
	cacheMisses  []prometheus.Counter
}

// hits returns the cache hit counter of issuer.
func (c *resolvedCounters) hits(issuer string) prometheus.Counter {
	return c.cacheHits[issuerIndex(c.issuerLabels, issuer)]
}

// misses returns the cache miss counter of issuer.
func (c *resolvedCounters) misses(issuer string) prometheus.Counter {
	return c.cacheMisses[issuerIndex(c.issuerLabels, issuer)]
}

// countMiss counts a token cache miss whose verification gave e (nil:
// the token was refused).
func (c *resolvedCounters) countMiss(e *cacheEntry) {
	issuer := ""
	if e != nil {
		issuer = e.issuer
	}
	c.misses(issuer).Inc()
}

// requestCounters are the counters of one handler in one server (labels
// server and issuer, like Caddy's own http metrics), resolved once so that
// no label lookup happens per request. accepted is indexed by the issuer's
// index (see meter.issuerIndex; nil for the unattributed label, under
// which no request is accepted), rejected by that index and the reason.
type requestCounters struct {
	srv       *caddyhttp.Server
	anonymous prometheus.Counter
	accepted  []prometheus.Counter
	rejected  [][numReasons]prometheus.Counter
}

const metricsNamespace = "caddy_identity"

var (
	metricsOnce sync.Once
	metricsInst *collectors
)

// processMetrics returns the process-wide collectors, creating them once.
func processMetrics() *collectors {
	metricsOnce.Do(func() {
		metricsInst = &collectors{
			accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "tokens_accepted_total",
				Help: "Requests let through with a verified token, by server and issuer.",
			}, []string{"server", "issuer"}),
			anonymous: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "anonymous_requests_total",
				Help: "Requests without a token let through by an optional identity handler, by server.",
			}, []string{"server"}),
			rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "tokens_rejected_total",
				Help: "Requests refused, by server, issuer (empty when a handler with several issuers refused before knowing which) and reason (missing, invalid_request, expired, signature, insufficient_scope, provider_unavailable, dpop_proof, dpop_bound_as_bearer, cert_binding, inactive, ...).",
			}, []string{"server", "issuer", "reason"}),
			cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "token_cache_hits_total",
				Help: "Tokens answered from the validated-token cache (JWTs) or the introspection cache (opaque tokens), by issuer.",
			}, []string{"issuer"}),
			cacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "token_cache_misses_total",
				Help: "Tokens not in the validated-token or introspection cache (verified in full, or introspected), by issuer (empty when a handler with several issuers refused the token before knowing which).",
			}, []string{"issuer"}),
			keyFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "key_fetches_total",
				Help: "Fetches of issuer key sets (document=\"jwks\") and discovery documents (document=\"discovery\"), by issuer.",
			}, []string{"issuer", "document"}),
			keyFetchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "key_fetch_failures_total",
				Help: "Failed fetches of issuer key sets and discovery documents, by issuer.",
			}, []string{"issuer", "document"}),
			loginsStarted: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "logins_started_total",
				Help: "Browser sign-ins started (redirects to the authorization endpoint).",
			}),
			loginsCompleted: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "logins_completed_total",
				Help: "Browser sign-ins completed (session cookie set).",
			}),
			loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "login_failures_total",
				Help: "Failed sign-in, callback, logout and back-channel logout steps, by reason (state_invalid, state_expired, state_replayed, access_denied, issuer_mismatch, id_token_invalid, token_error, ...).",
			}, []string{"reason"}),
			sessionsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "sessions_accepted_total",
				Help: "Requests let through with a browser session.",
			}),
			refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "session_refreshes_total",
				Help: "Session token refreshes, by result (ok, failed, reused: the result of a refresh handed to a concurrent request).",
			}, []string{"result"}),
			logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "logouts_total",
				Help: "Sessions ended by sign-out (kind=\"rp\") and back-channel logout tokens accepted (kind=\"backchannel\").",
			}, []string{"kind"}),
		}
	})
	return metricsInst
}

// all returns every collector.
func (m *collectors) all() []prometheus.Collector {
	return []prometheus.Collector{m.accepted, m.anonymous, m.rejected, m.cacheHits, m.cacheMisses, m.keyFetches, m.keyFetchFailures,
		m.loginsStarted, m.loginsCompleted, m.loginFailures, m.sessionsAccepted, m.refreshes, m.logouts}
}

// register adds the collectors to the config's metrics registry; another
// identity handler of the same config may have done it already.
func (m *collectors) register(ctx caddy.Context, logger *zap.Logger) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	for _, c := range m.all() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				logger.Warn("registering identity metrics", zap.Error(err))
			}
		}
	}
}

// resolve returns the token cache counters of a handler with the given
// issuer labels (see meter.issuerLabels).
func (m *collectors) resolve(issuers []string) resolvedCounters {
	rc := resolvedCounters{issuerLabels: issuers, cacheHits: make([]prometheus.Counter, len(issuers)), cacheMisses: make([]prometheus.Counter, len(issuers))}
	for i, iss := range issuers {
		rc.cacheHits[i], rc.cacheMisses[i] = m.cacheHits.WithLabelValues(iss), m.cacheMisses.WithLabelValues(iss)
	}
	return rc
}

// resolveRequest returns the counters of a handler with the given issuer
// labels (see meter.issuerLabels) in the server srv. Their number is
// bounded by the configuration: servers times configured issuers.
func (m *collectors) resolveRequest(srv *caddyhttp.Server, issuers []string) *requestCounters {
	server := ""
	if srv != nil {
		server = srv.Name()
	}
	rc := &requestCounters{
		srv:       srv,
		anonymous: m.anonymous.WithLabelValues(server),
		accepted:  make([]prometheus.Counter, len(issuers)),
		rejected:  make([][numReasons]prometheus.Counter, len(issuers)),
	}
	for i, iss := range issuers {
		if iss != "" {
			rc.accepted[i] = m.accepted.WithLabelValues(server, iss)
		}
		for rsn := reason(1); rsn < numReasons; rsn++ {
			rc.rejected[i][rsn] = m.rejected.WithLabelValues(server, iss, reasons[rsn].label)
		}
	}
	return rc
}

// meter counts the outcomes of one handler's requests: the process's
// collectors, and the request counters of the server it last served in.
type meter struct {
	metrics *collectors
	// issuerLabels are the configured issuers, in order, then "" for
	// rejections not attributed to one when there are several: the issuer
	// label of the request metrics and of the rejection summary.
	issuerLabels []string
	reqCounters  atomic.Pointer[requestCounters]
}

// requestCounters returns the counters of the request's server, resolving
// them when the handler first serves in that server.
func (m *meter) requestCounters(r *http.Request) *requestCounters {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if rc := m.reqCounters.Load(); rc != nil && rc.srv == srv {
		return rc
	}
	rc := m.metrics.resolveRequest(srv, m.issuerLabels)
	m.reqCounters.Store(rc)
	return rc
}

// issuerIndex is the index of issuer among the handler's issuer labels.
func (m *meter) issuerIndex(issuer string) int {
	return issuerIndex(m.issuerLabels, issuer)
}

// issuerIndex is the index of issuer among a handler's issuer labels: its
// own when it is one of them, else the last, which is the handler's only
// issuer or, with several, the unattributed "".
func issuerIndex(labels []string, issuer string) int {
	last := len(labels) - 1
	for i, l := range labels[:last] {
		if l == issuer {
			return i
		}
	}
	return last
}
