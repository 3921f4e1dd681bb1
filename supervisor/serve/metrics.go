package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"aileron.dev/aileron/broker/audit"
)

// Outcomes of a run request, the "outcome" label of aileron_runs_total.
// Connector error codes are not labels: a connector chooses them, and a
// label's values must be few.
const (
	outcomeOK         = "ok"
	outcomeStepFailed = "step_failed"
	outcomeCancelled  = "cancelled"
	outcomeIsolation  = "isolation_unavailable"
	outcomeRefused    = "refused" // the action could not start: not found, bad input
	outcomeError      = "error"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg                 *prometheus.Registry
	runs                *prometheus.CounterVec
	duration            *prometheus.HistogramVec
	inFlight            *prometheus.GaugeVec
	quotaRejections     *prometheus.CounterVec
	admissionRejections *prometheus.CounterVec
	authFailures        *prometheus.CounterVec
	connRejections      *prometheus.CounterVec
	egressDenials       *prometheus.CounterVec
	poolSize            prometheus.Gauge
}

func newMetrics(poolReady func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aileron_runs_total", Help: "Run requests by tenant and outcome (ok, step_failed, cancelled, isolation_unavailable, refused, error).",
		}, []string{"tenant", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aileron_run_duration_seconds", Help: "Duration of runs that started, by tenant.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"tenant"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aileron_runs_in_flight", Help: "Runs in flight by tenant.",
		}, []string{"tenant"}),
		quotaRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aileron_quota_rejections_total", Help: "Run requests refused by a tenant quota (concurrent_runs, runs_per_minute).",
		}, []string{"tenant", "quota"}),
		admissionRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aileron_admission_rejections_total", Help: "Run requests shed by the server (overloaded, shutting_down).",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aileron_auth_failures_total", Help: "Requests refused as unauthenticated, by listener.",
		}, []string{"listener"}),
		connRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aileron_connections_rejected_total", Help: "Connections closed at once because a listener had limits.max_connections open.",
		}, []string{"listener"}),
		egressDenials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aileron_egress_denials_total", Help: "Egress requests the tenants' brokers refused, by tenant and reason (the audit log's code), since the server started.",
		}, []string{"tenant", "reason"}),
		poolSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aileron_pool_size", Help: "Configured size of the warm pool.",
		}),
	}
	m.reg.MustRegister(m.runs, m.duration, m.inFlight, m.quotaRejections, m.admissionRejections,
		m.authFailures, m.connRejections, m.egressDenials, m.poolSize,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aileron_pool_ready", Help: "Sandboxed, unbound workers ready in the warm pool."}, poolReady),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// auditTail follows one tenant's audit log from where it was when the
// server started and counts the egress denials in it. The broker writes
// the log; the server only reads what is appended.
type auditTail struct {
	path string

	mu      sync.Mutex
	offset  int64
	partial []byte
}

// maxAuditRead bounds one poll's read.
const maxAuditRead = 4 << 20

func newAuditTail(path string) *auditTail {
	t := &auditTail{path: path}
	if fi, err := os.Stat(path); err == nil {
		t.offset = fi.Size()
	}
	return t
}

// codeLabelRE is what a reason label may look like; anything else is
// counted as "other", so a label never carries arbitrary text.
var codeLabelRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// poll reads what was appended since the last poll and calls deny with
// the code of each egress denial.
func (t *auditTail) poll(deny func(code string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, err := os.Open(t.path)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	if fi.Size() < t.offset { // replaced by a shorter file: start over
		t.offset, t.partial = 0, nil
	}
	if _, err := f.Seek(t.offset, io.SeekStart); err != nil {
		return
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAuditRead))
	if err != nil {
		return
	}
	t.offset += int64(len(b))
	b = append(t.partial, b...)
	last := bytes.LastIndexByte(b, '\n')
	if last < 0 {
		t.partial = b
		return
	}
	t.partial = append([]byte(nil), b[last+1:]...)
	for _, line := range bytes.Split(b[:last], []byte("\n")) {
		var r struct {
			Kind     string `json:"kind"`
			Decision string `json:"decision"`
			Code     string `json:"code"`
		}
		if json.Unmarshal(line, &r) != nil || r.Kind != audit.KindEgress || r.Decision != audit.DecisionDeny {
			continue
		}
		if !codeLabelRE.MatchString(r.Code) {
			r.Code = "other"
		}
		deny(r.Code)
	}
}
