// Package devicemetrics exports a device's Stats as Prometheus metrics. The
// collector reads device.Stats at scrape time, so it adds nothing to the
// device's hot path and is never out of step with it.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(devicemetrics.NewCollector(d))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// `edk run --metrics ADDR` does exactly this.
package devicemetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edk-go/edk/device"
)

// Prefix starts every metric name.
const Prefix = "edk_device_"

// Collector is a prometheus.Collector for one device.
type Collector struct {
	d *device.Device

	connected, connects, reconnects             *prometheus.Desc
	published, publishFailures, dropped         *prometheus.Desc
	buffered, bufferedBytes, bufferDropped      *prometheus.Desc
	commands, latency, manifestViolations, info *prometheus.Desc
	requestsDropped                             *prometheus.Desc
}

// NewCollector returns a collector for d; every metric carries the
// device's hardware_id and channel_id labels, so that one process may
// register several devices.
func NewCollector(d *device.Device) *Collector {
	labels := prometheus.Labels{"hardware_id": d.HardwareID(), "channel_id": d.ChannelID()}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(Prefix+name, help, variable, labels)
	}
	return &Collector{
		d:                  d,
		connected:          desc("connected", "1 while the device is connected to its broker, else 0."),
		info:               desc("state", "The device's connection state: 1 for the current one.", "state"),
		connects:           desc("connects_total", "Successful connections to the broker."),
		reconnects:         desc("reconnects_total", "Connections after the first one."),
		published:          desc("messages_published_total", "Messages the broker acknowledged (QoS 1) or that were written to the connection (QoS 0)."),
		publishFailures:    desc("publish_failures_total", "Failed publish attempts; with a buffer the message is retried."),
		dropped:            desc("messages_dropped_total", "Messages neither sent nor kept: failed sends without a buffer, the buffer's bound drops, failed buffer writes."),
		buffered:           desc("buffered_messages", "Messages in the buffer waiting for the broker."),
		bufferedBytes:      desc("buffered_bytes", "Bytes of topics and payloads in the buffer."),
		bufferDropped:      desc("buffer_dropped_total", "Messages the buffer dropped, oldest first: to make room (full) or for age (age).", "reason"),
		commands:           desc("commands_total", "Commands answered, by result (completed, failed, timed_out).", "result"),
		latency:            desc("publish_latency_seconds", "Time from publish to the broker's acknowledgement."),
		manifestViolations: desc("manifest_violations_total", "Telemetry and property values that broke the manifest."),
		requestsDropped:    desc("command_requests_dropped_total", "Command requests dropped unanswered: the device had its most requests open (device.WithMaxOpenRequests)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.info, c.connects, c.reconnects, c.published, c.publishFailures,
		c.dropped, c.buffered, c.bufferedBytes, c.bufferDropped, c.commands, c.latency, c.manifestViolations, c.requestsDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.connected, boolFloat(s.State == device.StateConnected))
	for _, st := range []device.State{device.StateStarting, device.StateConnected, device.StateDisconnected, device.StateStopped} {
		gauge(c.info, boolFloat(s.State == st), st.String())
	}
	counter(c.connects, s.Connects)
	counter(c.reconnects, s.Reconnects)
	counter(c.published, s.Published)
	counter(c.publishFailures, s.PublishFailures)
	counter(c.dropped, s.Dropped)
	gauge(c.buffered, float64(s.Buffer.Messages))
	gauge(c.bufferedBytes, float64(s.Buffer.Bytes))
	counter(c.bufferDropped, s.Buffer.DroppedFull, "full")
	counter(c.bufferDropped, s.Buffer.DroppedOld, "age")
	counter(c.commands, s.CommandsCompleted, "completed")
	counter(c.commands, s.CommandsFailed, "failed")
	counter(c.commands, s.CommandsTimedOut, "timed_out")
	counter(c.manifestViolations, s.ManifestViolations)
	counter(c.requestsDropped, s.RequestsDropped)

	buckets := make(map[float64]uint64, len(device.PublishLatencyBuckets))
	var cumulative uint64
	for i, bound := range device.PublishLatencyBuckets {
		cumulative += s.PublishLatency.Buckets[i]
		buckets[bound.Seconds()] = cumulative
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, s.PublishLatency.Count, s.PublishLatency.Sum.Seconds(), buckets)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
