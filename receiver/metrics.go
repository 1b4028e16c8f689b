package receiver

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
)

// metrics are the daemon's Prometheus collectors, in a registry of its own
// so several daemons can live in one process (tests).
type metrics struct {
	reg *prometheus.Registry

	// collectors are ours, registered in reg beside the runtime ones.
	collectors []prometheus.Collector

	settled      prometheus.Counter
	refused      *prometheus.CounterVec
	unclaimed    prometheus.Counter
	reversed     prometheus.Counter
	excess       prometheus.Counter
	credited     prometheus.Counter
	notOurs      prometheus.Counter
	decision     prometheus.Histogram
	webhooks     *prometheus.CounterVec
	lndConnected prometheus.Gauge
	subsByState  *prometheus.GaugeVec
	eventsQueued prometheus.Gauge
	leader       prometheus.Gauge
	webhookDead  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: common.NewRegistry("receiver"),
		settled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "satstream_receiver_payments_settled_total",
			Help: "Satstream payments credited and settled.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "satstream_receiver_payments_refused_total",
			Help: "Satstream payments refused, by reason.",
		}, []string{"reason"}),
		unclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "satstream_receiver_payments_unclaimed_total",
			Help: "Payments lnd settled on its own that could not be credited.",
		}),
		reversed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "satstream_receiver_credits_reversed_total",
			Help: "Credits taken back because lnd cancelled the HTLC first.",
		}),
		excess: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "satstream_receiver_excess_settled_msat_total",
			Help: "Millisatoshi lnd settled beyond the credit (HTLCs a payer added to a hash after the decision); refund out of band.",
		}),
		credited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "satstream_receiver_credited_msat_total",
			Help: "Millisatoshi credited as paid time.",
		}),
		notOurs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "satstream_receiver_foreign_keysend_total",
			Help: "Keysend payments without satstream records, left alone.",
		}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "satstream_receiver_decision_seconds",
			Help:    "Time from HTLC accepted by lnd to settle or refuse.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "satstream_receiver_webhook_deliveries_total",
			Help: "Webhook delivery attempts, by result (ok, failed).",
		}, []string{"result"}),
		lndConnected: common.NewLndConnectedGauge("receiver"),
		subsByState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "satstream_receiver_subscriptions",
			Help: "Subscriptions by state.",
		}, []string{"state"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "satstream_receiver_leader",
			Help: "1 while this receiver is its cluster's leader (runs webhook delivery and the expiry sweep; always 1 on badger), else 0.",
		}),
		eventsQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "satstream_receiver_events_pending",
			Help: "Events not yet delivered to every webhook.",
		}),
		webhookDead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "satstream_receiver_webhook_dead",
			Help: "Dead letters: events given up at a webhook endpoint, out of the pending queue until retried.",
		}),
	}
	for _, r := range core.Reasons {
		m.refused.WithLabelValues(string(r))
	}
	m.collectors = []prometheus.Collector{m.settled, m.refused,
		m.unclaimed, m.reversed, m.excess, m.credited, m.notOurs,
		m.decision, m.webhooks, m.lndConnected, m.subsByState,
		m.eventsQueued, m.leader, m.webhookDead}
	m.reg.MustRegister(m.collectors...)
	for _, r := range []string{webhookOK, webhookFailed} {
		m.webhooks.WithLabelValues(r)
	}
	return m
}

// MetricCollectors returns every collector the receiver's /metrics
// serves, so tests elsewhere (contrib's dashboard check) can list the
// metric names without starting a daemon.
func MetricCollectors() []prometheus.Collector {
	return append(common.RuntimeCollectors("receiver"),
		newMetrics().collectors...)
}

// Results of a webhook delivery attempt, the result label's values.
const (
	webhookOK     = "ok"
	webhookFailed = "failed"
)

// webhookResult counts one delivery attempt.
func (m *metrics) webhookResult(ok bool) {
	if ok {
		m.webhooks.WithLabelValues(webhookOK).Inc()
	} else {
		m.webhooks.WithLabelValues(webhookFailed).Inc()
	}
}

// outcome counts one committed decision.
func (m *metrics) outcome(out core.Outcome, latency time.Duration) {
	switch {
	case out.NotOurs:
		m.notOurs.Inc()
	case out.Duplicate:
	case out.Credited:
		m.settled.Inc()
		m.credited.Add(float64(out.Amount))
	case out.Unclaimed:
		m.unclaimed.Inc()
	case out.Reason != "":
		m.refused.WithLabelValues(string(out.Reason)).Inc()
	}
	if latency > 0 {
		m.decision.Observe(latency.Seconds())
	}
}

// refresh recomputes the gauges from the store.
func (m *metrics) refresh(ctx context.Context, db store.ReceiverStore) error {
	counts := map[store.SubState]int{}
	pending, dead := 0, 0
	err := db.View(ctx, func(tx store.ReceiverTx) error {
		for s := store.SubPending; s <= store.SubCancelledByPayer; s++ {
			n := 0
			err := tx.ForEachSubscription(s, store.Page{},
				func(*store.ReceiverSubscription) error {
					n++
					return nil
				})
			if err != nil {
				return err
			}
			counts[s] = n
		}
		// The endpoints that have rows: those configured, and until
		// the dispatcher's next start tidies them, removed ones.
		eps, err := tx.DeliveryEndpoints()
		if err != nil {
			return err
		}
		if dead, err = webhook.CountDead(tx, eps); err != nil {
			return err
		}
		return tx.ForEachPendingEvent(0, func(*store.Event) error {
			pending++
			return nil
		})
	})
	if err != nil {
		return err
	}
	for s, n := range counts {
		m.subsByState.WithLabelValues(s.String()).Set(float64(n))
	}
	m.eventsQueued.Set(float64(pending))
	m.webhookDead.Set(float64(dead))
	return nil
}
