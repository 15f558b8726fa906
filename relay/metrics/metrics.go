// Package metrics defines relay's Prometheus metrics on a registry of its
// own, so that tests can build as many daemons as they like.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's counters, gauges and histograms.
type Metrics struct {
	Registry *prometheus.Registry

	Accepted     prometheus.Counter
	Attempts     *prometheus.CounterVec // channel, outcome
	Deliveries   *prometheus.CounterVec // channel, state (final states)
	Failovers    *prometheus.CounterVec // from, to
	ChannelState *prometheus.GaugeVec   // channel, state: 1 for the current state
	Latency      prometheus.Histogram   // accept → delivered
	Inbound      *prometheus.CounterVec // channel, result
}

// New registers every metric on a fresh registry, with the Go and process
// collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_messages_accepted_total", Help: "Messages accepted (committed to the store).",
		}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_attempts_total", Help: "Send attempts by channel and outcome.",
		}, []string{"channel", "outcome"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_deliveries_total", Help: "Deliveries that ended, by channel (empty when none took it) and final state.",
		}, []string{"channel", "state"}),
		Failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_failovers_total", Help: "Deliveries delivered on another channel than the first of their route.",
		}, []string{"from", "to"}),
		ChannelState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_channel_state", Help: "1 for each channel's current health state (unknown, up, down).",
		}, []string{"channel", "state"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "relay_delivery_latency_seconds", Help: "Time from accepting a message to delivering it.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		Inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_inbound_messages_total", Help: "Messages received from customers, by channel and result.",
		}, []string{"channel", "result"}),
	}
	r.MustRegister(m.Accepted, m.Attempts, m.Deliveries, m.Failovers, m.ChannelState, m.Latency, m.Inbound,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetChannelState sets the one-hot state gauge of a channel.
func (m *Metrics) SetChannelState(channel, state string) {
	for _, s := range []string{"unknown", "up", "down"} {
		v := 0.0
		if s == state {
			v = 1
		}
		m.ChannelState.WithLabelValues(channel, s).Set(v)
	}
}

// queueCollector reports deliveries by state, read from the store at
// scrape time.
type queueCollector struct {
	desc   *prometheus.Desc
	counts func() (map[string]int, error)
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.counts()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, s := range []string{"queued", "sending", "delivered", "expired", "failed", "cancelled"} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

// RegisterQueue adds relay_queue_depth{state}, read by counts at scrape.
func (m *Metrics) RegisterQueue(counts func() (map[string]int, error)) {
	m.Registry.MustRegister(&queueCollector{
		desc:   prometheus.NewDesc("relay_queue_depth", "Deliveries in the store by state.", []string{"state"}, nil),
		counts: counts,
	})
}
