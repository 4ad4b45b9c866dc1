package hub

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/hub/exec"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/hub/limits"
)

// metricsPrefix starts every hub metric name.
const metricsPrefix = "edk_hub_"

// collector exports the hub's counters to Prometheus. It keeps no state of
// its own: every scrape reads the Stats of ingest, the limits hook and the
// executor, so the numbers are never out of step with what the hub logs
// and nothing needs updating on the hot path.
type collector struct {
	ingest *ingest.Pipeline
	limits *limits.Hook // nil with an external broker
	exec   *exec.Executor
	// inboxLength counts the acknowledged messages not yet written
	// (store.InboxLength); it grows only when the store's writes fail.
	inboxLength func(context.Context) (int, error)
	// auth and brokerStats are nil with an external broker.
	auth        *auth.Hook
	brokerStats func() broker.Stats

	connected, received, malformed, unknown, dropped, throttled *prometheus.Desc
	unacknowledged                                              *prometheus.Desc
	queueLen, queueCap, samples, logs, storeErrors              *prometheus.Desc
	executions, pending                                         *prometheus.Desc
	inbox, inboxed                                              *prometheus.Desc
	connections, refused, retainCleared, retries, retryWaiting  *prometheus.Desc
}

func newCollector(p *ingest.Pipeline, l *limits.Hook, x *exec.Executor, inboxLength func(context.Context) (int, error)) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(metricsPrefix+name, help, labels, nil)
	}
	return &collector{
		ingest: p, limits: l, exec: x, inboxLength: inboxLength,
		inbox:          d("ingest_inbox_length", "Device messages acknowledged and not yet written to telemetry, logs and properties; it stays near zero unless the store's writes fail."),
		inboxed:        d("messages_inboxed_total", "Device messages at QoS 1 or 2 committed to the inbox (and then acknowledged)."),
		connected:      d("connected_devices", "Devices with at least one open MQTT connection to the embedded broker."),
		received:       d("messages_received_total", "Device messages decoded, by kind (telemetry, properties, logs, responses).", "kind"),
		malformed:      d("messages_malformed_total", "Device messages that failed to decode."),
		unknown:        d("messages_unknown_device_total", "Messages on v1/from/ topics of a hardware id no device has, or of another channel."),
		dropped:        d("messages_dropped_total", "Device messages dropped: far over the rate limit (rate), over the payload limit (size), or, at QoS 0, because the ingest queue stayed full (queue_full).", "reason"),
		throttled:      d("messages_throttled_total", "Device messages that waited for the rate limit before the broker took them (slowed down, not dropped)."),
		unacknowledged: d("messages_unacknowledged_total", "Device messages at QoS 1 or 2 not acknowledged because they could not be stored in time (queue full, store error or timeout); the device sends them again."),
		queueLen:       d("ingest_queue_length", "Messages waiting to be decoded and stored."),
		queueCap:       d("ingest_queue_capacity", "Size of the ingest queue; publishers wait when it is full."),
		samples:        d("telemetry_samples_stored_total", "Telemetry samples written to the store."),
		logs:           d("log_entries_stored_total", "Device log entries written to the store."),
		storeErrors:    d("store_errors_total", "Store calls of ingest that failed."),
		executions:     d("command_executions_total", "Command executions finished by this hub, by final state (success, error, timeout).", "state"),
		pending:        d("command_executions_pending", "Command executions waiting for the device's final response."),
		connections:    d("mqtt_connections", "Open connections to the embedded broker, those that have not sent CONNECT yet included."),
		refused:        d("mqtt_connections_refused_total", "Connections the embedded broker refused, by reason: max_connections and max_per_address (closed at accept), credentials, login_backoff, busy (no password check free), will (a device's will outside its topics), client_id (held by another identity), store_error.", "reason"),
		retainCleared:  d("messages_retain_cleared_total", "Device messages delivered without the retain flag they were sent with (devices may not retain)."),
		retries:        d("ingest_write_retries_total", "Batch writes that failed (a full disk, say) and were written later, while running."),
		retryWaiting:   d("ingest_writes_waiting_retry", "Failed batch writes waiting to be written again; their messages are in the inbox."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.received, c.malformed, c.unknown, c.dropped, c.throttled, c.unacknowledged,
		c.queueLen, c.queueCap, c.samples, c.logs, c.storeErrors, c.executions, c.pending, c.inbox, c.inboxed,
		c.connections, c.refused, c.retainCleared, c.retries, c.retryWaiting} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}

	in := c.ingest.Stats()
	gauge(c.connected, in.ConnectedDevices)
	counter(c.received, in.Telemetry, "telemetry")
	counter(c.received, in.Properties, "properties")
	counter(c.received, in.Logs, "logs")
	counter(c.received, in.Responses, "responses")
	counter(c.malformed, in.Malformed)
	counter(c.unknown, in.UnknownDevice+in.OtherChannel)
	gauge(c.queueLen, in.QueueLength)
	counter(c.inboxed, in.Inboxed)
	if c.inboxLength != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n, err := c.inboxLength(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.inbox, err)
		} else {
			gauge(c.inbox, n)
		}
	}
	gauge(c.queueCap, in.QueueCapacity)
	counter(c.samples, in.StoredSamples)
	counter(c.logs, in.StoredLogs)
	counter(c.storeErrors, in.StoreErrors)

	var lim limits.Counts
	if c.limits != nil {
		lim = c.limits.Stats().Total
	}
	counter(c.dropped, lim.Rate, string(limits.ReasonRate))
	counter(c.dropped, lim.Size, string(limits.ReasonSize))
	counter(c.dropped, in.Dropped, "queue_full")
	counter(c.throttled, lim.Throttled)
	counter(c.retainCleared, lim.RetainCleared)
	counter(c.unacknowledged, in.Unacknowledged)
	counter(c.retries, in.Retried)
	gauge(c.retryWaiting, in.RetryPending)

	var bs broker.Stats
	if c.brokerStats != nil {
		bs = c.brokerStats()
	}
	var rs auth.Refusals
	if c.auth != nil {
		rs = c.auth.Stats()
	}
	gauge(c.connections, bs.Connections)
	counter(c.refused, bs.RefusedTotalCap, "max_connections")
	counter(c.refused, bs.RefusedPerAddrCap, "max_per_address")
	counter(c.refused, rs.Credentials, "credentials")
	counter(c.refused, rs.Blocked, "login_backoff")
	counter(c.refused, rs.Busy, "busy")
	counter(c.refused, rs.Will, "will")
	counter(c.refused, rs.ClientID, "client_id")
	counter(c.refused, rs.StoreErrors, "store_error")

	x := c.exec.Stats()
	counter(c.executions, x.Success, "success")
	counter(c.executions, x.Error, "error")
	counter(c.executions, x.Timeout, "timeout")
	gauge(c.pending, x.Pending)
}
