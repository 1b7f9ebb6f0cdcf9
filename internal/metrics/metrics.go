// Package metrics holds vouch's Prometheus metrics. One Metrics lives for
// the whole process (reloads keep the counters); every method is safe on a
// nil *Metrics, so code paths need no "metrics enabled?" checks.
package metrics

import (
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vouch/internal/opensslrsa"
)

// Metrics are the collectors.
type Metrics struct {
	reg *prometheus.Registry

	signed      *prometheus.CounterVec // by domain
	unsigned    *prometheus.CounterVec // by reason
	tempfailed  *prometheus.CounterVec // by reason
	screen      *prometheus.CounterVec // check, outcome, action
	decisions   *prometheus.CounterVec // final action
	verify      *prometheus.CounterVec // method, result
	dnsQueries  *prometheus.CounterVec // type
	dnsErrors   *prometheus.CounterVec // type
	dnsLatency  *prometheus.HistogramVec
	sessions    prometheus.Gauge
	reloads     *prometheus.CounterVec // result
	accountFn   atomic.Pointer[func() map[string]uint64]
	ldapFn      atomic.Pointer[func() uint64]
	dmarcRowsFn atomic.Pointer[func() (recorded, dropped int64)]
	panics      prometheus.Counter
	sessionsCap prometheus.Counter
	rotation    *prometheus.CounterVec // domain, event
}

// New registers the collectors; version goes into vouch_build_info.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_messages_signed_total",
			Help: "Messages signed, by signing domain (d=)."}, []string{"domain"}),
		unsigned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_messages_unsigned_total",
			Help: "Messages passed without a signature, by reason."}, []string{"reason"}),
		tempfailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_messages_tempfailed_total",
			Help: "Messages tempfailed at end of message because of a local problem, by reason."}, []string{"reason"}),
		screen: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_screen_results_total",
			Help: "Screening results per check: outcome and the configured action."}, []string{"check", "outcome", "action"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_screen_decisions_total",
			Help: "Screening decisions at MAIL FROM, by action taken (after trial mode) and whether trial mode softened it."}, []string{"action", "trial"}),
		verify: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_verify_results_total",
			Help: "Inbound authentication results, by method (dkim, spf, dmarc) and result."}, []string{"method", "result"}),
		dnsQueries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_dns_queries_total",
			Help: "DNS packets sent, by query type."}, []string{"type"}),
		dnsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_dns_errors_total",
			Help: "DNS exchanges that failed (timeout, network), by query type."}, []string{"type"}),
		dnsLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vouch_dns_query_duration_seconds",
			Help: "DNS exchange latency.", Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"type"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vouch_sessions_in_flight",
			Help: "Milter connections open now."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_reloads_total",
			Help: "Configuration reloads, by result (ok, failed)."}, []string{"result"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "vouch_panics_total",
			Help: "Panics recovered in milter callbacks (the message was tempfailed)."}),
		sessionsCap: prometheus.NewCounter(prometheus.CounterOpts{Name: "vouch_sessions_refused_total",
			Help: "Milter connections tempfailed because limits.max_sessions was reached."}),
		rotation: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vouch_key_rotation_events_total",
			Help: "Key rotation: switched (signing moved to the next key), error (the next key's record no longer matches after the switch)."}, []string{"domain", "event"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vouch_build_info",
		Help: "Build information."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(m.signed, m.unsigned, m.tempfailed, m.screen, m.decisions, m.verify,
		m.dnsQueries, m.dnsErrors, m.dnsLatency, m.sessions, m.reloads, m.panics, m.sessionsCap, m.rotation, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"ok", "failed"} {
		m.reloads.WithLabelValues(r)
	}
	reg.MustRegister(accountCollector{m})
	for i, name := range []string{"vouch_dmarc_report_rows_total", "vouch_dmarc_report_rows_dropped_total"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name,
			Help: []string{"DMARC aggregate report rows written to the store.", "DMARC aggregate report rows lost (buffer full, store errors)."}[i]},
			func() float64 {
				fn := m.dmarcRowsFn.Load()
				if fn == nil {
					return 0
				}
				rec, drop := (*fn)()
				return float64([]int64{rec, drop}[i])
			}))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vouch_rsa_openssl_fallbacks_total",
		Help: "RSA signatures the fast build made with Go's crypto/rsa because OpenSSL failed or its signature did not verify."},
		func() float64 { return float64(opensslrsa.Fallbacks()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vouch_ldap_queries_total",
		Help: "LDAP searches for key and signing tables (since the last reload)."}, func() float64 {
		if fn := m.ldapFn.Load(); fn != nil {
			return float64((*fn)())
		}
		return 0
	}))
	return m
}

// SetLDAPQueries makes vouch_ldap_queries_total read fn (the signer in use).
func (m *Metrics) SetLDAPQueries(fn func() uint64) {
	if m != nil {
		m.ldapFn.Store(&fn)
	}
}

// SetDMARCReportRows makes vouch_dmarc_report_rows_total and
// vouch_dmarc_report_rows_dropped_total read fn (the report recorder).
func (m *Metrics) SetDMARCReportRows(fn func() (recorded, dropped int64)) {
	if m != nil {
		m.dmarcRowsFn.Store(&fn)
	}
}

// SetAccountStats makes vouch_account_events_total read the hijack
// guard's counters through fn.
func (m *Metrics) SetAccountStats(fn func() map[string]uint64) {
	if m != nil {
		m.accountFn.Store(&fn)
	}
}

var accountDesc = prometheus.NewDesc("vouch_account_events_total",
	"Account hijack detection events of the running guard (limited, freezes, notifications, redis_errors, ...).", []string{"event"}, nil)

type accountCollector struct{ m *Metrics }

func (c accountCollector) Describe(ch chan<- *prometheus.Desc) { ch <- accountDesc }

func (c accountCollector) Collect(ch chan<- prometheus.Metric) {
	fn := c.m.accountFn.Load()
	if fn == nil {
		return
	}
	for event, v := range (*fn)() {
		ch <- prometheus.MustNewConstMetric(accountDesc, prometheus.CounterValue, float64(v), event)
	}
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Signed counts a signed message per signing domain.
func (m *Metrics) Signed(domain string) {
	if m != nil {
		m.signed.WithLabelValues(domain).Inc()
	}
}

// Unsigned counts a message passed unsigned; reason is a short class
// ("untrusted", "no_key", "from_header").
func (m *Metrics) Unsigned(reason string) {
	if m != nil {
		m.unsigned.WithLabelValues(reason).Inc()
	}
}

// Tempfailed counts a message tempfailed for a local reason.
func (m *Metrics) Tempfailed(reason string) {
	if m != nil {
		m.tempfailed.WithLabelValues(reason).Inc()
	}
}

// ScreenResult counts one check's result.
func (m *Metrics) ScreenResult(check, outcome, action string) {
	if m != nil {
		m.screen.WithLabelValues(check, outcome, action).Inc()
	}
}

// ScreenDecision counts one decision.
func (m *Metrics) ScreenDecision(action string, trial bool) {
	if m != nil {
		t := "false"
		if trial {
			t = "true"
		}
		m.decisions.WithLabelValues(action, t).Inc()
	}
}

// Verify counts an inbound authentication result.
func (m *Metrics) Verify(method, result string) {
	if m != nil {
		m.verify.WithLabelValues(method, result).Inc()
	}
}

// DNSQuery observes one DNS exchange.
func (m *Metrics) DNSQuery(qtype string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.dnsQueries.WithLabelValues(qtype).Inc()
	m.dnsLatency.WithLabelValues(qtype).Observe(d.Seconds())
	if err != nil {
		m.dnsErrors.WithLabelValues(qtype).Inc()
	}
}

// Sessions adds delta to the sessions in flight.
func (m *Metrics) Sessions(delta int) {
	if m != nil {
		m.sessions.Add(float64(delta))
	}
}

// SessionRefused counts a connection over limits.max_sessions.
func (m *Metrics) SessionRefused() {
	if m != nil {
		m.sessionsCap.Inc()
	}
}

// Reload counts a reload.
func (m *Metrics) Reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("failed").Inc()
	}
}

// Panic counts a recovered panic.
func (m *Metrics) Panic() {
	if m != nil {
		m.panics.Inc()
	}
}

// KeyRotation counts a key rotation event ("switched" or "error").
func (m *Metrics) KeyRotation(domain, event string) {
	if m != nil {
		m.rotation.WithLabelValues(domain, event).Inc()
	}
}
