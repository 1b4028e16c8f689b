package sender

import (
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the sender's Prometheus metrics. A nil *Metrics records
// nothing, so unit tests need not set one up.
type Metrics struct {
	registry *prometheus.Registry

	sent     prometheus.Counter
	failedBy *prometheus.CounterVec
	amount   prometheus.Counter
	fees     prometheus.Counter
	inFlight prometheus.Gauge
}

// NewMetrics registers the sender's metrics in a registry of their own;
// states reports the number of subscriptions per state at scrape time.
func NewMetrics(states func() map[string]int) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "satstream_sender", Name: "payments_sent_total",
			Help: "Payments that settled.",
		}),
		failedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "satstream_sender", Name: "payments_failed_total",
			Help: "Payment tries that did not settle, by reason.",
		}, []string{"reason"}),
		amount: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "satstream_sender", Name: "sent_msat_total",
			Help: "Msat paid to receivers (settled payments).",
		}),
		fees: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "satstream_sender", Name: "fees_msat_total",
			Help: "Msat paid in routing fees.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "satstream_sender", Name: "payments_in_flight",
			Help: "Payments handed to lnd and not yet final.",
		}),
	}
	m.registry.MustRegister(m.sent, m.failedBy, m.amount, m.fees,
		m.inFlight, &stateCollector{states: states,
			desc: prometheus.NewDesc("satstream_sender_subscriptions",
				"Subscriptions by state.", []string{"state"}, nil)})
	// The Go runtime's and the process's own figures (go_goroutines,
	// process_resident_memory_bytes): the soak watches them stay flat.
	m.registry.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is what the metrics endpoint serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) paid(amt, fee lnwire.MilliSatoshi) {
	if m == nil {
		return
	}
	m.sent.Inc()
	m.amount.Add(float64(amt))
	m.fees.Add(float64(fee))
}

func (m *Metrics) failed(reason string) {
	if m == nil {
		return
	}
	m.failedBy.WithLabelValues(reason).Inc()
}

// metricsInFlightLocked publishes the in-flight count; e.mu is held.
func (e *Engine) metricsInFlightLocked() {
	if e.metrics == nil {
		return
	}
	e.metrics.inFlight.Set(float64(e.inFlight))
}

// stateCollector counts subscriptions by state when scraped, so idle
// subscriptions cost nothing between scrapes.
type stateCollector struct {
	states func() map[string]int
	desc   *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.states() {
		ch <- prometheus.MustNewConstMetric(c.desc,
			prometheus.GaugeValue, float64(n), state)
	}
}
