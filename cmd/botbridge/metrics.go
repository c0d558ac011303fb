package main

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store"
)

// Metrics are botbridge's Prometheus metrics, on a registry of their own.
// They implement bridge.Metrics; the Chat API clients and the adapters
// report through the observers below.
type Metrics struct {
	reg *prometheus.Registry

	inbound, outbound *prometheus.CounterVec
	deliveryLag       *prometheus.HistogramVec
	reconnects        *prometheus.CounterVec
	listeners         prometheus.Gauge
	requests          *prometheus.HistogramVec
	requestErrors     *prometheus.CounterVec
	rateLimitWaits    *prometheus.CounterVec
	rateLimitSeconds  *prometheus.CounterVec
	decryptFailures   *prometheus.CounterVec
	senderTrust       *prometheus.CounterVec
	leasesHeld        prometheus.Gauge
	leaseFailures     prometheus.Counter
}

var (
	_ bridge.Metrics      = (*Metrics)(nil)
	_ bridge.LeaseMetrics = (*Metrics)(nil)
)

// NewMetrics registers botbridge's metrics, Go's and the process's. stats,
// when not nil, is read at each scrape for the outbox and delivery gauges.
func NewMetrics(stats func(context.Context) (store.Stats, error)) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) prometheus.Collector {
		m.reg.MustRegister(c)
		return c
	}
	m.inbound = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_messages_in_total",
		Help: "Messages from people, by platform, bot and result (stored, duplicate, sent, failed).",
	}, []string{"platform", "bot", "result"})).(*prometheus.CounterVec)
	m.outbound = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_messages_out_total",
		Help: "Bot messages, by platform, bot and result (posted, failed).",
	}, []string{"platform", "bot", "result"})).(*prometheus.CounterVec)
	m.deliveryLag = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "botbridge_delivery_lag_seconds",
		Help:    "Time from a bot message's creation at Botpress to its post on the platform.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"platform", "bot"})).(*prometheus.HistogramVec)
	m.reconnects = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_stream_reconnects_total",
		Help: "Conversation event streams that went down and were reopened, by bot.",
	}, []string{"bot"})).(*prometheus.CounterVec)
	m.listeners = f(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "botbridge_listeners_open",
		Help: "Conversation event streams open.",
	})).(prometheus.Gauge)
	m.requests = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "botbridge_botpress_request_duration_seconds",
		Help:    "Chat API requests, by bot, operation and HTTP status (0: no answer).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"bot", "op", "code"})).(*prometheus.HistogramVec)
	m.requestErrors = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_botpress_errors_total",
		Help: "Chat API requests that failed, by bot, operation and HTTP status (0: no answer).",
	}, []string{"bot", "op", "code"})).(*prometheus.CounterVec)
	m.rateLimitWaits = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_platform_rate_limit_waits_total",
		Help: "Times a platform asked botbridge to slow down, by platform.",
	}, []string{"platform"})).(*prometheus.CounterVec)
	m.rateLimitSeconds = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_platform_rate_limit_wait_seconds_total",
		Help: "Time spent waiting out platform rate limits, by platform.",
	}, []string{"platform"})).(*prometheus.CounterVec)
	m.decryptFailures = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_matrix_decryption_failures_total",
		Help: "Matrix events that could not be decrypted, by reason.",
	}, []string{"reason"})).(*prometheus.CounterVec)
	m.senderTrust = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botbridge_matrix_sender_trust_total",
		Help: "Matrix messages decrypted, by how far their sender can be trusted (verified, unverified, unknown-device, forwarded…).",
	}, []string{"state"})).(*prometheus.CounterVec)
	m.leasesHeld = f(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "botbridge_leases_held",
		Help: "Leases this replica holds: shards of the conversations (64 in all), and matrix.sync when it runs the Matrix sync loop.",
	})).(prometheus.Gauge)
	m.leaseFailures = f(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "botbridge_lease_renew_failures_total",
		Help: "Attempts to read, take or renew the leases that failed (the store did not answer); past the lease time the replica stops its work.",
	})).(prometheus.Counter)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "botbridge_build_info",
		Help:        "Always 1; its label is the running version.",
		ConstLabels: prometheus.Labels{"version": versionString()},
	})
	info.Set(1)
	m.reg.MustRegister(info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if stats != nil {
		m.reg.MustRegister(&storeCollector{stats: stats})
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Inbound implements bridge.Metrics.
func (m *Metrics) Inbound(p bridge.Platform, bot, result string) {
	m.inbound.WithLabelValues(string(p), bot, result).Inc()
}

// Outbound implements bridge.Metrics.
func (m *Metrics) Outbound(p bridge.Platform, bot, result string) {
	m.outbound.WithLabelValues(string(p), bot, result).Inc()
}

// DeliveryLag implements bridge.Metrics.
func (m *Metrics) DeliveryLag(p bridge.Platform, bot string, d time.Duration) {
	m.deliveryLag.WithLabelValues(string(p), bot).Observe(d.Seconds())
}

// StreamReconnect implements bridge.Metrics.
func (m *Metrics) StreamReconnect(bot string) { m.reconnects.WithLabelValues(bot).Inc() }

// Listeners implements bridge.Metrics.
func (m *Metrics) Listeners(n int) { m.listeners.Set(float64(n)) }

// LeasesHeld implements bridge.LeaseMetrics.
func (m *Metrics) LeasesHeld(n int) { m.leasesHeld.Set(float64(n)) }

// LeaseRenewFailed implements bridge.LeaseMetrics.
func (m *Metrics) LeaseRenewFailed() { m.leaseFailures.Inc() }

// ChatObserver returns the observer of one bot's Chat API client.
func (m *Metrics) ChatObserver(bot string) func(chat.RequestStats) {
	return func(s chat.RequestStats) {
		code := strconv.Itoa(s.Status)
		m.requests.WithLabelValues(bot, s.Op, code).Observe(s.Duration.Seconds())
		if s.Status == 0 || s.Status >= 400 {
			m.requestErrors.WithLabelValues(bot, s.Op, code).Inc()
		}
	}
}

// RateLimited counts a wait a platform imposed.
func (m *Metrics) RateLimited(p bridge.Platform, wait time.Duration) {
	m.rateLimitWaits.WithLabelValues(string(p)).Inc()
	m.rateLimitSeconds.WithLabelValues(string(p)).Add(wait.Seconds())
}

// DecryptionFailed counts a Matrix event that could not be decrypted.
func (m *Metrics) DecryptionFailed(reason string) {
	m.decryptFailures.WithLabelValues(reason).Inc()
}

// SenderTrust counts a decrypted Matrix message by the trust of its sender.
func (m *Metrics) SenderTrust(state string) {
	m.senderTrust.WithLabelValues(state).Inc()
}

// storeCollector reads the outbox and delivery gauges from the store at
// each scrape.
type storeCollector struct {
	stats func(context.Context) (store.Stats, error)
}

var (
	descOutboxPending = prometheus.NewDesc("botbridge_outbox_pending",
		"Messages from people stored and not yet sent to Botpress.", nil, nil)
	descOutboxOldest = prometheus.NewDesc("botbridge_outbox_oldest_age_seconds",
		"Age of the oldest message waiting in the outbox (0 when empty).", nil, nil)
	descDeliveriesPending = prometheus.NewDesc("botbridge_deliveries_pending",
		"Bot messages received and not yet posted.", nil, nil)
	descDeliveriesOldest = prometheus.NewDesc("botbridge_deliveries_oldest_age_seconds",
		"Age of the oldest bot message waiting to be posted (0 when none).", nil, nil)
	descStoreUp = prometheus.NewDesc("botbridge_store_up",
		"1 when the store could be read at the last scrape.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descOutboxPending
	ch <- descOutboxOldest
	ch <- descDeliveriesPending
	ch <- descDeliveriesOldest
	ch <- descStoreUp
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, 0)
		return
	}
	age := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return time.Since(t).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descOutboxPending, prometheus.GaugeValue, float64(s.PendingInbound))
	ch <- prometheus.MustNewConstMetric(descOutboxOldest, prometheus.GaugeValue, age(s.OldestInbound))
	ch <- prometheus.MustNewConstMetric(descDeliveriesPending, prometheus.GaugeValue, float64(s.PendingDeliveries))
	ch <- prometheus.MustNewConstMetric(descDeliveriesOldest, prometheus.GaugeValue, age(s.OldestDelivery))
}
