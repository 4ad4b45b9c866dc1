package device

import (
	"sync/atomic"
	"time"
)

// PublishLatencyBuckets are the upper bounds of Stats.PublishLatency's
// buckets; the last bucket counts everything slower.
var PublishLatencyBuckets = [...]time.Duration{
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second,
}

// Stats is a snapshot of the device's health: what a dashboard or a
// Prometheus scrape shows. Counters count since New.
type Stats struct {
	State State
	// Connects counts successful connections; every one after the first is
	// a reconnect.
	Connects   uint64
	Reconnects uint64
	// Published counts messages the broker acknowledged (QoS 1) or that were
	// written to the connection (QoS 0).
	Published uint64
	// PublishFailures counts failed publish attempts. Without a buffer the
	// message is lost (and counted in Dropped too); with one it is retried.
	PublishFailures uint64
	// Dropped counts messages neither sent nor kept: failed publishes
	// without a buffer, the buffer's bound drops, and failed buffer writes.
	Dropped uint64
	// Buffer is the outbox of WithBuffer; zero without one.
	Buffer BufferStats

	CommandsCompleted uint64 // final response "completed"
	CommandsFailed    uint64 // final response "error", timeouts excluded
	CommandsTimedOut  uint64 // answered "error" because the handler's timeout passed
	// RequestsDropped counts command requests dropped unanswered because
	// the device had WithMaxOpenRequests open already.
	RequestsDropped uint64

	// PublishLatency is the time from publish to the broker's
	// acknowledgement.
	PublishLatency LatencyHistogram

	// ManifestViolations counts telemetry and property values that broke the
	// manifest (each attribute and problem of each message once).
	ManifestViolations uint64
}

// LatencyHistogram counts observations in PublishLatencyBuckets.
type LatencyHistogram struct {
	Count   uint64
	Sum     time.Duration
	Buckets [len(PublishLatencyBuckets) + 1]uint64 // not cumulative; the last is +Inf
}

// counters are the device's live counters behind Stats.
type counters struct {
	connects, published, publishFailures, dropped atomic.Uint64
	completed, failed, timedOut                   atomic.Uint64
	latencySum                                    atomic.Uint64
	latency                                       [len(PublishLatencyBuckets) + 1]atomic.Uint64
}

func (c *counters) observePublish(d time.Duration) {
	c.published.Add(1)
	c.latencySum.Add(uint64(d))
	i := 0
	for i < len(PublishLatencyBuckets) && d > PublishLatencyBuckets[i] {
		i++
	}
	c.latency[i].Add(1)
}

// Stats returns a snapshot of the device's counters.
func (d *Device) Stats() Stats {
	c := &d.stats
	s := Stats{
		State:             d.State(),
		Connects:          c.connects.Load(),
		Published:         c.published.Load(),
		PublishFailures:   c.publishFailures.Load(),
		Dropped:           c.dropped.Load(),
		CommandsCompleted: c.completed.Load(),
		CommandsFailed:    c.failed.Load(),
		CommandsTimedOut:  c.timedOut.Load(),
		RequestsDropped:   d.intake.dropped.Load(),
	}
	if s.Connects > 0 {
		s.Reconnects = s.Connects - 1
	}
	s.PublishLatency.Sum = time.Duration(c.latencySum.Load())
	for i := range c.latency {
		s.PublishLatency.Buckets[i] = c.latency[i].Load()
		// From the buckets read, so Count always matches them.
		s.PublishLatency.Count += s.PublishLatency.Buckets[i]
	}
	if d.outbox != nil {
		s.Buffer = d.outbox.buf.Stats()
		s.Dropped += s.Buffer.DroppedFull + s.Buffer.DroppedOld
	}
	if d.manifest != nil {
		s.ManifestViolations = d.manifest.violations.Load()
	}
	return s
}
