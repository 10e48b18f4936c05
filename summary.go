package caddyidentity

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// accessLogField is the access log field that carries the rejection
// reason of a refused request, like {http.auth.identity.error}.
const accessLogField = "identity_error"

// summaryInterval is how often the rejection summary is logged.
const summaryInterval = time.Minute

// rejectionSummary counts a handler's rejections by issuer and reason and
// logs them once per interval at INFO, so that a wall of refusals shows at
// the default log level without a line per request.
type rejectionSummary struct {
	logger  *zap.Logger
	issuers []string
	counts  [][numReasons]atomic.Uint64
	done    chan struct{}
	wg      sync.WaitGroup
}

// newRejectionSummary starts the summary of a handler with the given issuer
// labels (see meter.issuerLabels); stop ends it.
func newRejectionSummary(logger *zap.Logger, issuers []string) *rejectionSummary {
	s := &rejectionSummary{
		logger:  logger,
		issuers: issuers,
		counts:  make([][numReasons]atomic.Uint64, len(issuers)),
		done:    make(chan struct{}),
	}
	s.wg.Go(func() {
		tick := time.NewTicker(summaryInterval)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
				s.flush()
			}
		}
	})
	return s
}

// add counts one rejection.
func (s *rejectionSummary) add(issuerIndex int, rsn reason) {
	s.counts[issuerIndex][rsn].Add(1)
}

// flush logs, for each issuer with rejections since the last flush, one
// INFO line with the counts by reason, and starts counting again.
func (s *rejectionSummary) flush() {
	for i := range s.counts {
		var total uint64
		byReason := make(map[string]uint64)
		for rsn := range s.counts[i] {
			if n := s.counts[i][rsn].Swap(0); n > 0 {
				byReason[reasons[rsn].label] = n
				total += n
			}
		}
		if total == 0 {
			continue
		}
		s.logger.Info("requests rejected in the last minute",
			zap.String("issuer", s.issuers[i]), zap.Uint64("total", total),
			zap.Object("reasons", reasonCounts(byReason)))
	}
}

// stop ends the summary, logging what is left.
func (s *rejectionSummary) stop() {
	close(s.done)
	s.wg.Wait()
	s.flush()
}

// reasonCounts logs rejection counts as an object keyed by reason.
type reasonCounts map[string]uint64

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (c reasonCounts) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for k, v := range c {
		enc.AddUint64(k, v)
	}
	return nil
}

// logURI is the request's path for logs: the query string is left out, as
// a token may be in any parameter, configured or not.
func logURI(r *http.Request) string {
	return r.URL.EscapedPath()
}
